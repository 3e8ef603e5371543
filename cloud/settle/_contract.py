"""The contract between the aggregator and a prosumer (or a DSO): parties, validity, trading
mode, the devices it covers, its terms, and the limits under which FMAN accepts offers.

One version of a contract is one immutable :class:`Contract`; a change is a new version with a
higher ``version`` and its own validity, never an edit (:mod:`._book` keeps the versions and
picks the one in force at a delivery). Terms are a tagged union on ``terms.kind``:

- ``strict_rewards`` (delegated): the aggregator pays per kWh of delivered deviation, per hour
  of time flexibility offered and a fixed monthly fee, and charges a penalty per kWh that was
  scheduled but not delivered, so the prosumer can lose;
- ``revenue_sharing`` (delegated): the prosumer gets ``share`` of the market revenue its
  flexibility earned and nothing else, so it cannot lose;
- ``direct``: the price comes from the offer's own asks or from the market's clearing price.

Money is :class:`~decimal.Decimal`, never float: ``0.1`` in a file means exactly one tenth.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from protocol import TradingMode

#: Identifiers as the protocol has them (an agent's id is its MQTT user name).
Id = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
#: UTC epoch seconds between 2000-01-01 and 2200-01-01.
Epoch = Annotated[int, Meta(ge=946_684_800, le=7_258_118_400)]
NonNegFloat = Annotated[float, Meta(ge=0, le=1e6)]
PosFloat = Annotated[float, Meta(gt=0, le=1e6)]
PosInt = Annotated[int, Meta(gt=0, le=1_000_000)]
#: Largest rate or fee a contract may state (EUR per unit); guards against a misplaced comma.
MAX_EUR = Decimal(100_000)


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class Party(_Section, kw_only=True, frozen=True):
    """The aggregator's counterparty."""

    #: The agent's id (its MQTT user name) for a prosumer; the DSO's account otherwise.
    id: Id
    kind: Literal["prosumer", "dso"] = "prosumer"
    name: str = ""


class StrictRewards(_Section, kw_only=True, frozen=True, tag="strict_rewards", tag_field="kind"):
    """Delegated trading with fixed rewards; losses are possible (the penalty)."""

    #: Paid per kWh of delivered deviation from the baseline.
    reward_eur_per_kwh: Decimal = Decimal(0)
    #: Paid per hour of time flexibility offered (the width of each settled offer's start
    #: window).
    reward_eur_per_flex_hour: Decimal = Decimal(0)
    #: Paid per calendar month, in proportion to the part of the month this version is in force.
    fee_eur_per_month: Decimal = Decimal(0)
    #: Charged per kWh of deviation that was scheduled but not delivered.
    penalty_eur_per_kwh: Decimal = Decimal(0)


class RevenueSharing(_Section, kw_only=True, frozen=True, tag="revenue_sharing", tag_field="kind"):
    """Delegated trading for a share of the market revenue; no losses are possible."""

    #: The prosumer's part of the market revenue its flexibility earned, 0 to 1.
    share: Decimal


class DirectPrice(_Section, kw_only=True, frozen=True, tag="direct", tag_field="kind"):
    """Direct trading: the prosumer sells at its own asks, or at the market's clearing price."""

    price: Literal["asks", "clearing"] = "asks"


Terms = StrictRewards | RevenueSharing | DirectPrice


def terms_kind(terms: Terms) -> str:
    """``strict_rewards``, ``revenue_sharing`` or ``direct``: the ``kind`` a file gives."""
    if isinstance(terms, StrictRewards):
        return "strict_rewards"
    if isinstance(terms, RevenueSharing):
        return "revenue_sharing"
    return "direct"


class Delivery(_Section, kw_only=True, frozen=True):
    """How delivered deviation is counted."""

    #: A slot counts as fully delivered when ``|metered - scheduled|`` is at most
    #: ``tolerance_kwh + tolerance_rel * |scheduled - baseline|``.
    tolerance_kwh: NonNegFloat = 0.05
    tolerance_rel: NonNegFloat = 0.1
    #: A slot that should deviate but has no reading: hold the offer for review, or count the
    #: slot as not delivered.
    missing_readings: Literal["hold", "not_delivered"] = "hold"


class Baseline(_Section, kw_only=True, frozen=True):
    """What the device would have done without flexibility trading."""

    #: ``default``: the offer's default schedule. ``characteristic``: the device's metered
    #: energy in the same slot of the day, averaged over the last ``days`` comparable days
    #: (catches a default inflated to be paid for "reducing" it).
    kind: Literal["default", "characteristic"] = "default"
    #: Comparable days: the same type of day (Monday to Friday, or Saturday and Sunday), the
    #: same weekday, or any day.
    comparable: Literal["day_type", "weekday", "any"] = "day_type"
    days: PosInt = 10
    #: How many calendar days back to look for them.
    lookback_days: PosInt = 60
    #: With fewer comparable days metered in some slot of the offer, the default schedule is
    #: the baseline for that offer.
    min_days: PosInt = 3


class Metering(_Section, kw_only=True, frozen=True):
    """Checks of uncertified sub-meters against the party's main meter."""

    #: The device id of the main meter; empty: the party has none and nothing is checked.
    main_meter: str = ""
    #: Devices whose meters are certified: their offers are not checked.
    certified: tuple[Id, ...] = ()
    #: A slot fails when the sum of the sub-meters exceeds the main meter by more than
    #: ``tolerance_kwh + tolerance_rel * |main meter|``.
    tolerance_kwh: NonNegFloat = 0.05
    tolerance_rel: NonNegFloat = 0.02


class Acceptance(_Section, kw_only=True, frozen=True):
    """What FMAN accepts from the party (the ``[acceptance]`` limits of FMAN's configuration
    today); the devices are the contract's ``devices``."""

    #: Per-slot energy above this power is refused, in both directions.
    max_power_kw: PosFloat = 50.0
    #: Offers not yet final; more are refused.
    max_open_offers: PosInt = 500


class AcceptanceLimits(msgspec.Struct, kw_only=True, frozen=True):
    """The acceptance limits in the shape of FMAN's ``[acceptance.default]`` section."""

    max_power_kw: float
    devices: list[str]
    max_open_offers: int


class Contract(_Section, kw_only=True, frozen=True):
    """One version of one contract."""

    id: Id
    version: PosInt = 1
    #: The aggregator's own id (the other party).
    aggregator: Id = "aggregator"
    party: Party
    #: In force from ``valid_from`` (inclusive) to ``valid_until`` (exclusive; none: open).
    valid_from: Epoch
    valid_until: Epoch | None = None
    mode: TradingMode
    #: The party's devices this contract covers; empty: all of them.
    devices: tuple[Id, ...] = ()
    terms: Terms
    delivery: Delivery = Delivery()
    baseline: Baseline = Baseline()
    metering: Metering = Metering()
    acceptance: Acceptance = Acceptance()
    note: str = ""

    def covers(self, device: str) -> bool:
        return not self.devices or device in self.devices

    def in_force(self, t: float) -> bool:
        """Whether ``t`` lies within this version's validity (a later version may still
        supersede it: :class:`ContractBook` decides)."""
        return self.valid_from <= t and (self.valid_until is None or t < self.valid_until)

    @property
    def acceptance_limits(self) -> AcceptanceLimits:
        return AcceptanceLimits(
            max_power_kw=self.acceptance.max_power_kw,
            devices=list(self.devices),
            max_open_offers=self.acceptance.max_open_offers,
        )
