"""Contracts: files with errors that name their key, versions, and the book's rules."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from msgspec.structs import replace

from cloud.fman.config import Contract as FmanAcceptance
from cloud.settle import (
    ContractBook,
    ContractError,
    Period,
    contract_from_dict,
    contract_to_dict,
    dump_contract,
    load_contract,
    parse_contract,
    settle,
    write_contract,
)

from .build import EXAMPLES, NOV_1, at, offer, readings

EXAMPLE_FILES = sorted(EXAMPLES.iterdir())


def test_examples_exist():
    assert {p.suffix for p in EXAMPLE_FILES} == {".toml", ".json"}


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_loads_and_round_trips(path: Path, tmp_path: Path):
    c = load_contract(path)
    assert c.valid_from == NOV_1
    for suffix in (".toml", ".json"):
        out = tmp_path / f"c{suffix}"
        write_contract(c, out)
        assert load_contract(out) == c


def _base() -> dict:
    return contract_to_dict(load_contract(EXAMPLES / "strict-rewards.toml"))


def _error(data, **kw) -> ContractError:
    with pytest.raises(ContractError) as info:
        contract_from_dict(data, **kw)
    return info.value


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda d: d["terms"].update(reward_eur_per_kwhh=1), "terms", "reward_eur_per_kwhh"),
        (lambda d: d.update(colour="blue"), "", "colour"),
        (lambda d: d["terms"].update(kind="bonus"), "terms.kind", "strict_rewards"),
        (
            lambda d: d.update(terms={"kind": "revenue_sharing", "share": 1.5}),
            "terms.share",
            "above 1",
        ),
        (
            lambda d: d["terms"].update(penalty_eur_per_kwh=-0.1),
            "terms.penalty_eur_per_kwh",
            "negative",
        ),
        (lambda d: d["terms"].update(fee_eur_per_month="NaN"), "terms.fee_eur_per_month", "finite"),
        (lambda d: d.update(mode="direct"), "terms.kind", "direct"),
        (lambda d: d.update(valid_from="2026-13-01"), "valid_from", "ISO 8601"),
        (lambda d: d.update(valid_until="2026-10-01T00:00Z"), "valid_until", "later"),
        (lambda d: d.update(devices=["ev", "e v"]), "devices[1]", "match"),
        (lambda d: d.update(devices=["ev", "ev"]), "devices", "twice"),
        (lambda d: d["party"].update(kind="bank"), "party.kind", "bank"),
        (lambda d: d.pop("party"), "", "party"),
        (lambda d: d["delivery"].update(tolerance_rel=-1), "delivery.tolerance_rel", ">= 0"),
        (lambda d: d["baseline"].update(min_days=20), "baseline.min_days", "more than days"),
        (lambda d: d["metering"].update(main_meter="ev"), "metering.main_meter", "main meter"),
        (lambda d: d["acceptance"].update(max_power_kw=0), "acceptance.max_power_kw", "> 0"),
        (lambda d: d.update(version=0), "version", ">= 1"),
    ],
)
def test_errors_name_their_key(change, key, words):
    data = _base()
    change(data)
    err = _error(data, source="c.toml")
    assert err.key == key
    assert words in str(err)
    assert str(err).startswith("c.toml: ")


def test_file_errors_name_the_file(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "c-1",\n "version": }')
    with pytest.raises(ContractError, match=r"bad\.json:2: not valid JSON"):
        load_contract(bad)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("id = \n")
    with pytest.raises(ContractError, match=r"bad\.toml: not valid TOML"):
        load_contract(bad_toml)
    with pytest.raises(ContractError, match=r"missing\.toml: cannot read it"):
        load_contract(tmp_path / "missing.toml")
    with pytest.raises(ContractError, match=r"\.toml or \.json"):
        load_contract(tmp_path / "c.yaml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text((EXAMPLES / "strict-rewards.toml").read_text().replace("0.05", "-0.05", 1))
    with pytest.raises(ContractError) as info:
        load_contract(wrong)
    err = info.value
    assert (err.source, err.key) == (str(wrong), "terms.reward_eur_per_kwh")


def test_money_is_exact_decimal_in_both_formats():
    c = load_contract(EXAMPLES / "strict-rewards.toml")
    assert c.terms.reward_eur_per_kwh == Decimal("0.05")
    j = json.loads(dump_contract(c, fmt="json"))
    assert j["terms"]["fee_eur_per_month"] == 3.0
    assert parse_contract(dump_contract(c, fmt="json"), fmt="json") == c
    assert "fee_eur_per_month = 3.00" in dump_contract(c, fmt="toml")


def test_acceptance_limits_have_the_shape_of_fman_config():
    c = load_contract(EXAMPLES / "strict-rewards.toml")
    limits = msgspec.to_builtins(c.acceptance_limits)
    assert set(limits) == set(FmanAcceptance.__struct_fields__)
    assert msgspec.convert(limits, FmanAcceptance) == FmanAcceptance(
        max_power_kw=11.0, devices=["ev", "heat_pump"], max_open_offers=50
    )


# -- the book ------------------------------------------------------------------------------


def _strict(version=1, valid_from=NOV_1, fee="3.00", reward="0.05", **kw):
    c = load_contract(EXAMPLES / "strict-rewards.toml")
    terms = replace(c.terms, fee_eur_per_month=Decimal(fee), reward_eur_per_kwh=Decimal(reward))
    return replace(c, version=version, valid_from=valid_from, terms=terms, **kw)


def test_the_version_in_force_at_delivery_governs():
    v1 = _strict()
    v2 = _strict(version=2, valid_from=NOV_1 + 14 * 86_400, fee="6.00", reward="0.10")
    book = ContractBook([v2, v1])
    assert book.in_force("house-17", "ev", NOV_1 + 86_400) is v1
    assert book.in_force("house-17", "ev", NOV_1 + 20 * 86_400) is v2
    assert book.in_force("house-17", "ev", NOV_1 - 1) is None
    assert book.in_force("house-17", "dishwasher", NOV_1 + 86_400) is None
    assert book.in_force("house-18", "ev", NOV_1 + 86_400) is None
    # the monthly fee follows the versions: 14/30 x 3.00 + 16/30 x 6.00
    result = settle(
        period=Period.parse("2026-11"), offers=[], readings=[], contracts=book, booked_at=0
    )
    fees = {t.key: t.amount_for("party:house-17") for t in result.new}
    assert fees == {"fee:c-house-17:2026-11:v1": 140, "fee:c-house-17:2026-11:v2": 320}


def test_a_delivery_is_settled_under_its_version():
    v1 = _strict()
    v2 = _strict(version=2, valid_from=at(12), reward="0.10")
    morning = offer(
        "m", agent="house-17", device="ev", default=(at(6), [0.0]), schedule=(at(6), [1.0])
    )
    evening = offer(
        "e", agent="house-17", device="ev", default=(at(18), [0.0]), schedule=(at(18), [1.0])
    )
    metered = readings("house-17", "ev", at(6), [1.0]) + readings("house-17", "ev", at(18), [1.0])
    result = settle(
        period=Period.parse("2026-11-05"),
        offers=[morning, evening],
        readings=metered,
        contracts=ContractBook([v1, v2]),
        booked_at=0,
    )
    rewards = {t.offer_id: t.amount_for("party:house-17") for t in result.new if t.kind == "reward"}
    assert rewards == {"m": 5, "e": 10}
    assert {o.offer_id: o.contract_version for o in result.offers} == {"m": 1, "e": 2}


def test_versions_are_never_edited():
    book = ContractBook([_strict()])
    assert len(book.with_version(_strict())) == 1  # the same again changes nothing
    with pytest.raises(ContractError, match="exists with other content") as info:
        book.with_version(_strict(fee="9.00"))
    assert info.value.key == "version"
    with pytest.raises(ContractError, match="cannot start in the past"):
        book.with_version(_strict(version=2), now=NOV_1 + 1)
    with pytest.raises(ContractError, match="cannot change") as info:
        book.with_version(_strict(version=2, party=replace(_strict().party, id="house-99")))
    assert info.value.key == "party.id"


def test_two_contracts_may_not_cover_one_device_at_once():
    book = ContractBook([_strict()])
    other = replace(_strict(), id="c-other", devices=("ev",))
    with pytest.raises(ContractError, match="both cover") as info:
        book.with_version(other)
    assert info.value.key == "devices"
    # on another device, or after the first one ended, it may
    book.with_version(replace(other, devices=("dishwasher",)))
    end = NOV_1 + 10 * 86_400
    ended = book.ended("c-house-17", end, now=NOV_1)
    assert (ended.version, ended.valid_until) == (2, end)
    book = book.with_version(ended, now=NOV_1)
    book = book.with_version(replace(other, valid_from=end))
    assert book.in_force("house-17", "ev", end - 1).id == "c-house-17"
    assert book.in_force("house-17", "ev", end).id == "c-other"
    with pytest.raises(ContractError, match="in the past"):
        book.ended("c-other", end + 1, now=end + 2)


def test_every_example_in_the_docs_is_a_checked_file():
    import re

    text = (EXAMPLES.parents[1] / "docs" / "settlement.md").read_text()
    blocks = re.findall(r"```(toml|json)\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    files = {p.read_text().strip() for p in EXAMPLE_FILES}
    for _, body in blocks:
        assert body.strip() in files
