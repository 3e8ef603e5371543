"""A chain of planners that always answers with a feasible plan, the defaults at worst.

Each stage is tried in turn (FMAN's: the configured planner, the greedy heuristic, the
defaults). A stage that raises, or answers with a schedule :func:`protocol.check_assignment`
rejects, hands the offers it did not place to the next stage; the last stage,
:class:`~cloud.optim.DefaultPlanner`, cannot fail. An offer whose default is itself invalid
is named in ``infeasible``; every other offer of the request gets a feasible schedule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import protocol

from .problem import DefaultPlanner, PlannedSchedule, Planner, PlanRequest, PlanResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A stage that did not answer for every offer: which one and why."""

    stage: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainResult:
    """The merged result and the stages that failed on the way (for counters and logs)."""

    result: PlanResult
    failures: list[Failure] = field(default_factory=list)
    #: schedules a stage answered that failed the protocol's check
    rejected: int = 0
    #: offers that got their default because no planner placed them
    defaulted: set[str] = field(default_factory=set)


class FallbackPlanner:
    """The planners of ``stages`` in order, then the defaults; see the module docstring."""

    def __init__(self, *, stages: Sequence[Planner]) -> None:
        self.stages = list(stages)

    def plan(self, request: PlanRequest) -> PlanResult:
        return self.plan_chain(request).result

    def plan_chain(self, request: PlanRequest) -> ChainResult:
        by_id = {o.id: o for o in request.offers}
        left = list(by_id)
        chosen: dict[str, PlannedSchedule] = {}
        failures: list[Failure] = []
        rejected = 0
        first: PlanResult | None = None
        notes: list[str] = []
        for planner in self.stages:
            if not left:
                break
            name = type(planner).__name__
            sub = request if len(left) == len(by_id) else _subset(request, left, chosen)
            try:
                result = planner.plan(sub)
            except Exception as exc:
                log.exception("planner %s failed; falling back", name)
                failures.append(Failure(stage=name, reason=f"{type(exc).__name__}: {exc}"))
                notes.append(f"{name} failed ({type(exc).__name__}: {exc})")
                continue
            if first is None:
                first = result
            bad = 0
            for s in result.schedules:
                offer = by_id.get(s.offer_id)
                if offer is None or s.offer_id in chosen:
                    continue
                if protocol.check_assignment(
                    offer, start=s.start, profile=s.profile, energy_kwh=list(s.energy_kwh)
                ):
                    bad += 1
                    continue
                chosen[s.offer_id] = s
            rejected += bad
            left = [oid for oid in left if oid not in chosen]
            if bad:
                failures.append(Failure(stage=name, reason=f"{bad} infeasible schedule(s)"))
                notes.append(f"{name} answered {bad} infeasible schedule(s)")
            elif left:
                notes.append(f"{name} left {len(left)} offer(s) unplaced")
        defaulted: set[str] = set()
        infeasible: dict[str, str] = {}
        if left:
            for s in DefaultPlanner().plan(_subset(request, left, chosen)).schedules:
                offer = by_id[s.offer_id]
                errors = protocol.check_assignment(
                    offer, start=s.start, profile=s.profile, energy_kwh=list(s.energy_kwh)
                )
                if errors:
                    infeasible[s.offer_id] = f"its default is infeasible: {errors[0]}"
                else:
                    chosen[s.offer_id] = s
                    defaulted.add(s.offer_id)
        clean = first is not None and not failures and not defaulted
        result = PlanResult(
            schedules=[chosen[oid] for oid in by_id if oid in chosen],
            objective=first.objective if clean and first is not None else math.nan,
            bound=first.bound if first is not None else -math.inf,
            status=first.status if clean and first is not None else "fallback",
            infeasible=infeasible,
            slot_values=first.slot_values if clean and first is not None else {},
            detail="; ".join(notes) if notes else (first.detail if first is not None else ""),
        )
        return ChainResult(result=result, failures=failures, rejected=rejected, defaulted=defaulted)


def _subset(
    request: PlanRequest, ids: Sequence[str], placed: Mapping[str, PlannedSchedule]
) -> PlanRequest:
    """The request for the offers ``ids``, the target and the per-slot node limits net of the
    schedules already placed."""
    keep = set(ids)
    res = request.resolution_s
    target = dict(request.target_kwh)
    node_of = {o.id: o.grid_node for o in request.offers}
    node_max = {n: dict(v) for n, v in request.node_max_kwh.items()}
    node_min = {n: dict(v) for n, v in request.node_min_kwh.items()}
    for s in placed.values():
        node = node_of.get(s.offer_id, "")
        for j, e in enumerate(s.energy_kwh):
            t = s.start + j * res
            target[t] = target.get(t, 0.0) - e
            for limits in (node_max, node_min):
                if t in limits.get(node, {}):
                    limits[node][t] -= e
    return PlanRequest(
        offers=[o for o in request.offers if o.id in keep],
        resolution_s=res,
        objective=request.objective,
        target_kwh=target,
        prices_eur_per_kwh=request.prices_eur_per_kwh,
        peak_kw_by_node=request.peak_kw_by_node,
        node_max_kwh=node_max,
        node_min_kwh=node_min,
        weights=request.weights,
        price_delegated=request.price_delegated,
        time_limit_s=request.time_limit_s,
        relative_gap=request.relative_gap,
    )
