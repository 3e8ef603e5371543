"""Offers traded as deviation from their default schedules, at asks, balanced per node and slot.

A flexibility market (:mod:`cloud.fmar`) buys an offer's *deviation*: in horizon slot ``t`` the
offer runs ``x_t`` (0 outside its schedule) instead of its default ``d_t``, and asks

    cost_t(x_t) = ask_up_t * max(x_t - d_t, 0) + ask_down_t * max(d_t - x_t, 0)

This module gives the planner's machinery that view, kept apart from the planner itself:

- :func:`price_deviations`, compiled: every offer's cheapest choice (profile, start and slot
  energies) under node prices ``lam``, i.e. ``min sum_t cost_t(x_t) - lam_t (x_t - d_t)``. It
  is the pricing step of a decomposition on the node balance: the same exact dynamic programme
  as the planner's (:func:`cloud.optim.kernels.cheapest_schedule`), whose two cost segments
  per slot (``price +- weight`` around a kink) are exactly the asks around the default:
  ``price = (ask_up - ask_down) / 2 - lam``, ``weight = (ask_up + ask_down) / 2``, kink at
  ``d_t``. Slots the default covers but a choice does not cost ``cost_t(0) + lam_t d_t``.
- :func:`deviation_columns`, compiled: the summed deviation and ask cost of the chosen
  schedules per cluster of offers (the columns of a decomposition's master problem).
- :func:`build_deviation`: the compact mixed-integer model (the planner's per-choice
  templates of :mod:`cloud.optim.model`) with up and down deviation variables per offer and
  slot and one balance row per node and slot holding the deviations, for an exact solve; a
  caller adds what else enters the balance rows (a market's requests and network flows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba as nb
import numpy as np

from . import kernels
from .blocks import OfferView
from .kernels import Layout
from .model import Choices, LinearProblem, _add_coupled, _Coo, _Frame, _starts, template

Array = np.ndarray


# -- compiled pricing ---------------------------------------------------------------------------


@nb.njit(cache=True)
def price_deviations(
    layout: Layout,
    price: Array,
    weight: Array,
    negd: Array,
    x_flat: Array,
    chosen: Array,
    values: Array,
) -> float:
    """Every offer's cheapest choice under the separable cost of the module docstring.

    ``price``, ``weight`` and ``negd`` (minus the default) are ``[offer, slot]`` arrays over
    the horizon (see the module docstring for what they hold); ``layout`` is a catalogue's
    (:class:`cloud.optim.catalogue.Catalogue`). Fills ``chosen`` (the item, -1 when the offer
    has no schedule) and ``values`` (its cost) per offer and writes the chosen schedules into
    ``x_flat``; returns the summed cost."""
    lower, upper, run_lo, run_hi, blk_off, item_blk, item_slot, offer_items, item_x = layout
    n_off = offer_items.shape[0] - 1
    h = price.shape[1]
    total = 0.0
    for i in range(n_off):
        # every slot at x = 0 costs weight |d| + price * (-d) - (price * x + weight |x - d|)
        # evaluated by the programme; the programme counts the slots it covers itself
        base = 0.0
        for t in range(h):
            base += price[i, t] * negd[i, t] + weight[i, t] * abs(negd[i, t])
        best = np.inf
        pick = -1
        for it in range(offer_items[i], offer_items[i + 1]):
            b = item_blk[it]
            a = blk_off[b]
            e = blk_off[b + 1]
            n = e - a
            s = item_slot[it]
            x0 = item_x[it]
            v = kernels.cheapest_schedule(
                lower[a:e],
                upper[a:e],
                run_lo[a:e],
                run_hi[a:e],
                price[i, s : s + n],
                weight[i, s : s + n],
                negd[i, s : s + n],
                x_flat[x0 : x0 + n],
            )
            if v != v:  # no schedule for this choice
                continue
            for j in range(n):
                v -= weight[i, s + j] * abs(negd[i, s + j])
            v += base
            if v < best:
                best = v
                pick = it
        chosen[i] = pick
        values[i] = best
        total += best
    return total


@nb.njit(cache=True)
def deviation_columns(
    layout: Layout,
    chosen: Array,
    x_flat: Array,
    default: Array,
    ask_up: Array,
    ask_down: Array,
    cluster: Array,
    dev_out: Array,
    cost_out: Array,
) -> None:
    """Add each offer's deviation (its chosen item's schedule in ``x_flat`` minus its default)
    to its cluster's row of ``dev_out`` ``[cluster, slot]`` and its ask cost to ``cost_out``."""
    _, _, _, _, blk_off, item_blk, item_slot, _, item_x = layout
    h = default.shape[1]
    dev = np.empty(h)
    for i in range(chosen.shape[0]):
        it = chosen[i]
        for t in range(h):
            dev[t] = -default[i, t]
        if it >= 0:
            b = item_blk[it]
            s = item_slot[it]
            x0 = item_x[it]
            for j in range(blk_off[b + 1] - blk_off[b]):
                dev[s + j] += x_flat[x0 + j]
        k = cluster[i]
        c = 0.0
        for t in range(h):
            v = dev[t]
            if v > 0.0:
                c += ask_up[i, t] * v
            elif v < 0.0:
                c -= ask_down[i, t] * v
            dev_out[k, t] += v
        cost_out[k] += c


# -- the compact model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviationLayout:
    """Where things live in :func:`build_deviation`'s model: per offer its choices (as
    :func:`cloud.optim.model.build`'s) and whether it has a single one; its up and down
    deviation columns ``up0[i] + (t - reach0[i])`` and ``down0[i] + (t - reach0[i])`` for
    slots ``reach0[i] <= t < reach1[i]``; the balance rows ``balance_row0 + node * slots + t``."""

    choices: list[Choices]
    single: list[bool]
    up0: np.ndarray
    down0: np.ndarray
    reach0: np.ndarray
    reach1: np.ndarray
    balance_row0: int
    slots: int


def reach(view: OfferView, t0: int, resolution_s: int) -> tuple[int, int]:
    """The horizon slots ``[first, end)`` any choice or the default of the offer touches."""
    d = view.offer.default
    first = (d.start - t0) // resolution_s
    end = first + len(d.energy_kwh)
    for b in view.blocks:
        first = min(first, (b.first_start - t0) // resolution_s)
        end = max(end, (b.last_start - t0) // resolution_s + b.n)
    return first, end


def build_deviation(
    views: Sequence[OfferView],
    *,
    t0: int,
    resolution_s: int,
    slots: int,
    node_of: np.ndarray,
    nodes: int,
    ask_up: np.ndarray,
    ask_down: np.ndarray,
    default: np.ndarray,
    choices: Sequence[Sequence[tuple[int, int]] | None] | None = None,
    integer: bool = True,
) -> tuple[LinearProblem, DeviationLayout]:
    """The compact model: minimise the summed ask cost of the offers' deviations.

    Per offer ``i`` and slot ``t`` of its reach, ``energy_t - up_t + down_t = d_t`` with
    ``up, down >= 0`` at costs ``ask_up``, ``ask_down`` (``[offer, slot]`` arrays, like
    ``default``); balance row ``(node_of[i], t)`` holds ``up_t - down_t``. The balance rows
    are bounded to 0: whatever else must balance them (requests, flows) the caller adds as
    columns. ``choices`` restricts offers as :func:`cloud.optim.model.build` does (one choice
    fixes an offer: the model is then an LP over its energies)."""
    coo = _Coo()
    h = slots
    n_off = len(views)
    load_row0 = coo.add_rows(default.ravel(), default.ravel(), n_off * h)
    balance_row0 = coo.add_rows(0.0, 0.0, nodes * h)
    frame = _Frame(h=h, node_col0=-1, node_row0=load_row0, flex_col0=-1, flex_row0=-1)
    layout_choices: list[Choices] = []
    single_of: list[bool] = []
    up0 = np.zeros(n_off, dtype=np.int64)
    down0 = np.zeros(n_off, dtype=np.int64)
    r0 = np.zeros(n_off, dtype=np.int64)
    r1 = np.zeros(n_off, dtype=np.int64)
    ints: list[np.ndarray] = []
    for i, v in enumerate(views):
        per_block = _starts(v, choices[i] if choices is not None else None, resolution_s)
        single = sum(len(ss) for _, ss in per_block) == 1
        blk_ids, starts, ys = [], [], []
        for k, ss in per_block:
            slot0 = (ss - t0) // resolution_s
            ys.append(_add_coupled(coo, frame, v.blocks[k], i, slot0, single))
            blk_ids.append(np.full(len(ss), k))
            starts.append(ss)
        y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
        if not single and len(y):
            r = coo.add_rows(1.0, 1.0, 1)
            coo.add_entries(np.full(len(y), r), y, 1.0)
            if integer:
                ints.append(y)
        layout_choices.append(
            Choices(
                block=np.concatenate(blk_ids) if blk_ids else np.zeros(0, np.int64),
                start=np.concatenate(starts) if starts else np.zeros(0, np.int64),
                y=y,
                z0=y + 1,
            )
        )
        single_of.append(single)
        a, e = reach(v, t0, resolution_s)
        r0[i], r1[i] = a, e
        span = np.arange(a, e)
        n = e - a
        up0[i] = coo.add_vars(np.zeros(n), np.inf, ask_up[i, a:e])
        down0[i] = coo.add_vars(np.zeros(n), np.inf, ask_down[i, a:e])
        load_rows = load_row0 + i * h + span
        bal_rows = balance_row0 + int(node_of[i]) * h + span
        cols_up = up0[i] + np.arange(n)
        cols_down = down0[i] + np.arange(n)
        coo.add_entries(load_rows, cols_up, -1.0)
        coo.add_entries(load_rows, cols_down, 1.0)
        coo.add_entries(bal_rows, cols_up, 1.0)
        coo.add_entries(bal_rows, cols_down, -1.0)
    problem = coo.problem(np.concatenate(ints) if ints else np.zeros(0, np.int64), 0.0)
    return problem, DeviationLayout(
        choices=layout_choices,
        single=single_of,
        up0=up0,
        down0=down0,
        reach0=r0,
        reach1=r1,
        balance_row0=balance_row0,
        slots=h,
    )


def schedule_of(
    values: np.ndarray, view: OfferView, layout: DeviationLayout, i: int
) -> tuple[int, int, np.ndarray]:
    """Offer ``i``'s choice in a solution of :func:`build_deviation`'s model: the block index,
    the start and the slot energies (the choice with the largest selector)."""
    ch = layout.choices[i]
    k = int(np.argmax(values[ch.y]))
    blk, start = int(ch.block[k]), int(ch.start[k])
    b = view.blocks[blk]
    tpl = template(b, single=layout.single[i])
    x = np.zeros(b.n)
    np.add.at(x, tpl.node_slot, tpl.node_val * values[ch.y[k] + tpl.node_col])
    return blk, start, x


def deviation_of(values: np.ndarray, layout: DeviationLayout, i: int) -> np.ndarray:
    """Offer ``i``'s deviation per horizon slot in a solution (``up - down``)."""
    a, e = int(layout.reach0[i]), int(layout.reach1[i])
    out = np.zeros(layout.slots)
    n = e - a
    out[a:e] = (
        values[layout.up0[i] : layout.up0[i] + n] - values[layout.down0[i] : layout.down0[i] + n]
    )
    return out
