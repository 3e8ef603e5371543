"""Electric-car charging: a session from plug-in to departure with an energy range to deliver.

Physics (:mod:`agent.physics.storage`): the car's battery of ``battery_kwh`` gains
``efficiency * e`` from ``e`` kWh metered at the charger; the charger delivers at most
``max_power_kw``. The driver wants ``target_soc`` at departure and must have at least
``min_soc``: the energy between the two is flexible in amount, the time between plug-in and
departure in placement.

The offer spans every slot from the first one ``lead_s`` ahead to the last one that ends by
the departure (``departure_ts`` as the charger reports it, else plug-in plus ``dwell_h``),
each taking 0 to ``max_power_kw * dt``; the total lies between what reaches ``min_soc`` and
what reaches ``target_soc`` (both capped at what the session can physically deliver). The
default schedule is what a plain charger does: full power from the start until the target.
Chargers that cannot go below a minimum current are driven by the EMS in whole slots.

Measurement state used: ``plugged`` (1 or 0), ``soc_kwh`` (rounded to 0.1 kWh), ``plugin_ts``
and ``departure_ts`` (epoch seconds). No car, no offer. The offer id ends with the plug-in
time, so one session keeps one id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.generators._common import Pricing, Timing, build_offer, check_resolution
from agent.generators.base import Generator, OfferContext
from agent.params import Params
from agent.physics.storage import EvSpec
from protocol import MAX_SLOTS, Bounds, FlexOffer, Profile

#: Sessions that need less than this are not worth an offer, kWh.
MIN_ENERGY_KWH = 0.05


def fill(total_kwh: float, per_slot_kwh: float, n: int) -> list[float]:
    """``total_kwh`` as early as possible at ``per_slot_kwh`` a slot over ``n`` slots."""
    out = []
    left = total_kwh
    for _ in range(n):
        e = min(per_slot_kwh, max(0.0, left))
        out.append(e)
        left -= e
    return out


class EvCharger(Generator):
    name = "ev"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = EvSpec.from_params(p)
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(p)

    def still_valid(self, offer: FlexOffer, ctx: OfferContext) -> bool:
        """A session's offer holds while the same car is plugged in."""
        m = ctx.measurement
        if m is None or not m.state.get("plugged"):
            return False
        plugin = m.state.get("plugin_ts")
        return plugin is None or offer.id.endswith(f".{int(plugin)}")

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        r = check_resolution(ctx)
        m = ctx.measurement
        if m is None or not m.state.get("plugged") or "soc_kwh" not in m.state:
            return None
        spec, state = self.spec, m.state
        soc = round(float(state["soc_kwh"]), 1)
        plugin = state.get("plugin_ts")
        departure = state.get("departure_ts")
        if departure is None:
            departure = (plugin if plugin is not None else ctx.now) + spec.dwell_h * 3600
        start = self.timing.earliest_start(ctx.now, r)
        n = min(MAX_SLOTS, (int(departure) // r * r - start) // r)
        if n < 1:
            return None
        per_slot = spec.max_power_kw * r / 3600.0
        need_hi = (spec.target_soc * spec.battery_kwh - soc) / spec.efficiency
        need_lo = (spec.min_soc * spec.battery_kwh - soc) / spec.efficiency
        hi = min(need_hi, n * per_slot)
        if hi < MIN_ENERGY_KWH:
            return None
        lo = min(max(0.0, need_lo), hi)
        profile = Profile(lower_kwh=[0.0] * n, upper_kwh=[per_slot] * n, total=Bounds(lo, hi))
        return build_offer(
            ctx,
            key=int(plugin) if plugin is not None else int(departure),
            load_type="ev",
            start=start,
            profiles=[profile],
            default_kwh=fill(hi, per_slot, n),
            pricing=self.pricing,
            lead_s=self.timing.lead_s,
        )
