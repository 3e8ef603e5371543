"""Planning through aggregation, behind the planner interface: aggregate, plan, disaggregate.

Large portfolios are planned as a few hundred aggregates instead of every offer
(:mod:`.aggregate`), and each aggregate's schedule is split into feasible member schedules
(:mod:`.disaggregate`). ``atp plan --aggregate`` and FMAN (``planning.aggregate_above``) both
plan through :class:`AggregatingPlanner`. The result's schedules are the members'; its
objective is the inner planner's over the aggregates, and ``aggregates`` lets a caller
report the flexibility aggregation gave up (:func:`.aggregate.total_loss`).
"""

from __future__ import annotations

from dataclasses import replace

from .aggregate import Aggregate, Aggregator
from .asks import carries_asks
from .disaggregate import disaggregate
from .problem import Planner, PlanRequest, PlanResult


class AggregatingPlanner:
    """``inner`` plans the aggregates of the request's offers."""

    def __init__(self, *, inner: Planner, max_group_size: int = 500) -> None:
        self.inner = inner
        self.max_group_size = max_group_size
        #: the aggregates of the last plan (for its loss report)
        self.aggregates: list[Aggregate] = []

    def plan(self, request: PlanRequest) -> PlanResult:
        agg = Aggregator(resolution_s=request.resolution_s, max_group_size=self.max_group_size)
        # an offer with asks (``profit``) is charged for its own deviation, which an aggregate
        # would not know: it is planned as itself
        alone = [o for o in request.offers if carries_asks(request, o)]
        for o in request.offers:
            if not carries_asks(request, o):
                agg.add(o)
        self.aggregates = agg.aggregates()
        by_id = {a.offer.id: a for a in self.aggregates}
        result = self.inner.plan(
            replace(request, offers=[a.offer for a in self.aggregates] + alone)
        )
        schedules = [
            m
            for s in result.schedules
            for m in (disaggregate(by_id[s.offer_id], s) if s.offer_id in by_id else [s])
        ]
        infeasible = {
            m.offer.id: reason
            for aid, reason in result.infeasible.items()
            if aid in by_id
            for m in by_id[aid].members
        }
        infeasible.update(
            (oid, reason) for oid, reason in result.infeasible.items() if oid not in by_id
        )
        detail = f"planned {len(request.offers)} offers as {len(self.aggregates)} aggregates"
        if alone:
            detail += f" and {len(alone)} offers with asks on their own"
        return replace(
            result,
            schedules=schedules,
            infeasible=infeasible,
            detail=f"{detail}; {result.detail}" if result.detail else detail,
        )
