"""An offer's asks from its own prices: the one mapping FMAR's book and FMAN's planner share.

An *ask* is what deviating from the default schedule costs, in EUR per kWh of up deviation
(more consumption or less production) and of down deviation. The wire carries no asks as
such; docs/market.md ("Asks from an offer's prices") states how an offer's ``prices`` give
them, and this function is that rule, so a market and an aggregator never price one offer
two ways.
"""

from __future__ import annotations

from ._models import FlexOffer


def offer_asks(offer: FlexOffer, *, start: int, slots: int) -> list[float] | None:
    """The ask per slot of ``slots`` slots of the offer's resolution from ``start`` (epoch s,
    on the offer's grid), the same up and down; ``None`` when the offer has no prices.

    A deviation price (``deviation_eur_per_kwh``: what a contract pays per kWh moved) is the
    ask in every slot. Per-slot ``[min, max]`` prices (direct mode) give ``max(min, 0)``: the
    least the prosumer takes, never below zero because an ask is a cost. Price slot ``j`` is
    the ask of slot ``default start + j``; before the default the first one holds, after it
    the last one. An offer with both kinds uses its per-slot prices in direct mode and its
    deviation price in delegated mode."""
    prices = offer.prices
    if prices is None:
        return None
    use_slots = prices.slots and (offer.mode == "direct" or prices.deviation_eur_per_kwh is None)
    if not use_slots:
        dev = prices.deviation_eur_per_kwh
        return None if dev is None else [max(dev, 0.0)] * slots
    first = (offer.default.start - start) // offer.resolution_s
    n = len(prices.slots)
    return [max(prices.slots[min(max(t - first, 0), n - 1)].min, 0.0) for t in range(slots)]
