"""The restricted master LP of the clearing's decomposition, kept warm in HiGHS.

Sell orders enter as whole-cluster columns (a cluster's summed deviation per slot at its
node, and its ask cost); requests, network flows and (in the second phase) slack on the
balance rows are variables of their own, because they are few and exact:

    min  sum_k cost_k theta_k - sum_{r,t} limit_rt sign(q_rt) a_rt - sum_r value_r z_r
         + sum_{l,t} k_l f_lt + sum_{n,t} (hi_nt s+_nt - lo_nt s-_nt)
    s.t. sum_k dev_k[n,t] theta_k + inflow_nt - outflow_nt - sum_{r at n} (a_rt + q_rt z_r)
         + s+_nt - s-_nt = 0                                    (duals: the prices lam[n, t])
         sum_{k of cluster c} theta_k = 1 for every cluster c
         a_rt between 0 and q_rt (partial requests), 0 <= z_r <= 1 (all-or-nothing ones, or
         fixed), 0 <= f_lt <= capacity_l, theta, s >= 0

It is the negative welfare of mixing known responses; its duals, smoothed, are the next
prices at which every order is priced. The slack ``s`` bounds those duals to a box ``[lo,
hi]`` (a column's reduced cost ``hi - lam`` or ``lam - lo`` must not be negative): far away,
it only keeps the master feasible whatever the columns (the clearing's second phase, where
rounding may have made the balance impossible); close around the best prices so far, it is
the *box step* that keeps the master's prices from swinging (Marsten et al. 1975). Only a
solution without slack is a clearing. HiGHS runs through ``highspy``'s bare ``_Highs`` (the
wrapper prints a banner on standard output), with primal simplex: new columns leave the basis
primal feasible, so a re-solve takes a few iterations (the planner's master does the same).
A network's master (nodes times slots balance rows) goes to the interior point instead: there
a moved box costs the primal simplex thousands of degenerate pivots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np

from ._errors import ClearingError
from ._numeric import Numeric

#: Masters of books with at least this many nodes are solved by interior point (see
#: :class:`MarketMaster`); one node's 96 balance rows re-solve fastest by warm primal simplex.
IPM_NODES = 2
#: HiGHS's dual simplex from scratch took this many times an interior-point re-solve of the
#: same network master (34.6 s against 2.8 s on the 20-node benchmark book): what the root
#: LP of a MIP over the master's columns costs there
SIMPLEX_OVER_IPM = 12.0


@dataclass(frozen=True, slots=True)
class MasterSolution:
    objective: float
    #: ``[node, slot]``
    prices: np.ndarray
    #: weights of the added columns, in the order they were added (minus dropped ones)
    weights: np.ndarray
    #: ``[request, slot]``: accepted kWh (partial and all-or-nothing requests together)
    accepted: np.ndarray
    #: per request: the all-or-nothing share accepted (1 for partial requests)
    aon: np.ndarray
    flows: np.ndarray
    slack: np.ndarray


class MarketMaster:
    """See the module docstring. ``aon`` holds, per request, the share an all-or-nothing one
    is fixed to (``nan``: relaxed to [0, 1]; :meth:`fix` changes it); the box starts at
    ``[-wide, wide]``."""

    def __init__(
        self,
        num: Numeric,
        *,
        cluster_node: np.ndarray,
        aon: np.ndarray,
        wide: float,
    ) -> None:
        self.num = num
        h = num.slots
        self.h = h
        self.rows = num.n_nodes * h
        self.clusters = len(cluster_node)
        self.cluster_node = cluster_node
        self._lp = lp = highspy._Highs()  # type: ignore[attr-defined]  # not in highspy's stubs
        lp.setOptionValue("output_flag", False)
        lp.setOptionValue("simplex_strategy", 4)
        lp.setOptionValue("presolve", "off")
        #: with many balance rows (a network's nodes times the slots), a primal re-solve after
        #: the box moves takes thousands of degenerate pivots (about 2 s each on the 20-node
        #: benchmark book); HiGHS's interior point with crossover takes 0.2 to 0.8 s
        self._solver = "ipm" if num.n_nodes >= IPM_NODES else "simplex"
        lp.setOptionValue("solver", self._solver)
        none = np.zeros(0, dtype=np.int32)
        zeros = np.zeros(self.rows)
        lp.addRows(self.rows, zeros, zeros, 0, none, none, np.zeros(0))
        ones = np.ones(self.clusters)
        lp.addRows(self.clusters, ones, ones, 0, none, none, np.zeros(0))
        inf = highspy.kHighsInf
        # partial requests: one variable per request and slot with a quantity
        part = np.flatnonzero(num.req_partial)
        rr, tt = np.nonzero(num.req_kwh[part])
        rr = part[rr]
        q = num.req_kwh[rr, tt]
        self._part = (rr, tt)
        self._add(
            cost=-num.req_limit[rr, tt] * np.sign(q),
            lb=np.minimum(q, 0.0),
            ub=np.maximum(q, 0.0),
            rows=[np.array([num.req_node[r] * h + t]) for r, t in zip(rr, tt, strict=True)],
            vals=[np.array([-1.0])] * len(rr),
        )
        # all-or-nothing requests: one share each
        self._aon = np.flatnonzero(~num.req_partial)
        rows, vals = [], []
        for r in self._aon:
            nz = np.flatnonzero(num.req_kwh[r])
            rows.append(num.req_node[r] * h + nz)
            vals.append(-num.req_kwh[r, nz])
        free = np.isnan(aon[self._aon])
        lo = np.where(free, 0.0, aon[self._aon])
        hi = np.where(free, 1.0, aon[self._aon])
        self._aon0 = len(rr)
        value = (num.req_limit[self._aon] * np.abs(num.req_kwh[self._aon])).sum(axis=1)
        self._add(cost=-value, lb=lo, ub=hi, rows=rows, vals=vals)
        # flows: one per link and slot
        n_l = num.n_links
        t = np.arange(h)
        rows, vals = [], []
        for k in range(n_l):
            for s in t:
                rows.append(np.array([num.link_src[k] * h + s, num.link_dst[k] * h + s]))
                vals.append(np.array([-1.0, 1.0]))
        self._add(
            cost=np.repeat(num.link_cost, h),
            lb=np.zeros(n_l * h),
            ub=np.repeat(num.link_cap, h),
            rows=rows,
            vals=vals,
        )
        idx = np.arange(self.rows)
        self.slack0 = len(rr) + len(self._aon) + n_l * h
        for sign in (1.0, -1.0):
            self._add(
                cost=np.full(self.rows, wide),
                lb=np.zeros(self.rows),
                ub=np.full(self.rows, inf),
                rows=[np.array([r]) for r in idx],
                vals=[np.array([sign])] * self.rows,
            )
        self.n_slack = 2 * self.rows
        self._box: np.ndarray | None = None
        self.fixed = self.slack0 + self.n_slack
        self.columns = 0
        #: wall-clock seconds of the last :meth:`solve`
        self.last_solve_s = 0.0

    def _add(
        self,
        *,
        cost: np.ndarray,
        lb: np.ndarray,
        ub: np.ndarray,
        rows: list[np.ndarray],
        vals: list[np.ndarray],
    ) -> None:
        k = len(cost)
        if not k:
            return
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int32)
        self._lp.addCols(
            k,
            np.asarray(cost, dtype=float),
            np.asarray(lb, dtype=float),
            np.asarray(ub, dtype=float),
            int(lengths.sum()),
            starts,
            np.concatenate(rows).astype(np.int32),
            np.concatenate(vals).astype(float),
        )

    def add(self, dev: np.ndarray, cost: np.ndarray) -> None:
        """One column per cluster: ``dev[c]`` is cluster ``c``'s deviation per slot (at its
        node), ``cost[c]`` its ask cost."""
        rows, vals = [], []
        for c in range(self.clusters):
            nz = np.flatnonzero(np.abs(dev[c]) > 1e-9)
            rows.append(np.concatenate((self.cluster_node[c] * self.h + nz, [self.rows + c])))
            vals.append(np.concatenate((dev[c, nz], [1.0])))
        self._add(
            cost=cost,
            lb=np.zeros(self.clusters),
            ub=np.full(self.clusters, highspy.kHighsInf),
            rows=rows,
            vals=vals,
        )
        self.columns += self.clusters

    def fix(self, request: int, share: float) -> None:
        """Fix all-or-nothing request ``request``'s share (``nan``: relax it to [0, 1])."""
        k = int(np.flatnonzero(self._aon == request)[0])
        lo, hi = (0.0, 1.0) if np.isnan(share) else (share, share)
        col = np.array([self._aon0 + k], dtype=np.int32)
        self._lp.changeColsBounds(1, col, np.array([lo]), np.array([hi]))

    def set_box(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Bound the balance rows' duals to ``[lo, hi]`` (``[node, slot]`` arrays)."""
        cost = np.concatenate((np.ravel(hi), -np.ravel(lo))).astype(float)
        if self._box is not None and np.array_equal(cost, self._box):
            return
        self._box = cost
        cols = (self.slack0 + np.arange(self.n_slack)).astype(np.int32)
        self._lp.changeColsCost(len(cols), cols, cost)

    def drop(self, columns: np.ndarray) -> None:
        """Remove the given columns (indices among the added ones)."""
        if len(columns):
            cols = (np.asarray(columns) + self.fixed).astype(np.int32)
            self._lp.deleteCols(len(cols), cols)
            self.columns -= len(cols)

    def solve(self) -> MasterSolution:
        started = time.monotonic()
        self._run()
        self.last_solve_s = time.monotonic() - started
        return self._read()

    def solve_balanced(self) -> MasterSolution | None:
        """The master with the slack held at zero: a mix of known columns that balances every
        node and slot, or ``None`` if the columns allow none. Whole-cluster columns couple
        every slot, so a restricted master may prefer a little slack to losing a column's
        gain elsewhere; this is the clearing the columns found so far actually allow."""
        cols = (self.slack0 + np.arange(self.n_slack)).astype(np.int32)
        zero = np.zeros(self.n_slack)
        self._lp.changeColsBounds(len(cols), cols, zero, zero)
        try:
            status = self._lp.run()
            model = self._lp.getModelStatus()
            if status == highspy.HighsStatus.kError or model != highspy.HighsModelStatus.kOptimal:
                status, model = self._cold()
            if status == highspy.HighsStatus.kError or model != highspy.HighsModelStatus.kOptimal:
                return None
            return self._read()
        finally:
            inf = np.full(self.n_slack, highspy.kHighsInf)
            self._lp.changeColsBounds(len(cols), cols, zero, inf)

    def _run(self) -> None:
        status = self._lp.run()
        model = self._lp.getModelStatus()
        if status == highspy.HighsStatus.kError or model != highspy.HighsModelStatus.kOptimal:
            # a warm start gone numerically bad: once more from scratch, with dual simplex
            status, model = self._cold()
        if status == highspy.HighsStatus.kError or model != highspy.HighsModelStatus.kOptimal:
            raise ClearingError(f"HiGHS: master LP {self._lp.modelStatusToString(model)}")

    def _cold(self) -> tuple[highspy.HighsStatus, highspy.HighsModelStatus]:
        """Once more from scratch, with dual simplex (a warm start gone numerically bad, or
        an interior point that stalled)."""
        self._lp.clearSolver()
        self._lp.setOptionValue("solver", "simplex")
        self._lp.setOptionValue("simplex_strategy", 1)
        try:
            status = self._lp.run()
            return status, self._lp.getModelStatus()
        finally:
            self._lp.setOptionValue("simplex_strategy", 4)
            self._lp.setOptionValue("solver", self._solver)

    def _read(self) -> MasterSolution:
        sol = self._lp.getSolution()
        col = np.asarray(sol.col_value)
        num = self.num
        accepted = np.zeros((len(num.requests), self.h))
        rr, tt = self._part
        p = len(rr)
        accepted[rr, tt] = col[:p]
        aon = np.ones(len(num.requests))
        z = col[p : p + len(self._aon)]
        aon[self._aon] = z
        accepted[self._aon] = z[:, None] * num.req_kwh[self._aon]
        at = p + len(self._aon)
        weights = col[self.fixed :]
        flows = col[at : at + num.n_links * self.h].reshape(num.n_links, self.h)
        at += num.n_links * self.h
        slack = col[at : at + self.rows] - col[at + self.rows : at + 2 * self.rows]
        return MasterSolution(
            objective=self._lp.getInfo().objective_function_value,
            prices=np.asarray(sol.row_dual[: self.rows]).reshape(num.n_nodes, self.h),
            weights=weights,
            accepted=accepted,
            aon=aon,
            flows=flows,
            slack=slack.reshape(num.n_nodes, self.h),
        )
