"""The planning problem as a mixed-integer linear program, built as plain arrays.

This module knows nothing of a solver: it turns offer views and objective terms into bounds,
an objective and a sparse constraint matrix (the solver-agnostic problem builder; the OR-Tools
adapter in :mod:`cloud.optim.solver` only loads the arrays). Building everything with numpy
over whole blocks keeps a model of a few hundred thousand variables under a second.

Formulation (the convex hull of each offer's choices, so the LP relaxation is as tight as a
formulation of one offer can be): every choice ``c`` of an offer, a profile and a start, has a
selector ``y_c`` (binary, one per offer is 1) and running sums ``R_j`` (the energy of slots
``0..j``), so that slot ``j`` takes ``x_j = R_j - R_{j-1}``. Every row of the profile is scaled
by ``y_c``: ``lower y <= x <= upper y``, total ``L y <= R_last <= U y``, dependency ``a *
R_{j-1} + b * x_j <= c y`` (for ``a == b``, the usual comfort band or state of charge, simply
``b R_j <= c y``), polytope ``A x <= b y``. With ``y_c = 0`` a choice contributes nothing; with
``y_c = 1`` exactly the profile's schedules. Running sums keep every row two or three terms
long, and an offer with a single choice has its running-sum limits as variable bounds.

Offers with per-slot bounds only (a wet appliance's programme) need no slot variables at
all: their room between the bounds, summed over the offers selected in a slot, is one
flexible load per node and slot (a sum of boxes is a box), split back in proportion to each
offer's width. Node loads, the deviations from the target and the peak excesses are variables
of their own rows. An offer with asks (``profit``) also has rows of its own load per slot,
whose up and down deviations from its default are variables priced at its asks; its
deviation cost is exact at every integer choice (the asks are convex in the energies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .asks import OfferAsks
from .blocks import Block, OfferView
from .terms import Terms

INF = np.inf


@dataclass(slots=True, kw_only=True)
class LinearProblem:
    """``min obj @ v + offset`` s.t. ``row_lb <= M v <= row_ub``, ``var_lb <= v <= var_ub``,
    ``v[integer]`` integral; ``M`` in coordinate form."""

    var_lb: np.ndarray
    var_ub: np.ndarray
    obj: np.ndarray
    integer: np.ndarray
    row_lb: np.ndarray
    row_ub: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    offset: float = 0.0
    #: first column of the node loads ``N[g, t]`` and of the box-only offers' flexible loads
    node_col0: int = 0
    flex_col0: int = 0
    node_row0: int = 0

    @property
    def n_vars(self) -> int:
        return len(self.var_lb)

    @property
    def n_rows(self) -> int:
        return len(self.row_lb)


@dataclass(frozen=True, slots=True, kw_only=True)
class Choices:
    """Where one offer's choices live in the variable vector: for choice ``k``, block index
    ``block[k]``, start (epoch s) ``start[k]``, selector column ``y[k]``, and the slot
    running sums ``R`` from column ``z0[k]`` on (``-1`` for a box-only offer, whose room within
    its bounds is part of the node's flexible load, column ``flex0 + g * slots + t``)."""

    block: np.ndarray
    start: np.ndarray
    y: np.ndarray
    z0: np.ndarray


@dataclass(slots=True)
class _Coo:
    """Growing coordinate lists; variables and rows are appended in blocks."""

    var_lb: list[np.ndarray] = field(default_factory=list)
    var_ub: list[np.ndarray] = field(default_factory=list)
    obj: list[np.ndarray] = field(default_factory=list)
    row_lb: list[np.ndarray] = field(default_factory=list)
    row_ub: list[np.ndarray] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    n_vars: int = 0
    n_rows: int = 0

    def add_vars(
        self, lb: np.ndarray, ub: np.ndarray | float, obj: np.ndarray | float = 0.0
    ) -> int:
        first = self.n_vars
        lb = np.asarray(lb, dtype=float)
        self.var_lb.append(lb)
        self.var_ub.append(np.broadcast_to(np.asarray(ub, dtype=float), lb.shape))
        self.obj.append(np.broadcast_to(np.asarray(obj, dtype=float), lb.shape))
        self.n_vars += len(lb)
        return first

    def add_rows(self, lb: np.ndarray | float, ub: np.ndarray | float, count: int) -> int:
        first = self.n_rows
        self.row_lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (count,)))
        self.row_ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (count,)))
        self.n_rows += count
        return first

    def add_entries(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float) -> None:
        rows = np.asarray(rows, dtype=np.int64).ravel()
        self.rows.append(rows)
        self.cols.append(np.asarray(cols, dtype=np.int64).ravel())
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), rows.shape).ravel())

    def problem(self, integer_cols: np.ndarray, offset: float) -> LinearProblem:
        def cat(parts: list[np.ndarray], dtype: type = float) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        integer = np.zeros(self.n_vars, dtype=bool)
        integer[integer_cols] = True
        return LinearProblem(
            var_lb=cat(self.var_lb),
            var_ub=cat(self.var_ub),
            obj=cat(self.obj),
            integer=integer,
            row_lb=cat(self.row_lb),
            row_ub=cat(self.row_ub),
            rows=cat(self.rows, np.int64),
            cols=cat(self.cols, np.int64),
            vals=cat(self.vals),
            offset=offset,
        )


@dataclass(frozen=True, slots=True)
class Template:
    """One choice of a coupled block in local coordinates: column 0 is ``y``, columns 1..n the
    running sums ``R_j`` (energy of slots 0..j); entries and bounds of the block's own rows."""

    n_cols: int
    var_lb: np.ndarray
    var_ub: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    row_lb: np.ndarray
    row_ub: np.ndarray
    #: the energy of slot ``node_slot[k]`` has term ``node_val[k] * column node_col[k]``
    node_slot: np.ndarray
    node_col: np.ndarray
    node_val: np.ndarray


class _Rows:
    """Rows of one template under construction."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.count = 0

    def new(self, lb: np.ndarray | float, ub: np.ndarray | float, count: int) -> np.ndarray:
        self.lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (count,)))
        self.ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (count,)))
        first = self.count
        self.count += count
        return np.arange(first, first + count)

    def add(self, rr: np.ndarray, cc: np.ndarray | int, vv: np.ndarray | float) -> None:
        rr = np.asarray(rr, dtype=np.int64)
        self.rows.append(rr)
        self.cols.append(np.broadcast_to(np.asarray(cc, dtype=np.int64), rr.shape))
        self.vals.append(np.broadcast_to(np.asarray(vv, dtype=float), rr.shape))

    def cat(self, parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def template(b: Block, *, single: bool) -> Template:
    """The rows of one choice in running-sum form: slot energy ``x_j = R_j - R_{j-1}``.

    Dependency rows with ``a == b`` bound the running sum itself (``b * R_j <= c``), the
    common case of a comfort band or a state of charge; with a single choice they become
    variable bounds, which the simplex handles for free. Other rows are two-term rows."""
    n = b.n
    rows = _Rows()
    r_col = np.arange(1, n + 1)  # column of R_j
    # running sums lie between the sums of the negative lower and positive upper bounds,
    # whether the choice is taken (y = 1) or not (y = 0, every R_j = 0)
    var_lb = np.concatenate(([1.0 if single else 0.0], np.cumsum(np.minimum(b.lower, 0.0))))
    var_ub = np.concatenate(([1.0], np.cumsum(np.maximum(b.upper, 0.0))))
    # slot bounds: lower_j y <= R_j - R_{j-1} <= upper_j y
    prev = np.concatenate(([-1], r_col[:-1]))
    jn = np.arange(n)
    if single:
        # slot energies x_j as columns n+1..2n with their bounds; R_j - R_{j-1} - x_j = 0
        x_col = np.arange(n + 1, 2 * n + 1)
        var_lb = np.concatenate((var_lb, b.lower))
        var_ub = np.concatenate((var_ub, b.upper))
        rr = rows.new(0.0, 0.0, n)
        rows.add(rr, r_col, 1.0)
        rows.add(rr[1:], prev[1:], -1.0)
        rows.add(rr, x_col, -1.0)
        node = (jn, x_col, np.ones(n))
    else:
        node = (
            np.concatenate((jn, jn[1:])),
            np.concatenate((r_col, prev[1:])),
            np.concatenate((np.ones(n), -np.ones(n - 1))),
        )
        for bound, lo, hi in ((b.upper, -INF, 0.0), (b.lower, 0.0, INF)):
            rr = rows.new(lo, hi, n)
            rows.add(rr, r_col, 1.0)
            rows.add(rr[1:], prev[1:], -1.0)
            rows.add(rr, 0, -bound)
    # running-sum bounds from the total and from dependency rows with a == b
    run_lo = np.full(n, -INF)
    run_hi = np.full(n, INF)
    if b.total is not None:
        run_lo[-1], run_hi[-1] = b.total
    general = None
    if b.deps is not None:
        slot = b.deps[:, 0].astype(np.int64)
        a, bb, c = b.deps[:, 1], b.deps[:, 2], b.deps[:, 3]
        cum = (a == bb) & (bb != 0)
        up = cum & (bb > 0)
        np.minimum.at(run_hi, slot[up], c[up] / bb[up])
        dn = cum & (bb < 0)
        np.maximum.at(run_lo, slot[dn], c[dn] / bb[dn])
        general = ~cum & ((a != 0) | (bb != 0))
        # a * R_{j-1} + b * (R_j - R_{j-1}) <= c y
        if general.any():
            s_, a_, b_, c_ = slot[general], a[general], bb[general], c[general]
            rr = rows.new(-INF, 0.0 if not single else c_, len(s_))
            rows.add(rr, r_col[s_], b_)
            has_prev = s_ >= 1
            rows.add(rr[has_prev], r_col[s_[has_prev] - 1], (a_ - b_)[has_prev])
            if not single:
                rows.add(rr, 0, -c_)
    if single:
        var_lb[1 : n + 1] = np.maximum(var_lb[1 : n + 1], run_lo)
        var_ub[1 : n + 1] = np.minimum(var_ub[1 : n + 1], run_hi)
    else:
        for bound, lo, hi in ((run_hi, -INF, 0.0), (run_lo, 0.0, INF)):
            fin = np.flatnonzero(np.isfinite(bound))
            if len(fin):
                rr = rows.new(lo, hi, len(fin))
                rows.add(rr, r_col[fin], 1.0)
                rows.add(rr, 0, -bound[fin])
    if b.poly_a is not None and b.poly_b is not None:
        # A x = A D R with x_j = R_j - R_{j-1}: coefficient of R_j is A_j - A_{j+1}
        coef = b.poly_a - np.concatenate((b.poly_a[:, 1:], np.zeros((len(b.poly_a), 1))), axis=1)
        k = len(b.poly_b)
        rr = rows.new(-INF, 0.0 if not single else b.poly_b, k)
        pr, pc = np.nonzero(coef)
        rows.add(rr[pr], r_col[pc], coef[pr, pc])
        if not single:
            rows.add(rr, 0, -b.poly_b)
    return Template(
        n_cols=len(var_lb),
        var_lb=var_lb,
        var_ub=var_ub,
        rows=rows.cat(rows.rows, np.int64),
        cols=rows.cat(rows.cols, np.int64),
        vals=rows.cat(rows.vals, float),
        row_lb=rows.cat(rows.lb, float),
        row_ub=rows.cat(rows.ub, float),
        node_slot=node[0],
        node_col=node[1],
        node_val=node[2],
    )


@dataclass(frozen=True, slots=True)
class _Frame:
    """Indices shared by every part of a model: node loads and their rows, flexible loads."""

    h: int
    node_col0: int
    node_row0: int
    flex_col0: int
    flex_row0: int

    def node_rows(self, g: int, slot0: np.ndarray, n: int) -> np.ndarray:
        return self.node_row0 + g * self.h + slot0[:, None] + np.arange(n)


def _frame(coo: _Coo, terms: Terms) -> _Frame:
    """Node loads ``N[g, t]``, the objective's own variables and rows, and the flexible loads
    of box-only offers."""
    h = terms.slots
    g_count = len(terms.groups)
    n_col0 = coo.add_vars(
        np.full(g_count * h, -INF), INF, np.tile(terms.w_cost * terms.prices, g_count)
    )
    node_row0 = coo.add_rows(0.0, 0.0, g_count * h)
    gt = np.arange(g_count * h)
    coo.add_entries(node_row0 + gt, n_col0 + gt, -1.0)
    t = np.arange(h)
    if terms.w_balance:
        d0 = coo.add_vars(np.zeros(2 * h), INF, terms.w_balance)
        r0 = coo.add_rows(terms.target, terms.target, h)
        for g in range(g_count):
            coo.add_entries(r0 + t, n_col0 + g * h + t, 1.0)
        coo.add_entries(r0 + t, d0 + t, -1.0)
        coo.add_entries(r0 + t, d0 + h + t, 1.0)
    if terms.w_peak and terms.limits is not None:
        # N - e <= upper and N + e >= lower, e >= 0 at w_peak: only slots with a bound get rows
        for band, sign in ((terms.limits.upper, -1.0), (terms.limits.lower, 1.0)):
            for g in range(g_count):
                ts = np.flatnonzero(np.isfinite(band[g]))
                if not ts.size:
                    continue
                e0 = coo.add_vars(np.zeros(ts.size), INF, terms.w_peak)
                lb, ub = (-INF, band[g, ts]) if sign < 0 else (band[g, ts], INF)
                r0 = coo.add_rows(lb, ub, ts.size)
                k = np.arange(ts.size)
                coo.add_entries(r0 + k, n_col0 + g * h + ts, 1.0)
                coo.add_entries(r0 + k, e0 + k, sign)
    # box-only offers add no columns of their own beyond their selectors: their room between
    # lower and upper bounds is one flexible load per node and slot, at most the summed widths
    # of the selected choices (a sum of boxes is a box, so this is exact)
    flex0 = coo.add_vars(np.zeros(g_count * h), INF)
    flex_row0 = coo.add_rows(-INF, 0.0, g_count * h)
    coo.add_entries(flex_row0 + gt, flex0 + gt, 1.0)
    coo.add_entries(node_row0 + gt, flex0 + gt, 1.0)
    return _Frame(h=h, node_col0=n_col0, node_row0=node_row0, flex_col0=flex0, flex_row0=flex_row0)


def _add_box(
    coo: _Coo, fr: _Frame, b: Block, g: int, slot0: np.ndarray, single: bool
) -> np.ndarray:
    """Selectors of a box-only block's starts; returns their columns."""
    kk = len(slot0)
    base = coo.add_vars(np.full(kk, 1.0 if single else 0.0), 1.0) + np.arange(kk)
    node_rows = fr.node_rows(g, slot0, b.n)
    width = np.maximum(b.upper - b.lower, 0.0)
    nz = np.flatnonzero(width)
    if len(nz):
        coo.add_entries(
            node_rows[:, nz] - fr.node_row0 + fr.flex_row0,
            np.repeat(base, len(nz)),
            np.tile(-width[nz], kk),
        )
    nz = np.flatnonzero(b.lower)
    if len(nz):
        coo.add_entries(node_rows[:, nz], np.repeat(base, len(nz)), np.tile(b.lower[nz], kk))
    return base


def _add_coupled(
    coo: _Coo,
    fr: _Frame,
    b: Block,
    g: int,
    slot0: np.ndarray,
    single: bool,
    own: tuple[int, int] | None = None,
) -> np.ndarray:
    """A copy of the block's template per start; returns the selector columns. ``own``
    (first row, first horizon slot) are the offer's own load rows, for an offer with asks:
    its energy goes there as well as to its node's rows."""
    kk = len(slot0)
    tpl = template(b, single=single)
    col0 = coo.add_vars(np.tile(tpl.var_lb, kk), np.tile(tpl.var_ub, kk))
    n_loc_rows = len(tpl.row_lb)
    row0 = coo.add_rows(np.tile(tpl.row_lb, kk), np.tile(tpl.row_ub, kk), n_loc_rows * kk)
    copy = np.arange(kk)[:, None]
    if len(tpl.rows):
        coo.add_entries(
            row0 + copy * n_loc_rows + tpl.rows,
            col0 + copy * tpl.n_cols + tpl.cols,
            np.tile(tpl.vals, kk),
        )
    base = col0 + np.arange(kk) * tpl.n_cols
    node_rows = fr.node_rows(g, slot0, b.n)
    coo.add_entries(
        node_rows[:, tpl.node_slot], base[:, None] + tpl.node_col, np.tile(tpl.node_val, kk)
    )
    if own is not None:
        row0, lo = own
        coo.add_entries(
            row0 + (slot0 - lo)[:, None] + tpl.node_slot,
            base[:, None] + tpl.node_col,
            np.tile(tpl.node_val, kk),
        )
    return base


def _add_asks(coo: _Coo, asks: OfferAsks) -> int:
    """An offer's own load rows with its deviation from its default, ``x_t - up_t + down_t
    = d_t``, the up and down parts priced at its asks; returns the first row."""
    m = len(asks.up)
    u0 = coo.add_vars(np.zeros(m), INF, asks.up)
    w0 = coo.add_vars(np.zeros(m), INF, asks.down)
    r0 = coo.add_rows(asks.default, asks.default, m)
    t = np.arange(m)
    coo.add_entries(r0 + t, u0 + t, -1.0)
    coo.add_entries(r0 + t, w0 + t, 1.0)
    return r0


def build(
    views: Sequence[OfferView],
    terms: Terms,
    *,
    choices: Sequence[Sequence[tuple[int, int]] | None] | None = None,
    integer: bool = True,
) -> tuple[LinearProblem, list[Choices]]:
    """The compact model of planning ``views`` against ``terms``.

    ``choices[i]``, when given and not ``None``, restricts offer ``i`` to those ``(block index,
    start)`` pairs (to fix an offer, give one); otherwise every profile and start is open.
    With ``integer`` the selectors are marked integral, else the LP relaxation is built."""
    coo = _Coo()
    fr = _frame(coo, terms)
    res = terms.resolution_s
    layout: list[Choices] = []
    y_cols: list[np.ndarray] = []
    for i, v in enumerate(views):
        per_block = _starts(v, choices[i] if choices is not None else None, res)
        single = sum(len(ss) for _, ss in per_block) == 1
        boxed = is_boxed(v)
        g = terms.group_of(v)
        asks = terms.asks[i] if terms.asks else None
        own = None if asks is None else (_add_asks(coo, asks), asks.lo)
        blk_ids, starts, ys = [], [], []
        for k, ss in per_block:
            slot0 = (ss - terms.t0) // res
            if boxed:
                ys.append(_add_box(coo, fr, v.blocks[k], g, slot0, single))
            else:
                ys.append(_add_coupled(coo, fr, v.blocks[k], g, slot0, single, own))
            blk_ids.append(np.full(len(ss), k))
            starts.append(ss)
        y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
        if not single and len(y):
            r = coo.add_rows(1.0, 1.0, 1)
            coo.add_entries(np.full(len(y), r), y, 1.0)
        y_cols.append(y)
        layout.append(
            Choices(
                block=np.concatenate(blk_ids) if blk_ids else np.zeros(0, np.int64),
                start=np.concatenate(starts) if starts else np.zeros(0, np.int64),
                y=y,
                z0=y + 1 if not boxed else np.full(len(y), -1),
            )
        )
    ints = np.concatenate(y_cols) if (integer and y_cols) else np.zeros(0, np.int64)
    problem = coo.problem(ints, terms.offset)
    problem.node_col0, problem.flex_col0, problem.node_row0 = (
        fr.node_col0,
        fr.flex_col0,
        fr.node_row0,
    )
    return problem, layout


def is_boxed(v: OfferView) -> bool:
    """Whether every profile of the offer has per-slot bounds only (and no asks: an offer
    with asks is charged for its own deviation, so it cannot share a node's flexible load)."""
    return not v.priced and not any(b.coupled for b in v.blocks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """A schedule of a coupled offer known to the master problem."""

    block: int
    start: int
    energy: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class MasterLayout:
    """Box-only offers' selectors (as in :func:`build`); for coupled offers, the weight column
    of each of their schedules and their convexity row."""

    boxes: dict[int, Choices]
    weights: dict[int, np.ndarray]
    convexity_row: dict[int, int]


def build_master(
    views: Sequence[OfferView],
    terms: Terms,
    columns: dict[int, list[Column]],
    *,
    box_choices: dict[int, Sequence[tuple[int, int]]] | None = None,
    integer: bool = False,
) -> tuple[LinearProblem, MasterLayout]:
    """The restricted master problem of column generation.

    Box-only offers are modelled as in :func:`build` (cheap and exact); every other offer
    ``i`` runs a convex combination of its known schedules ``columns[i]``. Mixing schedules of
    one profile and start is itself a schedule (the profile's feasible set is convex); mixing
    different starts is not, which rounding repairs. With ``integer`` every coupled offer picks
    one of its schedules (a restricted-master heuristic)."""
    coo = _Coo()
    fr = _frame(coo, terms)
    res = terms.resolution_s
    boxes: dict[int, Choices] = {}
    weights: dict[int, np.ndarray] = {}
    conv: dict[int, int] = {}
    ints: list[np.ndarray] = []
    for i, v in enumerate(views):
        g = terms.group_of(v)
        if is_boxed(v):
            allowed = box_choices.get(i) if box_choices is not None else None
            per_block = _starts(v, allowed, res)
            single = sum(len(ss) for _, ss in per_block) == 1
            blk_ids, starts, ys = [], [], []
            for k, ss in per_block:
                ys.append(_add_box(coo, fr, v.blocks[k], g, (ss - terms.t0) // res, single))
                blk_ids.append(np.full(len(ss), k))
                starts.append(ss)
            y = np.concatenate(ys)
            if not single:
                r = coo.add_rows(1.0, 1.0, 1)
                coo.add_entries(np.full(len(y), r), y, 1.0)
                if integer:
                    ints.append(y)
            boxes[i] = Choices(
                block=np.concatenate(blk_ids), start=np.concatenate(starts), y=y, z0=y * 0 - 1
            )
            continue
        cols = columns.get(i)
        if not cols:
            continue
        asks = terms.asks[i] if terms.asks else None
        cost = (
            0.0
            if asks is None
            else np.array([asks.cost((c.start - terms.t0) // res, c.energy) for c in cols])
        )
        w0 = coo.add_vars(np.zeros(len(cols)), 1.0, cost)
        w = w0 + np.arange(len(cols))
        for col, c in zip(cols, w, strict=True):
            slot0 = (col.start - terms.t0) // res
            nz = np.flatnonzero(col.energy)
            if len(nz):
                coo.add_entries(
                    fr.node_row0 + g * fr.h + slot0 + nz, np.full(len(nz), c), col.energy[nz]
                )
        r = coo.add_rows(1.0, 1.0, 1)
        coo.add_entries(np.full(len(cols), r), w, 1.0)
        weights[i] = w
        conv[i] = r
        if integer and len(cols) > 1:
            ints.append(w)
    problem = coo.problem(np.concatenate(ints) if ints else np.zeros(0, np.int64), terms.offset)
    problem.node_col0, problem.flex_col0, problem.node_row0 = (
        fr.node_col0,
        fr.flex_col0,
        fr.node_row0,
    )
    return problem, MasterLayout(boxes=boxes, weights=weights, convexity_row=conv)


def _starts(
    v: OfferView, allowed: Sequence[tuple[int, int]] | None, res: int
) -> list[tuple[int, np.ndarray]]:
    """``(block index, starts)`` of the choices open to ``v``."""
    if allowed is None:
        return [
            (k, np.arange(b.first_start, b.last_start + 1, res, dtype=np.int64))
            for k, b in enumerate(v.blocks)
        ]
    by_block: dict[int, list[int]] = {}
    for k, s in allowed:
        by_block.setdefault(k, []).append(s)
    return [(k, np.asarray(sorted(ss), dtype=np.int64)) for k, ss in sorted(by_block.items())]
