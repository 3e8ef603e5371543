"""The fallback chain (:mod:`cloud.optim.fallback`) answers with a feasible plan whichever
stage fails: a planner that raises, one that answers infeasible schedules, one that leaves
offers out; with every planner failing, the defaults."""

from __future__ import annotations

import math

from cloud.optim import (
    DefaultPlanner,
    FallbackPlanner,
    GreedyPlanner,
    OrToolsPlanner,
    PlannedSchedule,
    PlanRequest,
    PlanResult,
)
from cloud.optim.instances import portfolio, solar_target
from protocol import check_assignment


class Raises:
    def plan(self, request: PlanRequest) -> PlanResult:
        raise RuntimeError("solver crashed")


class Infeasible:
    """Every schedule one slot too long: the protocol's check rejects each."""

    def plan(self, request: PlanRequest) -> PlanResult:
        return PlanResult(
            schedules=[
                PlannedSchedule(
                    offer_id=o.id,
                    start=o.default.start,
                    profile=o.default.profile,
                    energy_kwh=[*o.default.energy_kwh, 1.0],
                )
                for o in request.offers
            ],
            objective=0.0,
            bound=0.0,
            status="optimal",
        )


class HalfOnly:
    """Plans every other offer (by its default) and forgets the rest."""

    def plan(self, request: PlanRequest) -> PlanResult:
        full = DefaultPlanner().plan(request)
        return PlanResult(
            schedules=full.schedules[::2], objective=1.0, bound=0.0, status="feasible"
        )


def _request(**kw: object) -> PlanRequest:
    offers = portfolio(30, seed=5)
    return PlanRequest(offers=offers, target_kwh=solar_target(offers), time_limit_s=2.0, **kw)


def _assert_feasible_for_all(request: PlanRequest, result: PlanResult) -> None:
    by_id = {o.id: o for o in request.offers}
    assert by_id and {s.offer_id for s in result.schedules} == set(by_id)
    for s in result.schedules:
        assert not check_assignment(
            by_id[s.offer_id], start=s.start, profile=s.profile, energy_kwh=s.energy_kwh
        )


def test_each_failing_stage_hands_over_to_the_next():
    request = _request()
    for broken in (Raises(), Infeasible()):
        chain = FallbackPlanner(stages=[broken, GreedyPlanner()]).plan_chain(request)
        _assert_feasible_for_all(request, chain.result)
        assert [f.stage for f in chain.failures] == [type(broken).__name__]
        assert not chain.defaulted  # the greedy placed every offer
        assert chain.result.status == "fallback" and type(broken).__name__ in chain.result.detail
    assert FallbackPlanner(stages=[Infeasible()]).plan_chain(request).rejected == 30


def test_offers_a_stage_leaves_out_go_to_the_next():
    request = _request()
    chain = FallbackPlanner(stages=[HalfOnly(), Raises()]).plan_chain(request)
    _assert_feasible_for_all(request, chain.result)
    assert len(chain.defaulted) == 15
    assert "left 15 offer(s) unplaced" in chain.result.detail


def test_every_real_planner_failing_leaves_the_defaults():
    # an unknown objective weight: the optimiser and the greedy both refuse the request
    request = _request(weights={"balance": 1.0, "comfort": 2.0})
    chain = FallbackPlanner(stages=[OrToolsPlanner(), GreedyPlanner()]).plan_chain(request)
    _assert_feasible_for_all(request, chain.result)
    assert [f.stage for f in chain.failures] == ["OrToolsPlanner", "GreedyPlanner"]
    assert chain.defaulted == {o.id for o in request.offers}
    by_id = {o.id: o for o in request.offers}
    assert all(s.start == by_id[s.offer_id].default.start for s in chain.result.schedules)
    assert chain.result.status == "fallback" and math.isnan(chain.result.objective)


def test_a_working_planner_answers_as_itself():
    request = _request()
    alone = GreedyPlanner().plan(request)
    chain = FallbackPlanner(stages=[GreedyPlanner(), Raises()]).plan_chain(request)
    _assert_feasible_for_all(request, chain.result)
    assert not chain.failures and not chain.defaulted
    assert chain.result.objective == alone.objective
