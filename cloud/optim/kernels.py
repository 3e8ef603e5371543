"""Compiled inner loops of the planner: the cheapest schedule of a generalised battery.

A *generalised battery* is a profile with per-slot bounds and bounds on the running sum (the
energy of slots ``0..j``): a total, a comfort band, a state of charge; a wet appliance's box is
one with unbounded running sums. The planner asks, thousands of times per second, for the
schedule of such a profile with the least separable convex cost

    sum_j  price_j * x_j + weight_j * |resid_j + x_j|

(``weight = 0``: the pricing step of column generation, linear in the slot prices; ``weight >
0``: an offer's best response to the rest of the portfolio, ``resid`` being the others' load
minus the target). Dynamic programming over the running sum is exact: the least cost of
reaching running sum ``R`` after slot ``j`` is convex and piecewise linear in ``R``; each slot
merges its own cost segments into the sorted list of slopes (a slot with a breakpoint adds two)
and clips the domain to the running-sum bounds; the way back reads, slot by slot, where the
cost curve's slope passes the slot's marginal cost.

The loops are compiled with Numba because they are scalar and branchy: in Python the
programme takes about 0.3 ms for 96 slots, compiled about 10 microseconds, which is what lets
the planner price a 1,000-offer portfolio in a few milliseconds. ``cache=True`` keeps the
machine code on disk, so only the first process after an install pays the compilation.
"""

from __future__ import annotations

import numba as nb
import numpy as np

Array = np.ndarray
#: lower, upper, run_lo, run_hi (flat slots), blk_off, item_blk, item_slot, offer_items, item_x
Layout = tuple[Array, ...]
_TOL = 1e-9
_FEAS = 1e-7


@nb.njit(cache=True)
def cheapest_schedule(
    lower: Array,
    upper: Array,
    run_lo: Array,
    run_hi: Array,
    price: Array,
    weight: Array,
    resid: Array,
    x_out: Array,
) -> float:
    """The least cost (``nan`` when no schedule exists); the schedule goes to ``x_out``."""
    n = lower.shape[0]
    cap = 2 * n + 2
    slopes = np.empty(cap)
    lengths = np.empty(cap)
    # for the way back, per slot: the previous curve's domain and where its slope passes
    # the slot's two marginal costs (price - weight, price + weight)
    h0 = np.empty(n)
    hspan = np.empty(n)
    at_minus = np.empty(n)
    at_plus = np.empty(n)
    kink = np.empty(n)
    m = 0
    r0 = 0.0  # left end of the reachable running sums
    v0 = 0.0  # cost at r0
    span = 0.0  # reachable width, the sum of lengths
    for j in range(n):
        lo = lower[j]
        up = upper[j]
        c = price[j]
        w = weight[j]
        h0[j] = r0
        hspan[j] = span
        acc = r0
        bm = -1.0
        bp = -1.0
        got_m = False
        got_p = False
        for k in range(m):
            if not got_m and slopes[k] >= c - w:
                bm = acc
                got_m = True
            if slopes[k] >= c + w:
                bp = acc
                got_p = True
                break
            acc += lengths[k]
        if not got_m:
            bm = acc
        if not got_p:
            bp = acc
        at_minus[j] = bm
        at_plus[j] = bp
        b = min(max(-resid[j], lo), up) if w > 0.0 else lo
        kink[j] = b
        r0 += lo
        v0 += c * lo + w * abs(resid[j] + lo)
        for piece in range(2):
            s = c - w if piece == 0 else c + w
            ln = b - lo if piece == 0 else up - b
            if ln > _TOL:
                k = m
                while k > 0 and slopes[k - 1] > s:
                    slopes[k] = slopes[k - 1]
                    lengths[k] = lengths[k - 1]
                    k -= 1
                slopes[k] = s
                lengths[k] = ln
                m += 1
                span += ln
        need = run_lo[j] - r0
        if need > _TOL:
            k = 0
            while need > _TOL and k < m:
                take = min(need, lengths[k])
                v0 += slopes[k] * take
                r0 += take
                need -= take
                span -= take
                lengths[k] -= take
                if lengths[k] <= _TOL:
                    span -= lengths[k]
                    k += 1
                else:
                    break
            if k > 0:
                for q in range(k, m):
                    slopes[q - k] = slopes[q]
                    lengths[q - k] = lengths[q]
                m -= k
            if need > _FEAS:
                return np.nan
        if r0 > run_hi[j] + _FEAS:
            return np.nan
        excess = r0 + span - run_hi[j]
        while excess > _TOL and m > 0:
            take = min(excess, lengths[m - 1])
            excess -= take
            span -= take
            lengths[m - 1] -= take
            if lengths[m - 1] <= _TOL:
                span -= lengths[m - 1]
                m -= 1
    # the cheapest end point: take every segment that lowers the cost
    run = r0
    value = v0
    for k in range(m):
        if slopes[k] >= 0.0:
            break
        run += lengths[k]
        value += slopes[k] * lengths[k]
    # the way back: the previous running sum where the curve's slope meets the slot's
    # marginal cost (which steps from price + weight to price - weight at the kink)
    for j in range(n - 1, 0, -1):
        r = min(max(run - kink[j], at_minus[j]), at_plus[j])
        r = min(max(r, max(run - upper[j], h0[j])), min(run - lower[j], h0[j] + hspan[j]))
        x_out[j] = run - r
        run = r
    x_out[0] = run
    for j in range(n):
        x_out[j] = min(max(x_out[j], lower[j]), upper[j])
    return value


@nb.njit(cache=True)
def _item(layout: Layout, it: int, price: Array, weight: Array, resid: Array, out: Array) -> float:
    """The cheapest schedule of item ``it`` under costs over the horizon's slots."""
    lower, upper, run_lo, run_hi, blk_off, item_blk, item_slot, _, _ = layout
    b = item_blk[it]
    a = blk_off[b]
    e = blk_off[b + 1]
    s = item_slot[it]
    n = e - a
    return cheapest_schedule(
        lower[a:e],
        upper[a:e],
        run_lo[a:e],
        run_hi[a:e],
        price[s : s + n],
        weight[s : s + n],
        resid[s : s + n],
        out[:n],
    )


@nb.njit(cache=True)
def _move(layout: Layout, it: int, x_flat: Array, load: Array, sign: float) -> None:
    """Add (``sign`` 1) or take away (-1) item ``it``'s schedule to or from ``load``."""
    _, _, _, _, blk_off, item_blk, item_slot, _, item_x = layout
    b = item_blk[it]
    s = item_slot[it]
    xo = item_x[it]
    for j in range(blk_off[b + 1] - blk_off[b]):
        load[s + j] += sign * x_flat[xo + j]


@nb.njit(cache=True)
def price_items(
    layout: Layout,
    price: Array,
    x_flat: Array,
    chosen: Array,
    values: Array,
    load: Array,
) -> float:
    """Every offer's cheapest choice under slot prices ``price`` (horizon slots).

    ``layout`` holds the catalogue's arrays (:class:`cloud.optim.catalogue.Catalogue`): offer
    ``i`` has the items ``offer_items[i]:offer_items[i+1]``; item ``k`` is block
    ``item_blk[k]`` (slots ``blk_off[b]:blk_off[b+1]`` of the flat bound arrays) started at
    horizon slot ``item_slot[k]``, its schedule written at ``x_flat[item_x[k]:]``. Fills
    ``chosen`` (-1: no schedule) and ``values`` per offer, adds the chosen schedules to
    ``load``; returns the summed values (``inf`` when an offer has no schedule)."""
    offer_items = layout[7]
    item_x = layout[8]
    n_off = offer_items.shape[0] - 1
    total = 0.0
    zero = np.zeros(price.shape[0])
    for i in range(n_off):
        best = np.inf
        pick = -1
        for it in range(offer_items[i], offer_items[i + 1]):
            v = _item(layout, it, price, zero, zero, x_flat[item_x[it] :])
            if v < best:
                best = v
                pick = it
        chosen[i] = pick
        values[i] = best
        total += best
        if pick >= 0:
            _move(layout, pick, x_flat, load, 1.0)
    return total


@nb.njit(cache=True)
def best_response(
    layout: Layout,
    price: Array,
    weight: Array,
    target: Array,
    x_flat: Array,
    chosen: Array,
    load: Array,
    order: Array,
) -> int:
    """One Gauss-Seidel sweep: each offer of ``order`` in turn takes its cheapest choice under
    ``price_t x_t + weight_t |load_t - target_t + x_t|`` with the others' schedules fixed.

    ``chosen[i]`` is offer ``i``'s current item (its schedule at ``x_flat[item_x[item]:]``),
    ``load`` the portfolio's load; both are updated. An offer moves only when that lowers the
    objective, so a sweep never makes the plan worse. Returns the number of offers moved."""
    _, _, _, _, blk_off, item_blk, item_slot, offer_items, item_x = layout
    h = load.shape[0]
    resid = np.empty(h)
    scratch = np.empty(2 * h + 2)
    moved = 0
    for q in range(order.shape[0]):
        i = order[q]
        cur = chosen[i]
        if cur < 0:
            continue
        _move(layout, cur, x_flat, load, -1.0)
        b = item_blk[cur]
        n = blk_off[b + 1] - blk_off[b]
        s = item_slot[cur]
        xo = item_x[cur]
        for t in range(h):
            resid[t] = load[t] - target[t]
        # the objective's change when the offer runs x from slot s, against running nothing
        now = 0.0
        for j in range(n):
            t = s + j
            now += price[t] * x_flat[xo + j] + weight[t] * (
                abs(resid[t] + x_flat[xo + j]) - abs(resid[t])
            )
        best = now - 1e-9 * (1.0 + abs(now))
        pick = -1
        for it in range(offer_items[i], offer_items[i + 1]):
            v = _item(layout, it, price, weight, resid, scratch)
            bb = item_blk[it]
            st = item_slot[it]
            m = blk_off[bb + 1] - blk_off[bb]
            if not v < np.inf:
                continue
            for j in range(m):
                v -= weight[st + j] * abs(resid[st + j])
            if v < best:
                best = v
                pick = it
                xo2 = item_x[it]
                for j in range(m):
                    x_flat[xo2 + j] = scratch[j]
        if pick >= 0:
            chosen[i] = pick
            moved += 1
            cur = pick
        _move(layout, cur, x_flat, load, 1.0)
    return moved
