"""The objective of a plan as arrays over the planning horizon, and its evaluation.

A :class:`~cloud.optim.problem.PlanRequest` keys its series by slot start; the builder, the
heuristic and the bound want arrays over the horizon the offers can reach. :class:`Terms` is
that translation, made once per plan. :func:`evaluate` is the single definition of the
objective: the planner reports the value it computes from the final schedules, never the
solver's own number, so a plan's objective is always the objective of what it returns.

The objective is ``w_balance * sum |E_t - target_t| + w_cost * sum price_t * E_t +
w_peak * sum_node sum_t [max(0, N_node,t - upper_node,t) + max(0, lower_node,t - N_node,t)]
- w_profit * profit`` with ``E_t`` the portfolio's energy in slot ``t`` and ``N_node,t`` a grid
node's. A node's peak limit ``p`` is the band ``[-p, p]`` in every slot; a request's per-slot
node limits narrow it further (:class:`NodeLimits`). A slot without a target value has target
0 (the portfolio should then be balanced); a slot without a price costs nothing.

The profit (:mod:`cloud.optim.asks`) is ``sum_t price_t * (E_t - D_t)`` minus every priced
offer's asks for its own deviation, ``D_t`` being the portfolio's default load: the defaults
earn exactly 0. Its value part is linear in the loads, so it joins the cost term here (the
effective ``prices`` are ``w_cost * price - w_profit * price`` with ``w_cost`` then 1, and
``w_profit * price . D`` goes to ``offset``) and every planning method handles it as it handles
cost; only the asks are a per-offer term (``asks``), which
:func:`cloud.optim.placements.value_of` adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .asks import OfferAsks, offer_asks_over, profit_weight
from .blocks import OfferView
from .errors import OptimError
from .problem import PlanRequest

#: Penalty per kWh above a node's peak limit, when the request does not weigh ``peak``: high
#: enough that a plan breaks a limit only where no schedule can keep it.
DEFAULT_PEAK_WEIGHT = 10.0


@dataclass(frozen=True, slots=True)
class NodeLimits:
    """Per group and horizon slot, the band ``[lower, upper]`` (kWh) a node's load should stay
    in: ``-inf`` and ``inf`` where nothing limits it. Each kWh outside costs ``w_peak``."""

    lower: np.ndarray
    upper: np.ndarray

    def window(self, g: int, s: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Group ``g``'s band over slots ``s`` to ``s + n``."""
        return self.lower[g, s : s + n], self.upper[g, s : s + n]


@dataclass(frozen=True, slots=True, kw_only=True)
class Terms:
    t0: int
    resolution_s: int
    slots: int
    target: np.ndarray
    prices: np.ndarray
    w_balance: float
    w_cost: float
    w_peak: float
    groups: tuple[str, ...]
    #: the bands of the groups' loads (``None``: no group has one)
    limits: NodeLimits | None
    #: the constant part of the objective: deviation from the target outside the horizon,
    #: which no offer can change, and the value of the defaults under ``profit``
    offset: float
    #: the weight of the profit term (its value part is in ``prices``, see the module)
    w_profit: float = 0.0
    #: per view, its asks under ``profit`` (``None``: none, it moves for free)
    asks: tuple[OfferAsks | None, ...] = ()

    @property
    def priced(self) -> bool:
        """Whether any offer carries asks (a per-offer term the node loads do not show)."""
        return any(a is not None for a in self.asks)

    def slot_of(self, ts: int) -> int:
        return (ts - self.t0) // self.resolution_s

    def group_of(self, view: OfferView) -> int:
        return self.groups.index(view.offer.grid_node) if len(self.groups) > 1 else 0


def weights_of(request: PlanRequest) -> tuple[float, float, float]:
    w = dict(request.weights) or {request.objective: 1.0}
    unknown = set(w) - {"balance", "cost", "peak", "profit"}
    if unknown:
        raise OptimError(f"weights: unknown objective(s) {sorted(unknown)}")
    if any(v < 0 for v in w.values()):
        raise OptimError("weights: must not be negative")
    return w.get("balance", 0.0), w.get("cost", 0.0), w.get("peak", DEFAULT_PEAK_WEIGHT)


def terms_for(request: PlanRequest, views: Sequence[OfferView]) -> Terms:
    res = request.resolution_s
    firsts = [b.first_start for v in views for b in v.blocks]
    ends = [b.last_start + b.n * res for v in views for b in v.blocks]
    t0 = min(firsts) if firsts else 0
    slots = (max(ends) - t0) // res if ends else 0
    for name, series in (
        ("target_kwh", request.target_kwh),
        ("prices_eur_per_kwh", request.prices_eur_per_kwh),
    ):
        off = [ts for ts in series if ts % res]
        if off:
            raise OptimError(f"{name}: slot start {off[0]} is not on the {res} s grid")
    target = np.zeros(slots)
    prices = np.zeros(slots)
    offset = 0.0
    for ts, v in request.target_kwh.items():
        t = (ts - t0) // res
        if 0 <= t < slots:
            target[t] = v
        else:
            offset += abs(v)
    for ts, v in request.prices_eur_per_kwh.items():
        t = (ts - t0) // res
        if 0 <= t < slots:
            prices[t] = v
    w_balance, w_cost, w_peak = weights_of(request)
    w_profit = profit_weight(request)
    asks: tuple[OfferAsks | None, ...] = ()
    if w_profit:
        # the value of deviating: a price per kWh of the portfolio's load, minus its defaults'
        default = np.zeros(slots)
        for view in views:
            s = (view.offer.default.start - t0) // res
            for j, e in enumerate(view.offer.default.energy_kwh):
                if 0 <= s + j < slots:
                    default[s + j] += e
        value_offset = w_profit * float(prices @ default)
        prices = (w_cost - w_profit) * prices
        w_cost = 1.0
        asks = tuple(
            _asks_of(view, t0, res, slots, w_profit) if view.priced else None for view in views
        )
    else:
        value_offset = 0.0
    groups, limits = _limits(request, views, t0, slots)
    return Terms(
        t0=t0,
        resolution_s=res,
        slots=slots,
        target=target,
        prices=prices,
        w_balance=w_balance,
        w_cost=w_cost,
        w_peak=w_peak,
        groups=groups,
        limits=limits,
        offset=w_balance * offset + value_offset,
        w_profit=w_profit,
        asks=asks,
    )


def _limits(
    request: PlanRequest, views: Sequence[OfferView], t0: int, slots: int
) -> tuple[tuple[str, ...], NodeLimits | None]:
    """The groups (one per grid node where any limit applies, else one for the whole
    portfolio) and their bands over the horizon. Limits of slots outside the horizon bind
    nothing an offer can change, and are left out."""
    res = request.resolution_s
    named = set(request.peak_kw_by_node) | set(request.node_max_kwh) | set(request.node_min_kwh)
    if not named:
        return ("",), None
    groups = tuple(sorted({v.offer.grid_node for v in views} | named))
    upper = np.full((len(groups), slots), np.inf)
    lower = np.full((len(groups), slots), -np.inf)
    for g, node in enumerate(groups):
        if node in request.peak_kw_by_node:
            p = request.peak_kw_by_node[node] * res / 3600
            upper[g] = p
            lower[g] = -p
    for name, series, band, tighter in (
        ("node_max_kwh", request.node_max_kwh, upper, np.minimum),
        ("node_min_kwh", request.node_min_kwh, lower, np.maximum),
    ):
        for node, by_slot in series.items():
            g = groups.index(node)
            for ts, v in by_slot.items():
                if ts % res:
                    raise OptimError(f"{name}.{node}: slot start {ts} is not on the {res} s grid")
                t = (ts - t0) // res
                if 0 <= t < slots:
                    band[g, t] = tighter(band[g, t], v)
    return groups, NodeLimits(lower=lower, upper=upper)


def _asks_of(v: OfferView, t0: int, res: int, slots: int, weight: float) -> OfferAsks | None:
    """The asks of a priced view over every slot it can run in and its default's."""
    lo = min(b.first_start for b in v.blocks)
    hi = max(b.last_start + b.n * res for b in v.blocks)
    d = v.offer.default
    lo = min(lo, d.start)
    hi = max(hi, d.start + len(d.energy_kwh) * res)
    a, b = max((lo - t0) // res, 0), min((hi - t0) // res, slots)
    return offer_asks_over(v.offer, lo=a, hi=b, t0=t0, resolution_s=res, weight=weight)


def evaluate(terms: Terms, loads: np.ndarray) -> float:
    """The objective of node loads ``loads[group, slot]`` (kWh), without the asks of priced
    offers (:func:`cloud.optim.placements.value_of` adds them)."""
    total = loads.sum(axis=0)
    value = terms.offset
    if terms.w_balance:
        value += terms.w_balance * float(np.abs(total - terms.target).sum())
    if terms.w_cost:
        value += terms.w_cost * float(terms.prices @ total)
    if terms.w_peak and terms.limits is not None:
        value += terms.w_peak * float(outside(loads, terms.limits.lower, terms.limits.upper).sum())
    return value


def outside(loads: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """kWh of ``loads`` outside the band ``[lower, upper]``, element by element."""
    return np.maximum(loads - upper, 0.0) + np.maximum(lower - loads, 0.0)
