"""Re-planning without churn: a schedule in force changes only when the change pays. (Pure.)

Every new schedule version costs a message, an answer, and a chance that it reaches its agent
too late or crosses an offer update. An optimiser that re-plans the same offers finds a new,
equally good plan each time (many plans reach the optimum), so the planning cycle treats the
schedules in force as the incumbent: a full re-plan's result replaces them only if it lowers
the objective by more than ``change_cost`` for every schedule it changes, and even then only
the schedules that differ materially (``tolerance_kwh`` in some slot, or another start or
profile) are changed. Offers without a schedule in force always take the new plan.

The objective is the planner's own (:func:`cloud.optim.terms.evaluate`, plus the asks of
offers that carry them under ``profit``), over the request the planner got, so the comparison
is the one the planner optimised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..optim import PlannedSchedule, PlanRequest
from ..optim.asks import ask_cost, carries_asks
from ..optim.blocks import view
from ..optim.terms import evaluate, terms_for


@dataclass(frozen=True, slots=True)
class Choice:
    """What a full re-plan comes to: the schedules to issue, and why."""

    adopted: dict[str, PlannedSchedule]
    #: schedules in force the plan would have changed materially
    changes_offered: int
    #: of those, how many were changed (all or none)
    changed: int
    gain: float


def differs(a: PlannedSchedule, b: PlannedSchedule, tolerance_kwh: float) -> bool:
    """Whether two schedules of one offer differ enough to send the second."""
    if a.start != b.start or a.profile != b.profile or len(a.energy_kwh) != len(b.energy_kwh):
        return True
    return any(abs(x - y) > tolerance_kwh for x, y in zip(a.energy_kwh, b.energy_kwh, strict=True))


def objective(request: PlanRequest, schedules: Mapping[str, PlannedSchedule]) -> float:
    """The planner's objective of ``schedules`` (one per offer of ``request``)."""
    views = [view(o, priced=carries_asks(request, o)) for o in request.offers]
    terms = terms_for(request, views)
    loads = np.zeros((len(terms.groups), max(terms.slots, 1)))
    for v in views:
        s = schedules.get(v.offer.id)
        if s is None:
            continue
        g = terms.group_of(v)
        first = terms.slot_of(s.start)
        for i, e in enumerate(s.energy_kwh):
            if 0 <= first + i < terms.slots:
                loads[g, first + i] += e
    value = evaluate(terms, loads)
    if terms.priced:  # the asks of the offers that carry them (``profit``)
        placed = []
        for v in views:
            s = schedules.get(v.offer.id)
            placed.append(
                None
                if s is None
                else (terms.slot_of(s.start), np.asarray(s.energy_kwh, dtype=float))
            )
        value += ask_cost(terms.asks, placed)
    return value


def choose(
    request: PlanRequest,
    *,
    in_force: Mapping[str, PlannedSchedule],
    planned: Mapping[str, PlannedSchedule],
    change_cost: float,
    tolerance_kwh: float,
) -> Choice:
    """The schedules to issue after a full re-plan (``planned``) of offers some of which have
    a schedule in force (``in_force``)."""
    adopted = {oid: s for oid, s in planned.items() if oid not in in_force}
    changes = {
        oid: s
        for oid, s in planned.items()
        if oid in in_force and differs(in_force[oid], s, tolerance_kwh)
    }
    if not changes:
        return Choice(adopted, 0, 0, 0.0)
    keep = {**in_force, **adopted}
    change = {**keep, **changes}
    gain = objective(request, keep) - objective(request, change)
    if gain > change_cost * len(changes):
        return Choice({**adopted, **changes}, len(changes), len(changes), gain)
    return Choice(adopted, len(changes), 0, gain)
