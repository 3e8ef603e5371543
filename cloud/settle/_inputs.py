"""What a settlement run is given: executed offers, meter readings and market awards.

These are the typed rows the FMAN store produces for a period (its ``offers``, ``schedules``
and ``readings`` tables, and the awards FMAN records per gate); settlement never reads a
database itself. Energy is kWh as on the wire (float); prices are exact decimals.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from protocol import TradingMode


class Reading(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One meter reading as FMAN stores it: ``energy_kwh`` over ``[start, start + duration_s)``,
    tagged with the offer it was metered for (empty: untagged)."""

    agent: str
    device: str
    start: int
    duration_s: int
    energy_kwh: float
    offer_id: str = ""


class Slots(msgspec.Struct, frozen=True, kw_only=True):
    """An energy profile on an offer's slot grid: ``energy_kwh[i]`` in slot ``start + i *
    resolution``."""

    start: int
    energy_kwh: tuple[float, ...]


class ExecutedOffer(msgspec.Struct, frozen=True, kw_only=True):
    """An offer whose execution is over, as settlement needs it."""

    id: str
    revision: int = 0
    agent: str
    device: str
    mode: TradingMode = "delegated"
    #: ``executed``, or ``settled`` by an earlier run (settled again, idempotently).
    state: str = "executed"
    resolution_s: int = 900
    #: The offer's start window (its time flexibility is ``start_before - start_after``).
    start_after: int
    start_before: int
    #: The default schedule (the baseline unless the contract says otherwise).
    default: Slots
    #: The schedule in force when it ran; ``None``: no schedule, the default ran.
    schedule: Slots | None = None
    #: Direct mode: the offer's asks in EUR per kWh of up (more consumption, less production)
    #: and down deviation, one per slot of the schedule or one figure for all.
    ask_up_eur_per_kwh: tuple[Decimal, ...] = ()
    ask_down_eur_per_kwh: tuple[Decimal, ...] = ()

    @property
    def ran(self) -> Slots:
        """What was meant to run: the schedule in force, or the default."""
        return self.schedule if self.schedule is not None else self.default

    @property
    def delivery_start(self) -> int:
        """When delivery began: the contract in force then governs the offer."""
        return self.ran.start


class AwardMember(msgspec.Struct, frozen=True, kw_only=True):
    """One offer that carries part of a market award: its signed deviation from its default
    per market slot (what disaggregation gave it)."""

    offer_id: str
    deviation_kwh: tuple[float, ...]


class MarketAward(msgspec.Struct, frozen=True, kw_only=True):
    """What a market awarded the aggregator for one of its orders at one gate."""

    market: str
    gate: str
    #: The order's id (an aggregate of offers, or one offer).
    id: str
    node: str = ""
    start: int
    resolution_s: int = 900
    #: Awarded signed deviation from the defaults per market slot (positive: up).
    deviation_kwh: tuple[float, ...]
    #: The price paid per kWh of (signed) deviation, per market slot or one figure: the
    #: clearing price, or the order's own ask under pay-as-bid.
    price_eur_per_kwh: tuple[Decimal, ...]
    #: The market pays a slot only if the deviation delivered there is within
    #: ``margin_kwh + margin_rel * |awarded|`` of the award.
    margin_kwh: float = 0.0
    margin_rel: float = 0.0
    members: tuple[AwardMember, ...]
    #: What the source of the award found wrong in it (members priced differently in one
    #: slot, a slot off the grid): the award is held with these reasons.
    problems: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.market}/{self.gate}/{self.id}"
