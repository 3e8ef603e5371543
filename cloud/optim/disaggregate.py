"""Disaggregation: an aggregate's schedule becomes one feasible schedule per member.

Every member starts as far after its own earliest start as the aggregate starts after its
earliest start. In each slot the aggregate's energy sits at some fraction of the way from the
members' summed lower bounds to their summed upper bounds; every member present in the slot
takes the same fraction of its own box. The members then sum to the aggregate's energy
exactly (up to floating point) and each stays in its box, which lies inside its feasible set
(see :mod:`cloud.optim.aggregate`). Members of a shaped aggregate (generalised batteries of
one normalised shape) take the aggregate's energy in proportion to their scale.
"""

from __future__ import annotations

import numpy as np

from .aggregate import Aggregate
from .errors import OptimError
from .problem import PlannedSchedule


def disaggregate(aggregate: Aggregate, schedule: PlannedSchedule) -> list[PlannedSchedule]:
    """The members' schedules for ``schedule`` of ``aggregate.offer``."""
    agg = aggregate.offer
    if schedule.offer_id != agg.id:
        raise OptimError(f"schedule is for {schedule.offer_id!r}, not aggregate {agg.id!r}")
    prof = agg.profiles[0]
    lower = np.asarray(prof.lower_kwh)
    upper = np.asarray(prof.upper_kwh)
    energy = np.asarray(schedule.energy_kwh, dtype=float)
    if len(energy) != len(lower):
        raise OptimError(f"aggregate {agg.id}: {len(energy)} slots scheduled, it has {len(lower)}")
    assert agg.start_after is not None
    delay = schedule.start - agg.start_after
    if aggregate.members and aggregate.members[0].shape is not None:
        # one shape scaled: each member runs its share of the scale
        # a member may reach past the aggregate's slots, where every member is idle
        total_scale = sum(m.scale for m in aggregate.members)
        pad = max([0, *(-off for off in aggregate.offsets)])
        reach = max(
            off + len(m.lower) for m, off in zip(aggregate.members, aggregate.offsets, strict=True)
        )
        padded = np.concatenate((np.zeros(pad), energy, np.zeros(max(reach - len(energy), 0))))
        return [
            PlannedSchedule(
                offer_id=m.offer.id,
                start=m.earliest + delay,
                profile=m.profile,
                energy_kwh=(
                    padded[pad + off : pad + off + len(m.lower)] * (m.scale / total_scale)
                ).tolist(),
            )
            for m, off in zip(aggregate.members, aggregate.offsets, strict=True)
        ]
    width = upper - lower
    share = np.clip(
        np.divide(energy - lower, width, out=np.zeros_like(energy), where=width > 1e-12), 0.0, 1.0
    )
    out = []
    for m, off in zip(aggregate.members, aggregate.offsets, strict=True):
        n = len(m.lower)
        x = m.lower + share[off : off + n] * (m.upper - m.lower)
        out.append(
            PlannedSchedule(
                offer_id=m.offer.id,
                start=m.earliest + delay,
                profile=m.profile,
                energy_kwh=x.tolist(),
            )
        )
    return out
