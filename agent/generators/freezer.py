"""Freezer: a cold box whose compressor can run earlier or later within a temperature band.

Physics: the cabinet and its food are one capacity losing heat through one resistance to the
room (1R1C, :mod:`agent.physics.thermal`); the compressor removes ``COP * P_el``. Freezers are
on/off loads: the EMS meets a slot's energy by duty cycle, so per slot the offer allows 0 to
``compressor_w * dt``. Cooling is the heat pump's corridor with the sign turned round (see
:mod:`agent.generators._thermal`): too little energy so far and the food warms past
``t_max_c``, too much and it cools below ``t_min_c``. Food safety wins when both cannot hold.

The offer covers the next planning block; the temperature at its start is predicted under the
freezer's own thermostat (holding ``setpoint_c``) from the measured ``temp_c`` (rounded to
0.1 K; the set-point when absent). The default schedule is that thermostat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.generators._common import BlockEpisodes, Pricing, Timing, build_offer, check_resolution
from agent.generators._thermal import ThermalSlots, predict
from agent.generators.base import Generator, OfferContext
from agent.params import Params
from agent.physics.thermal import FreezerSpec
from protocol import FlexOffer


class Freezer(BlockEpisodes, Generator):
    name = "freezer"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = FreezerSpec.from_params(p)
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(p)

    def slots(self, *, n: int, resolution_s: int) -> ThermalSlots:
        spec = self.spec
        dt_h = resolution_s / 3600.0
        return ThermalSlots(
            rc=spec.rc,
            dt_h=dt_h,
            sign=-1,
            ambient_c=[spec.ambient_c] * n,
            gain=[spec.rc.gain_k_per_kwh(dt_h) * spec.cop] * n,
            e_max=[spec.compressor_kw * dt_h] * n,
            t_min_c=spec.t_min_c,
            t_max_c=spec.t_max_c,
            setpoint_c=spec.setpoint_c,
        )

    def start_temperature(self, ctx: OfferContext, start: int) -> float:
        spec = self.spec
        state = ctx.measurement.state if ctx.measurement is not None else {}
        temp = round(float(state.get("temp_c", spec.setpoint_c)), 1)
        steps = max(1, int((start - ctx.now) // ctx.resolution_s))
        t0 = predict(
            spec.rc,
            temp,
            sign=-1,
            setpoint_c=spec.setpoint_c,
            max_kw=spec.compressor_kw,
            span_s=start - ctx.now,
            ambient_c=[spec.ambient_c] * steps,
            cop=[spec.cop] * steps,
        )
        return round(t0, 1)

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        r = check_resolution(ctx)
        start = self.timing.next_block(ctx.now)
        n = self.timing.horizon_s // r
        t0 = self.start_temperature(ctx, start)
        th = self.slots(n=n, resolution_s=r)
        profile, path = th.profile(t0)
        return build_offer(
            ctx,
            key=start,
            load_type="freezer",
            start=start,
            profiles=[profile],
            default_kwh=path,
            pricing=self.pricing,
            lead_s=self.timing.lead_s,
        )
