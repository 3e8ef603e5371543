"""The flexibility optimisation core: planning, aggregation and disaggregation.

Pure functions and small value objects, no I/O: the FMAN planning cycle and the offline
``atp plan`` command call the same code. Importing the interface (``PlanRequest`` and friends)
does not load OR-Tools or numpy; ``OrToolsPlanner`` and ``GreedyPlanner`` load them on first
use.

Planners: :class:`GreedyPlanner` (:mod:`.greedy`), :class:`OrToolsPlanner` (:mod:`.planner`:
the compact MIP, :mod:`.cutting_plane` and :mod:`.colgen`), :class:`DefaultPlanner`, and
:class:`FallbackPlanner` (:mod:`.fallback`), which chains them so that a plan always comes
back feasible. :mod:`.aggregate` and :mod:`.disaggregate` wrap any of them for large
portfolios.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fallback import FallbackPlanner
from .problem import DefaultPlanner, PlannedSchedule, Planner, PlanRequest, PlanResult

if TYPE_CHECKING:
    from .aggregated import AggregatingPlanner
    from .greedy import GreedyPlanner
    from .planner import OrToolsPlanner

__all__ = [
    "AggregatingPlanner",
    "DefaultPlanner",
    "FallbackPlanner",
    "GreedyPlanner",
    "OrToolsPlanner",
    "PlanRequest",
    "PlanResult",
    "PlannedSchedule",
    "Planner",
]


def __getattr__(name: str) -> Any:
    if name == "OrToolsPlanner":
        from .planner import OrToolsPlanner

        return OrToolsPlanner
    if name == "AggregatingPlanner":
        from .aggregated import AggregatingPlanner

        return AggregatingPlanner
    if name == "GreedyPlanner":
        from .greedy import GreedyPlanner

        return GreedyPlanner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
