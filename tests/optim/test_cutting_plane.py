"""The large-portfolio path: cutting planes on the Lagrangian dual, rounding, best response."""

from __future__ import annotations

import numpy as np
import pytest

import protocol
from cloud.optim import OrToolsPlanner, PlanRequest
from cloud.optim.aggregate import aggregate
from cloud.optim.blocks import view
from cloud.optim.cutting_plane import applies, lagrangian_bound, plan_portfolio
from cloud.optim.instances import day_ahead_prices, portfolio, solar_target
from cloud.optim.terms import terms_for
from protocol import Bounds, Profile

from .conftest import make_offer


def _feasible(offers, result):
    by_id = {o.id: o for o in offers}
    assert by_id and sorted(s.offer_id for s in result.schedules) == sorted(by_id)  # one each
    for s in result.schedules:
        assert not protocol.check_assignment(
            by_id[s.offer_id], start=s.start, profile=s.profile, energy_kwh=s.energy_kwh
        ), s.offer_id
    assert result.objective >= result.bound - 1e-6 * max(1.0, abs(result.objective))


def test_a_realistic_portfolio_is_planned_within_the_gap():
    offers = portfolio(200, seed=12)
    request = PlanRequest(offers=offers, target_kwh=solar_target(offers), time_limit_s=60)
    result = OrToolsPlanner(exact_vars=0).plan(request)
    _feasible(offers, result)
    assert len(result.schedules) == len(offers)
    assert result.status in ("optimal", "feasible")
    assert result.objective - result.bound <= 0.01 * result.objective
    # the slot values reproduce the bound, and bound the aggregated portfolio's plan too
    views = [view(o) for o in offers]
    terms = terms_for(request, views)
    assert lagrangian_bound(views, terms, result.slot_values) == pytest.approx(result.bound)
    aggs = aggregate(offers, max_group_size=20)
    planned = OrToolsPlanner(exact_vars=0).plan(
        PlanRequest(offers=[a.offer for a in aggs], target_kwh=solar_target(offers))
    )
    assert planned.objective >= result.bound - 1e-6


def test_balance_and_cost_together_against_the_exact_mip():
    offers = portfolio(8, seed=13)
    request = PlanRequest(
        offers=offers,
        target_kwh=solar_target(offers),
        prices_eur_per_kwh=day_ahead_prices(),
        weights={"balance": 1.0, "cost": 2.0},
        relative_gap=0.0,
        time_limit_s=60,
    )
    exact = OrToolsPlanner().plan(request)  # the compact MIP
    fast = OrToolsPlanner(exact_vars=0).plan(request)
    _feasible(offers, fast)
    assert fast.bound <= exact.objective + 1e-6
    assert fast.objective >= exact.bound - 1e-6


def test_an_offer_without_any_schedule_is_named_and_the_rest_planned():
    # running-sum rows no schedule can meet: at most 1 kWh by slot 0, at least 3 by slot 1
    # of two 1 kWh slots (the protocol would refuse the offer; the planner must not crash)
    bad = make_offer(
        "bad",
        [
            Profile(
                lower_kwh=[0.0, 0.0],
                upper_kwh=[1.0, 1.0],
                total=Bounds(3.0, 4.0),
            )
        ],
        [1.0, 1.0],
    )
    offers = [bad, *portfolio(6, seed=14)]
    views = [view(o) for o in offers]
    terms = terms_for(PlanRequest(offers=offers, target_kwh=solar_target(offers[1:])), views)
    cat = applies(views, terms)
    assert cat is not None
    answer = plan_portfolio(
        views, terms, cat, [None] * len(views), deadline=np.inf, relative_gap=0.01, say=print
    )
    assert answer.infeasible == [0]
    assert answer.placements[0] is None
    assert all(p is not None for p in answer.placements[1:])


def test_a_large_portfolio_starts_from_a_sample(monkeypatch):
    from cloud.optim import cutting_plane

    # the sample path at a test's scale: above 300 offers, a sample of about 100
    monkeypatch.setattr(cutting_plane, "SAMPLE_ABOVE", 300)
    monkeypatch.setattr(cutting_plane, "SAMPLE", 100)
    offers = portfolio(400, seed=15)
    said: list[str] = []
    result = OrToolsPlanner(exact_vars=0, progress=said.append).plan(
        PlanRequest(offers=offers, target_kwh=solar_target(offers), time_limit_s=60)
    )
    assert any("sample" in line for line in said)
    _feasible(offers, result)
    assert result.objective - result.bound <= 0.01 * result.objective
