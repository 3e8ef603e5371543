"""Heat pump in a building: a block of slots whose cumulative energy keeps the room comfortable.

Physics (see :mod:`agent.physics.thermal` and :mod:`agent.generators._thermal`): the building
is one thermal resistance and one capacity (1R1C); the heat pump delivers ``COP * P_el`` with
a COP that falls by ``cop_slope_per_k`` per kelvin of colder outdoor air; internal and solar
gains add ``gains_kw``; the outdoor temperature follows a daily cosine, shifted by the
measured anomaly that fades over 12 h.

The offer covers the next planning block. The indoor temperature at the block start is
predicted by running the heat pump's own thermostat from the measured temperature (rounded
to 0.1 K, so that noise does not churn out updates). Per slot the heat pump takes 0 to
``max_power_kw * dt``; dependency rows (two per slot at most) bound the energy taken so far so
that the indoor temperature stays in ``[t_min_c, t_max_c]`` for *every* schedule inside them.
The default schedule is the thermostat holding ``setpoint_c``, kept inside the corridor.

Measurement state used: ``temp_c`` (indoor; the set-point when absent), ``outdoor_c``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.generators._common import BlockEpisodes, Pricing, Timing, build_offer, check_resolution
from agent.generators._thermal import ThermalSlots, predict
from agent.generators.base import Generator, OfferContext
from agent.params import Params
from agent.physics.thermal import HeatPumpSpec
from protocol import FlexOffer


class HeatPump(BlockEpisodes, Generator):
    name = "heat_pump"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = HeatPumpSpec.from_params(p)
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(p)

    def slots(
        self, *, start: int, n: int, resolution_s: int, now: float, outdoor_c: float | None
    ) -> ThermalSlots:
        """The block's thermal slots under the outdoor forecast made at ``now``."""
        spec = self.spec
        dt_h = resolution_s / 3600.0
        ambient, gain = [], []
        unit_gain = spec.rc.gain_k_per_kwh(dt_h)
        for k in range(n):
            out = spec.climate.forecast(
                start + (k + 0.5) * resolution_s, now=now, measured_c=outdoor_c
            )
            ambient.append(out + spec.rc.r_k_per_kw * spec.gains_kw)
            gain.append(unit_gain * spec.cop_at(out))
        return ThermalSlots(
            rc=spec.rc,
            dt_h=dt_h,
            sign=1,
            ambient_c=ambient,
            gain=gain,
            e_max=[spec.max_power_kw * dt_h] * n,
            t_min_c=spec.t_min_c,
            t_max_c=spec.t_max_c,
            setpoint_c=spec.setpoint_c,
        )

    def start_temperature(self, ctx: OfferContext, start: int) -> tuple[float, float | None]:
        """``(indoor at the block start, measured outdoor)``, both rounded."""
        spec = self.spec
        state = ctx.measurement.state if ctx.measurement is not None else {}
        indoor = float(state.get("temp_c", spec.setpoint_c))
        outdoor = state.get("outdoor_c")
        outdoor = None if outdoor is None else round(float(outdoor) * 2) / 2
        indoor = round(indoor, 1)
        span = start - ctx.now
        steps = max(1, int(span // ctx.resolution_s))
        mids = [ctx.now + (i + 0.5) * span / steps for i in range(steps)]
        amb = [spec.climate.forecast(t, now=ctx.now, measured_c=outdoor) for t in mids]
        t0 = predict(
            spec.rc,
            indoor,
            sign=1,
            setpoint_c=spec.setpoint_c,
            max_kw=spec.max_power_kw,
            span_s=span,
            ambient_c=[a + spec.rc.r_k_per_kw * spec.gains_kw for a in amb],
            cop=[spec.cop_at(a) for a in amb],
        )
        return round(t0, 1), outdoor

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        r = check_resolution(ctx)
        start = self.timing.next_block(ctx.now)
        n = self.timing.horizon_s // r
        t0, outdoor = self.start_temperature(ctx, start)
        th = self.slots(start=start, n=n, resolution_s=r, now=ctx.now, outdoor_c=outdoor)
        profile, path = th.profile(t0)
        return build_offer(
            ctx,
            key=start,
            load_type="heat_pump",
            start=start,
            profiles=[profile],
            default_kwh=path,
            pricing=self.pricing,
            lead_s=self.timing.lead_s,
        )
