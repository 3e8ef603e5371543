"""Greedy placement and a closed-form lower bound: answers that need no solver.

The greedy places offers one at a time, largest first, each at the profile and start where its
known feasible schedule (the default's energy, shifted) does the least harm to the objective
given the offers already placed. It is the planner's fallback when the solver runs out of time,
its first incumbent, and the baseline the benchmark compares against. Shifting a feasible
schedule keeps it feasible: every profile constraint is relative to the profile's own slots.

The envelope bound relaxes every offer to the per-slot minimum and maximum it could take
over all its choices; the best objective over those per-slot intervals is a valid, if weak,
lower bound, available whatever happened to the solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .blocks import OfferView
from .terms import Terms


@dataclass(frozen=True, slots=True)
class Placement:
    """Block index, start (epoch s) and slot energies chosen for one offer."""

    block: int
    start: int
    energy: np.ndarray


def greedy(views: Sequence[OfferView], terms: Terms) -> tuple[list[Placement | None], np.ndarray]:
    """A placement for every offer that has a known feasible schedule (else ``None``) and the
    node loads ``[group, slot]`` they make."""
    loads = np.zeros((len(terms.groups), terms.slots))
    out: list[Placement | None] = [None] * len(views)
    size = [
        max((float(np.abs(b.point).sum()) for b in v.blocks if b.point is not None), default=0.0)
        for v in views
    ]
    res = terms.resolution_s
    peak = terms.peak_kwh
    for i in sorted(range(len(views)), key=lambda i: -size[i]):
        v = views[i]
        g = terms.group_of(v)
        best: tuple[float, int, int] | None = None
        for k, b in enumerate(v.blocks):
            if b.point is None:
                continue
            s0 = terms.slot_of(b.first_start)
            count = (b.last_start - b.first_start) // res + 1
            span = slice(s0, s0 + count - 1 + b.n)
            win = sliding_window_view(loads[:, span], b.n, axis=1)  # [group, start, j]
            total = win.sum(axis=0)
            delta = np.zeros(count)
            if terms.w_balance:
                tgt = sliding_window_view(terms.target[span], b.n)
                delta += terms.w_balance * (
                    np.abs(total + b.point - tgt) - np.abs(total - tgt)
                ).sum(axis=1)
            if terms.w_cost:
                delta += terms.w_cost * sliding_window_view(terms.prices[span], b.n) @ b.point
            if terms.w_peak and np.isfinite(peak[g]):
                own = win[g]
                delta += terms.w_peak * (
                    np.maximum(np.abs(own + b.point) - peak[g], 0)
                    - np.maximum(np.abs(own) - peak[g], 0)
                ).sum(axis=1)
            c = int(np.argmin(delta))
            if best is None or delta[c] < best[0]:
                best = (float(delta[c]), k, b.first_start + c * res)
        if best is None:
            continue
        _, k, start = best
        b = v.blocks[k]
        s = terms.slot_of(start)
        loads[g, s : s + b.n] += b.point
        out[i] = Placement(k, start, b.point)
    return out, loads


def envelope_bound(views: Sequence[OfferView], terms: Terms) -> float:
    """A lower bound on the objective from per-slot energy intervals of every offer."""
    lo = np.zeros(terms.slots)
    hi = np.zeros(terms.slots)
    res = terms.resolution_s
    for v in views:
        o_lo = np.full(terms.slots, np.inf)
        o_hi = np.full(terms.slots, -np.inf)
        covered = np.zeros(terms.slots, dtype=bool)
        everywhere = np.ones(terms.slots, dtype=bool)
        for b in v.blocks:
            s0 = terms.slot_of(b.first_start)
            count = (b.last_start - b.first_start) // res + 1
            span = count - 1 + b.n
            # over all starts, slot s0 + t sees profile slots t-count+1 .. t
            pad_lo = np.concatenate(
                (np.full(count - 1, np.inf), b.lower, np.full(count - 1, np.inf))
            )
            pad_hi = np.concatenate(
                (np.full(count - 1, -np.inf), b.upper, np.full(count - 1, -np.inf))
            )
            w_lo = sliding_window_view(pad_lo, count).min(axis=1)[:span]
            w_hi = sliding_window_view(pad_hi, count).max(axis=1)[:span]
            o_lo[s0 : s0 + span] = np.minimum(o_lo[s0 : s0 + span], w_lo)
            o_hi[s0 : s0 + span] = np.maximum(o_hi[s0 : s0 + span], w_hi)
            always = np.zeros(terms.slots, dtype=bool)
            if b.n >= count:  # slots every start of this block covers
                always[s0 + count - 1 : s0 + b.n] = True
            everywhere &= always
            covered[s0 : s0 + span] = True
        # a slot that some choice leaves empty may take 0
        o_lo = np.where(covered & everywhere, o_lo, np.minimum(np.where(covered, o_lo, 0.0), 0.0))
        o_hi = np.where(covered & everywhere, o_hi, np.maximum(np.where(covered, o_hi, 0.0), 0.0))
        lo += o_lo
        hi += o_hi
    # the best of each slot's interval, term by term (a sum of minima is below the minimum)
    value = terms.offset
    if terms.w_balance:
        value += terms.w_balance * float(
            np.maximum(0, np.maximum(lo - terms.target, terms.target - hi)).sum()
        )
    if terms.w_cost:
        value += terms.w_cost * float(np.minimum(terms.prices * lo, terms.prices * hi).sum())
    return value
