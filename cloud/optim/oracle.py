"""The cheapest schedule of one profile under per-slot prices: the pricing step of the planner.

Column generation asks, for every offer and every dual price vector, which schedule of the
offer is cheapest. Most profiles are *generalised batteries*: per-slot bounds plus bounds on
the running sum (a total, a comfort band, a state of charge, all dependency rows with
``a == b``). For those, dynamic programming over the running sum is exact and fast: the cost
to reach running sum ``R`` after slot ``j`` is convex and piecewise linear in ``R``, each slot
adds one segment (slope = the slot's price) and clips the domain to the running-sum bounds,
and the cheapest path is read back slot by slot (:mod:`cloud.optim.kernels` holds the compiled
programme). Profiles with other dependency rows or a polytope go to the LP solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import kernels
from .blocks import Block


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


def cheapest(
    bat: Battery,
    cost: np.ndarray,
    weight: np.ndarray | None = None,
    resid: np.ndarray | None = None,
) -> tuple[float, np.ndarray] | None:
    """``(cost, schedule)`` of the cheapest schedule, or ``None`` when none exists; with
    ``weight`` and ``resid`` the cost adds ``weight_j * |resid_j + x_j|`` per slot."""
    n = len(bat.lower)
    x = np.zeros(n)
    zero = np.zeros(n)
    value = kernels.cheapest_schedule(
        np.ascontiguousarray(bat.lower, dtype=float),
        np.ascontiguousarray(bat.upper, dtype=float),
        np.ascontiguousarray(bat.run_lo, dtype=float),
        np.ascontiguousarray(bat.run_hi, dtype=float),
        np.ascontiguousarray(cost, dtype=float),
        zero if weight is None else np.ascontiguousarray(weight, dtype=float),
        zero if resid is None else np.ascontiguousarray(resid, dtype=float),
        x,
    )
    return None if math.isnan(value) else (float(value), x)
