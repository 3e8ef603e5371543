"""Every example the documentation shows is a file under ``examples/``, and every file there is
checked by the code its command runs, so examples and docs cannot drift apart or go stale.

To add a kind of example (an agent's ``foa.toml``, an ``fman.toml``, a target CSV, a market
book, a contract): put the file under ``examples/``, add its pattern and a checker to
:data:`CHECKERS` (a file without one fails :func:`test_every_example_is_checked`), and if the
docs show it in a fenced block of a new language, add a parser for that language to
:data:`FENCES`.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import protocol
from agent.config import load_config as load_foa_config
from cloud.fman import settlement
from cloud.fman.config import load_config as load_fman_config
from cloud.fman.counters import Counters
from cloud.fman.ingest import Incoming, Ingest
from cloud.fman.requests import answer
from cloud.fman.store import Store, open_store
from cloud.fmar import clear, read_book, to_builtins
from cloud.fmar.config import load_config as load_fmar_config
from cloud.optim.series import parse_series
from cloud.settle import load_contract
from protocol._dso import parse_dso_params
from protocol._request import MeasurementParams, parse_params

from .fman.test_store import new_schedule, offer_record
from .fmar.dso_world import answer_in_world, world_of

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# -- checkers: one per kind of example ----------------------------------------------------------


def offer_file(path: Path) -> None:
    """What ``atp offer validate`` runs: every offer and schedule valid, and some there."""
    content = protocol.read_offer_file(path.read_bytes())
    assert content.offers or content.schedules


def schedule_fits_its_offer(path: Path) -> None:
    """``schedules/NAME.json`` is a schedule for the offer of ``offers/NAME.json``."""
    (offer,) = protocol.read_offers((EXAMPLES / "offers" / path.name).read_bytes())
    schedules = protocol.read_offer_file(path.read_bytes()).schedules
    assert schedules
    for s in schedules:
        assert protocol.check_schedule(offer, s) == []


def same_as_project_form(path: Path) -> None:
    """``offers/NAME.FORM.json`` is ``offers/NAME.json`` in another form;
    ``offers/NAME-assigned.FORM.json`` also carries ``schedules/NAME.json``."""
    name = path.name.split(".")[0]
    base = name.removesuffix("-assigned")
    content = protocol.read_offer_file(path.read_bytes())
    assert content.format == path.name.split(".")[1]
    assert list(content.offers) == protocol.read_offers(
        (EXAMPLES / "offers" / f"{base}.json").read_bytes()
    )
    expected = ()
    if name != base:
        expected = protocol.read_offer_file(
            (EXAMPLES / "schedules" / f"{base}.json").read_bytes()
        ).schedules
    assert content.schedules == expected


def contract_file(path: Path) -> None:
    """What ``atp contract add`` reads: every key known, every value checked."""
    assert load_contract(path).id


def foa_config(path: Path) -> None:
    """What ``foa config check`` runs, device parameters (prices of direct trading among them)
    included (``tests/test_examples_config.py`` runs the command too)."""
    from agent.plugins import check_config_file

    cfg, errors = check_config_file(path)
    assert errors == [] and cfg is not None and cfg.devices


def foa_web_config(path: Path) -> None:
    """An agent with its local page: what ``foa config check`` runs, the page on, and the
    settings it shows are ones the page edits."""
    from agent.web._edit import forms

    cfg = load_foa_config(path)
    assert cfg.web.enabled and cfg.web.loopback and cfg.web.password is None
    shown = forms(tomllib.loads(path.read_text()))
    assert shown and all(any(f.values.values()) for f in shown)


def fman_config(path: Path) -> None:
    """FMAN's configuration loader, unknown keys refused."""
    assert load_fman_config(path).worker.broker


def fmar_config(path: Path) -> None:
    """The market service's configuration loader, unknown keys and broken rules refused;
    the example shows each kind of market with a network."""
    cfg = load_fmar_config(path)
    assert cfg.markets
    assert any(m.network() for m in cfg.markets.values())


def series_file(path: Path) -> None:
    """The series reader ``atp plan`` and FMAN use: a value per 15-minute slot of a day."""
    assert len(parse_series(path.read_text(), source=path.name, resolution_s=900)) == 96


def market_file(path: Path) -> None:
    """What ``atp market clear`` runs: ``markets/NAME.json`` is a book that meets every rule;
    ``markets/NAME.result.json`` is what ``atp market clear --book NAME.json --json`` prints
    (default options)."""
    if path.name.endswith(".result.json"):
        book_file = path.with_name(path.name.removesuffix(".result.json") + ".json")
        cleared = clear(read_book(book_file.read_bytes()))
        assert to_builtins(cleared) == json.loads(path.read_text())
    else:
        book = read_book(path.read_bytes())
        assert book.sell and book.requests


@dataclass(frozen=True)
class _FixedClock:
    t: float
    speed: float = 1.0

    def now(self) -> float:
        return self.t

    def wait(self, seconds: float, stop: Any) -> bool:
        return bool(stop.is_set())


#: The agent of the request examples: the party of ``contracts/direct.json``.
_AGENT = "house-30"
#: When FMAN answers the request examples: 2026-02-10, after January's bill is due.
_ANSWERED_AT = protocol.samples.NOW + 40 * 86_400


@cache
def _request_world() -> tuple[Store, Ingest]:
    """A small FMAN store the request examples are answered from: two offers of the agent
    (one accepted and scheduled, one rejected), one of another agent, the agent's contract,
    and the meter batch of ``interface/measurement.request.json`` through the real ingest."""
    now = protocol.samples.NOW
    store = open_store(":memory:")
    store.put_offers(
        [
            offer_record(f"{_AGENT}.plug.{now}", _AGENT),
            offer_record(f"{_AGENT}.plug.{now + 3600}", _AGENT, state="rejected"),
            offer_record(f"house-31.plug.{now}", "house-31"),
        ]
    )
    store.add_schedules([new_schedule(f"{_AGENT}.plug.{now}", _AGENT, start=now + 1800)], now=now)
    settlement.add_contract(store, load_contract(EXAMPLES / "contracts" / "direct.json"), now=now)
    ingest = Ingest(
        store=store,
        config=load_fman_config(EXAMPLES / "fman.toml"),
        clock=_FixedClock(now),
        worker="fman-1",
        stats=Counters(),
    )
    status = protocol.Status(agent=_AGENT, state="online", since=now, devices=["hp", "plug"])
    ingest.process([Incoming(protocol.topics.agent_topic(_AGENT, "status"), _enc(status, now))])
    _answer(store, ingest, EXAMPLES / "interface" / "measurement.request.json")
    return store, ingest


def _enc(body: Any, ts: int, msg_id: str | None = None) -> bytes:
    return protocol.encode(body, ts=ts, msg_id=msg_id)


def _answer(store: Store, ingest: Ingest, request_file: Path) -> Any:
    """What FMAN's request handler answers ``request_file`` from :data:`_AGENT`, as JSON."""

    def submit(agent: str, p: MeasurementParams) -> Any:
        meter = protocol.topics.agent_topic(agent, "meter")
        (a,) = ingest.process([Incoming(meter, _enc(p.batch, int(ingest.clock.now()), p.msg_id))])
        return protocol.to_builtins(protocol.decode(a.payload, check=False).body)

    request = protocol.from_json(request_file.read_bytes(), protocol.Request)
    response = answer(
        request.method, request.params, agent=_AGENT, reader=store, now=_ANSWERED_AT, submit=submit
    )
    return protocol.to_builtins(response)


def request_example(path: Path) -> None:
    """``interface/NAME.request.json``: a request body as the protocol's own type decodes it,
    its parameters valid for its method unless NAME starts with ``error-``; and
    ``NAME.response.json`` beside it."""
    request = protocol.from_json(path.read_bytes(), protocol.Request)
    if not path.name.startswith("error-"):
        parse_params(request.method, request.params)
    assert path.with_name(path.name.replace(".request.", ".response.")).is_file()


def response_example(path: Path) -> None:
    """``interface/NAME.response.json``: a response body as the protocol's own type decodes it,
    and exactly what FMAN's handler answers ``NAME.request.json`` from a small store (an
    in-memory SQLite one, the real schema)."""
    shown = json.loads(path.read_text())
    assert protocol.to_builtins(protocol.from_json(path.read_bytes(), protocol.Response)) == shown
    assert (shown["status"] == "error") == path.name.startswith("error-")
    store, ingest = _request_world()
    request_file = path.with_name(path.name.replace(".response.", ".request."))
    assert _answer(store, ingest, request_file) == shown


def dso_request_example(path: Path) -> None:
    """``dso/NAME.request.json``: a DSO's request, its parameters valid for its method unless
    NAME starts with ``error-``; ``NAME.response.json`` beside it."""
    request = protocol.from_json(path.read_bytes(), protocol.Request)
    if not path.name.startswith("error-"):
        parse_dso_params(request.method, request.params)
    assert path.with_name(path.name.replace(".request.", ".response.")).is_file()


def dso_response_example(path: Path) -> None:
    """``dso/NAME.response.json``: exactly what FMAR's DSO handler answers NAME.request.json
    in the small market of tests/fmar/dso_world.py."""
    shown = json.loads(path.read_text())
    assert protocol.to_builtins(protocol.from_json(path.read_bytes(), protocol.Response)) == shown
    assert (shown["status"] == "error") == path.name.startswith("error-")
    name = path.name.removesuffix(".response.json")
    assert answer_in_world(path.with_name(f"{name}.request.json"), world_of(name)) == shown


def http_example(path: Path) -> None:
    """``interface/http/NAME.json``: an HTTP request to the gateway (``atp api serve``) that
    is the MQTT request ``same_as`` over HTTP: the gateway's own route table maps its method
    and path to that request's method and parameters (a POST's body is the parameters), and
    its status is the gateway's status for that request's response (checked above against
    FMAN's handler)."""
    from urllib.parse import parse_qsl, urlsplit

    from cloud.api import match, params_of, status_of

    shown = json.loads(path.read_text())
    same = EXAMPLES / shown["same_as"]
    request = protocol.from_json(same.with_name(same.name + ".request.json").read_bytes(),
                                 protocol.Request)  # fmt: skip
    response = protocol.from_json(
        same.with_name(same.name + ".response.json").read_bytes(), protocol.Response
    )
    url = urlsplit(shown["path"])
    found = match(shown["method"], url.path)
    assert found is not None, f"no route for {shown['method']} {url.path}"
    route, path_params = found
    assert route.method == request.method
    if shown["method"] == "POST":
        assert "body" in shown
    else:
        assert "body" not in shown
        assert params_of(route, path_params, dict(parse_qsl(url.query))) == request.params
    assert status_of(response) == shown["status"]


#: (pattern relative to ``examples/``, checker): every checker whose pattern matches a file runs
CHECKERS: list[tuple[str, Callable[[Path], None]]] = [
    ("contracts/*", contract_file),
    ("foa.toml", foa_config),
    ("foa-web.toml", foa_web_config),
    ("foa-market.toml", foa_config),
    ("fman.toml", fman_config),
    ("fman-*.toml", fman_config),
    ("fmar.toml", fmar_config),
    ("*.csv", series_file),
    ("offers/*.json", offer_file),
    ("offers/*.*.json", same_as_project_form),
    ("schedules/*.json", offer_file),
    ("schedules/*.json", schedule_fits_its_offer),
    ("markets/*.json", market_file),
    ("interface/*.request.json", request_example),
    ("interface/*.response.json", response_example),
    ("dso/*.request.json", dso_request_example),
    ("dso/*.response.json", dso_response_example),
    ("interface/http/*.json", http_example),
]

#: fenced-block language in the docs -> (parser, suffix of the example files it is compared with)
FENCES: dict[str, tuple[Callable[[str], Any], str]] = {
    "json": (json.loads, ".json"),
}


def _examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.name != "README.md")


def _rel(path: Path) -> str:
    return path.relative_to(EXAMPLES).as_posix()


@pytest.mark.parametrize("path", _examples(), ids=_rel)
def test_every_example_is_checked(path):
    checkers = [check for pattern, check in CHECKERS if fnmatch(_rel(path), pattern)]
    assert checkers, f"no checker for examples/{_rel(path)}: add one to CHECKERS"
    for check in checkers:
        check(path)


def test_there_are_examples():
    assert len(_examples()) >= 7


# -- the docs show examples, not copies of them --------------------------------------------------

_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def _blocks() -> list[tuple[Path, int, str, str]]:
    found = []
    for md in DOCS:
        text = md.read_text()
        for m in _FENCE.finditer(text):
            if m.group(1) in FENCES:
                line = text.count("\n", 0, m.start()) + 1
                found.append((md, line, m.group(1), m.group(2)))
    return found


@pytest.mark.parametrize(
    ("md", "line", "lang", "block"),
    _blocks(),
    ids=[f"{md.name}:{line}" for md, line, _, _ in _blocks()],
)
def test_each_example_shown_is_a_file_whose_path_the_page_states(md, line, lang, block):
    parse, suffix = FENCES[lang]
    shown = parse(block)
    files = [p for p in _examples() if p.suffix == suffix and parse(p.read_text()) == shown]
    assert files, f"{md.name}:{line}: this {lang} example is no file under examples/"
    assert any(f"examples/{_rel(p)}" in md.read_text() for p in files), (
        f"{md.name}:{line}: the page does not say this is examples/{_rel(files[0])}"
    )


def test_the_docs_show_examples():
    shown = {(md.name, lang) for md, _, lang, _ in _blocks()}
    assert ("README.md", "json") in shown


def test_the_readme_offer_is_valid():
    """The offer the README shows first passes ``atp offer validate``."""
    _, _, _, block = next(b for b in _blocks() if b[0].name == "README.md")
    (offer,) = protocol.read_offers(block.encode())
    assert offer.id == "house-17.ev.1767225600"
