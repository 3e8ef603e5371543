"""The planning cycle's decisions (:mod:`cloud.fman.planning`) on plain values: what is
planned, the fixed load, what is published; and the cycle's planner chain, through
aggregation above ``planning.aggregate_above``, publishing feasible member schedules."""

from __future__ import annotations

import threading

import pytest
from msgspec.structs import replace

import protocol
from cloud.fman import config_from_dict, planning
from cloud.fman.counters import Counters
from cloud.fman.cycle import Cycle
from cloud.fman.execution import per_slot
from cloud.fman.store import StoredOffer
from cloud.optim import AggregatingPlanner, PlanResult
from cloud.optim.instances import portfolio, solar_target
from protocol import Schedule
from protocol.samples import heat_pump_offer


def _row(offer: protocol.FlexOffer, state: str = "accepted") -> StoredOffer:
    return StoredOffer(
        id=offer.id,
        issuer=offer.issuer,
        revision=offer.revision,
        state=state,
        received_at=0.0,
        updated_at=0.0,
        worker="w",
        assignment_before=offer.assignment_before,
    )


def test_select_plans_open_offers_and_fixes_the_rest():
    offers = portfolio(6, seed=1)
    now = float(min(o.assignment_before for o in offers) - 3600)
    rows = [(_row(o, "executing" if i == 0 else "accepted"), o) for i, o in enumerate(offers)]
    sel = planning.select(
        rows, {}, now=now, earliest=int(now), horizon_s=86_400, full=True, resolution_s=900
    )
    assert [o.id for o in sel.plannable] == [o.id for o in offers[1:]]
    # the executing offer counts at its default, per slot
    assert sel.fixed and abs(sum(sel.fixed.values()) - sum(offers[0].default.energy_kwh)) < 1e-9
    assert not sel.defaults
    # past the horizon nothing is planned; at the deadline, the default is due
    late = planning.select(
        rows,
        {},
        now=now,
        earliest=int(now) + 86_400 * 3,
        horizon_s=86_400 * 3,
        full=True,
        resolution_s=900,
    )
    assert not late.plannable and {r.offer_id for r in late.defaults} <= {o.id for o in offers}


def test_what_fman_sold_at_a_node_bands_the_rest_of_the_node_at_its_defaults():
    """Down sold: the planned offers at that node at most their defaults' load in the slot;
    up sold: at least. Other nodes, and awards too small to count, bind nothing."""
    offers = [o for o in portfolio(12, seed=4, nodes=2) if o.resolution_s == 900]
    node = offers[0].grid_node
    other = next(o.grid_node for o in offers if o.grid_node != node)
    sel = planning.Selection(plannable=offers, originals={o.id: o for o in offers})
    here = [o for o in offers if o.grid_node == node]
    t_down, t_up = here[0].default.start, here[0].default.start + 900
    base = {
        t: sum(per_slot(o.default.start, o.default.energy_kwh, 900).get(t, 0.0) for o in here)
        for t in (t_down, t_up)
    }
    awarded = {(node, t_down): -0.4, (node, t_up): 0.2, (node, t_up + 900): 1e-9, ("n/a", 0): -1.0}
    bands = planning.award_bands(sel, awarded, resolution_s=900)
    assert bands.upper == {node: {t_down: pytest.approx(base[t_down])}}
    assert bands.lower == {node: {t_up: pytest.approx(base[t_up])}}
    assert other not in bands.upper and other not in bands.lower
    request = planning.request_for(
        sel,
        objective=config_from_dict({}).objective,
        target={},
        prices={},
        resolution_s=900,
        time_limit_s=1.0,
        bands=bands,
    )
    assert request.node_max_kwh == bands.upper and request.node_min_kwh == bands.lower


def test_awards_add_up_per_node_on_the_planning_grid():
    """Member awards in market slots, summed per node; an hourly member's award spreads over
    its quarter hours; an offer no longer active has run, and binds nothing."""
    quarter = replace(heat_pump_offer(agent="q"), grid_node="n1")
    hourly = replace(heat_pump_offer(agent="h"), grid_node="n1", resolution_s=3600)
    offers = {quarter.id: quarter, hourly.id: hourly}
    t = 1_767_225_600
    got = planning.awarded_per_node(
        [(quarter.id, t, -0.2), (hourly.id, t, -0.8), ("gone", t, 5.0)],
        offers,
        resolution_s=900,
    )
    assert got == {
        ("n1", t): pytest.approx(-0.4),
        ("n1", t + 900): pytest.approx(-0.2),
        ("n1", t + 1800): pytest.approx(-0.2),
        ("n1", t + 2700): pytest.approx(-0.2),
    }


def test_request_is_net_of_the_fixed_load_and_decide_defaults_what_fails():
    offers = portfolio(4, seed=2)
    cfg = config_from_dict({"objective": {"peak_kw": {offers[0].grid_node: 100.0}}})
    sel = planning.Selection(
        plannable=list(offers), originals={o.id: o for o in offers}, fixed={1000 * 900: 2.0}
    )
    request = planning.request_for(
        sel,
        objective=cfg.objective,
        target={1000 * 900: 5.0},
        prices={},
        resolution_s=900,
        time_limit_s=1.0,
    )
    assert request.target_kwh == {1000 * 900: 3.0}
    # a planner answering nothing: every offer gets its default, explicitly
    empty = PlanResult(schedules=[], objective=0.0, bound=0.0, status="fallback")
    d = planning.decide(sel, request, empty, current={}, change_cost=0.0, tolerance_kwh=0.01)
    assert d.defaulted == len(offers) and {r.kind for r in d.rows} == {"default"}
    out = planning.publication(
        d.rows, {o.id: o.assignment_before for o in offers}, in_time=offers[0].assignment_before
    )
    assert len(out.send) + len(out.implicit) == len(offers) and out.too_late == 0


def test_a_large_portfolio_plans_through_aggregation_and_publishes_member_schedules(tmp_path):
    offers = portfolio(40, seed=4)
    cfg = config_from_dict(
        {"planning": {"planner": "greedy", "aggregate_above": 10, "time_limit_s": 2.0}}
    )
    counters = Counters()
    cycle = Cycle(
        worker_id="w",
        config=cfg,
        clock=_Clock(),
        store=None,  # type: ignore[arg-type]  # planners() and _solve() never touch it
        publish=lambda *a, **k: True,
        counters=counters,
        stopping=threading.Event(),
    )
    sel = planning.Selection(plannable=list(offers), originals={o.id: o for o in offers})
    request = planning.request_for(
        sel,
        objective=cfg.objective,
        target=solar_target(offers),
        prices={},
        resolution_s=900,
        time_limit_s=2.0,
    )
    assert isinstance(cycle.planners(request).stages[0], AggregatingPlanner)
    result = cycle._solve(request, full=True)
    assert counters["plan.aggregated"] == 1 and counters["plan.planner_failed"] == 0
    assert "aggregates" in result.detail
    d = planning.decide(sel, request, result, current={}, change_cost=0.0, tolerance_kwh=0.01)
    assert d.defaulted == 0 and len(d.rows) == len(offers)
    by_id = {o.id: o for o in offers}
    for r in d.rows:
        sched = Schedule(
            offer_id=r.offer_id,
            version=1,
            start=r.start,
            profile=r.profile,
            energy_kwh=r.energy_kwh,
            issued_at=0,
            offer_revision=r.offer_revision,
        )
        assert protocol.check_schedule(by_id[r.offer_id], sched) == []
    # below the threshold, no aggregation
    small = replace(cfg.planning, aggregate_above=100)
    cycle.config = replace(cfg, planning=small)
    assert not isinstance(cycle.planners(request).stages[0], AggregatingPlanner)


class _Clock:
    speed = 1.0

    def now(self) -> float:
        return 0.0
