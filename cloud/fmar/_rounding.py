"""Rounding the decomposition's mix of choices: a small MIP over the columns already found.

The master LP mixes whole-cluster responses, so an order may end up split between starts or
profiles. Taking each order's choice of most weight on its own ignores what the others do:
on a small book it lost a quarter of the welfare. Most orders are not split (6 of 1,000 on
the benchmark's books), so the split ones, *F*, are decided together by a restricted-master
MIP (price and branch): every column known to the master, with F's orders taken out and the
other orders at their own choice, mixes freely; each order of F picks one choice (a binary)
and mixes its own schedules for that choice; requests and flows are as in the master, an
all-or-nothing request's share a binary unless already decided. HiGHS solves it within a
time limit; what it picks, phase two then turns into energies and prices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import highspy
import numpy as np

from cloud.optim.deviation import deviation_columns

if TYPE_CHECKING:
    from ._decompose import _Search

#: At most this many split orders are decided by the MIP (the most split first); the others
#: take their choice of most weight.
MAX_SPLIT = 300


@dataclass(frozen=True, slots=True)
class Rounded:
    pick: np.ndarray
    layout: np.ndarray
    aon: np.ndarray


def round_choices(
    search: _Search,
    weights: np.ndarray,
    pick: np.ndarray,
    layout: np.ndarray,
    *,
    deadline: float,
) -> Rounded | None:
    """Decide the split orders of ``search``'s master solution (``weights``) together;
    ``pick`` and ``layout`` are the choice-of-most-weight rounding. ``None`` when no order is
    split or HiGHS finds nothing in time."""
    num = search.num
    cat = search.cat
    h = num.slots
    act = np.flatnonzero(weights > 1e-12)
    cols = [search.columns[k] for k in act]
    items = np.stack([c.items for c in cols])
    mine = np.array([c.cluster for c in cols])[:, None] == search.cluster[None, :]
    share = weights[act][:, None] * mine
    mass = np.bincount(items.ravel(), weights=share.ravel(), minlength=len(cat.item_blk))
    top = mass[pick]
    split = np.flatnonzero(top < 1 - 1e-6)
    whole_aon = [r for r in np.flatnonzero(~num.req_partial) if np.isnan(search.aon[r])]
    if not len(split) and not whole_aon:
        return None
    split = split[np.argsort(top[split], kind="stable")][:MAX_SPLIT]
    in_f = np.zeros(num.n_orders, dtype=bool)
    in_f[split] = True
    # every pricing the master still knows, once (a pricing's columns share their arrays)
    pricings: dict[int, tuple[np.ndarray, np.ndarray, list[int]]] = {}
    for col in search.columns:
        entry = pricings.setdefault(id(col.x), (col.items, col.x, []))
        entry[2].append(col.cluster)
    x_len = search.x_len
    keep = np.repeat(~in_f, x_len)
    rows: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    costs: list[float] = []
    lbs: list[float] = []
    ubs: list[float] = []
    ints: list[int] = []
    k_rows = num.n_nodes * h
    conv0 = k_rows  # one convexity row per cluster
    n_clusters = search.k
    f_index = {int(i): j for j, i in enumerate(split)}
    # per order of F: one choice row, then one row per (order, item) tying mixes to binaries
    choice0 = conv0 + n_clusters
    tie_rows: dict[tuple[int, int], int] = {}
    next_row = choice0 + len(split)
    schedules: list[tuple[int, int, np.ndarray]] = []  # (order, item, schedule)

    def column(r: np.ndarray, v: np.ndarray, cost: float, lb: float, ub: float) -> int:
        rows.append(np.asarray(r, dtype=np.int64))
        vals.append(np.asarray(v, dtype=float))
        costs.append(cost)
        lbs.append(lb)
        ubs.append(ub)
        return len(costs) - 1

    for p_items, p_x, clusters in pricings.values():
        # the other orders at their own choice: their schedule here if it is that choice,
        # else the rounded one
        same = np.repeat(p_items == pick, x_len)
        hybrid = np.where(same & keep, p_x, layout)
        cat.write(pick, hybrid)
        dev = np.zeros((n_clusters, h))
        cost = np.zeros(n_clusters)
        mask_pick = np.where(in_f, -1, pick)
        deviation_columns(
            cat.layout,
            mask_pick,
            cat.x,
            num.default * (~in_f)[:, None],
            num.ask_up,
            num.ask_down,
            search.cluster,
            dev,
            cost,
        )
        for c in sorted(set(clusters)):
            nz = np.flatnonzero(np.abs(dev[c]) > 1e-9)
            column(
                np.concatenate((search.cluster_node[c] * h + nz, [conv0 + c])),
                np.concatenate((dev[c, nz], [1.0])),
                float(cost[c]),
                0.0,
                np.inf,
            )
        # the orders of F: their own schedule in this pricing, one column each
        for i in split.tolist():
            it = int(p_items[i])
            if it < 0:
                continue
            a = int(cat.offer_x0[i])
            n = int(cat.lengths(np.array([it]))[0])
            x = p_x[a : a + n].copy()
            schedules.append((i, it, x))
    # the orders of F: mixes of their schedules per choice, a binary per choice
    seen: set[tuple[int, int, bytes]] = set()
    order_of: list[tuple[int, int, int, np.ndarray]] = []
    for i, it, x in schedules:
        key = (i, it, np.round(x, 9).tobytes())
        if key in seen:
            continue
        seen.add(key)
        if (i, it) not in tie_rows:
            tie_rows[(i, it)] = next_row
            next_row += 1
            binary = column(
                np.array([choice0 + f_index[i], tie_rows[(i, it)]]),
                np.array([1.0, -1.0]),
                0.0,
                0.0,
                1.0,
            )
            ints.append(binary)
        s = int(cat.item_slot[it])
        dev_i = np.zeros(h)
        dev_i[s : s + len(x)] += x
        dev_i -= num.default[i]
        cost_i = float(
            (num.ask_up[i] * np.maximum(dev_i, 0) + num.ask_down[i] * np.maximum(-dev_i, 0)).sum()
        )
        nz = np.flatnonzero(np.abs(dev_i) > 1e-12)
        node = int(num.order_node[i])
        k = column(
            np.concatenate((node * h + nz, [tie_rows[(i, it)]])),
            np.concatenate((dev_i[nz], [1.0])),
            cost_i,
            0.0,
            np.inf,
        )
        order_of.append((k, i, it, x))
    # requests and flows, as in the master
    part_cols = []
    for r in np.flatnonzero(num.req_partial).tolist():
        for t in np.flatnonzero(num.req_kwh[r]).tolist():
            q = float(num.req_kwh[r, t])
            k = column(
                np.array([num.req_node[r] * h + t]),
                np.array([-1.0]),
                -float(num.req_limit[r, t]) * np.sign(q),
                min(q, 0.0),
                max(q, 0.0),
            )
            part_cols.append((k, r, t))
    aon_cols = []
    for r in np.flatnonzero(~num.req_partial).tolist():
        nz = np.flatnonzero(num.req_kwh[r])
        fixed = search.aon[r]
        value = float((num.req_limit[r] * np.abs(num.req_kwh[r])).sum())
        lo, hi = (0.0, 1.0) if np.isnan(fixed) else (float(fixed), float(fixed))
        k = column(num.req_node[r] * h + nz, -num.req_kwh[r, nz], -value, lo, hi)
        if np.isnan(fixed):
            ints.append(k)
        aon_cols.append((k, r))
    for link in range(num.n_links):
        for t in range(h):
            column(
                np.array([num.link_src[link] * h + t, num.link_dst[link] * h + t]),
                np.array([-1.0, 1.0]),
                float(num.link_cost[link]),
                0.0,
                float(num.link_cap[link]),
            )
    n_rows = next_row
    row_lb = np.zeros(n_rows)
    row_ub = np.zeros(n_rows)
    row_lb[conv0 : conv0 + n_clusters] = 1.0
    row_ub[conv0 : conv0 + n_clusters] = 1.0
    row_lb[choice0 : choice0 + len(split)] = 1.0
    row_ub[choice0 : choice0 + len(split)] = 1.0
    lp = highspy._Highs()  # type: ignore[attr-defined]  # not in highspy's stubs
    lp.setOptionValue("output_flag", False)
    lp.setOptionValue("time_limit", max(deadline - time.monotonic(), 0.05))
    lp.setOptionValue("mip_rel_gap", 1e-4)
    none = np.zeros(0, dtype=np.int32)
    lp.addRows(n_rows, row_lb, row_ub, 0, none, none, np.zeros(0))
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int32)
    lp.addCols(
        len(costs),
        np.asarray(costs),
        np.asarray(lbs),
        np.asarray(ubs),
        int(lengths.sum()),
        starts,
        np.concatenate(rows).astype(np.int32),
        np.concatenate(vals),
    )
    if ints:
        idx = np.asarray(ints, dtype=np.int32)
        lp.changeColsIntegrality(len(idx), idx, np.full(len(idx), highspy.HighsVarType.kInteger))
    lp.run()
    if lp.getInfo().primal_solution_status != 2:  # no feasible solution
        return None
    solved = np.asarray(lp.getSolution().col_value)
    new_pick = pick.copy()
    new_layout = layout.copy()
    best: dict[int, tuple[int, float]] = {}
    weight_of: dict[tuple[int, int], float] = {}
    for k, i, it, _ in order_of:
        weight_of[(i, it)] = weight_of.get((i, it), 0.0) + solved[k]
    for (i, it), w in weight_of.items():
        if w > best.get(i, (-1, -1.0))[1]:
            best[i] = (it, w)
    for i, (it, _) in best.items():
        new_pick[i] = it
        mix = [(solved[k], x) for k, j, item, x in order_of if j == i and item == it]
        total = sum(w for w, _ in mix)
        x = sum(w * x for w, x in mix) / total if total > 1e-12 else mix[0][1]
        a = int(cat.offer_x0[i])
        new_layout[a : int(cat.offer_x0[i + 1])] = 0.0
        new_layout[a : a + len(x)] = x
    aon = np.where(num.req_partial, 1.0, 0.0)
    for k, r in aon_cols:
        aon[r] = 1.0 if solved[k] > 0.5 else 0.0
    return Rounded(pick=new_pick, layout=new_layout, aon=aon)
