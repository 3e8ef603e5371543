"""A fast feasible planner: one offer at a time, the best start and energies for what is left.

It stands behind the same :class:`cloud.optim.Planner` interface as the OR-Tools planner, for
two uses: FMAN's planning cycle falls back to it when the optimiser fails or runs out of time,
and it plans large portfolios in milliseconds where a proven optimum is not needed.

For each offer (least flexible first), every exclusive-or profile and every start of its window
is scored at once with numpy against the residual (target minus what is already planned),
the prices and the grid nodes' peak limits. Candidate energies per start: the default
profile moved in time, the residual projected onto the offer's slot bounds and total energy
(balance), and the cheapest energies within those bounds (cost). The best candidates are
checked with :func:`protocol.check_assignment` (dependency and polytope constraints included)
and the first feasible one is kept. An offer with no feasible candidate is reported in
``infeasible``; the caller gives it its default schedule.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from protocol import FlexOffer, Profile, check_assignment, effective_profiles, profile_window

from ..optim import PlannedSchedule, PlanRequest, PlanResult

#: Score penalty per kWh above a grid node's peak limit.
PEAK_PENALTY = 1e4
#: Candidates checked for feasibility per (profile, kind of candidate), best score first.
TRIES = 4


class GreedyPlanner:
    """Greedy, vectorised, always feasible; ``status="fallback"`` (no optimality bound)."""

    def plan(self, request: PlanRequest) -> PlanResult:
        res = request.resolution_s
        offers = [o for o in request.offers if o.resolution_s == res]
        infeasible = {
            o.id: f"resolution {o.resolution_s} s differs from the plan's {res} s"
            for o in request.offers
            if o.resolution_s != res
        }
        if not offers:
            return PlanResult(
                schedules=[],
                objective=0.0,
                bound=-math.inf,
                status="fallback",
                infeasible=infeasible,
            )
        w_bal, w_cost = _weights(request)
        t0 = min(profile_window(o, p)[0] for o in offers for p in effective_profiles(o))
        t1 = max(
            profile_window(o, p)[1] + p.n_slots * res for o in offers for p in effective_profiles(o)
        )
        t0 = t0 // res * res
        n = (t1 - t0) // res + 1
        grid = range(t0, t0 + n * res, res)
        target = np.array([request.target_kwh.get(t, 0.0) for t in grid])
        price = np.array([request.prices_eur_per_kwh.get(t, 0.0) for t in grid])
        load = np.zeros(n)
        node_cap = {k: v * res / 3600 for k, v in request.peak_kw_by_node.items()}
        node_load = {k: np.zeros(n) for k in node_cap}

        schedules: list[PlannedSchedule] = []
        for o in sorted(offers, key=_flexibility):
            best = None
            for pi, prof in enumerate(effective_profiles(o)):
                found = self._best_for_profile(
                    o,
                    pi,
                    prof,
                    t0,
                    res,
                    target - load,
                    price,
                    w_bal,
                    w_cost,
                    node_load.get(o.grid_node),
                    node_cap.get(o.grid_node),
                )
                if found is not None and (best is None or found[0] < best[0]):
                    best = found
            if best is None:
                infeasible[o.id] = "no feasible start and energies found"
                continue
            _, start, pi, energy = best
            i = (start - t0) // res
            load[i : i + len(energy)] += energy
            if o.grid_node in node_load:
                node_load[o.grid_node][i : i + len(energy)] += energy
            schedules.append(
                PlannedSchedule(offer_id=o.id, start=start, profile=pi, energy_kwh=energy.tolist())
            )
        objective = w_bal * float(np.sum((target - load) ** 2)) + w_cost * float(price @ load)
        return PlanResult(
            schedules=schedules,
            objective=objective,
            bound=-math.inf,
            status="fallback",
            infeasible=infeasible,
        )

    def _best_for_profile(
        self,
        o: FlexOffer,
        pi: int,
        prof: Profile,
        t0: int,
        res: int,
        residual: np.ndarray,
        price: np.ndarray,
        w_bal: float,
        w_cost: float,
        node_load: np.ndarray | None,
        node_cap: float | None,
    ) -> tuple[float, int, int, np.ndarray] | None:
        lo, hi = profile_window(o, prof)
        lo = -(-lo // res) * res
        if lo > hi:
            return None
        starts = np.arange(lo, hi + 1, res)
        m = prof.n_slots
        idx = (starts - t0) // res
        R = sliding_window_view(residual, m)[idx]
        P = sliding_window_view(price, m)[idx]
        L, U = np.array(prof.lower_kwh), np.array(prof.upper_kwh)
        total = prof.total
        t_lo = total.lower if total else -math.inf
        t_hi = total.upper if total else math.inf
        candidates = []
        if pi == o.default.profile:
            candidates.append(np.broadcast_to(np.array(o.default.energy_kwh), R.shape))
        if w_bal:
            candidates.append(_project(R, L, U, t_lo, t_hi))
        if w_cost:
            candidates.append(_cheapest(P, L, U, t_lo, t_hi))
        best = None
        for E in candidates:
            score = w_bal * np.sum((R - E) ** 2 - R**2, axis=1) + w_cost * np.sum(P * E, axis=1)
            if node_cap is not None and node_load is not None:
                N = sliding_window_view(node_load, m)[idx]
                score = score + PEAK_PENALTY * np.sum(np.maximum(N + E - node_cap, 0), axis=1)
            for k in np.argsort(score, kind="stable")[:TRIES]:
                if best is not None and score[k] >= best[0]:
                    break
                energy = E[k]
                if not check_assignment(
                    o, start=int(starts[k]), profile=pi, energy_kwh=energy.tolist()
                ):
                    best = (float(score[k]), int(starts[k]), pi, np.array(energy))
                    break
        return best


def _weights(request: PlanRequest) -> tuple[float, float]:
    if request.weights:
        return float(request.weights.get("balance", 0.0)), float(request.weights.get("cost", 0.0))
    return (1.0, 0.0) if request.objective == "balance" else (0.0, 1.0)


def _flexibility(o: FlexOffer) -> tuple[int, str]:
    """Least flexible first: they have the fewest places to go."""
    return (
        sum(profile_window(o, p)[1] - profile_window(o, p)[0] for p in effective_profiles(o)),
        o.id,
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
