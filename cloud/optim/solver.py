"""The thin OR-Tools adapter: load a :class:`~cloud.optim.model.LinearProblem`, solve, report.

The whole matrix goes to OR-Tools' model builder in one call (``fill_model_from_sparse_data``
takes a SciPy CSR matrix), so no Python loop touches individual coefficients. HiGHS, through
OR-Tools, solves both the LP relaxation and the small mixed-integer repairs; SCIP and GLOP can
be chosen for comparison. Nothing of OR-Tools leaks out: callers get numpy arrays and floats,
and OR-Tools' failures become :class:`~cloud.optim.errors.SolverError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from ortools.linear_solver.python import model_builder_helper as mbh

from .errors import SolverError
from .model import LinearProblem

Engine = Literal["highs", "scip", "glop"]
_GLOP_ATTEMPTS = ("use_preprocessing: false", "use_scaling: false")
Outcome = Literal["optimal", "feasible", "infeasible", "timeout"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Solution:
    """``values`` is ``None`` unless a solution was found; ``bound`` is the solver's proven
    lower bound (``-inf`` when it proved none)."""

    outcome: Outcome
    values: np.ndarray | None
    objective: float
    bound: float
    #: row duals of an LP solved to optimality (reduced cost of a column: ``c - A^T duals``)
    duals: np.ndarray | None = None


def solve(
    problem: LinearProblem,
    *,
    time_limit_s: float,
    relative_gap: float = 0.0,
    integer: bool = True,
    engine: Engine = "highs",
    glop_attempts: tuple[str, ...] = _GLOP_ATTEMPTS,
) -> Solution:
    """Solve ``problem`` within ``time_limit_s``; with ``integer`` False the integrality marks
    are ignored (the LP relaxation). ``glop_attempts`` are GLOP's parameters, tried in turn
    while GLOP answers ABNORMAL."""
    model = mbh.ModelBuilderHelper()
    matrix = sp.csr_matrix(
        (problem.vals, (problem.rows, problem.cols)), shape=(problem.n_rows, problem.n_vars)
    )
    bounds = (problem.var_lb, problem.var_ub, problem.obj, problem.row_lb, problem.row_ub)
    # OR-Tools' stub says ndarray[float64, ...] (a dtype where the shape goes): nothing matches
    model.fill_model_from_sparse_data(*bounds, matrix)  # type: ignore[arg-type]  # see above
    if integer:
        for col in np.flatnonzero(problem.integer).tolist():
            model.set_var_integrality(col, True)
    solver = mbh.ModelSolverHelper(engine)
    if not solver.solver_is_supported():
        raise SolverError(f"OR-Tools was built without the {engine} solver")
    solver.set_time_limit_in_seconds(max(time_limit_s, 0.01))
    if engine == "highs":
        params = ["output_flag=false", f"mip_rel_gap={relative_gap}"]
        solver.set_solver_specific_parameters("\n".join(params))
    for glop_params in glop_attempts if engine == "glop" else ("",):
        # GLOP's presolve stalls (ABNORMAL) on some masters of column generation, which it
        # solves fine and faster without; the second attempt is GLOP's default
        if glop_params:
            solver.set_solver_specific_parameters(glop_params)
        solver.solve(model)
        if solver.status().name != "ABNORMAL":
            break
    status = solver.status()
    name = status.name
    mip = integer and bool(problem.integer.any())
    if name == "OPTIMAL":
        values = np.asarray(solver.variable_values())
        obj = solver.objective_value() + problem.offset
        bound = (
            _valid_bound(solver.best_objective_bound() + problem.offset, obj, relative_gap)
            if mip
            else obj
        )
        # OR-Tools 9.15 hands back HiGHS's row activities as its "dual values": only GLOP's
        # duals are used (the planner prices with GLOP's master solution)
        duals = (
            np.asarray(solver.dual_values())
            if engine == "glop" and not (integer and problem.integer.any())
            else None
        )
        return Solution(
            outcome="optimal", values=values, objective=obj, bound=min(bound, obj), duals=duals
        )
    if name == "FEASIBLE":
        values = np.asarray(solver.variable_values())
        obj = solver.objective_value() + problem.offset
        bound = solver.best_objective_bound()
        return Solution(
            outcome="feasible",
            values=values,
            objective=obj,
            bound=_valid_bound(bound + problem.offset, obj, relative_gap)
            if math.isfinite(bound)
            else -math.inf,
        )
    if name == "INFEASIBLE":
        return Solution(outcome="infeasible", values=None, objective=math.inf, bound=math.inf)
    if name in ("NO_SOLUTION_FOUND", "UNKNOWN_STATUS"):
        return Solution(outcome="timeout", values=None, objective=math.inf, bound=-math.inf)
    raise SolverError(f"{engine}: {name} {solver.status_string()}".strip())


def _valid_bound(reported: float, objective: float, relative_gap: float) -> float:
    """A bound that holds for the problem itself, not only for HiGHS's search.

    HiGHS prunes every node whose relaxation is within ``mip_rel_gap`` of its incumbent, and
    reports as its dual bound the least bound of the nodes it kept: that figure can lie above
    the true optimum (a portfolio whose optimum is 8.09 came back with a "bound" of 8.11). The
    pruned nodes are only known to be worth at least ``objective - gap * |objective|``."""
    if relative_gap <= 0:
        return reported
    return min(reported, objective - relative_gap * abs(objective))
