"""What every generator does the same way: planning blocks, deadlines, ids, prices.

**Planning blocks.** A device that is always there (a heat pump, a freezer, a battery, a PV
array, a grid asset) offers its flexibility block by block: ``horizon_h`` hours (dividing a
day, so blocks start at fixed times of the UTC day) beginning at the first block boundary at
least ``lead_s`` seconds ahead. All calls during one block return the offer for the same
next block, under the same id, so the agent core sees an *update* when the prediction
changes and a *new* offer only when a new block comes up; blocks never overlap, so one
device never has two schedules in force.

**Deadlines.** ``assignment_before`` is the offer's earliest start: the default schedule
starts no earlier, so a device that hears nothing runs its default from the first slot.
``acceptance_before`` lies half the lead time before it.

**Ids.** ``<agent>.<device>.<key>``, where the key is what identifies the episode (the block
start, the plug-in time of a car, the time a dishwasher was loaded): stable across calls, so
an update keeps its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.generators.base import OfferContext
from agent.params import Params
from protocol import (
    DefaultSchedule,
    FlexOffer,
    PriceBounds,
    Prices,
    Profile,
    TwoMode,
    align_up,
    resolution_ok,
)


class BlockEpisodes:
    """For generators of devices that are always there and offer block by block: an offer
    made for one block stays valid whatever the generator says about the next one (a PV
    array with nothing to offer for the night block still runs its afternoon block)."""

    def still_valid(self, offer: FlexOffer, ctx: OfferContext) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Pricing:
    """Prices every generator can attach: a deviation price (delegated mode) and per-slot price
    bounds (direct mode, where they are required)."""

    deviation_eur_per_kwh: float | None
    min_eur_per_kwh: float
    max_eur_per_kwh: float

    @classmethod
    def from_params(
        cls,
        p: Params,
        *,
        min_default: float = 0.0,
        max_default: float = 0.5,
        deviation_default: float | None = None,
    ) -> Pricing:
        lo = p.number("price_min_eur_per_kwh", min_default, min=-1e4, max=1e4)
        hi = p.number("price_max_eur_per_kwh", max(lo, max_default), min=-1e4, max=1e4)
        if hi < lo:
            raise p.error("price_max_eur_per_kwh", f"{hi:g} is below price_min_eur_per_kwh {lo:g}")
        deviation = p.optional_number("deviation_eur_per_kwh", min=0, max=1e4)
        return cls(
            deviation_eur_per_kwh=deviation if deviation is not None else deviation_default,
            min_eur_per_kwh=lo,
            max_eur_per_kwh=hi,
        )

    def prices(self, mode: str, n_slots: int, *, always_slots: bool = False) -> Prices | None:
        slots = []
        if mode == "direct" or always_slots:
            slots = [PriceBounds(self.min_eur_per_kwh, self.max_eur_per_kwh)] * n_slots
        if not slots and self.deviation_eur_per_kwh is None:
            return None
        return Prices(deviation_eur_per_kwh=self.deviation_eur_per_kwh, slots=slots)


@dataclass(frozen=True, slots=True)
class Timing:
    """``lead_s``: how long before its earliest start an offer goes out; ``horizon_h``: the
    planning block of always-present devices."""

    lead_s: int
    horizon_s: int

    @classmethod
    def from_params(cls, p: Params, *, horizon_default: float = 6.0) -> Timing:
        lead = p.integer("lead_s", 900, min=0, max=86_400)
        horizon_h = p.number("horizon_h", horizon_default, min=1, max=24)
        horizon_s = round(horizon_h * 3600)
        if horizon_s % 3600 or 86_400 % horizon_s:
            raise p.error("horizon_h", f"{horizon_h:g} must be a whole number of hours dividing 24")
        return cls(lead_s=lead, horizon_s=horizon_s)

    def next_block(self, now: float) -> int:
        """Start of the next planning block at least ``lead_s`` ahead."""
        return align_up(int(now) + self.lead_s, self.horizon_s)

    def earliest_start(self, now: float, resolution_s: int) -> int:
        return align_up(int(now) + self.lead_s, resolution_s)


def check_resolution(ctx: OfferContext) -> int:
    """The context's slot length, which every generator relies on being a valid one."""
    if not resolution_ok(ctx.resolution_s):
        raise ValueError(f"resolution_s {ctx.resolution_s} is not a valid slot length")
    return ctx.resolution_s


def build_offer(
    ctx: OfferContext,
    *,
    key: int | str,
    load_type: str,
    start: int,
    profiles: Sequence[Profile],
    default_kwh: Sequence[float],
    pricing: Pricing,
    lead_s: int,
    latest_start: int | None = None,
    default_profile: int = 0,
    two_mode: TwoMode | None = None,
    resolution_s: int | None = None,
    always_price_slots: bool = False,
) -> FlexOffer:
    """Assemble the offer with the conventions of this module."""
    r = resolution_s or ctx.resolution_s
    created = int(ctx.now)
    longest = max(p.n_slots for p in profiles)
    return FlexOffer(
        id=f"{ctx.agent}.{ctx.device}.{key}",
        issuer=ctx.agent,
        device=ctx.device,
        load_type=load_type,
        grid_node=ctx.grid_node,
        mode=ctx.mode,
        created_at=created,
        resolution_s=r,
        acceptance_before=max(created, start - lead_s // 2),
        assignment_before=start,
        start_after=start,
        start_before=start if latest_start is None else latest_start,
        profiles=list(profiles),
        two_mode=two_mode,
        default=DefaultSchedule(
            start=start,
            profile=default_profile,
            energy_kwh=list(default_kwh),
        ),
        prices=pricing.prices(ctx.mode, longest, always_slots=always_price_slots),
    )
