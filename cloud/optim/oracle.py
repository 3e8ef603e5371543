"""The cheapest schedule of one profile under per-slot prices: the pricing step of the planner.

Column generation asks, for every offer and every dual price vector, which schedule of the
offer is cheapest. Most profiles are *generalised batteries*: per-slot bounds plus bounds on
the running sum (a total, a comfort band, a state of charge, all dependency rows with
``a == b``). For those, dynamic programming over the running sum is exact and fast: the cost
to reach running sum ``R`` after slot ``j`` is convex and piecewise linear in ``R``, each slot
adds one segment (slope = the slot's price) and clips the domain to the running-sum bounds,
and the cheapest path is read back slot by slot. Profiles with other dependency rows or a
polytope go to the LP solver.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from .blocks import Block

_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class Battery:
    """A profile as per-slot bounds and running-sum bounds, or ``None`` from
    :func:`as_battery` when it has constraints of another shape."""

    lower: np.ndarray
    upper: np.ndarray
    run_lo: np.ndarray
    run_hi: np.ndarray


def as_battery(b: Block) -> Battery | None:
    if b.poly_a is not None:
        return None
    n = b.n
    run_lo = np.full(n, -np.inf)
    run_hi = np.full(n, np.inf)
    if b.total is not None:
        run_lo[-1], run_hi[-1] = b.total
    if b.deps is not None:
        slot = b.deps[:, 0].astype(np.int64)
        a, bb, c = b.deps[:, 1], b.deps[:, 2], b.deps[:, 3]
        if np.any((a != bb) & ((a != 0) | (bb != 0))):
            return None
        if np.any((bb == 0) & (c < 0)):
            return None  # 0 <= c broken: no schedule at all; let the LP say so
        up = bb > 0
        np.minimum.at(run_hi, slot[up], c[up] / bb[up])
        dn = bb < 0
        np.maximum.at(run_lo, slot[dn], c[dn] / bb[dn])
    return Battery(lower=b.lower, upper=b.upper, run_lo=run_lo, run_hi=run_hi)


def reach(b: Battery) -> tuple[np.ndarray, np.ndarray]:
    """The running sums reachable after each slot, ``[lo_j, hi_j]``: an interval, computed
    forward as a prefix maximum and a prefix minimum (empty where ``lo_j > hi_j``)."""
    lc = np.cumsum(b.lower)
    hc = np.cumsum(b.upper)
    lo = lc + np.maximum.accumulate(np.concatenate(([0.0], b.run_lo - lc)))[1:]
    hi = hc + np.minimum.accumulate(np.concatenate(([0.0], b.run_hi - hc)))[1:]
    return lo, hi


def cheapest(bat: Battery, cost: np.ndarray) -> tuple[float, np.ndarray] | None:
    """``(cost, schedule)`` of the cheapest schedule, or ``None`` when none exists."""
    lower = bat.lower.tolist()
    upper = bat.upper.tolist()
    prices = cost.tolist()
    run_lo = bat.run_lo.tolist()
    run_hi = bat.run_hi.tolist()
    n = len(lower)
    r0 = 0.0  # left end of the reachable running sums
    v0 = 0.0  # cost at r0
    slopes: list[float] = []  # segments to the right of r0, cheapest first
    lengths: list[float] = []
    span = 0.0  # sum of lengths
    history: list[tuple[float, list[float], list[float], float]] = []
    for j in range(n):
        lo, c = lower[j], prices[j]
        r0 += lo
        v0 += c * lo
        width = upper[j] - lo
        if width > _TOL:
            k = bisect.bisect_right(slopes, c)
            slopes.insert(k, c)
            lengths.insert(k, width)
            span += width
        need = run_lo[j] - r0
        while need > _TOL and slopes:
            take = min(need, lengths[0])
            v0 += slopes[0] * take
            r0 += take
            need -= take
            span -= take
            if take >= lengths[0] - _TOL:
                span -= lengths[0] - take
                del slopes[0], lengths[0]
            else:
                lengths[0] -= take
        if need > 1e-7:
            return None
        if r0 > run_hi[j] + 1e-7:
            return None
        excess = r0 + span - run_hi[j]
        while excess > _TOL and slopes:
            take = min(excess, lengths[-1])
            excess -= take
            span -= take
            if take >= lengths[-1] - _TOL:
                span -= lengths[-1] - take
                del slopes[-1], lengths[-1]
            else:
                lengths[-1] -= take
        # prefix sums of the lengths let the way back find a slope's position by bisection
        history.append((r0, slopes.copy(), list(accumulate(lengths, initial=0.0)), span))
    # the cheapest end point: take every segment that lowers the cost
    neg = bisect.bisect_left(slopes, 0.0)
    r_end = r0 + sum(lengths[:neg])
    value = v0 + sum(s * length for s, length in zip(slopes[:neg], lengths[:neg], strict=True))
    run = [0.0] * n
    run[n - 1] = r_end
    for j in range(n - 1, 0, -1):
        h0, hs, hcum, hspan = history[j - 1]
        # where the previous cost curve's slope passes this slot's price
        best = h0 + hcum[bisect.bisect_left(hs, prices[j])]
        lo_r = max(run[j] - upper[j], h0)
        hi_r = min(run[j] - lower[j], h0 + hspan)
        run[j - 1] = min(max(best, lo_r), hi_r)
    x = np.diff(np.asarray(run), prepend=0.0)
    return value, np.clip(x, bat.lower, bat.upper)
