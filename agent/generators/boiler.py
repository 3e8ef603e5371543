"""Electric water heater (boiler): reheat the tank before the next draw, early or late.

Physics (:mod:`agent.physics.thermal`): a fully mixed tank (one temperature) of heat capacity
``4.186 kJ/(l K) * volume_l``, losing heat through ``loss_w_per_k`` to its room, heated by an
element that converts all of its ``power_kw`` and that its own thermostat cuts at
``t_max_c``. Between now and the next ready-by time ``D`` (one of ``ready_by_h``, local) the
tank cools freely; the offer is the reheat that brings it to ``t_target_c`` at ``D``.

Heat put in earlier has longer to leak away, so the energy needed depends on the start: this
is what the start-scaled form of two-mode operation (``protocol.TwoMode`` with ``prior_time``
and ``after_time``, the form of protocol 1.0 to 1.2, which every reader still takes) expresses.
The energy moved around an intervention, the other form, does not fit a reheat: nothing is
shed and returned, the whole run just needs less the later it starts. The base profile is
sized for the earliest start ``s0`` (energy ``E(s0)``: continuous full power from ``s0``, the
most leakage of any placement in its slots); a start at or after ``after_time`` (the middle
of the window) runs the profile scaled by ``E(after_time) / E(s0)``. Any start within a mode
needs no more than its mode's energy, because later heat leaks less. The total's upper bound
is what the tank can take before its thermostat cuts out (losses during heating ignored, so
the bound is on the safe side).

Per slot the element takes 0 to ``power_kw * dt`` (the EMS meets a slot's energy by duty
cycle). The default schedule is the plain boiler: full power from ``s0`` until the
thermostat would cut out. Measurement state used: ``temp_c`` (rounded to 0.1 K); no reading
or a tank already warm enough for ``D``: no offer. The offer id ends with ``D``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.generators._common import Pricing, Timing, build_offer, check_resolution
from agent.generators.base import Generator, OfferContext
from agent.generators.ev import fill
from agent.params import Params
from agent.physics.thermal import BoilerSpec
from protocol import Bounds, FlexOffer, Profile, TwoMode

#: Reheats needing less than this are not worth an offer, kWh.
MIN_ENERGY_KWH = 0.05


class Boiler(Generator):
    name = "boiler"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = BoilerSpec.from_params(p)
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(p)

    def next_ready_by(self, after: int, resolution_s: int) -> int:
        """The first ready-by time (on the slot grid) at or after ``after``."""
        zone = ZoneInfo(self.spec.timezone)
        day = datetime.fromtimestamp(after, zone).date()
        best = None
        for offset in range(3):
            d = day + timedelta(days=offset)
            for h in self.spec.ready_by_h:
                local = datetime(d.year, d.month, d.day, tzinfo=zone) + timedelta(hours=h)
                ts = int(local.timestamp()) // resolution_s * resolution_s
                if ts >= after and (best is None or ts < best):
                    best = ts
        assert best is not None  # some hour within three days always follows
        return best

    def free_temp(self, temp_c: float, span_s: float) -> float:
        spec = self.spec
        return spec.rc.step(temp_c, ambient_c=spec.ambient_c, heat_kw=0.0, dt_h=span_s / 3600.0)

    def energy_needed(
        self, temp_now: float, now: float, start: int, deadline: int, r: int
    ) -> tuple[float, bool]:
        """Energy of a full-power run from ``start`` that brings the tank to the target at
        ``deadline``, and whether it does (if not: everything up to ``deadline``)."""
        spec = self.spec
        dt_h = r / 3600.0
        missing = spec.t_target_c - self.free_temp(temp_now, deadline - now)
        per_slot = spec.power_kw * dt_h
        g = spec.rc.gain_k_per_kwh(dt_h)
        total = 0.0
        for t in range(start, deadline, r):
            weight = g * spec.rc.decay((deadline - t - r) / 3600.0)
            if per_slot * weight >= missing:
                return total + missing / weight, True
            total += per_slot
            missing -= per_slot * weight
        return total, False

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        r = check_resolution(ctx)
        m = ctx.measurement
        if m is None or "temp_c" not in m.state:
            return None
        spec = self.spec
        temp = round(float(m.state["temp_c"]), 1)
        s0 = self.timing.earliest_start(ctx.now, r)
        deadline = self.next_ready_by(s0 + r, r)
        if self.free_temp(temp, deadline - ctx.now) >= spec.t_target_c:
            return None
        per_slot = spec.power_kw * r / 3600.0
        need0, _ = self.energy_needed(temp, ctx.now, s0, deadline, r)
        if need0 < MIN_ENERGY_KWH:
            return None
        n = min(max(1, math.ceil(need0 / per_slot - 1e-9)), (deadline - s0) // r)
        room = spec.rc.c_kwh_per_k * (spec.t_max_c - self.free_temp(temp, s0 - ctx.now))
        hi = max(min(room, n * per_slot), MIN_ENERGY_KWH)
        lo = min(need0, hi)
        latest = deadline - n * r
        two_mode = None
        if latest >= s0 + r:
            prior = s0 + (latest - s0) // r // 2 * r
            after = prior + r
            # start-scaled form: portions are factors on the profile's energies (see
            # protocol.effective_profiles)
            portion = self.energy_needed(temp, ctx.now, after, deadline, r)[0] / need0
            two_mode = TwoMode(
                prior_time=prior,
                prior_portion=1.0,
                after_time=after,
                after_portion=min(1.0, max(portion, 1e-3)),
            )
        profile = Profile(lower_kwh=[0.0] * n, upper_kwh=[per_slot] * n, total=Bounds(lo, hi))
        return build_offer(
            ctx,
            key=deadline,
            load_type="water_heater",
            start=s0,
            latest_start=max(s0, latest),
            profiles=[profile],
            two_mode=two_mode,
            default_kwh=fill(hi, per_slot, n),
            pricing=self.pricing,
            lead_s=self.timing.lead_s,
        )
