"""Column generation for large portfolios the cutting planes do not take (several grid nodes,
peak limits, profiles that are not generalised batteries).

The restricted master (an LP) combines known schedules of each coupled offer and models
box-only offers exactly; the pricing step finds each offer's cheapest schedule under the
master's duals (:mod:`cloud.optim.oracle`, or a small LP per profile where the oracle does not
apply). The Lagrangian value at the priced duals (smoothed towards the best dual point so far,
and first the envelope LP's slot values) is a lower bound on the LP relaxation of the
convex-hull model, hence on the optimum. Iterations stop at the requested gap, at the time
limit, or when no column improves (the bound is then the LP optimum). Choices mixed by the LP
are rounded (the profile and start with most weight) and a last LP over the rounded choices
sets the energies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import solver as lp
from .asks import OfferAsks
from .blocks import Block, OfferView
from .errors import SolverError
from .model import Column, LinearProblem, MasterLayout, build_master, is_boxed, template
from .oracle import Battery, as_battery, cheapest
from .placements import Placement, Plan, flex_of, loads, value_of, with_boxes
from .problem import PlanRequest
from .terms import Terms

#: Column generation rounds at most.
MAX_ROUNDS = 60


class ColumnGeneration:
    """One column-generation run; improves ``found`` in place."""

    def __init__(
        self,
        *,
        engine: lp.Engine = "highs",
        lam0: np.ndarray | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self._lam0 = lam0
        self._progress = say

    def _say(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def run(
        self,
        views: Sequence[OfferView],
        terms: Terms,
        found: Plan,
        request: PlanRequest,
        deadline: float,
    ) -> None:
        coupled = [i for i, v in enumerate(views) if not is_boxed(v)]
        batteries = {(i, k): as_battery(b) for i in coupled for k, b in enumerate(views[i].blocks)}
        columns: dict[int, list[Column]] = {}

        zero = np.zeros((len(terms.groups), terms.slots))
        # identical profiles at one start price alike under one price vector: solve once
        memos: dict[object, dict[tuple[bytes, int, int], tuple[float, np.ndarray] | None]] = {}

        def out_of_time(doing: str, done: int) -> bool:
            if time.monotonic() < deadline:
                return False
            found.why = (
                f"the time limit ran out while {doing} ({done} of {len(coupled)} coupled "
                "offers priced)"
            )
            return True

        for n, i in enumerate(coupled):
            p = found.placements[i]
            if p is not None:
                columns[i] = [Column(block=p.block, start=p.start, energy=p.energy)]
                continue
            if out_of_time("finding a first schedule for each offer", n):
                return
            # no known schedule: ask the oracle for any
            first = self._price(
                views[i],
                i,
                zero,
                terms,
                batteries,
                deadline=deadline,
                memo=memos.setdefault("zero", {}),
            )
            if first is not None:
                columns[i] = [first[1]]
        best_value = value_of(views, terms, found.placements)
        # warm start: each offer's cheapest schedules under prices that reward moving towards
        # the target where the greedy plan misses it, and the opposite
        miss = np.sign(terms.target - loads(views, terms, found.placements).sum(axis=0))
        for rnd, scale in enumerate((1.0, 0.5), start=1):
            lam0 = np.broadcast_to(
                scale * miss * max(terms.w_balance, 1e-3), (len(terms.groups), terms.slots)
            )
            memo = memos.setdefault(scale, {})
            for n, i in enumerate(coupled):
                if out_of_time(f"pricing the offers for a warm start (round {rnd} of 2)", n):
                    return
                priced = self._price(
                    views[i], i, lam0, terms, batteries, deadline=deadline, memo=memo
                )
                if priced is not None:
                    columns.setdefault(i, []).append(priced[1])
        relaxed = RelaxedFrame(views, terms)
        h = terms.slots
        g_count = len(terms.groups)
        center: np.ndarray | None = None
        best_l = -math.inf
        if self._lam0 is not None and g_count == 1:
            # the envelope LP's slot values: a first dual point, its schedules and its bound
            lam = self._lam0.reshape(1, h)
            lagrangian = relaxed.value(lam, time_limit_s=deadline - time.monotonic())
            memo = {}
            for n, i in enumerate(coupled):
                if out_of_time("pricing the offers at the envelope's prices", n):
                    return
                priced = self._price(
                    views[i], i, lam, terms, batteries, deadline=deadline, memo=memo
                )
                if priced is None:
                    lagrangian = -math.inf
                    continue
                lagrangian += priced[0]
                columns.setdefault(i, []).append(priced[1])
            if lagrangian > best_l:
                best_l, center = lagrangian, lam
                found.bound = max(found.bound, lagrangian)
            self._say(f"envelope prices: bound {found.bound:.6g}")
        last_used: dict[int, list[int]] = {i: [0] * len(c) for i, c in columns.items()}
        for rnd in range(MAX_ROUNDS):
            left = deadline - time.monotonic()
            if left <= 0.05:
                break
            problem, layout = build_master(views, terms, columns)
            try:
                sol = lp.solve(problem, time_limit_s=left, integer=False, engine="glop")
            except SolverError as exc:
                self._say(f"master LP failed ({exc}); keeping the best plan so far")
                break
            if sol.outcome != "optimal" or sol.duals is None or sol.values is None:
                break
            lam_m = sol.duals[problem.node_row0 : problem.node_row0 + g_count * h]
            lam_m = lam_m.reshape(g_count, h)
            picks = round_master(views, terms, sol.values, problem, layout, columns)
            value = value_of(views, terms, picks)
            if value < best_value:
                best_value = value
                found.placements = picks
                found.solved = True
            for i, w in layout.weights.items():
                used = last_used[i]
                for k in np.flatnonzero(sol.values[w] > 1e-9):
                    used[k] = rnd
            # price at a point between the best dual point so far and the master's duals
            # (Wentges smoothing); fall back to the master's duals when that finds nothing
            added = 0
            points = [lam_m] if center is None else [0.5 * center + 0.5 * lam_m, lam_m]
            for lam in points:
                lagrangian = relaxed.value(lam, time_limit_s=deadline - time.monotonic())
                memo = {}
                for i in coupled:
                    priced = self._price(
                        views[i], i, lam, terms, batteries, deadline=deadline, memo=memo
                    )
                    if priced is None:
                        continue
                    cheapest_value, col = priced
                    lagrangian += cheapest_value
                    s0 = terms.slot_of(col.start)
                    g = terms.group_of(views[i])
                    rc = -float(lam_m[g, s0 : s0 + len(col.energy)] @ col.energy)
                    if terms.asks and (asks := terms.asks[i]) is not None:
                        rc += asks.cost(s0, col.energy)
                    rc -= sol.duals[layout.convexity_row[i]] if i in layout.convexity_row else 0.0
                    if rc < -1e-9 * max(1.0, abs(sol.objective)):
                        columns.setdefault(i, []).append(col)
                        last_used.setdefault(i, []).append(rnd)
                        added += 1
                    if time.monotonic() > deadline:
                        lagrangian = -math.inf
                        break
                if lagrangian > best_l:
                    best_l, center = lagrangian, lam
                if added or time.monotonic() > deadline:
                    break
            found.bound = max(found.bound, min(best_l, sol.objective))
            if added == 0 and time.monotonic() <= deadline:
                found.bound = max(found.bound, sol.objective)  # no column improves: LP optimum
            gap = (best_value - found.bound) / max(abs(best_value), 1e-9)
            self._say(
                f"round {rnd + 1}: LP {sol.objective:.6g}, bound {found.bound:.6g}, "
                f"plan {best_value:.6g} (gap {100 * gap:.3g} %), {added} new schedules"
            )
            if added == 0 or gap <= request.relative_gap:
                break
            # forget schedules unused for a while, so the master stays small
            for i, cols in columns.items():
                used = last_used[i]
                keep = [k for k in range(len(cols)) if rnd - used[k] <= 3] or [len(cols) - 1]
                columns[i] = [cols[k] for k in keep]
                last_used[i] = [used[k] for k in keep]
        # polish: the LP over the rounded choices sets the energies
        left = deadline - time.monotonic()
        if left > 0.05 and found.solved:
            fixed_boxes: dict[int, Sequence[tuple[int, int]]] = {
                i: [(p.block, p.start)]
                for i, p in enumerate(found.placements)
                if p is not None and is_boxed(views[i])
            }
            kept = {
                i: [
                    c
                    for c in cols
                    if (p := found.placements[i]) is not None
                    and (c.block, c.start) == (p.block, p.start)
                ]
                for i, cols in columns.items()
            }
            problem, layout = build_master(views, terms, kept, box_choices=fixed_boxes)
            sol = lp.solve(problem, time_limit_s=left, integer=False, engine=self.engine)
            if sol.values is not None:
                picks = round_master(views, terms, sol.values, problem, layout, kept)
                if value_of(views, terms, picks) < best_value:
                    found.placements = picks

    def _price(
        self,
        v: OfferView,
        i: int,
        lam: np.ndarray,
        terms: Terms,
        batteries: dict[tuple[int, int], Battery | None],
        *,
        deadline: float = math.inf,
        memo: dict[tuple[bytes, int, int], tuple[float, np.ndarray] | None] | None = None,
    ) -> tuple[float, Column] | None:
        """The offer's schedule with the least ``-lam . x`` (plus its asks, for an offer with
        asks) over all its choices (over those tried before ``deadline``, once it has passed).
        ``memo`` keeps LP answers under this ``lam`` by profile, start and node, for the
        offers' identical profiles (not for offers with asks: theirs are their own)."""
        g = terms.group_of(v)
        res = terms.resolution_s
        asks = terms.asks[i] if terms.asks else None
        if asks is not None:
            memo = None
        best: tuple[float, Column] | None = None
        for k, b in enumerate(v.blocks):
            bat = batteries.get((i, k))
            bkey = block_key(b) if bat is None and memo is not None else b""
            for start in range(b.first_start, b.last_start + 1, res):
                s0 = terms.slot_of(start)
                cost = -lam[g, s0 : s0 + b.n]
                if asks is not None:
                    got = _cheapest_with_asks(b, bat, cost, s0, asks, deadline)
                elif bat is not None:
                    got = cheapest(bat, cost)
                else:
                    key = (bkey, start, g)
                    if memo is not None and key in memo:
                        got = memo[key]
                        got = None if got is None else (got[0], got[1].copy())
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0 and best is not None:
                            return best
                        got = lp_cheapest(b, cost, time_limit_s=min(10.0, max(left, 0.01)))
                        if memo is not None:
                            memo[key] = None if got is None else (got[0], got[1].copy())
                if got is None:
                    continue
                value, x = got
                x[np.abs(x) < 1e-12] = 0.0
                if best is None or value < best[0]:
                    best = (value, Column(block=k, start=start, energy=x))
        return best


def _cheapest_with_asks(
    b: Block,
    bat: Battery | None,
    cost: np.ndarray,
    s0: int,
    asks: OfferAsks,
    deadline: float,
) -> tuple[float, np.ndarray] | None:
    """The cheapest schedule of one choice (from horizon slot ``s0``) under slot prices
    ``cost`` plus the offer's asks, and its value (asks included, also those of its default's
    slots the choice leaves empty). The asks of a slot, ``up (x - d)+ + down (d - x)+``, are
    ``(up + down) / 2 |x - d| + (up - down) / 2 (x - d)``: the battery programme's own form."""
    j = (s0 - asks.lo) + np.arange(b.n)
    up, down, d = asks.up[j], asks.down[j], asks.default[j]
    half = (up - down) / 2
    # the default's slots outside this choice run 0
    outside = np.ones(len(asks.up), dtype=bool)
    outside[j] = False
    od = asks.default[outside]
    const = float(
        asks.up[outside] @ np.maximum(-od, 0.0) + asks.down[outside] @ np.maximum(od, 0.0)
    ) - float(half @ d)
    if bat is not None:
        got = cheapest(bat, cost + half, (up + down) / 2, -d)
    else:
        left = deadline - time.monotonic()
        got = lp_cheapest(b, cost, time_limit_s=min(10.0, max(left, 0.01)), asks=(up, down, d))
        const += float(half @ d)  # the LP prices the deviation itself
    if got is None:
        return None
    return got[0] + const, got[1]


class RelaxedFrame:
    """The part of the Lagrangian that is not a coupled offer: objective variables and
    box-only offers, with the node rows moved into the objective at prices ``lam``.

    ``L(lam) = value(lam) + sum over coupled offers of min(-lam . x)`` is a lower bound on the
    optimum for any ``lam`` at which it is finite (every master dual, every mix of them)."""

    def __init__(self, views: Sequence[OfferView], terms: Terms) -> None:
        self.terms = terms
        self.boxes = [v for v in views if is_boxed(v)]
        # one node, no peak limit, a balance term: the value has a closed form
        self.closed = len(terms.groups) == 1 and terms.limits is None and terms.w_balance > 0
        self.problem, _ = build_master(views, terms, {})
        p = self.problem
        size = len(terms.groups) * terms.slots
        node = (p.rows >= p.node_row0) & (p.rows < p.node_row0 + size)
        self.node_rows = p.rows[node] - p.node_row0
        self.node_cols = p.cols[node]
        self.node_vals = p.vals[node]
        self.row_lb = p.row_lb.copy()
        self.row_ub = p.row_ub.copy()
        self.row_lb[p.node_row0 : p.node_row0 + size] = -np.inf
        self.row_ub[p.node_row0 : p.node_row0 + size] = np.inf

    def value(self, lam: np.ndarray, *, time_limit_s: float = 30.0) -> float:
        if self.closed:
            return self._closed(lam[0])
        if time_limit_s <= 0:
            return -math.inf  # no bound from this point
        p = self.problem
        obj = p.obj.copy()
        np.subtract.at(obj, self.node_cols, self.node_vals * lam.ravel()[self.node_rows])
        relaxed = LinearProblem(
            var_lb=p.var_lb,
            var_ub=p.var_ub,
            obj=obj,
            integer=p.integer,
            row_lb=self.row_lb,
            row_ub=self.row_ub,
            rows=p.rows,
            cols=p.cols,
            vals=p.vals,
            offset=p.offset,
        )
        sol = lp.solve(relaxed, time_limit_s=time_limit_s, integer=False, engine="glop")
        return sol.objective if sol.outcome == "optimal" else -math.inf

    def _closed(self, lam: np.ndarray) -> float:
        """Node load ``N_t`` costs ``(w_cost p_t + lam_t) N_t + w_balance |N_t - target_t|``:
        bounded below only when the price is within ``w_balance``, then least at the target.
        A box-only offer's choice costs ``-lam`` on its lower bounds plus ``min(0, -lam)`` on
        its widths (its share of the flexible load is taken where that pays)."""
        t = self.terms
        price = t.w_cost * t.prices + lam
        if np.any(np.abs(price) > t.w_balance * (1 + 1e-9) + 1e-12):
            return -math.inf
        value = t.offset + float(price @ t.target)
        gain = np.minimum(0.0, -lam)
        res = t.resolution_s
        for v in self.boxes:
            best = math.inf
            for b in v.blocks:
                s0 = t.slot_of(b.first_start)
                count = (b.last_start - b.first_start) // res + 1
                span = slice(s0, s0 + count - 1 + b.n)
                cost = sliding_window_view(-lam[span], b.n) @ b.lower
                cost += sliding_window_view(gain[span], b.n) @ (b.upper - b.lower)
                best = min(best, float(cost.min()))
            value += best
        return value


def block_key(b: Block) -> bytes:
    """The constraints of a profile as bytes: equal keys, equal feasible sets."""
    parts = [b.lower, b.upper, b.deps, b.poly_a, b.poly_b]
    head = repr((b.n, b.total, [None if a is None else a.shape for a in parts])).encode()
    return head + b"".join(np.ascontiguousarray(a).tobytes() for a in parts if a is not None)


def lp_cheapest(
    b: Block,
    cost: np.ndarray,
    *,
    time_limit_s: float = 10.0,
    asks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[float, np.ndarray] | None:
    """The cheapest schedule of a profile under slot prices ``cost`` by LP; with ``asks``
    (up, down, default per slot) its deviation from the default is priced too."""
    tpl = template(b, single=True)
    obj = np.zeros(tpl.n_cols)
    np.add.at(obj, tpl.node_col, tpl.node_val * cost[tpl.node_slot])
    var_lb, var_ub = tpl.var_lb, tpl.var_ub
    rows, cols, vals = tpl.rows, tpl.cols, tpl.vals
    row_lb, row_ub = tpl.row_lb, tpl.row_ub
    if asks is not None:
        # per slot: x_j - u_j + w_j = d_j, u priced at the up ask, w at the down ask
        up, down, d = asks
        n, c0, r0 = b.n, tpl.n_cols, len(tpl.row_lb)
        jn = np.arange(n)
        var_lb = np.concatenate((var_lb, np.zeros(2 * n)))
        var_ub = np.concatenate((var_ub, np.full(2 * n, np.inf)))
        obj = np.concatenate((obj, up, down))
        rows = np.concatenate((rows, r0 + tpl.node_slot, r0 + jn, r0 + jn))
        cols = np.concatenate((cols, tpl.node_col, c0 + jn, c0 + n + jn))
        vals = np.concatenate((vals, tpl.node_val, -np.ones(n), np.ones(n)))
        row_lb = np.concatenate((row_lb, d))
        row_ub = np.concatenate((row_ub, d))
    problem = LinearProblem(
        var_lb=var_lb,
        var_ub=var_ub,
        obj=obj,
        integer=np.zeros(len(var_lb), dtype=bool),
        row_lb=row_lb,
        row_ub=row_ub,
        rows=rows,
        cols=cols,
        vals=vals,
    )
    sol = lp.solve(problem, time_limit_s=time_limit_s, integer=False)
    if sol.values is None:
        return None
    x = np.zeros(b.n)
    np.add.at(x, tpl.node_slot, tpl.node_val * sol.values[tpl.node_col])
    return sol.objective, x


def round_master(
    views: Sequence[OfferView],
    terms: Terms,
    values: np.ndarray,
    problem: LinearProblem,
    layout: MasterLayout,
    columns: dict[int, list[Column]],
) -> list[Placement | None]:
    """Placements from a master solution: each offer takes the choice with most weight."""
    picks: list[tuple[int, int, np.ndarray | None]] = []
    for i, _v in enumerate(views):
        ch = layout.boxes.get(i)
        if ch is not None:
            k = int(np.argmax(values[ch.y]))
            picks.append((int(ch.block[k]), int(ch.start[k]), None))
            continue
        w = layout.weights.get(i)
        if w is None:
            picks.append((-1, 0, None))
            continue
        cols = columns[i][: len(w)]  # columns priced after this master come later
        theta = np.maximum(values[w], 0.0)
        mass: dict[tuple[int, int], float] = {}
        for c, t in zip(cols, theta, strict=True):
            mass[(c.block, c.start)] = mass.get((c.block, c.start), 0.0) + t
        choice = max(mass, key=mass.__getitem__)
        sel = [(c, t) for c, t in zip(cols, theta, strict=True) if (c.block, c.start) == choice]
        total = sum(t for _, t in sel)
        x = sel[0][0].energy if total <= 1e-12 else sum(c.energy * (t / total) for c, t in sel)
        picks.append((choice[0], choice[1], np.asarray(x, dtype=float)))
    return with_boxes(views, terms, picks, flex_of(values, problem, terms))
