"""Clearing a book as one mixed-integer programme, and the uniform prices of a fixed outcome.

The compact model is the planner's (:func:`cloud.optim.deviation.build_deviation`: every
order's choices with binary selectors, up and down deviation per slot at its asks, a balance
row per node and slot) plus the market's own columns: a variable per partial request and
slot between 0 and its quantity at its limit, a binary share per all-or-nothing request, a
flow per link and slot within its capacity at its transport cost. HiGHS (through
:mod:`cloud.optim.solver`) solves it with a time limit; its dual bound is the proven bound.

Uniform prices are the duals of the balance rows of the same model with every integer choice
fixed (an order's profile and start, an all-or-nothing request's acceptance), which is a
linear programme; GLOP solves it (OR-Tools' HiGHS adapter does not return duals, see
docs/optim.md), and its solution, the best energies for those choices, is the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud.optim import solver
from cloud.optim.deviation import DeviationLayout, build_deviation, deviation_of, schedule_of
from cloud.optim.errors import SolverError
from cloud.optim.model import LinearProblem

from ._numeric import Numeric

#: GLOP's parameters for the price LP, tried in turn while GLOP answers ABNORMAL
_PRICE_LP_ATTEMPTS = ("use_dual_simplex: true", "")


@dataclass(frozen=True, slots=True)
class MarketModel:
    problem: LinearProblem
    layout: DeviationLayout
    #: first column of the partial requests' variables (``part`` lists their request, slot)
    part0: int
    part: tuple[np.ndarray, np.ndarray]
    aon0: int
    aon: np.ndarray
    flow0: int


def compact_size(num: Numeric) -> int:
    """Columns of the compact model, roughly: what decides whether it is solved whole."""
    size = 0
    res = num.market.resolution_s
    for v in num.views:
        for b in v.blocks:
            starts = (b.last_start - b.first_start) // res + 1
            size += starts * (2 * b.n + 1)
        size += 2 * num.slots
    return size + num.n_links * num.slots + int(np.count_nonzero(num.req_kwh))


def build(
    num: Numeric,
    *,
    choices: Sequence[Sequence[tuple[int, int]] | None] | None = None,
    aon: np.ndarray | None = None,
    integer: bool = True,
) -> MarketModel:
    """The clearing as ``min -welfare`` (see the module docstring); ``choices`` and ``aon``
    (per request, the fixed share of an all-or-nothing one) fix the integer decisions."""
    problem, layout = build_deviation(
        num.views,
        t0=num.market.start,
        resolution_s=num.market.resolution_s,
        slots=num.slots,
        node_of=num.order_node,
        nodes=num.n_nodes,
        ask_up=num.ask_up,
        ask_down=num.ask_down,
        default=num.default,
        choices=choices,
        integer=integer,
    )
    h = num.slots
    row0 = layout.balance_row0
    lbs, ubs, objs, ints = [], [], [], []
    rows, cols, vals = [], [], []
    col = problem.n_vars
    # partial requests
    part = np.flatnonzero(num.req_partial)
    rr, tt = np.nonzero(num.req_kwh[part])
    rr = part[rr]
    q = num.req_kwh[rr, tt]
    part0 = col
    lbs.append(np.minimum(q, 0.0))
    ubs.append(np.maximum(q, 0.0))
    objs.append(-num.req_limit[rr, tt] * np.sign(q))
    ints.append(np.zeros(len(q), dtype=bool))
    rows.append(row0 + num.req_node[rr] * h + tt)
    cols.append(col + np.arange(len(q)))
    vals.append(-np.ones(len(q)))
    col += len(q)
    # all-or-nothing requests
    whole = np.flatnonzero(~num.req_partial)
    aon0 = col
    lo = np.zeros(len(whole)) if aon is None else aon[whole]
    hi = np.ones(len(whole)) if aon is None else aon[whole]
    lbs.append(lo)
    ubs.append(hi)
    objs.append(-(num.req_limit[whole] * np.abs(num.req_kwh[whole])).sum(axis=1))
    ints.append(np.full(len(whole), integer and aon is None))
    for k, r in enumerate(whole):
        nz = np.flatnonzero(num.req_kwh[r])
        rows.append(row0 + num.req_node[r] * h + nz)
        cols.append(np.full(len(nz), col + k))
        vals.append(-num.req_kwh[r, nz])
    col += len(whole)
    # flows
    flow0 = col
    n_l = num.n_links
    f = col + np.arange(n_l * h).reshape(n_l, h)
    t = np.arange(h)
    lbs.append(np.zeros(n_l * h))
    ubs.append(np.repeat(num.link_cap, h))
    objs.append(np.repeat(num.link_cost, h))
    ints.append(np.zeros(n_l * h, dtype=bool))
    for k in range(n_l):
        rows += [row0 + num.link_src[k] * h + t, row0 + num.link_dst[k] * h + t]
        cols += [f[k], f[k]]
        vals += [-np.ones(h), np.ones(h)]
    col += n_l * h
    full = LinearProblem(
        var_lb=np.concatenate([problem.var_lb, *lbs]),
        var_ub=np.concatenate([problem.var_ub, *ubs]),
        obj=np.concatenate([problem.obj, *objs]),
        integer=np.concatenate([problem.integer, *ints]),
        row_lb=problem.row_lb,
        row_ub=problem.row_ub,
        rows=np.concatenate([problem.rows, *[np.asarray(r, dtype=np.int64) for r in rows]]),
        cols=np.concatenate([problem.cols, *[np.asarray(c, dtype=np.int64) for c in cols]]),
        vals=np.concatenate([problem.vals, *[np.asarray(v, dtype=float) for v in vals]]),
    )
    return MarketModel(
        problem=full,
        layout=layout,
        part0=part0,
        part=(rr, tt),
        aon0=aon0,
        aon=whole,
        flow0=flow0,
    )


@dataclass(slots=True)
class Solved:
    """An outcome read from a solution of a :class:`MarketModel`."""

    blocks: list[int]
    starts: list[int]
    energies: list[np.ndarray]
    deviation: np.ndarray
    accepted: np.ndarray
    aon: np.ndarray
    flows: np.ndarray


def read(num: Numeric, model: MarketModel, values: np.ndarray) -> Solved:
    blocks, starts, energies = [], [], []
    dev = np.zeros((num.n_orders, num.slots))
    for i, v in enumerate(num.views):
        b, s, x = schedule_of(values, v, model.layout, i)
        blocks.append(b)
        starts.append(s)
        energies.append(x)
        dev[i] = deviation_of(values, model.layout, i)
    accepted = np.zeros((len(num.requests), num.slots))
    rr, tt = model.part
    accepted[rr, tt] = values[model.part0 : model.part0 + len(rr)]
    aon = np.ones(len(num.requests))
    z = np.round(values[model.aon0 : model.aon0 + len(model.aon)])
    aon[model.aon] = z
    accepted[model.aon] = z[:, None] * num.req_kwh[model.aon]
    h = num.slots
    flows = values[model.flow0 : model.flow0 + num.n_links * h].reshape(num.n_links, h)
    return Solved(blocks, starts, energies, dev, accepted, aon, flows)


@dataclass(slots=True)
class Exact:
    solved: Solved | None
    bound: float
    #: whether the MIP was proven optimal within its gap
    proven: bool


def solve_mip(num: Numeric, *, deadline: float, relative_gap: float) -> Exact:
    """The compact MIP within the time left; ``bound`` is HiGHS's proven upper bound on the
    welfare (``inf`` when it proved none)."""
    model = build(num)
    left = max(deadline - time.monotonic(), 0.05)
    sol = solver.solve(model.problem, time_limit_s=left, relative_gap=relative_gap)
    bound = -sol.bound if np.isfinite(sol.bound) else np.inf
    if sol.values is None:
        return Exact(solved=None, bound=bound, proven=False)
    return Exact(solved=read(num, model, sol.values), bound=bound, proven=sol.outcome == "optimal")


def fixed_prices(
    num: Numeric, blocks: Sequence[int], starts: Sequence[int], aon: np.ndarray
) -> tuple[Solved, np.ndarray] | None:
    """The LP with every integer choice fixed: its solution and the balance rows' duals
    (EUR per kWh of up deviation, ``[node, slot]``); ``None`` when GLOP fails."""
    model = build(
        num,
        choices=[[(b, s)] for b, s in zip(blocks, starts, strict=True)],
        aon=aon,
        integer=False,
    )
    try:
        # the dual simplex: 3 s instead of 14 s on a 200-order book whose choices are fixed
        # (primal simplex without presolve, the column generation's first attempt)
        sol = solver.solve(
            model.problem,
            time_limit_s=60.0,
            integer=False,
            engine="glop",
            glop_attempts=_PRICE_LP_ATTEMPTS,
        )
    except SolverError:
        return None
    if sol.outcome != "optimal" or sol.values is None or sol.duals is None:
        return None
    row0 = model.layout.balance_row0
    duals = sol.duals[row0 : row0 + num.n_nodes * num.slots].reshape(num.n_nodes, num.slots)
    return read(num, model, sol.values), np.asarray(duals, dtype=float)
