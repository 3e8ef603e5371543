"""The optimisation core's exception tree.

    OptimError                  anything this package refuses
    ├── SeriesError             a target or price series that cannot be read (names row, field);
    │                           FMAN's series files and payloads raise it too
    └── SolverError             OR-Tools failed in a way no fallback can cover

Infeasible offers are not exceptions: a plan names them in ``PlanResult.infeasible`` and
plans the rest, because one bad offer must not stop a portfolio's planning cycle.
"""

from __future__ import annotations


class OptimError(Exception):
    """Root of every error raised by :mod:`cloud.optim`."""


class SeriesError(OptimError):
    """A ``time,value`` series is malformed; ``where`` names the source and row."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class SolverError(OptimError):
    """The solver reported an error (not a time-out, which the planner answers with a
    fallback)."""
