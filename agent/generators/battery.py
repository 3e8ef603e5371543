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

**Earlier episodes.** The block offered may lie behind other live blocks of the same battery:
the one executing now and, when ``lead_s`` is longer than a block, blocks already offered or
scheduled. Each may still be scheduled to discharge fully, so ``soc0`` is not one number but
a band ``[soc_lo, soc_hi]`` (:meth:`Battery.start_band`): the measured charge carried through
the part still to run of each earlier episode,

* exactly through its plan when that can no longer change (executing, rejected, or past its
  ``assignment_before``), slot by slot; the slot running now may have any part of its energy
  left. Only the physical limits (empty, full) clip it: a plan that went beyond the band
  leaves the charge beyond it;
* otherwise over everything its offer allows (its net energy range and the most it may
  charge, :func:`agent.physics.storage.soc_range_after`; while an update awaits FMAN's answer,
  also what the revision before allows), clipped to the band: an offer of this battery keeps
  the charge there (or, where it already is outside, takes it no further out), and FMAN may
  still give it any of its schedules.

The rows then hold for every start in the band: the lower ones from ``soc_lo``, the upper ones
from ``soc_hi``. What one schedule can sweep is what the band leaves of the usable range,
``room = (soc_max - soc_min) - (soc_hi - soc_lo)``, so ``P_max(k)`` is capped at
``room / eta_charge`` instead of one usable capacity (the same when the band is one point,
so a block with no earlier episode is offered exactly as before). A band as wide as the
usable range (``room <= 0``) leaves nothing that holds for every start but idling: the block
is offered idle. Earlier episodes that are idle leave the band a point: a battery loses no
flexibility to blocks that cannot move it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.generators._common import BlockEpisodes, Pricing, Timing, build_offer, check_resolution
from agent.generators._corridor import corridor_profile
from agent.generators._episodes import before, episode_range, slots_left
from agent.generators.base import Generator, OfferContext
from agent.params import Params
from agent.physics.storage import BatterySpec, soc_after, soc_range_after
from protocol import FlexOffer, start_window

#: A band this close to the whole usable range leaves no room: below it, rounding alone could
#: put the lower rows above the upper ones.
_NO_ROOM_KWH = 1e-9


class Battery(BlockEpisodes, Generator):
    name = "battery"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = BatterySpec.from_params(p)
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(p)

    def corridor(
        self, soc0: float, n: int, resolution_s: int, soc_hi: float | None = None
    ) -> tuple[list[float], list[float]]:
        """``(lower, upper)`` cumulative grid energy per slot end that keeps the charge in its
        band from any start in ``[soc0, soc_hi]`` (``soc_hi`` left out: from ``soc0``), see
        the module docstring."""
        spec = self.spec
        hi = soc0 if soc_hi is None else soc_hi
        room = (spec.soc_max_kwh - spec.soc_min_kwh) - (hi - soc0)
        if room <= _NO_ROOM_KWH:
            return [0.0] * n, [0.0] * n
        e_max = spec.max_charge_kw * resolution_s / 3600.0
        loss = 1.0 / spec.eta_discharge - spec.eta_charge
        usable = room / spec.eta_charge
        upper = [(spec.soc_max_kwh - hi) / spec.eta_charge] * n
        lower = [
            spec.eta_discharge * (spec.soc_min_kwh - soc0 + loss * min((k + 1) * e_max, usable))
            for k in range(n)
        ]
        return lower, upper

    def start_band(self, soc0: float, start: int, ctx: OfferContext) -> tuple[float, float]:
        """``(soc_lo, soc_hi)``: where the charge, ``soc0`` when measured, may be when the block
        beginning at ``start`` begins, after the earlier live episodes (module docstring)."""
        spec = self.spec
        eta_c, eta_d = spec.eta_charge, spec.eta_discharge
        measured = ctx.measurement.ts if ctx.measurement is not None else ctx.now
        lo = hi = soc0
        for ep in before(ctx, start):
            if ep.plan is not None and ep.plan_final(ctx.now):
                for e, begun in slots_left(ep.plan, measured, start):
                    lo2 = soc_after(lo, e, eta_charge=eta_c, eta_discharge=eta_d)
                    hi2 = soc_after(hi, e, eta_charge=eta_c, eta_discharge=eta_d)
                    lo, hi = (min(lo, lo2), max(hi, hi2)) if begun else (lo2, hi2)
                    lo, hi = _clip(lo, 0.0, spec.capacity_kwh), _clip(hi, 0.0, spec.capacity_kwh)
                continue
            r = episode_range(ep)
            low, high = r.low_kwh, r.high_kwh
            # begun before the measurement: some of it may already be in soc0
            if min(start_window(o)[0] for o in ep.offers()) < measured:
                low, high = min(low, 0.0), max(high, 0.0)
            floor, ceiling = min(spec.soc_min_kwh, lo), max(spec.soc_max_kwh, hi)
            lo, hi = soc_range_after(
                lo,
                hi,
                low_kwh=low,
                high_kwh=high,
                charge_kwh=r.charge_kwh,
                eta_charge=eta_c,
                eta_discharge=eta_d,
            )
            lo, hi = _clip(lo, floor, ceiling), _clip(hi, floor, ceiling)
        return lo, hi

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
        soc_lo, soc_hi = self.start_band(soc0, start, ctx)
        lower, upper = self.corridor(soc_lo, n, r, soc_hi)
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


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)
