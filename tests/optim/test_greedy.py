"""The one greedy heuristic (:mod:`cloud.optim.greedy`): feasible on random offers, moves load
to the target, keeps peak limits, and is at least as good as the shifted defaults alone."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

import protocol
from cloud.fman.execution import per_slot
from cloud.optim import GreedyPlanner, PlanRequest
from cloud.optim.blocks import plannable
from cloud.optim.greedy import greedy
from cloud.optim.instances import day_ahead_prices, portfolio, solar_target
from cloud.optim.placements import loads
from cloud.optim.terms import evaluate, terms_for
from protocol.samples import NOW, heat_pump_offer

from ..protocol.strategies import offers as offer_strategy


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(offer_strategy(), min_size=1, max_size=5, unique_by=lambda o: o.id),
    st.sampled_from(["balance", "cost"]),
)
def test_greedy_plans_are_feasible(offers, objective):
    res = 900
    offers = [o for o in offers if o.resolution_s == res]
    target = {NOW + 900 * i: float(i % 5) for i in range(-2000, 2000)}
    result = GreedyPlanner().plan(
        PlanRequest(
            offers=offers, objective=objective, target_kwh=target, prices_eur_per_kwh=target
        )
    )
    by_id = {o.id: o for o in offers}
    assume(by_id)
    for s in result.schedules:
        assert (
            protocol.check_assignment(
                by_id[s.offer_id], start=s.start, profile=s.profile, energy_kwh=s.energy_kwh
            )
            == []
        )
    assert {s.offer_id for s in result.schedules} | set(result.infeasible) == set(by_id)


def test_greedy_moves_load_to_the_target_and_respects_peaks():
    offers = [
        replace(heat_pump_offer(agent=f"a{i}", now=NOW, slots=8), id=f"hp{i}") for i in range(6)
    ]
    start = offers[0].start_after
    target = {start + 900 * k: (6.0 if 8 <= k < 16 else 0.0) for k in range(40)}
    planned = GreedyPlanner().plan(PlanRequest(offers=offers, target_kwh=target))
    assert len(planned.schedules) == len(offers)
    # every kWh lands where the target wants it
    placed: dict[int, float] = {}
    for s in planned.schedules:
        for t, e in per_slot(s.start, s.energy_kwh, 900).items():
            placed[t] = placed.get(t, 0.0) + e
    assert all(e <= 1e-9 for t, e in placed.items() if not target.get(t)), placed
    assert sum(placed.values()) >= 6 * 2.0 - 1e-6
    capped = GreedyPlanner().plan(
        PlanRequest(offers=offers, target_kwh=target, peak_kw_by_node={"node-1": 8.0})
    )
    load: dict[int, float] = {}
    assert len(capped.schedules) == len(offers)
    for s in capped.schedules:
        for t, e in per_slot(s.start, s.energy_kwh, 900).items():
            load[t] = load.get(t, 0.0) + e
    assert max(load.values()) <= 8.0 * 900 / 3600 + 1e-6


def test_refined_candidates_beat_the_shifted_defaults():
    """Past its deadline the heuristic scores only the shifted known schedules (what the
    planner's old incumbent did); with time it also tries projected and cheapest energies."""
    offers = portfolio(60, seed=3)
    for request in (
        PlanRequest(offers=offers, target_kwh=solar_target(offers)),
        PlanRequest(offers=offers, objective="cost", prices_eur_per_kwh=day_ahead_prices()),
    ):
        views, infeasible = plannable(request)
        assert views and not infeasible
        terms = terms_for(request, views)
        quick, _ = greedy(views, terms, deadline=0.0)
        full, _ = greedy(views, terms)
        assert all(p is not None for p in quick) and all(p is not None for p in full)
        assert evaluate(terms, loads(views, terms, full)) < evaluate(
            terms, loads(views, terms, quick)
        )
        by_id = {v.offer.id: v for v in views}
        for v, p in zip(views, full, strict=True):
            assert p is not None
            assert not protocol.check_assignment(
                by_id[v.offer.id].offer,
                start=p.start,
                profile=v.blocks[p.block].profile,
                energy_kwh=np.asarray(p.energy).tolist(),
            )
