"""A battery block offered while earlier blocks of the same battery are live: whatever schedule
each of them gets, the charge stays in its band (the physics of :mod:`agent.physics.storage`).

The defect these guard against: every block was offered from the charge measured now, as if
the blocks before it would leave the battery as it is; a block after one scheduled to
discharge fully could then be scheduled to discharge again, from an empty battery."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from agent.core import Core, OfferSource
from agent.drivers.base import Measurement
from agent.generators._corridor import default_path
from agent.generators._episodes import energy_range
from agent.generators.base import Episode, OfferContext
from agent.generators.battery import Battery
from agent.physics.storage import soc_after
from agent.store import Plan, Store
from protocol import (
    Ack,
    Bounds,
    DefaultSchedule,
    Dependency,
    FlexOffer,
    OfferState,
    Profile,
    Schedule,
    check_assignment,
    topics,
    validate_offer,
)
from tests.agent_devices.helpers import corridor_of, random_feasible

from .helpers import T0, StepClock

HOUR = 3600
#: The demo's market feeder: hourly blocks, offered hours ahead so that they reach the gates.
PARAMS = {"horizon_h": 1, "lead_s": 3 * HOUR}
#: Tolerance of the float arithmetic, kWh.
EPS = 1e-6


def ctx(now: int, soc: float, episodes: Sequence[Episode] = (), r: int = 900) -> OfferContext:
    return OfferContext(
        agent="a",
        device="bat",
        now=now,
        resolution_s=r,
        measurement=Measurement(ts=now, state={"soc_kwh": soc}),
        episodes=tuple(episodes),
    )


def valid(offer: FlexOffer | None) -> FlexOffer:
    assert offer is not None
    assert validate_offer(offer) == []
    d = offer.default
    assert check_assignment(offer, start=d.start, profile=d.profile, energy_kwh=d.energy_kwh) == []
    lower, upper = corridor_of(offer.profiles[0])
    assert all(lo <= hi + EPS for lo, hi in zip(lower, upper, strict=True))
    return offer


def plan_of(offer: FlexOffer, energy: Sequence[float], source: str = "fman") -> Plan:
    assert offer.start_after is not None
    return Plan(
        offer_id=offer.id,
        device=offer.device,
        version=1 if source == "fman" else 0,
        start=offer.start_after,
        resolution_s=offer.resolution_s,
        profile=0,
        energy_kwh=tuple(energy),
        source="fman" if source == "fman" else "default",
    )


def episode(offer: FlexOffer, state: OfferState, plan: Plan | None = None) -> Episode:
    return Episode(offer.id, offer, state, plan)


def extremes(offer: FlexOffer) -> list[list[float]]:
    """Schedules at the corners of the offer: as low and as high as it goes, one then the
    other, idle where it may, its default."""
    p = offer.profiles[0]
    lower, upper = corridor_of(p)
    n, big = p.n_slots, 1e9
    wishes = [[-big] * n, [big] * n, [0.0] * n]
    wishes += [[-big] * k + [big] * (n - k) for k in range(1, n)]
    wishes += [[big] * k + [-big] * (n - k) for k in range(1, n)]
    out = [default_path(lower, upper, p.lower_kwh, p.upper_kwh, w) for w in wishes]
    return [*out, list(offer.default.energy_kwh)]


def run(battery: Battery, soc: float, schedules: Sequence[Sequence[float]]) -> list[float]:
    """The charge at the end of every slot of ``schedules``, one after the other."""
    spec = battery.spec
    out = []
    for schedule in schedules:
        for e in schedule:
            soc = soc_after(soc, e, eta_charge=spec.eta_charge, eta_discharge=spec.eta_discharge)
            out.append(soc)
    return out


def within(battery: Battery, socs: Sequence[float], tol: float = 0.0) -> bool:
    spec = battery.spec
    return all(spec.soc_min_kwh - tol - EPS <= s <= spec.soc_max_kwh + tol + EPS for s in socs)


# -- the defect --------------------------------------------------------------------------------


def test_a_block_after_one_that_may_discharge_fully_holds_whatever_both_are_scheduled():
    """Block A (offered, its schedule still open) may discharge the battery to its floor; block
    B after it, offered an hour later, must still hold whatever A is scheduled to do: every
    pair of schedules of A and B keeps the charge in its band."""
    gen = Battery(PARAMS)
    a = valid(gen.offer(ctx(T0 + 60, 5.0)))
    assert min(accumulate(extremes(a)[0])) < -3.0  # A may discharge most of the battery
    b = valid(gen.offer(ctx(T0 + HOUR + 60, 5.0, [episode(a, "accepted")])))
    assert a.start_after is not None and b.start_after == a.start_after + HOUR
    for sa in extremes(a):
        for sb in extremes(b):
            assert within(gen, run(gen, 5.0, [sa, sb])), (sa, sb)


def test_a_block_after_an_assigned_one_holds_for_the_schedules_fman_may_still_send():
    """A's schedule may still change until its ``assignment_before``: B holds for any of A's
    schedules, not only for the one assigned now."""
    gen = Battery(PARAMS)
    a = valid(gen.offer(ctx(T0 + 60, 5.0)))
    idle = plan_of(a, [0.0] * 4)
    b = valid(gen.offer(ctx(T0 + HOUR + 60, 5.0, [episode(a, "assigned", idle)])))
    for sa in extremes(a):
        for sb in extremes(b):
            assert within(gen, run(gen, 5.0, [sa, sb])), (sa, sb)


# -- exact projection through a plan that can no longer change -----------------------------------


def test_an_executing_block_is_projected_exactly_through_its_plan():
    """A executes a schedule; measured at a slot boundary with two slots left to run, the next
    block is offered exactly as if the battery already had the charge A's plan leaves."""
    gen = Battery(PARAMS)
    a = valid(gen.offer(ctx(T0 + 60, 6.0)))
    assert a.start_after is not None
    plan = plan_of(a, [-0.95, -0.95, -0.95, -0.475])  # 1, 1, 1 and 0.5 kWh out of the cells
    now = a.start_after + 2 * 900
    after = 4.0 - 1.0 - 0.5  # measured 4.0 with the last two slots to run
    c = ctx(now, 4.0, [episode(a, "executing", plan)])
    b = valid(gen.offer(c))
    plain = valid(gen.offer(ctx(now, after)))
    assert b.id == plain.id and b.start_after is not None
    assert gen.start_band(4.0, b.start_after, c) == pytest.approx((after, after))
    assert _rows(b) == pytest.approx(_rows(plain))
    assert b.default.energy_kwh == pytest.approx(plain.default.energy_kwh)
    # past its assignment_before, a plan is final even before the block has begun (an offer
    # whose deadline lies before its start); before it, FMAN may still send another
    early = msgspec.structs.replace(a, assignment_before=a.start_after - 600)
    final = [episode(early, "accepted", plan)]
    after_deadline = gen.start_band(6.0, a.start_after + HOUR, ctx(a.start_after - 300, 6.0, final))
    assert after_deadline == pytest.approx((2.5, 2.5))
    before_deadline = gen.start_band(
        6.0, a.start_after + HOUR, ctx(a.start_after - 900, 6.0, final)
    )
    assert before_deadline[0] < 2.5 - 1.0 and before_deadline[1] > 6.0


def test_the_slot_running_now_may_have_any_part_of_its_energy_left():
    gen = Battery(PARAMS)
    a = valid(gen.offer(ctx(T0 + 60, 6.0)))
    assert a.start_after is not None
    plan = plan_of(a, [-0.95, 0.0, 0.0, 0.0])
    now = a.start_after + 300  # a third of the first slot has run
    band = gen.start_band(5.5, a.start_after + HOUR, ctx(now, 5.5, [episode(a, "executing", plan)]))
    assert band == pytest.approx((4.5, 5.5))


def test_earlier_blocks_that_cannot_move_the_battery_cost_it_no_flexibility():
    """A block whose plan idles (here a rejected one, its default running), and a block offered
    idle (its rows pin the energy at zero whatever its per-slot bounds say) leave the next
    block offered exactly as if it were the only one."""
    gen = Battery(PARAMS)
    a = valid(gen.offer(ctx(T0 + 60, 5.0)))
    b = valid(gen.offer(ctx(T0 + HOUR + 60, 5.0, [episode(a, "offered")])))
    assert all(e == 0.0 for e in extremes(b)[0] + extremes(b)[1])  # behind an open block
    idle = plan_of(a, [0.0] * 4, source="default")
    earlier = [episode(a, "rejected", idle), episode(b, "accepted")]
    alone = valid(gen.offer(ctx(T0 + 2 * HOUR + 60, 5.0)))
    behind = valid(gen.offer(ctx(T0 + 2 * HOUR + 60, 5.0, earlier)))
    assert alone.start_after == (b.start_after or 0) + HOUR
    assert _rows(behind) == _rows(alone) and behind.default == alone.default


def test_a_band_as_wide_as_the_battery_leaves_an_idle_offer():
    """Behind a block that may fill the battery or empty it, nothing but idling holds for every
    start; the offer says so, and stays valid."""
    gen = Battery({**PARAMS, "max_charge_kw": 20.0, "max_discharge_kw": 20.0})
    a = valid(gen.offer(ctx(T0 + 60, 5.0)))
    c = ctx(T0 + HOUR + 60, 5.0, [episode(a, "offered")])
    b = valid(gen.offer(c))
    assert b.start_after is not None
    band = gen.start_band(5.0, b.start_after, c)
    assert band == (gen.spec.soc_min_kwh, gen.spec.soc_max_kwh)
    assert b.default.energy_kwh == [0.0] * 4
    for sb in extremes(b):
        assert sb == pytest.approx([0.0] * 4)


def _rows(offer: FlexOffer) -> list[float]:
    """The offer's dependency rows, flat (``slot, a, b, c, slot, ...``)."""
    return [float(v) for d in offer.profiles[0].dependencies for v in d]


# -- any earlier episodes, any schedules ----------------------------------------------------------


def _reserve_excess(
    gen: Battery, band: tuple[float, float], schedule: Sequence[float], r: int
) -> float:
    """How far ``schedule`` charges beyond the one sweep of the band's room the lower rows
    reserve for (the module's stated assumption), kWh of grid energy."""
    spec = gen.spec
    room = max(0.0, (spec.soc_max_kwh - spec.soc_min_kwh) - (band[1] - band[0]))
    e_max = spec.max_charge_kw * r / 3600.0
    charged, worst = 0.0, 0.0
    for k, e in enumerate(schedule):
        charged += max(0.0, e)
        worst = max(worst, charged - min((k + 1) * e_max, room / spec.eta_charge))
    return worst


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
fractions = st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8)


@SETTINGS
@given(data=st.data())
def test_no_schedules_of_the_live_blocks_take_the_charge_out_of_its_band(data):
    """Random batteries, times and charges; the block executing now (a schedule or its default,
    measured any time within a slot) and the blocks up to the one offered (offered, accepted
    or assigned, each offered from what the ones before it may leave), each given a random
    schedule it allows: from the block after the executing one on, the charge stays in its
    band. Tolerated: the reserve's stated assumption (one sweep per block; beyond it the
    round-trip loss of the excess), and a start already outside the band."""
    draw = data.draw
    r = draw(st.sampled_from([900, 1800]), "r")
    h = draw(st.sampled_from([1, 2]), "horizon_h") * HOUR
    params = {
        "capacity_kwh": draw(st.floats(2.0, 30.0), "capacity"),
        "eta_charge": draw(st.floats(0.8, 1.0), "eta_c"),
        "eta_discharge": draw(st.floats(0.8, 1.0), "eta_d"),
        "max_charge_kw": draw(st.floats(0.5, 10.0), "charge_kw"),
        "max_discharge_kw": draw(st.floats(0.5, 10.0), "discharge_kw"),
        "horizon_h": h // HOUR,
        "lead_s": draw(st.one_of(st.just(0), st.integers(h, 6 * HOUR)), "lead_s"),
    }
    gen = Battery(params)
    spec = gen.spec
    eta = {"eta_charge": spec.eta_charge, "eta_discharge": spec.eta_discharge}
    step = spec.capacity_kwh / 100
    on_grid = st.integers(math.ceil(spec.soc_min_kwh / step), math.floor(spec.soc_max_kwh / step))
    now = T0 + draw(st.integers(0, 86_400 - 1), "now offset")
    current = now // h * h
    target = gen.timing.next_block(now)
    episodes: list[Episode] = []
    checked: list[tuple[tuple[float, float], list[float]]] = []  # (band, schedule) from A on

    # the block executing now, offered from a charge of its own; the charge now is what its
    # plan made of it so far (on the 1 % grid, as the generator reads it)
    soc = draw(on_grid, "soc") * step
    rest: list[float] = []
    if current < target and draw(st.booleans(), "executing"):
        made = Battery({**params, "lead_s": HOUR})
        x = valid(made.offer(ctx(current - HOUR, soc, r=r)))
        default = draw(st.booleans(), "rejected")
        energy = (
            list(x.default.energy_kwh)
            if default
            else random_feasible(x.profiles[0], draw(fractions))
        )
        plan = plan_of(x, energy, source="default" if default else "fman")
        episodes.append(episode(x, "rejected" if default else "executing", plan))
        done, part = divmod(now - current, r)
        share = part / r
        for e in energy[:done]:
            soc = soc_after(soc, e, **eta)
        if done < len(energy):
            soc = soc_after(soc, share * energy[done], **eta)
            rest = [(1 - share) * energy[done], *energy[done + 1 :]]
        soc = round(soc / step) * step
        first = current + h
    else:
        first = current if current >= now else current + h
    # the blocks after it, offered with what came before them
    for start in range(first, target, h):
        made = Battery({**params, "lead_s": start - now})
        c = ctx(now, soc, episodes, r=r)
        y = valid(made.offer(c))
        assert y.start_after == start
        state = draw(st.sampled_from(["offered", "accepted", "assigned"]), "state")
        schedule = random_feasible(y.profiles[0], draw(fractions))
        plan = (
            plan_of(y, random_feasible(y.profiles[0], draw(fractions)))
            if state == "assigned"
            else None
        )
        episodes.append(episode(y, state, plan))
        if plan is not None and episodes[-1].plan_final(now):  # it begins now: no other
            schedule = list(plan.energy_kwh)
        checked.append((made.start_band(round(soc / step) * step, start, c), schedule))
    c = ctx(now, soc, episodes, r=r)
    b = valid(gen.offer(c))
    assert b.start_after == target
    band = gen.start_band(round(soc / step) * step, target, c)
    checked.append((band, random_feasible(b.profiles[0], draw(fractions))))

    loss = 1 / spec.eta_discharge - spec.eta_charge
    start_soc = run(gen, soc, [rest])[-1] if rest else soc
    tol = max(0.0, spec.soc_min_kwh - start_soc, start_soc - spec.soc_max_kwh)
    truth = start_soc
    for bd, schedule in checked:
        tol += loss * _reserve_excess(gen, bd, schedule, r)
        assert bd[0] - tol - EPS <= truth <= bd[1] + tol + EPS  # the band holds the truth
        socs = run(gen, truth, [schedule])
        assert within(gen, socs, tol), (bd, schedule, socs)
        truth = socs[-1] if socs else truth


def test_the_energy_range_of_an_offer_reads_its_bounds_total_and_rows():
    """Net energy and most charged of any schedule: per-slot bounds, cumulative rows (a
    row after slot 1 keeps the sum at -0.5 or more, one after slot 2 at 0.2 or less), total."""
    a = valid(Battery(PARAMS).offer(ctx(T0 + 60, 5.0)))
    p = Profile(
        lower_kwh=[-1.0, -1.0, -1.0],
        upper_kwh=[1.0, 1.0, 1.0],
        total=Bounds(-1.2, 2.0),
        dependencies=[Dependency(1, -1.0, -1.0, 0.5), Dependency(2, 1.0, 1.0, 0.2)],
    )
    offer = msgspec.structs.replace(
        a, profiles=[p], default=DefaultSchedule(start=a.default.start, energy_kwh=[0.0] * 3)
    )
    assert validate_offer(offer) == []
    r = energy_range(offer)
    # the last slot charges at most 0.2 - (-0.5)
    assert (r.low_kwh, r.high_kwh, r.charge_kwh) == pytest.approx((-1.2, 0.2, 2.7))


# -- through the agent core ----------------------------------------------------------------------


def test_through_the_core_no_block_discharges_what_the_one_before_was_scheduled_to(tmp_path):
    """The demo's case, hourly blocks offered three hours ahead: FMAN schedules the first block
    to discharge as far as it allows. The blocks offered while that schedule may still change
    hold whatever it becomes; the first block offered once it runs starts from what it
    leaves, and every schedule of it keeps the charge in the band."""
    store = Store(path=tmp_path / "core.db", durability="normal")
    clock = StepClock(T0 + 60)
    gen = Battery(PARAMS)
    core = Core(
        agent_id="a", store=store, clock=clock, sources=[OfferSource(device="bat", generator=gen)]
    )

    def refresh(now: int, ts: int | None = None) -> FlexOffer:
        clock.t = now
        core.advance(now)
        before = set(core.tracked())
        m = Measurement(ts=now if ts is None else ts, state={"soc_kwh": 5.0})
        core.refresh(now, {"bat": m})
        (new,) = set(core.tracked()) - before
        return core.tracked()[new][0]

    a = refresh(T0 + 60)
    assert a.start_after is not None
    lowest = extremes(a)[0]
    for kind, body in (
        ("ack", Ack(ref_kind="offer", ref_id=a.id)),
        ("schedule", Schedule(offer_id=a.id, version=1, start=a.start_after, energy_kwh=lowest)),
    ):
        core.handle(topics.agent_topic("a", kind), protocol.encode(body, ts=T0))
    assert core.tracked()[a.id][1] == "assigned"
    waiting = [refresh(T0 + k * HOUR + 60) for k in (1, 2, 3)]
    for b in waiting:
        for sa in extremes(a):
            for sb in extremes(b):
                assert within(gen, run(gen, 5.0, [sa, sb])), (sa, sb)
    # the first block runs its schedule; measured as it begins, the block offered now
    e = refresh(a.start_after + 60, ts=a.start_after)
    assert core.tracked()[a.id][1] == "executing"
    assert e.start_after == a.start_after + 4 * HOUR
    idle = [[0.0] * 4] * 3  # the blocks in between were offered idle
    assert all(extremes(b)[0] == [0.0] * 4 for b in waiting)
    # flexible again: it may charge, and discharge the little the first block left
    assert max(accumulate(extremes(e)[1])) > 3.0 and min(accumulate(extremes(e)[0])) < 0.0
    for se in extremes(e):
        assert within(gen, run(gen, 5.0, [lowest, *idle, se])), se
    store.close()


def test_an_update_in_flight_counts_with_the_revision_it_may_go_back_to():
    """Block A's update (offered idle) awaits FMAN's answer; FMAN may refuse it and keep the
    revision it accepted, which may discharge fully: the next block holds for both."""
    gen = Battery(PARAMS)
    a = valid(gen.offer(ctx(T0 + 60, 5.0)))
    behind_open = valid(gen.offer(ctx(T0 + HOUR + 60, 5.0, [episode(a, "offered")])))
    assert a.start_after is not None
    idle = msgspec.structs.replace(
        a,
        revision=1,
        profiles=behind_open.profiles,
        default=DefaultSchedule(start=a.start_after, energy_kwh=[0.0] * 4),
    )
    valid(idle)
    now = T0 + HOUR + 60
    alone = valid(gen.offer(ctx(now, 5.0)))
    settled = valid(gen.offer(ctx(now, 5.0, [Episode(a.id, idle, "offered")])))
    in_flight = valid(gen.offer(ctx(now, 5.0, [Episode(a.id, idle, "offered", None, a)])))
    assert _rows(settled) == _rows(alone)
    assert _rows(in_flight) == _rows(behind_open)
    for sa in extremes(a):
        for sb in extremes(in_flight):
            assert within(gen, run(gen, 5.0, [sa, sb])), (sa, sb)
