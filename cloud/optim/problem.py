"""The planner interface: a planning problem in, schedules with an objective and a bound out.

FMAN's planning cycle talks to this interface only, so planners can be swapped (the OR-Tools
planner, a heuristic, the default-schedule fallback) without touching the service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from protocol import FlexOffer

Objective = Literal["balance", "cost", "profit"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRequest:
    """What to plan and against what.

    Series are keyed by slot start (epoch seconds, on the ``resolution_s`` grid): the target in
    kWh per slot for the whole portfolio (``balance``), prices in EUR/kWh (``cost``; for
    ``profit`` the value of a kWh of up deviation), and a peak limit in kW per grid node.
    ``weights`` combine objectives (``{"balance": 1, "cost": 0.2}``); when empty,
    ``objective`` alone counts.

    ``node_max_kwh`` and ``node_min_kwh`` bound a grid node's planned load in single slots
    (node, then slot start, kWh): what FMAN sold on a market at a node must not be undone by
    the rest of the portfolio there (:func:`cloud.fman.planning.award_limits`). They weigh
    as the peak limit does: a plan breaks one only where no schedule can keep it.

    ``profit`` charges each offer its asks (:func:`protocol.offer_asks`) for deviating from
    its default: a direct-mode offer always, a delegated one only with ``price_delegated``
    (its cost is the contract's, settled apart, so by default it moves for free)."""

    offers: Sequence[FlexOffer]
    resolution_s: int = 900
    objective: Objective = "balance"
    target_kwh: Mapping[int, float] = field(default_factory=dict)
    prices_eur_per_kwh: Mapping[int, float] = field(default_factory=dict)
    peak_kw_by_node: Mapping[str, float] = field(default_factory=dict)
    node_max_kwh: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    node_min_kwh: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    price_delegated: bool = False
    time_limit_s: float = 10.0
    relative_gap: float = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedSchedule:
    """The plan for one offer: start, profile (index into ``effective_profiles``), energy."""

    offer_id: str
    start: int
    profile: int
    energy_kwh: list[float]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanResult:
    """Schedules for every plannable offer, the objective value they reach and a proven lower
    bound on the optimum (``bound <= objective``). ``status`` is ``optimal``, ``feasible``
    (stopped at the time limit or gap) or ``fallback`` (a heuristic answered); ``detail``
    says, for a fallback, what fell back to what and why. Offers that cannot be planned at
    all are listed in ``infeasible`` with the reason.

    ``slot_values`` (keyed by slot start, objective units per kWh) are the Lagrange
    multipliers of the portfolio's energy per slot that prove ``bound``, where the planner
    has them: what one more kWh in that slot is worth to the plan. They price any other
    portfolio too: see :func:`cloud.optim.cutting_plane.lagrangian_bound`.

    Under ``profit`` the objective is minus the profit (EUR) and ``-bound`` a proven upper
    bound on the profit; the defaults have objective 0."""

    schedules: list[PlannedSchedule]
    objective: float
    bound: float
    status: Literal["optimal", "feasible", "fallback"]
    infeasible: Mapping[str, str] = field(default_factory=dict)
    slot_values: Mapping[int, float] = field(default_factory=dict)
    detail: str = ""


class Planner(Protocol):
    def plan(self, request: PlanRequest) -> PlanResult: ...


class DefaultPlanner:
    """Every offer runs its default schedule: always feasible, never better than doing nothing.

    The fallback of last resort, and the baseline the real planners are compared against."""

    def plan(self, request: PlanRequest) -> PlanResult:
        schedules = [
            PlannedSchedule(
                offer_id=o.id,
                start=o.default.start,
                profile=o.default.profile,
                energy_kwh=list(o.default.energy_kwh),
            )
            for o in request.offers
        ]
        return PlanResult(
            schedules=schedules,
            objective=float("nan"),
            bound=float("-inf"),
            status="fallback",
            detail="every offer runs its default schedule (no planner)",
        )
