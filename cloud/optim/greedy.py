"""The greedy heuristic: one offer at a time, the best start and energies for what is left.

It answers in milliseconds, so it serves three ways: as a planner of its own behind the
:class:`~cloud.optim.Planner` interface (FMAN's ``greedy``, for simulated clocks and for large
portfolios where a proven optimum is not needed), as the OR-Tools planner's first incumbent
and fallback, and as the stage before the defaults in :mod:`cloud.optim.fallback`.

Offers are placed largest first, each against the load of those already placed; under the
``profit`` objective in merit order instead (the seed rule of docs/optim.md): production
offers by ascending ask (the cheapest flexibility first), then consumption offers by
descending ask (the highest price first), each of those on its default until a candidate
earns more than it costs, so an offer whose asks exceed the value it could earn stays on its
default. For every profile and every start of its window at once (numpy over a sliding
window) it scores, with the objective of :mod:`cloud.optim.terms` (balance, cost, peak and
profit terms), up to four candidate energies: the known feasible schedule shifted in time
(the default's energies: shifting keeps a schedule feasible, since every profile constraint
is relative to the profile's own slots); the residual (target minus the load so far)
projected onto the profile's per-slot and total bounds (balance); the cheapest energies
within those bounds (cost); and, for an offer with asks, per slot its default unless the
price beats the ask, projected onto the total bounds (profit). A candidate other than the
shifted schedule is kept only if :func:`protocol.check_assignment` accepts it (its best few
starts are tried: dependency and polytope rows are not in the projection), so every
placement is feasible. An offer with no feasible candidate is left unplaced (``None``); the
planner names it in ``infeasible``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import protocol

from .asks import OfferAsks
from .blocks import Block, OfferView, plannable
from .placements import Placement, value_of
from .problem import PlannedSchedule, PlanRequest, PlanResult
from .terms import Terms, outside, terms_for

#: Starts checked for feasibility per candidate that is not a known schedule, best first.
TRIES = 4


class GreedyPlanner:
    """Greedy, vectorised, feasible; ``status="fallback"`` (no optimality bound)."""

    def plan(self, request: PlanRequest) -> PlanResult:
        views, infeasible = plannable(request)
        terms = terms_for(request, views)
        placements, _ = greedy(views, terms)
        schedules = []
        for v, p in zip(views, placements, strict=True):
            if p is None:
                infeasible[v.offer.id] = "no feasible start and energies found"
                continue
            schedules.append(
                PlannedSchedule(
                    offer_id=v.offer.id,
                    start=p.start,
                    profile=v.blocks[p.block].profile,
                    energy_kwh=p.energy.tolist(),
                )
            )
        return PlanResult(
            schedules=schedules,
            objective=value_of(views, terms, placements),
            bound=-math.inf,
            status="fallback",
            infeasible=infeasible,
            detail="the greedy heuristic (no optimality bound)",
        )


def greedy(
    views: Sequence[OfferView], terms: Terms, *, deadline: float = math.inf
) -> tuple[list[Placement | None], np.ndarray]:
    """A feasible placement for every offer the heuristic can place (else ``None``) and the
    node loads ``[group, slot]`` they make. Past ``deadline`` (``time.monotonic``) only the
    known schedules are scored, about ten times faster: the OR-Tools planner gives the
    heuristic a share of its time limit."""
    node_loads = np.zeros((len(terms.groups), terms.slots))
    out: list[Placement | None] = [None] * len(views)
    size = [max((_size(b) for b in v.blocks), default=0.0) for v in views]
    res = terms.resolution_s
    profit = terms.w_profit > 0
    if profit:
        order = sorted(
            range(len(views)),
            key=lambda i: _merit(
                terms.asks[i] if terms.asks else None,
                sum(views[i].offer.default.energy_kwh) < 0,
                size[i],
            ),
        )
    else:
        order = sorted(range(len(views)), key=lambda i: -size[i])
    for i in order:
        v = views[i]
        g = terms.group_of(v)
        asks = terms.asks[i] if terms.asks else None
        best: tuple[float, int, int, np.ndarray] | None = None
        if profit:  # the default stays unless a candidate earns strictly more
            best = _default_choice(v, node_loads, terms, g)
        for k, b in enumerate(v.blocks):
            s0 = terms.slot_of(b.first_start)
            count = (b.last_start - b.first_start) // res + 1
            span = slice(s0, s0 + count - 1 + b.n)
            win = sliding_window_view(node_loads[:, span], b.n, axis=1)  # [group, start, j]
            total = win.sum(axis=0)
            tgt = sliding_window_view(terms.target[span], b.n)
            price = sliding_window_view(terms.prices[span], b.n)
            refine = deadline == math.inf or time.monotonic() < deadline
            band = _band(terms, g, span, b.n)
            cands = _candidates(b, total, tgt, price, terms, band, win[g], refine=refine)
            if asks is not None and refine:
                cands.append((_priced(b, s0, count, price, asks), False))
            for E, known in cands:
                delta = _delta(E, total, win[g], tgt, price, band, terms)
                if asks is not None:
                    delta += _ask_delta(E, s0, asks)
                # a known schedule shifted stays feasible; another candidate is checked,
                # the best few starts of it
                for c in np.argsort(delta, kind="stable")[: 1 if known else TRIES]:
                    if best is not None and delta[c] >= best[0] - _EPS * profit:
                        break
                    start = b.first_start + int(c) * res
                    energy = np.array(E[c], dtype=float)
                    if known or _feasible(v, k, start, energy):
                        best = (float(delta[c]), k, start, energy)
                        break
        if best is None:
            continue
        _, k, start, energy = best
        s = terms.slot_of(start)
        node_loads[g, s : s + len(energy)] += energy
        out[i] = Placement(k, start, energy)
    return out, node_loads


#: What a move must earn over the default, under ``profit``, to be made (objective units).
_EPS = 1e-9


def _merit(asks: OfferAsks | None, producing: bool, size: float) -> tuple[int, float, float]:
    """The seed's order under ``profit``: production (a default that produces) by ascending
    ask, then consumption by descending ask; larger first among equal asks. An offer without
    asks asks 0."""
    a = asks.mean() if asks is not None else 0.0
    return (0, a, -size) if producing else (1, -a, -size)


def _default_choice(
    v: OfferView, node_loads: np.ndarray, terms: Terms, g: int
) -> tuple[float, int, int, np.ndarray] | None:
    """The default placement and its change of the objective (no asks: it does not deviate),
    or ``None`` when the default's profile has no start left."""
    d = v.offer.default
    k = next((k for k, b in enumerate(v.blocks) if b.profile == d.profile), None)
    if k is None:
        return None
    b = v.blocks[k]
    if not (b.first_start <= d.start <= b.last_start) or b.point is None:
        return None
    s = terms.slot_of(d.start)
    E = b.point[None, :]
    own = node_loads[:, s : s + b.n]
    total = own.sum(axis=0)[None, :]
    tgt = terms.target[None, s : s + b.n]
    price = terms.prices[None, s : s + b.n]
    delta = _delta(
        E, total, own[g][None, :], tgt, price, _band(terms, g, slice(s, s + b.n), b.n), terms
    )
    return (float(delta[0]), k, d.start, np.array(b.point, dtype=float))


def _ask_delta(E: np.ndarray, s0: int, asks: OfferAsks) -> np.ndarray:
    """The asks of running ``E[c]`` from horizon slot ``s0 + c``, per start ``c``."""
    count, n = E.shape
    X = np.zeros((count, len(asks.up)))
    cols = (s0 - asks.lo) + np.arange(count)[:, None] + np.arange(n)[None, :]
    np.put_along_axis(X, cols, E, axis=1)
    dev = X - asks.default
    return np.maximum(dev, 0.0) @ asks.up + np.maximum(-dev, 0.0) @ asks.down


def _priced(b: Block, s0: int, count: int, price: np.ndarray, asks: OfferAsks) -> np.ndarray:
    """Per start, each slot at its default unless the price beats the ask: up to the upper
    bound where ``price + ask_up < 0``, down to the lower bound where ``price - ask_down > 0``;
    then projected onto the total bounds."""
    idx = (s0 - asks.lo) + np.arange(count)[:, None] + np.arange(b.n)[None, :]
    d = asks.default[idx]
    up = asks.up[idx]
    down = asks.down[idx]
    want = np.clip(d, b.lower, b.upper)
    want = np.where(price + up < 0, b.upper, want)
    want = np.where(price - down > 0, b.lower, want)
    t_lo, t_hi = b.total if b.total is not None else (-math.inf, math.inf)
    return _project(want, b.lower, b.upper, t_lo, t_hi)


def _size(b: Block) -> float:
    if b.point is not None:
        return float(np.abs(b.point).sum())
    return float(np.maximum(np.abs(b.lower), np.abs(b.upper)).sum())


def _candidates(
    b: Block,
    total: np.ndarray,
    tgt: np.ndarray,
    price: np.ndarray,
    terms: Terms,
    band: tuple[np.ndarray, np.ndarray] | None,
    own: np.ndarray,
    *,
    refine: bool,
) -> list[tuple[np.ndarray, bool]]:
    """Energies per start ``[start, j]`` to score, each with whether it is known feasible.
    With a node band, also the energies closest to the target (or the known schedule) that
    bring the node into its band: the target alone never asks for load a floor needs."""
    out: list[tuple[np.ndarray, bool]] = []
    if b.point is not None:
        out.append((np.broadcast_to(b.point, total.shape), True))
    if not refine and out:
        return out
    t_lo, t_hi = b.total if b.total is not None else (-math.inf, math.inf)
    if terms.w_balance:
        out.append((_project(tgt - total, b.lower, b.upper, t_lo, t_hi), False))
    if terms.w_cost:
        out.append((_cheapest(price, b.lower, b.upper, t_lo, t_hi), False))
    if band is not None:
        lo, hi = band
        wish = (
            tgt - total
            if terms.w_balance
            else np.broadcast_to(b.point if b.point is not None else np.zeros(b.n), total.shape)
        )
        out.append(
            (_project(np.clip(wish, lo - own, hi - own), b.lower, b.upper, t_lo, t_hi), False)
        )
    return out


def _band(terms: Terms, g: int, span: slice, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Group ``g``'s load band per start and slot of a block over ``span`` (``[start, j]``,
    as the sliding windows of the loads), or ``None`` when nothing bounds it there."""
    if not terms.w_peak or terms.limits is None:
        return None
    lo = terms.limits.lower[g, span]
    hi = terms.limits.upper[g, span]
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return None
    return sliding_window_view(lo, n), sliding_window_view(hi, n)


def _delta(
    E: np.ndarray,
    total: np.ndarray,
    own: np.ndarray,
    tgt: np.ndarray,
    price: np.ndarray,
    band: tuple[np.ndarray, np.ndarray] | None,
    terms: Terms,
) -> np.ndarray:
    """The change of the objective (:func:`cloud.optim.terms.evaluate`) per start."""
    delta = np.zeros(len(E))
    if terms.w_balance:
        delta += terms.w_balance * (np.abs(total + E - tgt) - np.abs(total - tgt)).sum(axis=1)
    if terms.w_cost:
        delta += terms.w_cost * (price * E).sum(axis=1)
    if band is not None:
        lo, hi = band
        delta += terms.w_peak * (outside(own + E, lo, hi) - outside(own, lo, hi)).sum(axis=1)
    return delta


def _feasible(v: OfferView, k: int, start: int, energy: np.ndarray) -> bool:
    return not protocol.check_assignment(
        v.offer, start=start, profile=v.blocks[k].profile, energy_kwh=energy.tolist()
    )


def _project(R: np.ndarray, L: np.ndarray, U: np.ndarray, t_lo: float, t_hi: float) -> np.ndarray:
    """Per row, the energies within ``[L, U]`` and total ``[t_lo, t_hi]`` closest to ``R``:
    ``clip(R + lam, L, U)`` with the shift ``lam`` found by bisection where the total binds."""
    E = np.clip(R, L, U)
    s = E.sum(axis=1)
    want = np.clip(s, t_lo, t_hi)
    rows = np.nonzero(np.abs(want - s) > 1e-9)[0]
    if rows.size == 0:
        return E
    Rr = R[rows]
    span = float(np.max(np.abs(Rr))) + float(np.max(np.abs(U))) + float(np.max(np.abs(L))) + 1.0
    a = np.full(rows.size, -span)
    b = np.full(rows.size, span)
    for _ in range(60):
        mid = (a + b) / 2
        s_mid = np.clip(Rr + mid[:, None], L, U).sum(axis=1)
        low = s_mid < want[rows]
        a = np.where(low, mid, a)
        b = np.where(low, b, mid)
    # ``b`` errs on the high side, ``a`` on the low side: pick the one inside the bounds
    lam = np.where(want[rows] > s[rows], b, a)
    E[rows] = np.clip(Rr + lam[:, None], L, U)
    return E


def _cheapest(P: np.ndarray, L: np.ndarray, U: np.ndarray, t_lo: float, t_hi: float) -> np.ndarray:
    """Per row, the energies within ``[L, U]`` and the total bounds that cost least at ``P``."""
    E = np.where(P > 0, L, U).astype(float)
    E = np.broadcast_to(E, P.shape).copy()
    s = E.sum(axis=1)
    deficit = np.maximum(t_lo - s, 0.0)
    excess = np.maximum(s - t_hi, 0.0)
    if np.any(deficit > 0):  # raise the cheapest slots first
        order = np.argsort(P, axis=1)
        room = np.take_along_axis(U - E, order, axis=1)
        before = np.cumsum(room, axis=1) - room
        add = np.clip(deficit[:, None] - before, 0.0, room)
        np.put_along_axis(E, order, np.take_along_axis(E, order, axis=1) + add, axis=1)
    if np.any(excess > 0):  # lower the dearest slots first
        order = np.argsort(-P, axis=1)
        room = np.take_along_axis(E - L, order, axis=1)
        before = np.cumsum(room, axis=1) - room
        cut = np.clip(excess[:, None] - before, 0.0, room)
        np.put_along_axis(E, order, np.take_along_axis(E, order, axis=1) - cut, axis=1)
    return E
