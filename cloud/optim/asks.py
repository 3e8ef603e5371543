"""What deviating from its default costs each offer under the ``profit`` objective.

The profit of a plan is the value of the portfolio's deviation from its defaults (at the price
series) minus each offer's asks for its own deviation. The asks come from the offer's prices by
the rule FMAR's book applies too (:func:`protocol.offer_asks`), so an offer is priced alike in
the market and in the plan. Which offers carry asks is a choice: a direct-mode offer sells its
flexibility at its own prices, so it always does; a delegated offer is paid under its contract,
which settlement prices apart, so for planning it moves for free unless the request says
``price_delegated``. The asks are a per-offer term of the objective (not a function of the
node loads like the others), a convex piecewise-linear cost per slot:

    ask_up_t * max(x_t - d_t, 0) + ask_down_t * max(d_t - x_t, 0)

with ``x_t`` what the offer runs in slot ``t`` (0 outside its schedule) and ``d_t`` its default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import protocol
from protocol import FlexOffer

from .problem import PlanRequest


def profit_weight(request: PlanRequest) -> float:
    """The weight of the profit term: its entry in ``weights``, else 1 when ``objective`` is
    ``profit`` and no weights are given, else 0."""
    if request.weights:
        return float(request.weights.get("profit", 0.0))
    return 1.0 if request.objective == "profit" else 0.0


def carries_asks(request: PlanRequest, offer: FlexOffer) -> bool:
    """Whether the plan charges this offer asks for deviating (some ask above zero)."""
    if profit_weight(request) <= 0 or offer.prices is None:
        return False
    if offer.mode != "direct" and not request.price_delegated:
        return False
    prices = offer.prices
    if prices.slots and (offer.mode == "direct" or prices.deviation_eur_per_kwh is None):
        return any(p.min > 0 for p in prices.slots)
    return (prices.deviation_eur_per_kwh or 0.0) > 0


@dataclass(frozen=True, slots=True)
class OfferAsks:
    """One offer's asks and default over the horizon slots ``lo .. lo + len(up) - 1`` (every
    slot it can run in, and its default's), already scaled by the profit weight."""

    lo: int
    up: np.ndarray
    down: np.ndarray
    default: np.ndarray

    def deviation(self, slot: int, energy: np.ndarray) -> np.ndarray:
        """``x - d`` over the covered slots when ``energy`` runs from horizon slot ``slot``."""
        m = len(self.up)
        x = np.zeros(m)
        s = slot - self.lo
        a, b = max(s, 0), min(s + len(energy), m)
        if a < b:  # only the covered slots count (a schedule may reach past them)
            x[a:b] = energy[a - s : b - s]
        return x - self.default

    def cost(self, slot: int, energy: np.ndarray) -> float:
        dev = self.deviation(slot, energy)
        return float(self.up @ np.maximum(dev, 0.0) + self.down @ np.maximum(-dev, 0.0))

    def mean(self) -> float:
        """The mean ask (up and down) over the covered slots: the seed's merit order."""
        return float((self.up.mean() + self.down.mean()) / 2) if len(self.up) else 0.0


def offer_asks_over(
    offer: FlexOffer, *, lo: int, hi: int, t0: int, resolution_s: int, weight: float
) -> OfferAsks | None:
    """The asks of a priced offer over horizon slots ``[lo, hi)`` (slot 0 starts at ``t0``)."""
    asks = protocol.offer_asks(offer, start=t0 + lo * resolution_s, slots=hi - lo)
    if asks is None:
        return None
    a = weight * np.asarray(asks, dtype=float)
    d = np.zeros(hi - lo)
    s = (offer.default.start - t0) // resolution_s - lo
    e = np.asarray(offer.default.energy_kwh, dtype=float)
    for j, v in enumerate(e):  # a default outside the horizon leaves nothing to move
        if 0 <= s + j < len(d):
            d[s + j] = v
    return OfferAsks(lo=lo, up=a, down=a.copy(), default=d)


def ask_cost(
    asks: Sequence[OfferAsks | None], slots_energies: Sequence[tuple[int, np.ndarray] | None]
) -> float:
    """The asks of placements given as ``(horizon slot, energies)`` per offer (``None``:
    unplaced, no cost)."""
    total = 0.0
    for a, se in zip(asks, slots_energies, strict=True):
        if a is not None and se is not None:
            total += a.cost(se[0], se[1])
    return total
