"""A closed-form lower bound on the objective: an answer that needs no planner.

The envelope bound relaxes every offer to the per-slot minimum and maximum it could take
over all its choices and to the range of its total energy; the best objective of a portfolio
load within those per-slot intervals and that total range (a 96-variable LP) is a valid, if
weak, lower bound, available whatever happens to the large solve. Its LP's slot values are the
first dual point of column generation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .blocks import Block, OfferView
from .errors import SolverError
from .model import LinearProblem
from .oracle import Battery, as_battery, reach
from .solver import solve
from .terms import Terms


def envelope_bound(views: Sequence[OfferView], terms: Terms) -> float:
    """A lower bound on the objective from per-slot energy intervals of every offer."""
    return envelope(views, terms)[0]


def envelope(views: Sequence[OfferView], terms: Terms) -> tuple[float, np.ndarray | None]:
    """The envelope bound and, where its LP was solved, the value of energy in each slot
    (``dual of the target row - w_cost * price``): a first guess at the planner's duals."""
    lo = np.zeros(terms.slots)
    hi = np.zeros(terms.slots)
    t_lo = t_hi = 0.0
    cum_lo = np.zeros(terms.slots)
    cum_hi = np.zeros(terms.slots)
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
        t_lo += min(_total_range(b)[0] for b in v.blocks)
        t_hi += max(_total_range(b)[1] for b in v.blocks)
        c_lo, c_hi = _running_envelope(v, terms)
        cum_lo += c_lo
        cum_hi += c_hi
    return _best_within(terms, lo, hi, t_lo, t_hi, cum_lo, cum_hi)


def _running_envelope(v: OfferView, terms: Terms) -> tuple[np.ndarray, np.ndarray]:
    """The least and most energy the offer can have taken by the end of each horizon slot,
    over all its choices (0 before a start, the final running sum after the end)."""
    h = terms.slots
    res = terms.resolution_s
    out_lo = np.full(h, np.inf)
    out_hi = np.full(h, -np.inf)
    for b in v.blocks:
        bat = as_battery(b) or Battery(
            lower=b.lower,
            upper=b.upper,
            run_lo=np.concatenate((np.full(b.n - 1, -np.inf), [_total_range(b)[0]])),
            run_hi=np.concatenate((np.full(b.n - 1, np.inf), [_total_range(b)[1]])),
        )
        r_lo, r_hi = reach(bat)
        s0 = terms.slot_of(b.first_start)
        starts = s0 + np.arange((b.last_start - b.first_start) // res + 1)
        for r, out, pick in ((r_lo, out_lo, np.minimum), (r_hi, out_hi, np.maximum)):
            ext = np.concatenate((np.zeros(h), r, np.full(h, r[-1])))
            rows = sliding_window_view(ext, h)[h - starts]
            pick(out, rows.min(axis=0) if pick is np.minimum else rows.max(axis=0), out=out)
    return out_lo, out_hi


def _total_range(b: Block) -> tuple[float, float]:
    lo, hi = float(b.lower.sum()), float(b.upper.sum())
    if b.total is not None:
        lo, hi = max(lo, b.total[0]), min(hi, b.total[1])
    return lo, hi


def _best_within(
    terms: Terms,
    lo: np.ndarray,
    hi: np.ndarray,
    t_lo: float,
    t_hi: float,
    cum_lo: np.ndarray,
    cum_hi: np.ndarray,
) -> tuple[float, np.ndarray | None]:
    """The least objective (peak terms dropped, they are never negative) of a portfolio load
    within ``[lo, hi]`` per slot, ``[t_lo, t_hi]`` in total and ``[cum_lo, cum_hi]`` taken by
    the end of each slot: an LP over the horizon's slots."""
    h = terms.slots
    if h == 0:
        return terms.offset, None
    # variables: E (h), d+ (h), d- (h); rows: E - d+ + d- = target, sum E in [t_lo, t_hi],
    # sum of E up to t in [cum_lo_t, cum_hi_t]
    t = np.arange(h)
    tri_r, tri_c = np.tril_indices(h)
    rows = np.concatenate((t, t, t, np.full(h, h), h + 1 + tri_r))
    cols = np.concatenate((t, h + t, 2 * h + t, t, tri_c))
    vals = np.concatenate((np.ones(h), -np.ones(h), np.ones(h), np.ones(h), np.ones(len(tri_r))))
    problem = LinearProblem(
        var_lb=np.concatenate((lo, np.zeros(2 * h))),
        var_ub=np.concatenate((hi, np.full(2 * h, np.inf))),
        obj=np.concatenate((terms.w_cost * terms.prices, np.full(2 * h, terms.w_balance))),
        integer=np.zeros(3 * h, dtype=bool),
        row_lb=np.concatenate((terms.target, [t_lo], cum_lo)),
        row_ub=np.concatenate((terms.target, [t_hi], cum_hi)),
        rows=rows,
        cols=cols,
        vals=vals,
        offset=terms.offset,
    )
    try:
        sol = solve(problem, time_limit_s=10.0, integer=False, engine="glop")
    except SolverError:
        sol = None
    if sol is not None and sol.outcome == "optimal":
        lam = None if sol.duals is None else sol.duals[:h] - terms.w_cost * terms.prices
        return sol.objective, lam
    # the best of each slot's interval, term by term (a sum of minima is below the minimum)
    value = terms.offset
    if terms.w_balance:
        gap = np.maximum(0, np.maximum(lo - terms.target, terms.target - hi))
        value += terms.w_balance * float(gap.sum())
    if terms.w_cost:
        value += terms.w_cost * float(np.minimum(terms.prices * lo, terms.prices * hi).sum())
    return value, None
