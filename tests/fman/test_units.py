"""The pure parts of FMAN: acceptance verdicts, the greedy planner, the execution check,
series and configuration. Ingest against a real store is in ``test_store.py``, on both
databases."""

from __future__ import annotations

import dataclasses

import pytest
from msgspec.structs import replace

from cloud.fman import ConfigError, config_from_dict, series, stability
from cloud.fman.acceptance import judge_meter, judge_offer, judge_withdraw
from cloud.fman.config import AcceptanceSection, Contract, with_overrides
from cloud.fman.execution import check, metered_per_slot, per_slot
from cloud.fman.store import OfferHead
from cloud.optim import GreedyPlanner, OrToolsPlanner, PlanRequest
from cloud.optim.instances import portfolio, solar_target
from protocol import MeterBatch, MeterReading, Withdraw
from protocol.samples import NOW, two_slot_offer

RULES = AcceptanceSection()


def reasons(verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def test_acceptance_accepts_a_good_offer_and_names_every_problem():
    o = two_slot_offer(agent="a", now=NOW)
    ok = judge_offer(
        o, sender="a", stored=None, now=NOW, open_offers=0, contract=Contract(), rules=RULES
    )
    assert ok.outcome == "accept"
    bad = judge_offer(
        o,
        sender="a",
        stored=None,
        now=NOW + 3600,
        open_offers=9,
        contract=Contract(max_power_kw=1.0, devices=["hp"], max_open_offers=9),
        rules=RULES,
    )
    assert set(reasons(bad)) == {
        "acceptance_deadline",
        "unknown_device",
        "exceeds_contract",
        "too_many_offers",
    }
    assert reasons(
        judge_offer(
            o, sender="b", stored=None, now=NOW, open_offers=0, contract=Contract(), rules=RULES
        )
    ) == ["issuer_mismatch"]


def test_acceptance_refuses_a_new_offer_for_a_device_the_agent_did_not_announce():
    o = two_slot_offer(agent="a", now=NOW)  # device "plug"

    def judge(announced, stored=None):
        return judge_offer(
            o,
            sender="a",
            stored=stored,
            now=NOW,
            open_offers=0,
            contract=Contract(),
            rules=RULES,
            announced=announced,
        )

    assert judge(None).outcome == "accept"  # the agent never said: nothing to hold against it
    assert judge(frozenset({"plug", "hp"})).outcome == "accept"
    refused = judge(frozenset({"hp"}))
    assert reasons(refused) == ["unknown_device"] and refused.reasons[0].field == "device"


def test_acceptance_orders_revisions():
    o = replace(two_slot_offer(agent="a", now=NOW), revision=2)
    head = OfferHead(
        id=o.id,
        issuer="a",
        revision=2,
        state="accepted",
        assignment_before=o.assignment_before,
        schedule_version=0,
    )

    def judge(off, h):
        return judge_offer(
            off,
            sender="a",
            stored=h,
            now=NOW,
            open_offers=0,
            contract=Contract(),
            rules=RULES,
        )

    assert judge(o, head).outcome == "duplicate"
    assert reasons(judge(replace(o, revision=1), head)) == ["superseded"]
    assert judge(replace(o, revision=3), head).outcome == "accept"
    done = OfferHead(
        id=o.id,
        issuer="a",
        revision=2,
        state="executing",
        assignment_before=o.assignment_before,
        schedule_version=1,
    )
    assert reasons(judge(replace(o, revision=3), done)) == ["not_updatable"]
    other = OfferHead(
        id=o.id,
        issuer="b",
        revision=0,
        state="accepted",
        assignment_before=o.assignment_before,
        schedule_version=0,
    )
    assert reasons(judge(o, other)) == ["id_conflict"]


def test_withdraw_and_meter_verdicts():
    wd = Withdraw(offer_id="x")
    assert judge_withdraw(wd, sender="a", stored=None).outcome == "accept"  # tombstone
    head = OfferHead(
        id="x", issuer="a", revision=0, state="withdrawn", assignment_before=0, schedule_version=0
    )
    assert judge_withdraw(wd, sender="a", stored=head).outcome == "duplicate"
    assert reasons(judge_withdraw(wd, sender="b", stored=head)) == ["id_conflict"]
    batch = MeterBatch(
        agent="a",
        readings=[
            MeterReading("d", NOW, 900, 100.0),
            MeterReading("e", NOW, 900, 0.5),
            MeterReading("d", NOW + 7200, 900, 0.1),
        ],
    )
    v = judge_meter(
        batch, sender="a", now=NOW + 900, contract=Contract(max_power_kw=10), rules=RULES
    )
    # one implausible reading no longer costs the batch: the valid one is kept
    assert v.outcome == "accept" and v.reasons == ()
    assert [(i, r.code, r.field) for i, r in v.quarantined] == [
        (0, "implausible", "readings[0].energy_kwh"),
        (2, "reading_in_future", "readings[2].start"),
    ]
    other = judge_meter(batch, sender="b", now=NOW, contract=Contract(), rules=RULES)
    assert reasons(other) == ["agent_mismatch"]


def test_hourly_offers_are_spread_over_the_quarter_hours_of_the_portfolio():
    assert per_slot(NOW, [4.0, 2.0], 3600, 900) == {
        NOW + i * 900: 1.0 if i < 4 else 0.5 for i in range(8)
    }
    assert per_slot(NOW, [1.0, 2.0, 3.0, 4.0], 900, 3600) == {NOW: 10.0}
    assert per_slot(NOW, [1.0], 900, 900) == {NOW: 1.0}


def test_execution_check_flags_deviations_per_slot():
    scheduled = per_slot(NOW, [1.0, 1.0, 0.0], 900)
    baseline = per_slot(NOW + 900, [0.5, 0.5], 900)
    metered = metered_per_slot([(NOW, 1800, 2.0), (NOW + 1800, 900, 0.5)], 900)
    rows = check(
        scheduled=scheduled,
        baseline=baseline,
        metered=metered,
        tolerance_kwh=0.05,
        tolerance_rel=0.1,
    )
    assert [(r.slot - NOW, r.baseline_kwh, r.metered_kwh, r.flagged) for r in rows] == [
        (0, 0.0, 1.0, False),
        (900, 0.5, 1.0, False),
        (1800, 0.5, 0.5, True),
    ]


def test_series_files_and_payloads(tmp_path):
    assert series.parse_json(series.to_json({NOW: 1.0, NOW + 1800: 2.0})) == {
        NOW: 1.0,
        NOW + 900: 0.0,
        NOW + 1800: 2.0,
    }
    (tmp_path / "t.csv").write_text("start,value\n2026-01-01T00:00Z,1.5\n1767226500,2\n")
    assert series.load_file(tmp_path / "t.csv") == {NOW: 1.5, NOW + 900: 2.0}
    (tmp_path / "bad.csv").write_text("start,value\n2026-01-01T00:00Z,lots\n")
    with pytest.raises(series.SeriesError, match="row 2"):
        series.load_file(tmp_path / "bad.csv")
    with pytest.raises(series.SeriesError, match=r"values\[1\]"):
        series.parse_json(b'{"start": 0, "values": [1, "x"]}')


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"planning": {"intervall_s": 5}}, "planning"),
        ({"planning": {"resolution_s": 1000}}, "planning.resolution_s"),
        ({"worker": {"batch_max": 0}}, "worker.batch_max"),
        ({"worker": {"ca_file": "ca.crt"}}, "worker.ca_file"),
        ({"objective": {"kind": "cost"}}, "objective.prices"),
        ({"acceptance": {"agents": {"a": {"max_power_kw": "lots"}}}}, "acceptance.agents"),
        ({"worker": {"store": "mysql://db.example/fman"}}, "worker.store"),
        ({"worker": {"store": "postgresql://fman@db.example:5432/"}}, "worker.store"),
        ({"worker": {"store": "postgresql://fman@db.example:port/fman"}}, "worker.store"),
        ({"worker": {"store": ""}}, "worker.store"),
        ({"worker": {"store": "a.db", "db": "b.db"}}, "worker.db"),
        ({"planning": {"lease_ttl_s": 3, "time_limit_s": 5}}, "planning.lease_ttl_s"),
    ],
)
def test_config_errors_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert err.value.key.startswith(key), err.value


def test_the_store_is_a_path_or_a_postgresql_url_and_db_is_its_older_name():
    assert config_from_dict({"worker": {"db": "x/fman.db"}}).worker.store == "x/fman.db"
    url = "postgresql://fman@db.example:5432/fman?passfile=/run/secrets/pgpass"
    cfg = config_from_dict({"worker": {"store": url}})
    assert cfg.worker.store == url
    assert with_overrides(cfg, worker={"db": "y.db"}).worker.store == "y.db"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"worker": {"store": "postgresql://fman:hunter2@db.example:x/fman"}})
    assert "hunter2" not in str(err.value)


def test_an_equivalent_re_plan_changes_nothing_a_better_one_changes_what_differs():
    """The optimiser finds another optimum when the same offers come in another order: the
    schedules in force stay. A plan that is better by more than the cost of the changes
    replaces them."""
    offers = portfolio(16, seed=3)
    target = solar_target(offers)
    request = PlanRequest(offers=offers, target_kwh=target, relative_gap=0.0)

    def plan(offers):
        found = OrToolsPlanner().plan(dataclasses.replace(request, offers=offers))
        return {s.offer_id: s for s in found.schedules}

    first, again = plan(offers), plan(offers[::-1])
    assert any(stability.differs(first[k], again[k], 0.01) for k in first)
    assert stability.objective(request, again) == pytest.approx(stability.objective(request, first))
    kept = stability.choose(
        request, in_force=first, planned=again, change_cost=0.1, tolerance_kwh=0.01
    )
    assert kept.changed == 0 and kept.adopted == {}
    greedy = {s.offer_id: s for s in GreedyPlanner().plan(request).schedules}
    better = stability.choose(
        request, in_force=greedy, planned=first, change_cost=0.1, tolerance_kwh=0.01
    )
    assert better.changed == better.changes_offered > 0 and better.gain > 0
    assert set(better.adopted) == {k for k in first if stability.differs(greedy[k], first[k], 0.01)}


def test_refusals_are_summed_per_reason_between_two_readings_of_the_counters():
    from cloud.fman import refusals

    before = {refusals.key("meter", "implausible"): 2.0, "plan.runs": 3.0}
    now = {
        **before,
        refusals.key("meter", "implausible"): 14.0,
        refusals.key("meter", "unknown_device"): 6.0,
        refusals.key("offer", "too_many_open"): 1.0,
        refusals.key("schedule", ""): 1.0,
        "plan.runs": 9.0,
    }
    assert refusals.summary(before, now) == (
        "refused: 18 meter (implausible 12, unknown_device 6); "
        "1 offer (too_many_open 1); 1 schedule (unknown 1)"
    )
    assert refusals.summary(now, now) is None and refusals.summary({}, {"plan.runs": 1}) is None
    assert refusals.first_code('[{"code": "infeasible"}]') == "infeasible"
    assert refusals.first_code("not json") == refusals.first_code("") == "unknown"
