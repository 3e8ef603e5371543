"""The flexibility optimisation core: planning, aggregation and disaggregation.

Pure functions and small value objects, no I/O: the FMAN planning cycle and the offline
``atp plan`` command call the same code. Importing the interface (``PlanRequest`` and friends)
does not load OR-Tools; ``OrToolsPlanner`` loads it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .problem import DefaultPlanner, PlannedSchedule, Planner, PlanRequest, PlanResult

if TYPE_CHECKING:
    from .planner import OrToolsPlanner

__all__ = [
    "DefaultPlanner",
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
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
