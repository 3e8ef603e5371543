"""Settlement end to end on a real store (SQLite and PostgreSQL): contracts added with
``atp contract``, offers, schedules and readings stored through the store's own methods,
``atp settle`` run twice, and the bills and KPIs checked against figures worked by hand
(docs/settlement.md, examples 1 and 3)."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import psycopg
import pytest
from click.testing import CliRunner

import protocol
from cloud.cli import main as cli_main
from cloud.fman import open_store
from cloud.fman.store import (
    MarketAward,
    NewSchedule,
    OfferRecord,
    Quarantined,
    Reading,
    ScheduleAnswer,
)
from protocol import DefaultSchedule, FlexOffer, PriceBounds, Prices, Profile

EXAMPLES = Path(__file__).parents[2] / "examples" / "contracts"
DAY = int(datetime(2026, 11, 5, tzinfo=UTC).timestamp())
BOOKED = int(datetime(2026, 12, 1, 1, tzinfo=UTC).timestamp())
Q = 900


def at(hour: int, minute: int = 0) -> int:
    return DAY + hour * 3600 + minute * 60


@pytest.fixture(params=["sqlite", "postgresql"])
def nowhere(request, tmp_path) -> str:
    """Where no store is yet: a path with no file, or an empty PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "fman.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def location(nowhere) -> str:
    """A store as a worker (or ``atp fman migrate``) leaves it before any offer."""
    open_store(nowhere).close()
    return nowhere


def atp(*args: str) -> str:
    result = CliRunner().invoke(cli_main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def atp_fails(*args: str) -> str:
    result = CliRunner().invoke(cli_main, list(args))
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    return result.output


def _offer(
    oid: str,
    agent: str,
    device: str,
    *,
    mode: str,
    default: list[float],
    start: int,
    window: tuple[int, int],
    prices: Prices | None,
) -> FlexOffer:
    n = len(default)
    return FlexOffer(
        id=oid,
        issuer=agent,
        device=device,
        mode=mode,
        created_at=start - 86_400,
        acceptance_before=start - 7200,
        assignment_before=start - 3600,
        start_after=window[0],
        start_before=window[1],
        profiles=[Profile(lower_kwh=[-3.0] * n, upper_kwh=[3.0] * n)],
        default=DefaultSchedule(start=start, energy_kwh=default),
        prices=prices,
    )


def _record(o: FlexOffer) -> OfferRecord:
    return OfferRecord(
        id=o.id,
        issuer=o.issuer,
        revision=0,
        state="accepted",
        received_at=o.created_at,
        updated_at=o.created_at,
        worker="w1",
        device=o.device,
        mode=o.mode,
        created_at=o.created_at,
        acceptance_before=o.acceptance_before,
        assignment_before=o.assignment_before,
        start_after=o.start_after,
        start_before=o.start_before,
        n_slots=len(o.default.energy_kwh),
        resolution_s=Q,
        payload=protocol.encode(o, ts=o.created_at),
    )


def _reading(agent: str, device: str, start: int, kwh: float, received: int) -> Reading:
    return Reading(
        agent=agent,
        device=device,
        start=start,
        duration_s=Q,
        energy_kwh=kwh,
        offer_id="",
        received_at=received,
    )


def _day(location: str) -> None:
    """November 5th as FMAN's workers leave it: two offers scheduled, acknowledged, run and
    metered, both now ``executed``."""
    ev = _offer(
        "house-17.ev.1",
        "house-17",
        "ev",
        mode="delegated",
        default=[2.0, 2.0],
        start=at(18),
        window=(at(18), at(22)),
        prices=Prices(deviation_eur_per_kwh=0.05),
    )
    battery = _offer(
        "house-30.battery.1",
        "house-30",
        "battery",
        mode="direct",
        default=[0.0, 0.0],
        start=at(12),
        window=(at(12), at(12)),
        prices=Prices(slots=[PriceBounds(0.10, 0.30), PriceBounds(0.10, 0.30)]),
    )
    after = at(23)
    with open_store(location) as store:
        store.put_offers([_record(ev), _record(battery)])
        made = store.add_schedules(
            [
                NewSchedule(
                    offer_id=ev.id,
                    issuer=ev.issuer,
                    offer_revision=0,
                    start=at(19),
                    profile=0,
                    energy_kwh=[2.0, 2.0],
                    kind="planned",
                ),
                NewSchedule(
                    offer_id=battery.id,
                    issuer=battery.issuer,
                    offer_revision=0,
                    start=at(12),
                    profile=0,
                    energy_kwh=[2.0, -1.0],
                    kind="planned",
                ),
            ],
            now=at(10),
        )
        assert len(made) == 2
        store.answer_schedules(
            [
                ScheduleAnswer(
                    offer_id=s.offer_id,
                    version=s.version,
                    issuer=s.issuer,
                    status="acked",
                    reason="",
                    at=at(10),
                )
                for s in made
            ]
        )
        store.mark_executing([ev.id, battery.id], at=at(12))
        store.put_readings(
            [
                _reading("house-17", "ev", at(18), 0.0, after),
                _reading("house-17", "ev", at(18, 15), 0.5, after),
                _reading("house-17", "ev", at(19), 2.1, after),
                _reading("house-17", "ev", at(19, 15), 1.0, after),
                _reading("house-30", "battery", at(12), 2.0, after),
                _reading("house-30", "battery", at(12, 15), -0.6, after),
            ]
        )
        for oid in (ev.id, battery.id):
            store.set_execution_summary(oid, metered=2, flagged=0, executed_at=after)


def _snapshot(location: str) -> dict:
    with open_store(location) as s:
        return {
            "ledger": s.ledger(),
            "runs": s.settlement_runs(),
            "verdicts": s.offer_verdicts(),
            "slots": s.settlement_slots(start=0, end=2**40),
            "bills": s.bills(period="2026-11"),
            "review": s.review_items(),
            "offers": sorted((o.id, o.state) for o in s.offers_in(["executed", "settled"])),
        }


def test_a_month_settles_once_on_the_store_and_bills_and_kpis_match_the_hand_figures(
    location, tmp_path
):
    db = ("--store", location)
    out = atp(
        "contract",
        "add",
        str(EXAMPLES / "strict-rewards.toml"),
        str(EXAMPLES / "direct.json"),
        *db,
        "--now",
        str(DAY - 30 * 86_400),
    )
    assert "c-house-17 version 1 (house-17): added" in out
    _day(location)

    dry = json.loads(
        atp("settle", "--period", "2026-11", *db, "--now", str(BOOKED), "--dry-run", "--json")
    )
    assert (dry["dry_run"], dry["settled"], dry["transactions"]) == (
        True,
        2,
        5,
    )  # reward, flex hours, penalty, fee, asks
    assert _snapshot(location)["ledger"] == []  # a dry run writes nothing

    first = json.loads(atp("settle", "--period", "2026-11", *db, "--now", str(BOOKED), "--json"))
    assert (first["evaluated"], first["settled"], first["held"]) == (2, 2, [])
    # example 1: reward 0.32, time flexibility 0.08, penalty -0.12, fee 3.00;
    # example 3 at one ask of 0.10 up and down: (2.0 + 0.6) x 0.10 = 0.26
    assert first["moved_cents"] == {
        "aggregator:asks": -26,
        "aggregator:fee": -300,
        "aggregator:flex_hours": -8,
        "aggregator:penalty": 12,
        "aggregator:reward": -32,
        "party:house-17": 328,
        "party:house-30": 26,
    }
    assert sorted(first["bills"]) == ["aggregator", "house-17", "house-30"]
    after_first = _snapshot(location)
    assert after_first["offers"] == [
        ("house-17.ev.1", "settled"),
        ("house-30.battery.1", "settled"),
    ]
    postings = [p.amount_cents for t in after_first["ledger"] for p in t.postings]
    assert postings and sum(postings) == 0

    again = json.loads(
        atp("settle", "--period", "2026-11", *db, "--now", str(BOOKED + 60), "--json")
    )
    assert (again["unchanged"], again["transactions"], again["skipped"]) == (True, 0, 2)
    assert _snapshot(location) == after_first  # running twice changes nothing

    bill = json.loads(
        atp("bill", "show", "house-17", "--period", "2026-11", *db, "--format", "json")
    )
    assert bill["total_cents"] == 328
    assert {(line["kind"], line["amount_cents"]) for line in bill["lines"]} == {
        ("reward", 32),
        ("flex_hours", 8),
        ("penalty", -12),
        ("fee", 300),
    }
    (day,) = [d for d in bill["days"] if d["offers"]]
    assert (day["day"], day["requested_wh"], day["delivered_wh"], day["undelivered_wh"]) == (
        "2026-11-05",
        8000,
        6500,
        1500,
    )
    csv_text = atp("bill", "show", "house-30", "--period", "2026-11", *db, "--format", "csv")
    assert csv_text.splitlines()[-1].endswith("0.26")
    aggregator = json.loads(
        atp("bill", "show", "aggregator", "--period", "2026-11", *db, "--format", "json")
    )
    assert aggregator["total_cents"] == -354
    listed = json.loads(atp("bill", "list", "--period", "2026-11", *db, "--json"))
    assert {b["party"]: b["total_cents"] for b in listed} == {
        "aggregator": -354,
        "house-17": 328,
        "house-30": 26,
    }

    k = json.loads(atp("kpi", "--period", "2026-11", *db, "--json"))
    assert set(k) == {"2.1.1.1.a", "2.1.1.1.c", "2.1.1.2.a", "2.1.1.2.b"}
    adapt = k["2.1.1.2.b"]
    # slots: ev 18:00 b2.0 s0 m0, 18:15 b2.0 s0 m0.5, 19:00 b0 s2.0 m2.1, 19:15 b0 s2.0 m1.0;
    # battery 12:00 b0 s2.0 m2.0, 12:15 b0 s-1.0 m-0.6
    assert (adapt["baseline_mwh"], adapt["scheduled_mwh"], adapt["metered_mwh"]) == (
        0.004,
        0.005,
        0.005,
    )
    assert (adapt["planned_abs_mwh"], adapt["realised_abs_mwh"]) == (0.011, 0.0092)
    money = k["2.1.1.2.a"]["factual"]
    assert (money["market_revenue_eur"], money["paid_to_parties_eur"]) == (0, 3.54)
    assert money["aggregator_net_eur"] == -3.54
    # peak demand: the hour 18 baseline, 4 kWh; realised flexibility in hour 18: 3.5 kWh
    la = k["2.1.1.1.a"]
    assert la["peak_demand_mw"] == 0.004
    assert {h["hour"]: h["adaptability"] for h in la["hours"]}[at(18)] == 0.875
    text = atp("kpi", "--period", "2026-11", *db)
    assert text.startswith("2.1.1.1.a load adaptability")
    # a window of its own: the month's KPIs again, and KPI 2.1.1.2.b drawn
    png = tmp_path / "adaptation.png"
    window = ("--from", "2026-11-01T00:00Z", "--to", "2026-12-01T00:00Z")
    again_k = json.loads(atp("kpi", *window, *db, "--json", "--plot", str(png)))
    assert again_k["2.1.1.2.b"]["hours"] == adapt["hours"] and len(adapt["hours"]) == 3
    assert png.stat().st_size > 10_000
    assert "give --period, or --from and --to" in atp_fails("kpi", *db, "--from", "2026-11-01")


def test_a_quarantined_reading_holds_the_offer_for_review_until_released(location):
    db = ("--store", location)
    atp(
        "contract",
        "add",
        str(EXAMPLES / "strict-rewards.toml"),
        str(EXAMPLES / "direct.json"),
        *db,
        "--now",
        str(DAY - 30 * 86_400),
    )
    _day(location)
    with open_store(location) as store:
        # ingest set aside a second reading of the EV's 19:15 slot: implausible
        store.put_quarantined(
            [
                Quarantined(
                    agent="house-17",
                    device="ev",
                    start=at(19, 15),
                    duration_s=Q,
                    energy_kwh=40.0,
                    offer_id="",
                    code="implausible",
                    message="more than the contract's power",
                    msg_id="m9",
                    received_at=at(23),
                ),
            ]
        )
    first = json.loads(atp("settle", "--period", "2026-11", *db, "--now", str(BOOKED), "--json"))
    assert (first["settled"], first["held"]) == (1, ["house-17.ev.1"])
    assert first["moved_cents"]["party:house-17"] == 300  # the month's fee, no offer money
    with open_store(location) as store:
        (item,) = store.review_items(status="held")
        assert item.offer_id == "house-17.ev.1"
        assert item.reasons[0].startswith("quarantined: 1 reading(s) of ev")
        assert store.offer("house-17.ev.1").state == "executed"
    bill = json.loads(
        atp("bill", "show", "house-17", "--period", "2026-11", *db, "--format", "json")
    )
    assert (bill["total_cents"], bill["held"]) == (300, ["house-17.ev.1"])

    released = json.loads(
        atp(
            "settle",
            "--period",
            "2026-11",
            *db,
            "--now",
            str(BOOKED + 60),
            "--release",
            "house-17.ev.1",
            "--json",
        )
    )
    assert (released["settled"], released["held"]) == (1, [])
    assert released["moved_cents"]["party:house-17"] == 28  # 0.32 + 0.08 - 0.12
    with open_store(location) as store:
        assert store.review_items()[0].status == "settled"
        assert store.offer("house-17.ev.1").state == "settled"


def test_bad_input_gets_one_line(location, tmp_path):
    db = ("--store", location)
    bad = tmp_path / "c.toml"
    bad.write_text(
        (EXAMPLES / "strict-rewards.toml")
        .read_text()
        .replace("reward_eur_per_kwh", "reward_eur_per_kwhh")
    )
    out = atp_fails("contract", "add", str(bad), *db)
    assert "reward_eur_per_kwhh" in out and str(bad) in out
    assert "2026-13" in atp_fails("settle", "--period", "2026-13", *db)
    atp(
        "contract",
        "add",
        str(EXAMPLES / "strict-rewards.toml"),
        *db,
        "--now",
        str(DAY - 30 * 86_400),
    )
    edited = tmp_path / "edited.toml"
    edited.write_text(
        (EXAMPLES / "strict-rewards.toml")
        .read_text()
        .replace("fee_eur_per_month = 3.00", "fee_eur_per_month = 4.00")
    )
    assert "a change is a new version" in atp_fails("contract", "add", str(edited), *db)
    assert "no contract 'nope'" in atp_fails("contract", "show", "nope", *db)
    assert "cannot end in the past" in atp_fails(
        "contract",
        "end",
        "c-house-17",
        "--at",
        "2026-11-20T00:00:00Z",
        *db,
        "--now",
        "2026-11-21T00:00:00Z",
    )


def _executed(location: str, runs: list[tuple[FlexOffer, int, list[float]]], readings) -> None:
    """Offers scheduled (start, energy), acknowledged, run, metered and ``executed``."""
    with open_store(location) as store:
        store.put_offers([_record(o) for o, _, _ in runs])
        made = store.add_schedules(
            [
                NewSchedule(
                    offer_id=o.id,
                    issuer=o.issuer,
                    offer_revision=0,
                    start=start,
                    profile=0,
                    energy_kwh=energy,
                    kind="planned",
                )
                for o, start, energy in runs
            ],
            now=at(10),
        )
        store.answer_schedules(
            [
                ScheduleAnswer(
                    offer_id=s.offer_id,
                    version=s.version,
                    issuer=s.issuer,
                    status="acked",
                    reason="",
                    at=at(10),
                )
                for s in made
            ]
        )
        store.mark_executing([o.id for o, _, _ in runs], at=at(12))
        store.put_readings(readings)
        for o, _, energy in runs:
            store.set_execution_summary(o.id, metered=len(energy), flagged=0, executed_at=at(23))


def _example_2_awards() -> list[MarketAward]:
    """Example 2's award as FMAN keeps it: one row per member offer and market slot."""
    return [
        MarketAward(
            market="fmar-1",
            gate_start=at(16),
            offer_id=oid,
            slot_start=t,
            kwh=kwh,
            price_eur_per_kwh=0.15,
            aggregate_id="agg-7",
        )
        for oid, kwh in (("house-21.hp.1", 2.0), ("house-22.boiler.1", 1.0))
        for t in (at(17), at(17, 15))
    ]


def test_market_revenue_from_the_stores_awards_is_shared_by_contract(location, tmp_path):
    """docs/settlement.md, example 2, from the store's ``market_awards`` rows: the market's
    margin comes from the worker configuration, the revenue is booked once, also when the
    award arrives after its offers were settled."""
    db = ("--store", location)
    house_22 = tmp_path / "c-house-22.toml"
    house_22.write_text(
        (EXAMPLES / "revenue-sharing.toml")
        .read_text()
        .replace('"c-house-21"', '"c-house-22"')
        .replace('"house-21"', '"house-22"')
        .replace("share = 0.6", "share = 0.5")
    )
    atp("contract", "add", str(EXAMPLES / "revenue-sharing.toml"), str(house_22), *db)
    tight = tmp_path / "tight.toml"
    tight.write_text("[settlement.market_margin]\nmargin_kwh = 0.0\nmargin_rel = 0.0\n")
    rules = tmp_path / "fman.toml"
    rules.write_text("[settlement.markets.fmar-1]\nmargin_kwh = 0.1\nmargin_rel = 0.05\n")
    hp = _offer(
        "house-21.hp.1",
        "house-21",
        "heat_pump",
        mode="delegated",
        default=[1.0, 1.0],
        start=at(17),
        window=(at(17), at(17)),
        prices=None,
    )
    boiler = _offer(
        "house-22.boiler.1",
        "house-22",
        "boiler",
        mode="delegated",
        default=[0.0, 0.0],
        start=at(17),
        window=(at(17), at(17)),
        prices=None,
    )
    _executed(
        location,
        [(hp, at(17), [3.0, 3.0]), (boiler, at(17), [1.0, 1.0])],
        [
            _reading("house-21", "heat_pump", at(17), 3.0, at(23)),
            _reading("house-21", "heat_pump", at(17, 15), 2.9, at(23)),
            _reading("house-22", "boiler", at(17), 1.0, at(23)),
            _reading("house-22", "boiler", at(17, 15), 1.0, at(23)),
        ],
    )
    settle = ("settle", "--period", "2026-11", *db, "--json")
    # revenue sharing pays nothing per offer: the offers are settled, nothing is booked
    first = json.loads(atp(*settle, "--now", str(BOOKED)))
    assert (first["settled"], first["transactions"]) == (2, 0)
    with open_store(location) as store:
        assert store.add_market_awards(_example_2_awards()) == 4

    # without a margin, 17:15 (0.1 kWh short) is not paid: 0.15 x 3.0 = 0.45
    dry = json.loads(atp(*settle, "--now", str(BOOKED + 60), "-c", str(tight), "--dry-run"))
    assert dry["moved_cents"]["market:fmar-1"] == -45

    paid = json.loads(atp(*settle, "--now", str(BOOKED + 60), "-c", str(rules)))
    assert paid["moved_cents"] == {
        "aggregator:market_revenue": 90,
        "aggregator:revenue_share": -51,
        "market:fmar-1": -90,
        "party:house-21": 35,
        "party:house-22": 16,
    }
    assert sorted(paid["bills"]) == ["aggregator", "house-21", "house-22", "market:fmar-1"]
    again = json.loads(atp(*settle, "--now", str(BOOKED + 120), "-c", str(rules)))
    assert (again["unchanged"], again["transactions"]) == (True, 0)
    with open_store(location) as store:
        ledger = store.ledger()
        assert store.add_market_awards(_example_2_awards()) == 0
    assert {t.key for t in ledger} == {
        "award:fmar-1/2026-11-05T16:00Z/agg-7:revenue",
        "award:fmar-1/2026-11-05T16:00Z/agg-7:revenue_share:house-21.hp.1",
        "award:fmar-1/2026-11-05T16:00Z/agg-7:revenue_share:house-22.boiler.1",
    }
    postings = [p.amount_cents for t in ledger for p in t.postings]
    assert postings and sum(postings) == 0
    aggregator = json.loads(
        atp("bill", "show", "aggregator", "--period", "2026-11", *db, "--format", "json")
    )
    assert aggregator["total_cents"] == 39  # the aggregator's margin: 0.90 - 0.51


def test_award_rows_are_grouped_per_market_gate_and_aggregate_and_doubtful_ones_held():
    from cloud.fman.config import MarketMargin, SettlementSection
    from cloud.fman.settlement import market_awards

    rows = _example_2_awards()
    margins = SettlementSection(markets={"fmar-1": MarketMargin(margin_kwh=0.1, margin_rel=0.05)})
    (award,) = market_awards(rows, resolutions={"house-21.hp.1": Q}, margins=margins)
    assert (award.key, award.start, award.resolution_s) == (
        "fmar-1/2026-11-05T16:00Z/agg-7",
        at(17),
        Q,
    )
    assert award.deviation_kwh == (3.0, 3.0) and award.problems == ()
    assert [str(p) for p in award.price_eur_per_kwh] == ["0.15", "0.15"]
    assert (award.margin_kwh, award.margin_rel) == (0.1, 0.05)
    assert {m.offer_id: m.deviation_kwh for m in award.members} == {
        "house-21.hp.1": (2.0, 2.0),
        "house-22.boiler.1": (1.0, 1.0),
    }
    # one member priced apart in a slot, another market at the default margin
    odd = [*rows[:3], dataclasses.replace(rows[3], price_eur_per_kwh=0.2)]
    other = [dataclasses.replace(r, market="fmar-2") for r in rows[:1]]
    held, elsewhere = market_awards(odd + other, resolutions={}, margins=margins)
    assert held.problems == (f"slot {at(17, 15)}: members priced differently (0.15, 0.2 EUR/kWh)",)
    assert (elsewhere.market, elsewhere.margin_kwh, elsewhere.margin_rel) == ("fmar-2", 0.05, 0.1)
    assert elsewhere.resolution_s == 900 and elsewhere.deviation_kwh == (2.0,)


def test_commands_that_write_refuse_a_store_that_is_not_there(nowhere):
    """A mistyped --store made a new empty store and answered from it."""
    db = ("--store", nowhere)
    for args in (
        ("contract", "add", str(EXAMPLES / "strict-rewards.toml")),
        ("settle", "--period", "2026-11"),
        ("contract", "end", "c-house-17", "--at", "2027-01-01"),
    ):
        out = atp_fails(*args, *db)
        assert f"no FMAN database at {nowhere}" in out and "atp fman migrate" in out, out
        assert len(out.strip().splitlines()) == 1, out
    if nowhere.startswith("postgresql"):
        with psycopg.connect(nowhere) as c:
            (n,) = c.execute("SELECT count(*) FROM pg_tables WHERE schemaname='public'").fetchone()
        assert n == 0
    else:
        assert not Path(nowhere).exists() and not list(Path(nowhere).parent.iterdir())
    atp("fman", "migrate", *db)
    assert "added" in atp("contract", "add", str(EXAMPLES / "strict-rewards.toml"), *db)


class _Interrupted:
    """A store whose first read of the period's offers lets ``during`` run in another thread
    on a connection of its own, waiting at most ``wait_s`` for it: what a worker ingesting,
    or another settlement command, does while a run reads."""

    def __init__(self, store, during, *, wait_s: float = 5.0) -> None:
        self._store, self._during, self._wait_s = store, during, wait_s
        self.finished: bool | None = None

    def __getattr__(self, name):
        return getattr(self._store, name)

    def write(self, **kw):
        return self._store.write(**kw)

    def delivered_offers(self, **kw):
        if self.finished is None:
            t = threading.Thread(target=self._during, daemon=True)
            t.start()
            t.join(self._wait_s)
            self.finished = not t.is_alive()
        return self._store.delivered_offers(**kw)


def test_a_run_lets_workers_write_while_it_reads_and_reads_again_after_a_new_contract(location):
    """`atp settle` held the store's write lock for its whole run: FMAN's workers could not
    ingest a reading until a month was read and evaluated."""
    from cloud.fman.settlement import run_settlement
    from cloud.settle import Period

    atp("contract", "add", str(EXAMPLES / "strict-rewards.toml"), "--store", location)
    _day(location)

    def ingest() -> None:
        with open_store(location) as worker:
            worker.put_readings([_reading("house-99", "pv", at(12), -1.0, at(23))])

    with open_store(location) as store:
        run = _Interrupted(store, ingest)
        first = run_settlement(run, Period.parse("2026-11"), now=BOOKED)
        assert run.finished, "a worker's write waited for the run"
        # house-30 had no contract: its offer is held, house-17's settled
        assert (first.settled, first.held) == (1, ("house-30.battery.1",))

    def contract() -> None:
        atp("contract", "add", str(EXAMPLES / "direct.json"), "--store", location)

    with open_store(location) as store:
        run = _Interrupted(store, contract)
        second = run_settlement(run, Period.parse("2026-11"), now=BOOKED + 60)
        assert run.finished
        # the contract came in while the run read: it read again under the lock, so the
        # battery is settled under it
        assert (second.settled, second.held) == (1, ())
        assert second.moved_cents == {"aggregator:asks": -26, "party:house-30": 26}
        assert store.offer("house-30.battery.1").state == "settled"


def test_fman_accepts_offers_by_the_acceptance_limits_of_the_agents_contract(location):
    """The acceptance limits (devices, open offers, power) are part of the contract: an agent
    with a contract in force is judged by it, one without by the configuration."""
    from cloud.clock import SimClock
    from cloud.fman import config_from_dict
    from cloud.fman.counters import Counters
    from cloud.fman.ingest import Incoming, Ingest
    from cloud.fman.settlement import add_contract
    from cloud.settle import Acceptance, Contract, DirectPrice, Party
    from protocol import topics
    from protocol.samples import NOW, two_slot_offer

    worker = Ingest(
        store=open_store(location),
        config=config_from_dict({}),
        clock=SimClock(start=NOW, speed=1.0),
        worker="t",
        stats=Counters(),
    )

    def offer(agent: str, n: int = 0) -> str:
        o = msgspec.structs.replace(two_slot_offer(agent=agent, now=NOW), id=f"{agent}.plug.{n}")
        (answer,) = worker.process(
            [Incoming(topics.agent_topic(agent, "offer"), protocol.encode(o, ts=NOW))]
        )
        m = protocol.decode(answer.payload)
        return m.kind if m.kind == "ack" else m.body.reasons[0].code

    assert offer("c") == "ack"  # no contract anywhere yet: the configuration's limits

    def contract(agent: str, devices: tuple[str, ...], **limits) -> Contract:
        return Contract(
            id=f"c-{agent}",
            party=Party(id=agent),
            valid_from=NOW - 86_400,
            mode="direct",
            devices=devices,
            terms=DirectPrice(),
            acceptance=Acceptance(**limits),
        )

    with open_store(location) as store:  # an operator's `atp contract add`, meanwhile
        add_contract(store, contract("a", ("ev",)), now=NOW)
        add_contract(store, contract("b", ("plug",), max_open_offers=1), now=NOW)
        add_contract(store, contract("d", (), max_power_kw=1.0), now=NOW)
    assert offer("a") == "unknown_device"  # the contract covers the EV alone
    assert offer("b") == "ack"
    assert offer("b", 1) == "too_many_offers"  # one open offer at a time
    assert offer("c", 1) == "ack"  # still no contract: the configuration's 500
    assert offer("d") == "exceeds_contract"  # 0.5 kWh in a quarter hour is 2 kW
    worker.store.close()
