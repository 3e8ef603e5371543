"""What a stateful device's offer needs from the device's other live episodes.

The device's state at the start of the episode being offered depends on what the earlier live
episodes (:attr:`~agent.generators.base.OfferContext.episodes`) still do until then. Of an
episode whose plan is final (:meth:`~agent.generators.base.Episode.plan_final`) that is the
rest of its plan, slot by slot (:func:`slots_left`); of any other, only what its offer allows
(:func:`episode_range`), since FMAN may still give it any schedule the offer allows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.generators.base import Episode, OfferContext
from protocol import FlexOffer, Profile, effective_profiles, start_window

if TYPE_CHECKING:
    from agent.store import Plan


@dataclass(frozen=True, slots=True)
class EnergyRange:
    """What the schedules of an offer may take in all: a net ``low_kwh`` to ``high_kwh``, of
    which at most ``charge_kwh`` in slots that take energy (consumption positive)."""

    low_kwh: float
    high_kwh: float
    charge_kwh: float


def before(ctx: OfferContext, start: int) -> list[Episode]:
    """The live episodes that may begin before ``start`` (the one beginning there, which is the
    episode being offered again, and any later ones are left out), earliest first."""
    return [e for e in ctx.episodes if start_window(e.offer)[0] < start]


def episode_range(ep: Episode) -> EnergyRange:
    """:func:`energy_range` over every revision the episode may still run (its fallback too
    while an update is in flight)."""
    ranges = [energy_range(o) for o in ep.offers()]
    if len(ranges) == 1:
        return ranges[0]
    return EnergyRange(
        low_kwh=min(r.low_kwh for r in ranges),
        high_kwh=max(r.high_kwh for r in ranges),
        charge_kwh=max(r.charge_kwh for r in ranges),
    )


def energy_range(offer: FlexOffer) -> EnergyRange:
    """The net energy any schedule of ``offer`` takes, and the most it may charge, over all
    its profiles.

    Per-slot bounds, the total and the dependency rows on the cumulative energy (``a == b``:
    ``a * (energy up to and including the slot) <= c``) narrow it; other rows (polytopes,
    rows with ``a != b``) are left out, which only widens the range: a safe answer."""
    low, high, charge = math.inf, -math.inf, 0.0
    for p in effective_profiles(offer):
        lo, hi, ch = _profile_range(p)
        low, high, charge = min(low, lo), max(high, hi), max(charge, ch)
    return EnergyRange(low, high, charge)


def _profile_range(p: Profile) -> tuple[float, float, float]:
    """``(low, high, charge)`` of one profile (see :func:`energy_range`)."""
    n = p.n_slots
    row_lo, row_hi = [-math.inf] * n, [math.inf] * n
    for slot, a, b, c in p.dependencies:
        if a != b or a == 0.0 or slot >= n:
            continue
        if a > 0.0:
            if c / a < row_hi[slot]:
                row_hi[slot] = c / a
        elif c / a > row_lo[slot]:
            row_lo[slot] = c / a
    # the cumulative energy after each slot, forwards; a slot charges at most what takes the
    # sum from its least before the slot to its most after it (a corridor pinned at zero,
    # an idle block, charges nothing whatever its per-slot bounds say)
    low = high = charge = 0.0
    for e_lo, e_hi, r_lo, r_hi in zip(p.lower_kwh, p.upper_kwh, row_lo, row_hi, strict=True):
        before = low
        low = low + e_lo if low + e_lo > r_lo else r_lo
        high = high + e_hi if high + e_hi < r_hi else r_hi
        step = e_hi if e_hi < high - before else high - before
        if step > 0.0:
            charge += step
    if p.total is not None:
        low, high = max(low, p.total.lower), min(high, p.total.upper)
    return low, high, charge


def slots_left(plan: Plan, since: float, until: int) -> Iterator[tuple[float, bool]]:
    """``(energy, begun)`` for each slot of ``plan`` still (wholly or partly) to run after
    ``since`` and beginning before ``until``; ``begun`` marks the slot ``since`` falls in, of
    which any part may be left (the EMS meets a slot's energy in closed loop, not evenly)."""
    res = plan.resolution_s
    for i, e in enumerate(plan.energy_kwh):
        s0 = plan.start + i * res
        if s0 >= until:
            break
        if s0 + res <= since:
            continue
        yield e, s0 < since
