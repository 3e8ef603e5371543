"""Aggregation and disaggregation: valid aggregates, feasible members that sum exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import protocol
from cloud.optim import OrToolsPlanner, PlanRequest
from cloud.optim.aggregate import Aggregator, aggregate, member_of, total_loss
from cloud.optim.disaggregate import disaggregate
from cloud.optim.instances import portfolio, solar_target
from cloud.optim.problem import PlannedSchedule

from .conftest import portfolios, targets


def _members_ok(agg, schedule):
    parts = disaggregate(agg, schedule)
    assert agg.members and schedule.energy_kwh
    n = len(schedule.energy_kwh)
    pad = 1000  # members may reach past the aggregate's slots, where they must be idle
    total = np.zeros(n + 2 * pad)
    for m, off, s in zip(agg.members, agg.offsets, parts, strict=True):
        assert not protocol.check_assignment(
            m.offer, start=s.start, profile=s.profile, energy_kwh=s.energy_kwh
        ), m.offer.id
        total[pad + off : pad + off + len(s.energy_kwh)] += s.energy_kwh
    assert np.abs(total[pad : pad + n] - np.asarray(schedule.energy_kwh)).max() <= 1e-6
    assert np.abs(total[:pad]).max() <= 1e-6 and np.abs(total[pad + n :]).max() <= 1e-6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offers=portfolios(max_offers=8), target=targets(), size=st.integers(1, 4))
def test_planned_aggregates_disaggregate_into_feasible_members(offers, target, size):
    offers = [o for o in offers if not protocol.validate_offer(o)]
    assume(offers)
    aggs = aggregate(offers, max_group_size=size)
    assert aggs and sum(len(a.members) for a in aggs) == len(offers)
    for a in aggs:
        assert not protocol.validate_offer(a.offer)
        assert len(a.members) <= size
    result = OrToolsPlanner().plan(
        PlanRequest(offers=[a.offer for a in aggs], target_kwh=target, time_limit_s=5)
    )
    assert result.objective >= result.bound - 1e-6 * max(1.0, abs(result.objective))
    by_id = {a.offer.id: a for a in aggs}
    assert sorted(s.offer_id for s in result.schedules) == sorted(by_id)  # one each
    for s in result.schedules:
        _members_ok(by_id[s.offer_id], s)


@settings(max_examples=30, deadline=None)
@given(offers=portfolios(max_offers=6), share=st.floats(0, 1), late=st.integers(0, 4))
def test_any_schedule_of_an_aggregate_disaggregates(offers, share, late):
    offers = [o for o in offers if not protocol.validate_offer(o)]
    assume(offers)
    aggs = aggregate(offers)
    assert aggs
    for a in aggs:
        lo, hi = protocol.start_window(a.offer)
        start = min(lo + late * a.offer.resolution_s, hi)
        p = a.offer.profiles[0]
        energy = [x + share * (y - x) for x, y in zip(p.lower_kwh, p.upper_kwh, strict=True)]
        if protocol.check_assignment(a.offer, start=start, profile=0, energy_kwh=energy):
            # a shaped aggregate has totals and running-sum rows too: mix with its default
            d = a.offer.default.energy_kwh
            energy = [share * x + (1 - share) * y for x, y in zip(energy, d, strict=True)]
            if protocol.check_assignment(a.offer, start=start, profile=0, energy_kwh=energy):
                energy = list(d)
        assert not protocol.check_assignment(a.offer, start=start, profile=0, energy_kwh=energy)
        _members_ok(
            a, PlannedSchedule(offer_id=a.offer.id, start=start, profile=0, energy_kwh=energy)
        )


def test_incremental_add_and_remove_match_a_fresh_aggregation():
    offers = portfolio(60, seed=4)
    inc = Aggregator(max_group_size=7)
    for o in offers:
        inc.add(o)
    inc.aggregates()
    for o in offers[::3]:
        inc.remove(o.id)
    inc.remove("no-such-offer")
    kept = [o for i, o in enumerate(offers) if i % 3]
    assert len(inc) == len(kept)
    fresh = aggregate(kept, max_group_size=7)
    inc_aggs = inc.aggregates()
    assert inc_aggs and fresh
    inc_bounds = sorted(
        (a.offer.start_after, round(sum(a.offer.profiles[0].upper_kwh), 6)) for a in inc_aggs
    )
    # group membership may differ (groups filled in another order), totals may not
    assert round(sum(b for _, b in inc_bounds), 4) == round(
        sum(sum(a.offer.profiles[0].upper_kwh) for a in fresh), 4
    )
    for a in inc_aggs:
        assert not protocol.validate_offer(a.offer)
        assert len(a.members) <= 7


def test_loss_is_reported_and_zero_for_identical_box_offers():
    offers = portfolio(40, seed=2, mix=("wet_appliance",))
    same = [o for o in offers if len(o.profiles) == 1][:1]
    assert same
    loss = total_loss(aggregate(same))
    assert loss.time_flexibility_s == 0 and loss.energy_flexibility_kwh < 1e-9
    loss = total_loss(aggregate(portfolio(40, seed=2)))
    assert loss.time_flexibility_s >= 0 and loss.energy_flexibility_kwh > 0
    # two programmes in one group: the aggregate keeps the smaller time flexibility
    a = next(o for o in offers if len(o.profiles) == 1)
    a = protocol.from_builtins(
        {**protocol.to_builtins(a), "start_before": a.start_after + 2700}, type(a)
    )
    b = protocol.from_builtins(
        {**protocol.to_builtins(a), "id": "b", "start_before": a.start_after + 1800}, type(a)
    )
    (agg,) = aggregate([a, b], tf_tolerance_s=3600)
    assert agg.loss.time_flexibility_s == 900


def test_aggregated_planning_of_a_realistic_portfolio():
    offers = portfolio(400, seed=3)
    aggs = aggregate(offers, max_group_size=50)
    result = OrToolsPlanner().plan(
        PlanRequest(
            offers=[a.offer for a in aggs], target_kwh=solar_target(offers), time_limit_s=10
        )
    )
    by_id = {a.offer.id: a for a in aggs}
    assert sorted(s.offer_id for s in result.schedules) == sorted(by_id)  # one each
    for s in result.schedules:
        _members_ok(by_id[s.offer_id], s)


def test_a_group_closes_where_the_next_shape_would_leave_no_schedule():
    pumps = portfolio(40, seed=6, mix=("heat_pump",), nodes=1)
    pumps = [o for o in pumps if o.start_before == o.start_after]
    members = sorted((member_of(o) for o in pumps), key=lambda m: m.shape.run_hi[-1])
    low, high = members[0], members[-1]  # normalised daily heat far apart: no common shape
    agg = Aggregator()
    agg.add_member(low)
    agg.add_member(dataclasses.replace(high, traits=low.traits))  # forced into one key
    got = agg.aggregates()
    assert [len(a.members) for a in got] == [1, 1]
    for a in got:
        assert not protocol.validate_offer(a.offer)
        d = a.offer.default
        _members_ok(
            a,
            PlannedSchedule(
                offer_id=a.offer.id, start=d.start, profile=0, energy_kwh=list(d.energy_kwh)
            ),
        )
