"""Per-slot node limits (``PlanRequest.node_max_kwh`` and ``node_min_kwh``): every planner
keeps a node's load within them where its offers can, they narrow a peak limit rather than
replace it, and the objective counts each kWh outside them at the peak weight."""

from __future__ import annotations

import numpy as np
import pytest
from msgspec.structs import replace

import protocol
from cloud.fman.execution import per_slot
from cloud.optim import GreedyPlanner, OrToolsPlanner, PlanRequest
from cloud.optim.blocks import plannable
from cloud.optim.errors import OptimError
from cloud.optim.terms import DEFAULT_PEAK_WEIGHT, evaluate, terms_for
from protocol.samples import NOW, heat_pump_offer

RES = 900
NODE = "node-1"


def _offers(n: int = 6) -> list[protocol.FlexOffer]:
    return [
        replace(heat_pump_offer(agent=f"a{i}", now=NOW, slots=8), id=f"hp{i}") for i in range(n)
    ]


def _load(result) -> dict[int, float]:
    out: dict[int, float] = {}
    for s in result.schedules:
        for t, e in per_slot(s.start, s.energy_kwh, RES).items():
            out[t] = out.get(t, 0.0) + e
    return out


PLANNERS = {
    "greedy": GreedyPlanner,
    "exact": OrToolsPlanner,
    "column generation": lambda: OrToolsPlanner(exact_vars=0),
}


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_a_node_band_keeps_load_out_of_slots_the_target_wants_filled(name):
    offers = _offers()
    start = offers[0].start_after
    target = {start + RES * k: (6.0 if 4 <= k < 12 else 0.0) for k in range(40)}
    capped = [start + RES * k for k in range(4, 8)]  # a market sold down here
    floor = start + RES * 20  # and up here, where the target wants nothing
    request = PlanRequest(
        offers=offers,
        target_kwh=target,
        node_max_kwh={NODE: dict.fromkeys(capped, 0.5)},
        node_min_kwh={NODE: {floor: 1.0}},
        time_limit_s=10,
    )
    result = PLANNERS[name]().plan(request)
    assert len(result.schedules) == len(offers)
    by_id = {o.id: o for o in offers}
    for s in result.schedules:
        errors = protocol.check_assignment(
            by_id[s.offer_id], start=s.start, profile=s.profile, energy_kwh=s.energy_kwh
        )
        assert not errors, errors
    load = _load(result)
    assert all(load.get(t, 0.0) <= 0.5 + 1e-6 for t in capped), load
    assert load.get(floor, 0.0) >= 1.0 - 1e-6, load
    # without the band the target fills those slots: the band is what keeps them empty
    free = PLANNERS[name]().plan(replace_request(request))
    assert max(_load(free).get(t, 0.0) for t in capped) > 0.5 + 1e-6


def replace_request(r: PlanRequest) -> PlanRequest:
    return PlanRequest(offers=r.offers, target_kwh=r.target_kwh, time_limit_s=r.time_limit_s)


def test_bands_narrow_the_peak_limit_and_count_at_the_peak_weight():
    offers = _offers(2)
    start = offers[0].start_after
    request = PlanRequest(
        offers=offers,
        peak_kw_by_node={NODE: 4.0},  # 1 kWh per slot either way
        node_max_kwh={NODE: {start: 0.25, start + RES: 3.0}},
        node_min_kwh={NODE: {start + 2 * RES: 0.5}},
    )
    terms = terms_for(request, plannable(request)[0])
    assert terms.limits is not None
    g = terms.groups.index(NODE)
    s = terms.slot_of(start)
    assert terms.limits.upper[g, s : s + 3].tolist() == [0.25, 1.0, 1.0]
    assert terms.limits.lower[g, s : s + 3].tolist() == [-1.0, -1.0, 0.5]
    loads = np.zeros((len(terms.groups), terms.slots))
    loads[g, s : s + 3] = [0.75, 0.0, 0.0]  # 0.5 above the cap, 0.5 below the floor
    # 0.75 kWh from a target of 0, and 1 kWh outside the bands at the peak weight
    assert evaluate(terms, loads) == pytest.approx(0.75 + DEFAULT_PEAK_WEIGHT * 1.0)


def test_a_band_off_the_grid_is_refused_and_one_outside_the_horizon_binds_nothing():
    offers = _offers(1)
    off_grid = PlanRequest(offers=offers, node_max_kwh={NODE: {NOW + 7: 0.0}})
    with pytest.raises(OptimError, match=r"node_max_kwh\.node-1: slot start"):
        terms_for(off_grid, plannable(off_grid)[0])
    outside = PlanRequest(offers=offers, node_min_kwh={NODE: {NOW - 86_400: 5.0}})
    terms = terms_for(outside, plannable(outside)[0])
    assert terms.limits is not None and not np.isfinite(terms.limits.lower).any()
