"""PV array: production (negative energy) that the agent may curtail.

Physics (:mod:`agent.physics.solar`): a clear-sky irradiance from the sun's position times a
clear-sky index for the clouds. The index measured now (``available_w`` against the
clear-sky power, rounded to 0.05) persists and fades into the climatological
``clear_sky_index`` with a 3 h time constant: the same persistence forecast the outdoor
temperature uses.

The offer covers the next planning block. Slot ``k`` may produce anything between the
forecast (``lower = -forecast``) and nothing (``upper = 0``: full curtailment); with
``curtailable = false`` the offer only announces the forecast. The default schedule produces
everything. Night-only blocks make no offer.

Measurement state used: ``available_w`` (the power the array could give now, W, positive).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from agent.generators._common import BlockEpisodes, Pricing, Timing, build_offer, check_resolution
from agent.generators.base import Generator, OfferContext
from agent.params import Params
from agent.physics.solar import PvSpec
from protocol import FlexOffer, Profile

#: Persistence time constant of the measured clear-sky index, s.
INDEX_TAU_S = 3 * 3600
#: Blocks producing less than this in total make no offer, kWh.
MIN_ENERGY_KWH = 0.01


class Pv(BlockEpisodes, Generator):
    name = "pv"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = PvSpec.from_params(p)
        self.curtailable = p.boolean("curtailable", True)
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(p, min_default=-0.5, max_default=0.5)

    def measured_index(self, ctx: OfferContext) -> float | None:
        m = ctx.measurement
        if m is None or "available_w" not in m.state:
            return None
        clear_kw = self.spec.clear_sky_kw(ctx.now)
        if clear_kw < 0.02 * self.spec.peak_kw:
            return None  # dawn and dusk say nothing about clouds
        index = float(m.state["available_w"]) / 1000.0 / clear_kw
        return round(min(1.2, max(0.0, index)) * 20) / 20

    def forecast_kwh(self, ctx: OfferContext, start: int, n: int) -> list[float]:
        r = ctx.resolution_s
        k_clim = self.spec.clear_sky_index
        k_now = self.measured_index(ctx)
        out = []
        for j in range(n):
            t0 = start + j * r
            k = k_clim
            if k_now is not None:
                k += (k_now - k_clim) * math.exp(-(t0 + r / 2 - ctx.now) / INDEX_TAU_S)
            out.append(self.spec.mean_kw(t0, r) * k * r / 3600.0)
        return out

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        r = check_resolution(ctx)
        start = self.timing.next_block(ctx.now)
        n = self.timing.horizon_s // r
        forecast = self.forecast_kwh(ctx, start, n)
        if sum(forecast) < MIN_ENERGY_KWH:
            return None
        lower = [-e for e in forecast]
        upper = [0.0] * n if self.curtailable else list(lower)
        return build_offer(
            ctx,
            key=start,
            load_type="pv",
            start=start,
            profiles=[Profile(lower_kwh=lower, upper_kwh=upper)],
            default_kwh=lower,
            pricing=self.pricing,
            lead_s=self.timing.lead_s,
        )
