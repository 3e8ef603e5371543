"""The restricted master LP of portfolio column generation, kept warm in HiGHS.

Each column is one part of the portfolio (a *cluster* of offers, e.g. all heat pumps) and its
response to one price vector: the cluster's load per slot and its cost. The master mixes each
cluster's columns to follow the target:

    min  w_balance * sum(d+ + d-) + sum_k cost_k * theta_k
    s.t. sum_k load_k[t] * theta_k - d+_t + d-_t = target_t     (one row per slot: duals pi)
         sum_{k of cluster c} theta_k = 1  for every cluster c,  theta, d+, d- >= 0

so it has one row per slot plus one per cluster, however many offers there are; a new column
changes
the optimal basis a little: HiGHS re-solves from the previous basis in a few iterations.
HiGHS is used through ``highspy`` (not through OR-Tools, whose model builder rebuilds the
model on every solve and, in OR-Tools 9.15, returns HiGHS's row activities where the duals
should be). ``highspy.Highs`` prints a banner on standard output when it is created, which
would corrupt ``atp plan --json``; the bare ``_Highs`` class it wraps does not.
"""

from __future__ import annotations

import highspy
import numpy as np

from .errors import SolverError


class PortfolioMaster:
    """See the module docstring; ``target`` in kWh per slot."""

    def __init__(self, *, target: np.ndarray, w_balance: float, clusters: int) -> None:
        self.slots = h = len(target)
        self._lp = lp = highspy._Highs()  # type: ignore[attr-defined]  # not in highspy's stubs
        lp.setOptionValue("output_flag", False)
        # new columns leave the basis primal feasible: primal simplex re-solves from it
        # (about 3 times faster here than HiGHS's default dual simplex); nothing to presolve
        lp.setOptionValue("simplex_strategy", 4)
        lp.setOptionValue("presolve", "off")
        none = np.zeros(0, dtype=np.int32)
        lp.addRows(h, target, target, 0, none, none, np.zeros(0))
        ones = np.ones(clusters)
        lp.addRows(clusters, ones, ones, 0, none, none, np.zeros(0))
        rows = np.arange(h, dtype=np.int32)
        cost = np.full(h, w_balance)
        inf = np.full(h, highspy.kHighsInf)
        for sign in (-1.0, 1.0):  # d+ then d-
            lp.addCols(h, cost, np.zeros(h), inf, h, rows, rows, np.full(h, sign))
        self.columns = 0

    def add(self, loads: np.ndarray, costs: np.ndarray) -> None:
        """One column per cluster: ``loads[c]`` is cluster ``c``'s load, ``costs[c]`` its
        cost."""
        k = len(loads)
        rows: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        starts = np.zeros(k, dtype=np.int32)
        count = 0
        for c in range(k):
            nz = np.flatnonzero(loads[c])
            starts[c] = count
            rows += [nz, np.array([self.slots + c])]
            vals += [loads[c, nz], np.ones(1)]
            count += len(nz) + 1
        self._lp.addCols(
            k,
            np.asarray(costs, dtype=float),
            np.zeros(k),
            np.full(k, highspy.kHighsInf),
            count,
            starts,
            np.concatenate(rows).astype(np.int32),
            np.concatenate(vals),
        )
        self.columns += k

    def drop(self, columns: np.ndarray) -> None:
        """Remove the given columns (indices among the added ones)."""
        if len(columns):
            cols = (np.asarray(columns) + 2 * self.slots).astype(np.int32)
            self._lp.deleteCols(len(cols), cols)
            self.columns -= len(cols)

    def solve(self) -> tuple[float, np.ndarray, np.ndarray]:
        """The optimal value, the slot rows' duals and the columns' weights."""
        status = self._lp.run()
        model = self._lp.getModelStatus()
        if status == highspy.HighsStatus.kError or model != highspy.HighsModelStatus.kOptimal:
            raise SolverError(f"HiGHS: master LP {self._lp.modelStatusToString(model)}")
        sol = self._lp.getSolution()
        duals = np.asarray(sol.row_dual[: self.slots])
        weights = np.asarray(sol.col_value[2 * self.slots :])
        return self._lp.getInfo().objective_function_value, duals, weights
