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


#: The keys of a device table that price direct trading (docs/agent.md, "Prices of direct
#: trading"): the asks, or a comfort priority the generator turns into asks.
ASK_KEYS = ("ask_up_eur_per_kwh", "ask_down_eur_per_kwh", "comfort_priority")
#: The asks (EUR per kWh, up and down alike) of comfort priorities 0 to 5: 0 gives flexibility
#: away, 5 moves the device only for a price that makes up for the discomfort. Each step about
#: doubles the ask, so a user's "a bit more" and "much more" are far enough apart to matter.
PRIORITY_ASKS: tuple[float, ...] = (0.0, 0.02, 0.05, 0.10, 0.20, 0.50)
#: The highest ask accepted (EUR/kWh), the protocol's own bound on a price.
MAX_ASK = 1e4


@dataclass(frozen=True, slots=True)
class Pricing:
    """Prices every generator can attach: a deviation price (delegated mode) and per-slot price
    bounds (direct mode, where they are required).

    In direct mode the user prices flexibility with asks (EUR per kWh of up and of down
    deviation) or a comfort priority (``PRIORITY_ASKS``). The wire has one figure for both
    directions: a slot's ``[min, max]`` whose ``min`` is the ask up and down (docs/market.md,
    "Asks from an offer's prices"). The offer carries the larger ask there, so that no kWh
    is sold below what the user asked for it in either direction."""

    deviation_eur_per_kwh: float | None
    min_eur_per_kwh: float
    max_eur_per_kwh: float
    #: The user's asks (direct mode); ``None``: none given, the price bounds apply as they are.
    ask_up_eur_per_kwh: float | None = None
    ask_down_eur_per_kwh: float | None = None

    @classmethod
    def from_params(
        cls,
        p: Params,
        *,
        min_default: float = 0.0,
        max_default: float = 0.5,
        deviation_default: float | None = None,
    ) -> Pricing:
        up, down = _asks(p)
        ask = None if up is None or down is None else max(up, down)
        if ask is not None and p.has("price_min_eur_per_kwh"):
            raise p.error(
                "price_min_eur_per_kwh",
                "give price_min_eur_per_kwh or asks (ask_up_eur_per_kwh, ask_down_eur_per_kwh, "
                "comfort_priority), not both: the ask is the least price of a slot",
            )
        lo = p.number("price_min_eur_per_kwh", min_default, min=-1e4, max=1e4)
        if ask is not None:
            lo = ask
        hi = p.number("price_max_eur_per_kwh", max(lo, max_default), min=-1e4, max=1e4)
        if hi < lo:
            below = "price_min_eur_per_kwh" if ask is None else "the ask"
            raise p.error("price_max_eur_per_kwh", f"{hi:g} is below {below} {lo:g}")
        deviation = p.optional_number("deviation_eur_per_kwh", min=0, max=1e4)
        return cls(
            deviation_eur_per_kwh=deviation if deviation is not None else deviation_default,
            min_eur_per_kwh=lo,
            max_eur_per_kwh=hi,
            ask_up_eur_per_kwh=up,
            ask_down_eur_per_kwh=down,
        )

    def prices(self, mode: str, n_slots: int, *, always_slots: bool = False) -> Prices | None:
        slots = []
        if mode == "direct" or always_slots:
            slots = [PriceBounds(self.min_eur_per_kwh, self.max_eur_per_kwh)] * n_slots
        if not slots and self.deviation_eur_per_kwh is None:
            return None
        return Prices(deviation_eur_per_kwh=self.deviation_eur_per_kwh, slots=slots)


def _asks(p: Params) -> tuple[float | None, float | None]:
    """The asks (up, down) a device table gives, directly or through ``comfort_priority``;
    one ask given alone counts both ways. ``(None, None)`` when the table prices nothing."""
    given = {k: p.has(k) for k in ASK_KEYS}
    if given["comfort_priority"]:
        if given["ask_up_eur_per_kwh"] or given["ask_down_eur_per_kwh"]:
            raise p.error(
                "comfort_priority",
                "give comfort_priority or asks (ask_up_eur_per_kwh, ask_down_eur_per_kwh), "
                "not both",
            )
        value = p.table["comfort_priority"]
        top = len(PRIORITY_ASKS) - 1
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise p.error(
                "comfort_priority",
                f"{value!r}: a whole number from 0 (moves for nothing) to {top} (comfort first)",
            )
        return PRIORITY_ASKS[value], PRIORITY_ASKS[value]
    asks = {}
    for key in ("ask_up_eur_per_kwh", "ask_down_eur_per_kwh"):
        if not given[key]:
            continue
        value = p.number(key, max=MAX_ASK)
        if value < 0:
            raise p.error(
                key, f"{value:g} is negative: an ask is what a kWh moved earns, at least 0"
            )
        asks[key] = value
    up = asks.get("ask_up_eur_per_kwh", asks.get("ask_down_eur_per_kwh"))
    down = asks.get("ask_down_eur_per_kwh", up)
    return up, down


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
