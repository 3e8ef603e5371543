"""DOMS grid bid: a priced increase or decrease of energy at a grid asset.

A distribution operator's market (DOMS) buys flexibility at grid assets: a substation's
controllable load, a district heating pump, an aggregate of customers behind one node. The
asset (:mod:`agent.physics.grid`) has an hourly baseline (local time) and can add ``up_kw``
or shed ``down_kw`` during its delivery ``hours``. The bid covers the next planning block at
its own ``resolution_s`` (15 minutes to one hour, whatever the agent's slot length), each slot
ranging from ``baseline - down`` to ``baseline + up`` (only the baseline outside the delivery
hours, or in the direction ``direction`` excludes). The default schedule is the baseline.

A bid always carries its prices: ``deviation_eur_per_kwh`` for energy moved away from the
baseline, and per-slot ``[price_min, price_max]`` EUR/kWh (the bounds a direct-mode market
clears within).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.generators._common import BlockEpisodes, Pricing, Timing, build_offer
from agent.generators.base import Generator, OfferContext
from agent.params import Params
from agent.physics.grid import GridAssetSpec
from protocol import FlexOffer, Profile, resolution_ok


class DomsBid(BlockEpisodes, Generator):
    name = "doms"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = GridAssetSpec.from_params(p)
        self.direction = p.string("direction", "both", choices=["both", "up", "down"])
        self.resolution_s: int | None = None
        if p.has("resolution_s"):
            r = p.integer("resolution_s")
            if not resolution_ok(r):
                raise p.error("resolution_s", f"{r} s: use 900 to 3600 s dividing a day")
            self.resolution_s = r
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(
            p, min_default=0.0, max_default=1.0, deviation_default=0.10
        )

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        r = self.resolution_s or ctx.resolution_s
        if not resolution_ok(r):
            raise ValueError(f"resolution_s {r} is not a valid slot length")
        start = self.timing.next_block(ctx.now)
        n = self.timing.horizon_s // r
        dt_h = r / 3600.0
        spec = self.spec
        up = spec.up_kw if self.direction != "down" else 0.0
        down = spec.down_kw if self.direction != "up" else 0.0
        base, lower, upper = [], [], []
        for j in range(n):
            t = start + j * r
            b = spec.baseline_at(t) * dt_h
            active = spec.local_hour(t) in spec.hours
            base.append(b)
            lower.append(b - down * dt_h if active else b)
            upper.append(b + up * dt_h if active else b)
        if lower == upper:
            return None
        return build_offer(
            ctx,
            key=start,
            load_type="doms",
            start=start,
            profiles=[Profile(lower_kwh=lower, upper_kwh=upper)],
            default_kwh=base,
            pricing=self.pricing,
            lead_s=self.timing.lead_s,
            resolution_s=r,
            always_price_slots=True,
        )
