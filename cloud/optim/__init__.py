"""The flexibility optimisation core: planning, aggregation and disaggregation.

Pure functions and small value objects, no I/O: the FMAN planning cycle and the offline
``atp plan`` command call the same code.
"""

from .planner import OrToolsPlanner
from .problem import DefaultPlanner, PlannedSchedule, Planner, PlanRequest, PlanResult

__all__ = [
    "DefaultPlanner",
    "OrToolsPlanner",
    "PlanRequest",
    "PlanResult",
    "PlannedSchedule",
    "Planner",
]
