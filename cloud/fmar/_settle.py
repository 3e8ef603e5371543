"""Who pays what for a cleared outcome: uniform prices with make-whole, or pay-as-bid.

Uniform (docs/market.md, rule 4): a seller receives ``price x deviation`` summed over slots,
a request pays ``price x accepted kWh`` (both signed: a down request pays ``-price`` per kWh).
With the integer choices fixed, the prices are the balance rows' duals, so a partial request
and an order at its default's choice are never worse off than their bids; an order moved to
another start or profile, or an all-or-nothing request, may be, and gets a *make-whole*
payment that brings it to exactly its bid: a seller receives at least its asks' cost, a
request pays at most its limit value (a partial one in every slot). The money comes from the
market's surplus (the congestion rent between nodes, after transport); what it does not cover
is the *uplift*.

Pay-as-bid: a seller receives its asks' cost, a request pays its limit value; a request
without a limit (fixed demand) has no bid of its own and pays the marginal price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._numeric import Numeric, ask_cost
from ._result import Pricing

#: Shortfalls below this (EUR) are solver tolerance, not a party worse off than its bid.
TOLERANCE_EUR = 1e-7


@dataclass(frozen=True, slots=True)
class Settlement:
    seller_paid: np.ndarray
    seller_make_whole: np.ndarray
    seller_cost: np.ndarray
    request_paid: np.ndarray
    request_make_whole: np.ndarray
    request_value: np.ndarray
    transport_eur: float
    surplus_eur: float
    make_whole_eur: float
    uplift_eur: float


def settle(
    num: Numeric,
    *,
    deviation: np.ndarray,
    accepted: np.ndarray,
    flows: np.ndarray,
    prices: np.ndarray,
    pricing: Pricing,
) -> Settlement:
    """Payments of every party under ``pricing`` (see the module docstring)."""
    cost = ask_cost(num, deviation)
    value_slot = num.req_limit * np.abs(accepted)
    value = value_slot.sum(axis=1)
    marginal_slot = prices[num.req_node] * accepted
    transport = float((num.link_cost[:, None] * flows).sum())
    fixed_demand = np.array([r.limit_eur_per_kwh is None for r in num.requests], dtype=bool)
    if pricing == "pay-as-bid":
        seller_paid = cost.copy()
        seller_mw = np.zeros_like(cost)
        request_paid = np.where(fixed_demand, marginal_slot.sum(axis=1), value)
        request_mw = np.zeros_like(value)
    else:
        earned = (prices[num.order_node] * deviation).sum(axis=1)
        seller_mw = np.maximum(cost - earned, 0.0)
        seller_mw[seller_mw <= TOLERANCE_EUR] = 0.0
        seller_paid = earned + seller_mw
        over_slot = np.maximum(marginal_slot - value_slot, 0.0)
        over_whole = np.maximum(marginal_slot.sum(axis=1) - value, 0.0)
        request_mw = np.where(num.req_partial, over_slot.sum(axis=1), over_whole)
        request_mw[request_mw <= TOLERANCE_EUR] = 0.0
        request_paid = marginal_slot.sum(axis=1) - request_mw
    surplus = float(request_paid.sum() - seller_paid.sum())
    return Settlement(
        seller_paid=seller_paid,
        seller_make_whole=seller_mw,
        seller_cost=cost,
        request_paid=request_paid,
        request_make_whole=request_mw,
        request_value=value,
        transport_eur=transport,
        surplus_eur=surplus,
        make_whole_eur=float(seller_mw.sum() + request_mw.sum()),
        uplift_eur=max(transport - surplus, 0.0),
    )
