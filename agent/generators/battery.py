"""Home battery: charge and discharge within a block, keeping the state of charge in its band.

Physics (:mod:`agent.physics.storage`): ``e`` kWh at the grid side (positive charging) moves
the state of charge by ``eta_charge * e`` or ``e / eta_discharge``. That map has a kink at
zero, which no linear row in the cumulative energy ``S`` can follow exactly, so the rows are
safe bounds:

* upper: the charge is at most ``soc0 + eta_charge * S`` whatever the mix of charging and
  discharging (``eta_charge * eta_discharge <= 1``), so ``eta_charge * S <= soc_max - soc0``
  keeps it below ``soc_max``;
* lower: the charge is ``soc0 + S / eta_discharge - (1/eta_discharge - eta_charge) * P``
  with ``P`` the energy charged so far, so ``S >= eta_discharge * (soc_min - soc0 + m_k)``
  keeps it above ``soc_min`` as long as the reserve ``m_k = (1/eta_discharge - eta_charge) *
  P_max(k)`` covers the round-trip losses. ``P_max(k)`` is the least of what the charger can
  take in ``k + 1`` slots and one full usable capacity: the offer assumes a planner does not
  cycle the battery more than once within a block (cycling more only loses money; if it
  happens, the battery management stops the discharge at its own floor).

Per slot the battery takes ``-max_discharge_kw * dt`` to ``max_charge_kw * dt``. The default
schedule idles (a battery left alone stays where it is), charging only where the reserve
asks for it. Measurement state used: ``soc_kwh`` (rounded to 1 % of the capacity); no
reading, no offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.generators._common import BlockEpisodes, Pricing, Timing, build_offer, check_resolution
from agent.generators._corridor import corridor_profile
from agent.generators.base import Generator, OfferContext
from agent.params import Params
from agent.physics.storage import BatterySpec
from protocol import FlexOffer


class Battery(BlockEpisodes, Generator):
    name = "battery"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = BatterySpec.from_params(p)
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(p)

    def corridor(self, soc0: float, n: int, resolution_s: int) -> tuple[list[float], list[float]]:
        """``(lower, upper)`` cumulative grid energy per slot end, see the module docstring."""
        spec = self.spec
        e_max = spec.max_charge_kw * resolution_s / 3600.0
        loss = 1.0 / spec.eta_discharge - spec.eta_charge
        usable = (spec.soc_max_kwh - spec.soc_min_kwh) / spec.eta_charge
        upper = [(spec.soc_max_kwh - soc0) / spec.eta_charge] * n
        lower = [
            spec.eta_discharge * (spec.soc_min_kwh - soc0 + loss * min((k + 1) * e_max, usable))
            for k in range(n)
        ]
        return lower, upper

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        r = check_resolution(ctx)
        m = ctx.measurement
        if m is None or "soc_kwh" not in m.state:
            return None
        spec = self.spec
        step = spec.capacity_kwh / 100.0
        soc0 = round(float(m.state["soc_kwh"]) / step) * step
        start = self.timing.next_block(ctx.now)
        n = self.timing.horizon_s // r
        dt_h = r / 3600.0
        e_min = [-spec.max_discharge_kw * dt_h] * n
        e_max = [spec.max_charge_kw * dt_h] * n
        lower, upper = self.corridor(soc0, n, r)
        profile, path = corridor_profile(lower, upper, e_min, e_max, [0.0] * n)
        return build_offer(
            ctx,
            key=start,
            load_type="battery",
            start=start,
            profiles=[profile],
            default_kwh=path,
            pricing=self.pricing,
            lead_s=self.timing.lead_s,
        )
