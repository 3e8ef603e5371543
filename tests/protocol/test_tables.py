"""Settings tables into structs: every problem at its dotted key, in the user's words."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta

from protocol import (
    FieldError,
    check_value,
    closest_key,
    convert_table,
    error_lines,
    error_report,
    field_error,
    parse_toml,
    salvage_table,
)


class _T(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class Link(_T, kw_only=True):
    url: str
    keepalive_s: Annotated[int, Meta(ge=5, le=65_535, description="5 to 65535")] = 30
    qos: Literal[0, 1] = 1
    mode: Literal["a", "b"] = "a"
    weights: list[float] = []


class Node(_T, kw_only=True):
    limit_kw: Annotated[float, Meta(gt=0)] = 1.0

    def __post_init__(self) -> None:
        if self.limit_kw > 100:
            raise ValueError("at most 100 kW per node")


class Doc(_T, kw_only=True):
    link: Link
    nodes: dict[str, Node] = {}
    name: str = "x"


def test_a_good_table_converts_with_no_errors():
    doc, errors = convert_table({"link": {"url": "u"}, "nodes": {"n1": {}}}, Doc)
    assert errors == () and doc == Doc(link=Link(url="u"), nodes={"n1": Node()})


def test_every_problem_is_found_at_its_key():
    data = {
        "link": {"keepalive_s": 1, "qos": 2, "mode": 5, "weights": [1, "x"], "kepalive": 3},
        "nodes": {"n1": {"limit_kw": "big"}, "n2": 4, "n3": {"limit_kw": 500}},
        "nmae": "y",
    }
    doc, errors = convert_table(data, Doc, path="site")
    assert doc is None
    assert errors == (
        FieldError("site.nmae", "unknown key (did you mean 'name'?)"),
        FieldError("site.link.kepalive", "unknown key (did you mean 'keepalive_s'?)"),
        FieldError("site.link.url", "missing"),
        FieldError("site.link.keepalive_s", "5 to 65535"),
        FieldError("site.link.qos", "one of 0, 1"),
        FieldError("site.link.mode", "must be str, not int (5)"),
        FieldError("site.link.weights[1]", "Expected `float`, got `str`"),
        FieldError("site.nodes.n1.limit_kw", "must be float, not str ('big')"),
        FieldError("site.nodes.n2", "must be a table, not int"),
        FieldError("site.nodes.n3", "at most 100 kW per node"),
    )


def test_a_missing_table_and_a_bound_without_description():
    assert convert_table({}, Doc)[1] == (FieldError("link", "missing table"),)
    errors = convert_table({"link": {"url": "u"}, "nodes": {"n": {"limit_kw": 0}}}, Doc)[1]
    assert errors == (FieldError("nodes.n.limit_kw", "Expected `float` > 0.0"),)


def test_salvage_keeps_what_was_right_for_the_rules():
    data = {"url": 5, "keepalive_s": 1, "mode": "b"}
    _, errors = convert_table(data, Link, path="link")
    assert salvage_table(data, Link, errors, path="link") is None  # the url is required
    link = salvage_table(data, Link, errors, path="link", fill={"url": ""})
    assert link == Link(url="", mode="b")  # keepalive back at its default
    assert salvage_table(3, Link, errors) is None


def test_single_values_and_hints():
    Id = Annotated[str, Meta(pattern="^[a-z]+$", description="lower-case letters only")]
    assert check_value("ok", Id) == ()
    assert check_value("Not ok", Id, path="devices.Not ok") == (
        FieldError("devices.Not ok", "lower-case letters only"),
    )
    assert closest_key("sped", ["speed", "start"]) == "speed"
    assert closest_key("colour", ["speed", "start"]) is None
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert({"a": [1, "x"]}, dict[str, list[int]])
    assert field_error(info.value, path="t") == FieldError("t[...][1]", "Expected `int`, got `str`")


def test_a_file_is_parsed_and_reported_in_one_set_of_words():
    assert parse_toml(b"[link]\nurl = 'u'\n") == ({"link": {"url": "u"}}, None)
    assert parse_toml(b"[link\n") == (
        None,
        FieldError(
            "",
            "not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 6)",
        ),
    )
    table, error = parse_toml(b"\xff")
    assert table is None and error is not None and error.message.startswith("not UTF-8 text: ")
    pairs = [("link.kepalive", "unknown key (did you mean 'keepalive_s'?)"), ("", "x")]
    assert error_lines("a.toml", pairs) == [
        "a.toml: 2 error(s)",
        "  link.kepalive: unknown key (did you mean 'keepalive_s'?)",
        "  (file): x",
    ]
    assert error_report("a.toml", []) == {"file": "a.toml", "ok": True, "errors": []}
    assert error_report("a.toml", pairs[1:]) == {
        "file": "a.toml",
        "ok": False,
        "errors": [{"key": "", "message": "x"}],
    }
