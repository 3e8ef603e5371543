"""The gate calendar: pure arithmetic from a market's configuration and a time.

Gate ``k`` of a market delivers from ``k * gate_period_s`` (epoch seconds) for ``horizon_s``;
it closes ``gate_lead_s`` before its delivery starts and opens when the gate before it
closes, so at any instant exactly one gate takes orders. Its id is its delivery start in
UTC (``20260101T0100Z``): readable, sortable, and the same after a restart.
"""

from __future__ import annotations

import math
import time

from .config import MarketSection
from .store import GateRow


def gate_id(delivery_start: int) -> str:
    return time.strftime("%Y%m%dT%H%MZ", time.gmtime(delivery_start))


def gate_delivering(market: str, m: MarketSection, delivery_start: int) -> GateRow:
    closes = delivery_start - m.gate_lead_s
    return GateRow(
        market=market,
        gate=gate_id(delivery_start),
        opens_at=closes - m.gate_period_s,
        closes_at=closes,
        delivery_start=delivery_start,
        slots=m.slots,
        resolution_s=m.resolution_s,
    )


def current_gate(market: str, m: MarketSection, now: float) -> GateRow:
    """The gate taking orders at ``now``: ``opens_at <= now < closes_at``."""
    k = math.floor((now + m.gate_lead_s) / m.gate_period_s) + 1
    return gate_delivering(market, m, k * m.gate_period_s)


def calendar(market: str, m: MarketSection, now: float, count: int) -> list[GateRow]:
    """The current gate and the ``count`` after it."""
    first = current_gate(market, m, now)
    return [
        gate_delivering(market, m, first.delivery_start + i * m.gate_period_s)
        for i in range(count + 1)
    ]
