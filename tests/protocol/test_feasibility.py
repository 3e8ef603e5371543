"""The feasibility check, constraint by constraint, with feasible and infeasible schedules."""

from __future__ import annotations

import msgspec
import pytest

import protocol
from protocol import (
    Bounds,
    DefaultSchedule,
    Dependency,
    FlexOffer,
    Polytope,
    Profile,
    Schedule,
    TwoMode,
)

T = 1_767_225_600
EPS = protocol.EPS


def offer(
    *profiles: Profile, two_mode: TwoMode | None = None, default_profile: int = 0
) -> FlexOffer:
    o = FlexOffer(
        id="o1",
        issuer="a1",
        device="d1",
        created_at=T,
        acceptance_before=T,
        assignment_before=T + 900,
        start_after=T + 3600,
        start_before=T + 3 * 3600,
        profiles=list(profiles),
        two_mode=two_mode,
        default=DefaultSchedule(
            start=T + 3600, profile=default_profile, energy_kwh=[0.0] * profiles[0].n_slots
        ),
    )
    return o


def flat(n: int = 3, lo: float = 0.0, hi: float = 1.0, **kw) -> Profile:
    return Profile(lower_kwh=[lo] * n, upper_kwh=[hi] * n, **kw)


def sched(energy, *, start=T + 3600, profile=0, offer_id="o1") -> Schedule:
    return Schedule(
        offer_id=offer_id, version=1, start=start, profile=profile, energy_kwh=list(energy)
    )


def ok(o, s) -> bool:
    return protocol.is_feasible(o, s)


def test_slot_bounds():
    o = offer(flat())
    assert ok(o, sched([0, 0.5, 1]))
    assert ok(o, sched([0, 0.5, 1 + EPS / 2]))  # within tolerance
    assert not ok(o, sched([0, 0.5, 1.01]))
    assert not ok(o, sched([-0.01, 0.5, 1]))
    errors = protocol.check_schedule(o, sched([2, 0.5, -1]))
    assert [e.path for e in errors] == ["energy_kwh[0]", "energy_kwh[2]"]
    assert not ok(o, sched([0, 0.5]))  # wrong length


def test_non_finite_energy_is_never_feasible():
    # NaN compares false everywhere: no constraint may let it through, with or without a total
    for o in (offer(flat()), offer(flat(dependencies=[Dependency(1, 1.0, -1.0, 0.5)]))):
        for bad in ([0.5, float("nan"), 0.5], [float("nan")] * 3, [0.5, float("inf"), 0.5]):
            assert not ok(o, sched(bad)), bad


def test_total_bounds():
    o = offer(flat(total=Bounds(1.0, 2.0)))
    assert ok(o, sched([0.5, 0.5, 0.5]))
    assert not ok(o, sched([0.2, 0.2, 0.2]))
    assert not ok(o, sched([1, 1, 0.5]))


def test_dependency_rows():
    # a battery that holds at most 1.5 kWh: energy before + energy now <= 1.5
    rows = [Dependency(i, 1.0, 1.0, 1.5) for i in range(3)]
    o = offer(flat(dependencies=rows))
    assert ok(o, sched([1.0, 0.5, 0.0]))
    assert not ok(o, sched([1.0, 0.5, 0.1]))
    err = protocol.check_schedule(o, sched([1.0, 0.6, 0.0]))
    assert [e.path for e in err] == ["energy_kwh[1]", "energy_kwh[2]"]


def test_dependency_polygon_with_negative_coefficients():
    # slot 1 must take at least half of what slot 0 took: 0.5*before - 1*e1 <= 0
    o = offer(flat(dependencies=[Dependency(1, 0.5, -1.0, 0.0)]))
    assert ok(o, sched([1.0, 0.5, 0]))
    assert not ok(o, sched([1.0, 0.4, 0]))


def test_polytope():
    # slot 0 and slot 2 together at most 1 kWh; slot 1 at least slot 0
    o = offer(flat(polytope=Polytope(a=[[1, 0, 1], [1, -1, 0]], b=[1.0, 0.0])))
    assert ok(o, sched([0.5, 0.5, 0.5]))
    assert not ok(o, sched([0.6, 0.6, 0.5]))
    assert not ok(o, sched([0.5, 0.4, 0.0]))


def test_exclusive_or_profiles():
    o = offer(flat(2, 0.0, 1.0), flat(3, 2.0, 3.0))
    assert ok(o, sched([0.5, 0.5], profile=0))
    assert ok(o, sched([2, 2, 3], profile=1))
    assert not ok(o, sched([2, 2, 3], profile=0))  # profile 0 has 2 slots
    assert not ok(o, sched([0.5, 0.5, 0.5], profile=1))  # below profile 1's bounds
    assert not ok(o, sched([0.5, 0.5], profile=2))  # no such profile


def test_start_window_and_grid():
    o = offer(flat())
    assert ok(o, sched([0, 0, 0], start=T + 3600))
    assert ok(o, sched([0, 0, 0], start=T + 3 * 3600))
    assert not ok(o, sched([0, 0, 0], start=T + 2700))  # too early
    assert not ok(o, sched([0, 0, 0], start=T + 3 * 3600 + 900))  # too late
    assert not ok(o, sched([0, 0, 0], start=T + 3700))  # off the slot grid


def test_profile_window_narrows_the_offer_window():
    o = offer(flat(start_before=T + 3600 + 1800), flat(start_after=T + 2 * 3600))
    assert ok(o, sched([0, 0, 0], start=T + 3600 + 1800, profile=0))
    assert not ok(o, sched([0, 0, 0], start=T + 2 * 3600, profile=0))
    assert ok(o, sched([0, 0, 0], start=T + 2 * 3600, profile=1))
    assert not ok(o, sched([0, 0, 0], start=T + 3600, profile=1))


def test_two_mode_expands_into_scaled_exclusive_profiles():
    tm = TwoMode(
        prior_time=T + 3600 + 900, prior_portion=0.5, after_time=T + 2 * 3600, after_portion=2.0
    )
    o = offer(flat(2, 1.0, 1.0, total=Bounds(2.0, 2.0)), two_mode=tm)
    profiles = protocol.effective_profiles(o)
    assert [p.lower_kwh for p in profiles] == [[0.5, 0.5], [2.0, 2.0]]
    assert profiles[0].total == Bounds(1.0, 1.0) and profiles[1].total == Bounds(4.0, 4.0)
    assert ok(o, sched([0.5, 0.5], start=T + 3600, profile=0))  # early start: prior mode
    assert not ok(o, sched([0.5, 0.5], start=T + 2 * 3600, profile=0))  # prior mode ended
    assert ok(o, sched([2, 2], start=T + 2 * 3600, profile=1))  # late start: after mode
    assert not ok(o, sched([2, 2], start=T + 3600, profile=1))  # after mode not yet
    assert not ok(o, sched([1, 1], start=T + 3600, profile=0))  # unscaled energy


def test_two_mode_scales_dependency_and_polytope_rows():
    base = flat(
        2,
        0.0,
        2.0,
        dependencies=[Dependency(1, 1.0, 1.0, 2.0)],
        polytope=Polytope(a=[[1, 0]], b=[1.0]),
    )
    tm = TwoMode(prior_time=T + 3600, prior_portion=2.0, after_time=T + 3 * 3600, after_portion=1.0)
    o = offer(base, two_mode=tm)
    assert ok(o, sched([2.0, 2.0], start=T + 3600, profile=0))  # 2x the capacity
    assert not ok(o, sched([2.0, 2.1], start=T + 3600, profile=0))
    assert not ok(o, sched([1.5, 0.0], start=T + 3 * 3600, profile=1))  # polytope at 1x


def test_schedule_for_another_offer_is_refused():
    o = offer(flat())
    errors = protocol.check_schedule(o, sched([0, 0, 0], offer_id="other"))
    assert [e.path for e in errors] == ["offer_id"]


@pytest.mark.parametrize("bad", [[0, 0, 5], [0, 0]])
def test_messages_say_what_is_wrong(bad):
    o = offer(flat())
    errors = protocol.check_schedule(o, sched(bad))
    assert errors and all(str(e).startswith("energy_kwh") for e in errors)


def test_default_schedule_from_profile_other_than_first():
    o = offer(flat(3, 1.0, 1.0), flat(3, 0.0, 0.0), default_profile=1)
    assert protocol.validate_offer(o) == []
    o2 = msgspec.structs.replace(
        o, default=DefaultSchedule(start=T + 3600, profile=0, energy_kwh=[0.0] * 3)
    )
    assert next(e.path for e in protocol.validate_offer(o2)).startswith("default.energy_kwh")
