"""Message bodies: the Flex-Offer and everything that travels with it.

The structs are msgspec ``Struct`` types, so the same class is the in-memory model, the wire
schema (MessagePack) and the project's JSON form. Type and range checks that msgspec can make
in C live here as annotations (``Kwh`` rejects NaN and infinities by its bounds); rules that
relate several fields live in :mod:`protocol._validate`.

Conventions: times are integer UTC epoch seconds, energy is kWh per slot (positive consumed,
negative produced), power is W, money is EUR. Small fixed-shape records (a slot's bounds, a
dependency row, a meter reading) are ``array_like`` so a 96-slot offer stays compact on the wire.
New fields must get defaults, and array-like structs may only grow at their end: that keeps
older readers working (a newer minor protocol version is read by ignoring what it adds).
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from msgspec import Meta, Struct

# -- scalar types --------------------------------------------------------------------------

#: Energy in kWh. The bounds reject NaN and infinities as well as absurd magnitudes.
Kwh = Annotated[float, Meta(ge=-1e6, le=1e6)]
#: Price in EUR per kWh.
EurPerKwh = Annotated[float, Meta(ge=-1e4, le=1e4)]
#: A coefficient of a linear constraint.
Coef = Annotated[float, Meta(ge=-1e9, le=1e9)]
#: UTC epoch seconds between 2000-01-01 and 2200-01-01.
Epoch = Annotated[int, Meta(ge=946_684_800, le=7_258_118_400)]
#: Duration in seconds, up to 31 days.
Seconds = Annotated[int, Meta(ge=0, le=31 * 86_400)]
#: Identifiers appear in MQTT topics and file names: no ``/``, ``+``, ``#`` or blanks.
ID_PATTERN = r"^[A-Za-z0-9_.:@-]+$"
Id = Annotated[str, Meta(min_length=1, max_length=128, pattern=ID_PATTERN)]
#: Short free-form names (load type, grid node, market).
Name = Annotated[str, Meta(max_length=64)]
Text = Annotated[str, Meta(max_length=1024)]
NonNegInt = Annotated[int, Meta(ge=0, le=2**53)]
#: A share of an energy as a fraction (0.5 = half; 1.0 = all of it), not a percentage.
Share = Annotated[float, Meta(ge=0.0, le=10.0)]

TradingMode = Literal["delegated", "direct"]
OfferState = Literal[
    "offered",
    "accepted",
    "rejected",
    "assigned",
    "executing",
    "executed",
    "settled",
    "withdrawn",
    "expired",
]


class _Struct(Struct, kw_only=True, frozen=True, omit_defaults=True, forbid_unknown_fields=False):
    """Base: keyword-only construction, immutable, defaults left off the wire."""


# -- the Flex-Offer ------------------------------------------------------------------------


class Bounds(Struct, array_like=True, frozen=True, gc=False):
    """``[lower, upper]`` in kWh, inclusive (a total energy bound); on the wire an array."""

    lower: Kwh
    upper: Kwh


class PriceBounds(Struct, array_like=True, frozen=True, gc=False):
    """``[min, max]`` in EUR/kWh for one slot (direct trading mode)."""

    min: EurPerKwh
    max: EurPerKwh


class Dependency(NamedTuple):
    """``a * (energy of the profile before slot) + b * (energy in slot) <= c``.

    This is the H-representation row of the FlexOffer specification's dependency constraint:
    a heat pump's or a battery's room to move in a slot depends on what it has taken so far.
    Several rows for one slot describe a polygon. On the wire ``[slot, a, b, c]``; a named
    tuple rather than a struct because the feasibility check unpacks thousands of them."""

    slot: Annotated[int, Meta(ge=0)]
    a: Coef
    b: Coef
    c: Coef


class Polytope(_Struct, kw_only=True, frozen=True):
    """``A x <= b`` over the profile's slot energies ``x`` (one row of ``a`` per inequality)."""

    a: list[list[Coef]]
    b: list[Coef]


class Profile(_Struct, kw_only=True, frozen=True):
    """One way of running the load: per-slot energy bounds plus optional coupling constraints.

    Slot ``i`` of the profile must take between ``lower_kwh[i]`` and ``upper_kwh[i]``. The
    bounds are two parallel arrays rather than a list of pairs: the FlexOffer specification's
    array variant has the same shape, and it decodes and validates several times faster.
    ``start_after``/``start_before`` narrow the offer's start window for this profile only;
    the two-mode conditional expansion uses them, and a wet appliance may allow its eco
    programme only for early starts."""

    lower_kwh: list[Kwh]
    upper_kwh: list[Kwh]
    total: Bounds | None = None
    dependencies: list[Dependency] = []
    polytope: Polytope | None = None
    start_after: Epoch | None = None
    start_before: Epoch | None = None

    @property
    def n_slots(self) -> int:
        return len(self.lower_kwh)


class TwoMode(_Struct, kw_only=True, frozen=True):
    """Two-mode conditional operation: energy moved before and after an intervention.

    The offer's profiles describe the intervention (a freezer's shed, a heat pump's pause) with
    the ``prior_s`` seconds before it and the ``after_s`` seconds after it: a profile of ``n``
    slots is ``prior_s / resolution_s`` prior slots, then the intervention, then
    ``after_s / resolution_s`` after slots. The default schedule is the baseline, slot by
    profile slot. The energy a schedule moves out of the intervention (the default's energy
    there minus the schedule's) comes back: ``prior_portion`` of it in the prior slots
    (pre-cooling) and ``after_portion`` of it in the after slots (recovery), on top of the
    baseline there. The two modes are "no intervention" (nothing moved, nothing returned) and
    "intervention" (energy moved, portions returned); because what returns is proportional to
    what moves, one profile with two linear rows per window holds both.
    :func:`protocol.effective_profiles` adds those rows as polytope rows.

    The start-scaled form of protocol 1.0 to 1.2 is still read (an agent in the field may send
    it; the boiler generator uses it for its start-dependent reheat energy): ``prior_time`` and
    ``after_time`` are epochs, a start at or before ``prior_time`` runs every profile scaled by
    ``prior_portion``, a start at or after ``after_time`` scaled by ``after_portion``, and
    profile ``i`` expands into the exclusive-or profiles ``2i`` and ``2i + 1``. The two forms
    are told apart by their fields: durations ``prior_s``/``after_s`` or epochs
    ``prior_time``/``after_time``, never both (see :attr:`start_scaled`)."""

    prior_portion: Share
    after_portion: Share
    #: Seconds before the intervention in which ``prior_portion`` returns (protocol 1.3).
    prior_s: Seconds | None = None
    #: Seconds after the intervention in which ``after_portion`` returns (protocol 1.3).
    after_s: Seconds | None = None
    #: Start-scaled form: latest start of the prior mode.
    prior_time: Epoch | None = None
    #: Start-scaled form: earliest start of the after mode.
    after_time: Epoch | None = None

    @property
    def start_scaled(self) -> bool:
        """``True`` for the start-scaled form of protocol 1.0 to 1.2 (``prior_time``,
        ``after_time``), ``False`` for energy moved around an intervention."""
        return self.prior_time is not None or self.after_time is not None


class DefaultSchedule(_Struct, kw_only=True, frozen=True):
    """What the device does when nobody assigns it anything (its baseline)."""

    start: Epoch
    profile: NonNegInt = 0
    energy_kwh: list[Kwh]


class Prices(_Struct, kw_only=True, frozen=True):
    """Prices of an offer.

    ``deviation_eur_per_kwh`` is what the prosumer is paid per kWh moved away from the default
    schedule (delegated mode, under a contract). ``slots`` gives per-slot ``[min, max]`` prices
    the prosumer accepts, aligned with the profile's slots (direct mode)."""

    deviation_eur_per_kwh: EurPerKwh | None = None
    slots: list[PriceBounds] = []


class FlexOffer(_Struct, kw_only=True, frozen=True):
    """A Flex-Offer: when and how much energy one load can consume (or produce).

    The start window is ``[start_after, start_before]`` (both inclusive, aligned to
    ``resolution_s``). Either ``start_before`` or ``start_before_duration_s`` (implicit time
    flexibility) is given; a missing ``start_after`` means "from now", that is from
    ``created_at`` rounded up to the next slot. :func:`protocol.start_window` resolves both.
    An update of an offer repeats its ``id`` with a higher ``revision``."""

    id: Id
    issuer: Id
    device: Id
    load_type: Name = "generic"
    grid_node: Name = ""
    mode: TradingMode = "delegated"
    revision: NonNegInt = 0
    state: OfferState = "offered"
    created_at: Epoch
    resolution_s: int = 900
    acceptance_before: Epoch
    assignment_before: Epoch
    start_after: Epoch | None = None
    start_before: Epoch | None = None
    start_before_duration_s: Seconds | None = None
    profiles: list[Profile]
    two_mode: TwoMode | None = None
    default: DefaultSchedule
    prices: Prices | None = None


# -- messages around the offer ------------------------------------------------------------


class Withdraw(_Struct, kw_only=True, frozen=True):
    """The agent takes an offer back (device left, plans changed)."""

    offer_id: Id
    reason: Text = ""


class Schedule(_Struct, kw_only=True, frozen=True):
    """An assignment for one offer: which profile, when, and how much per slot.

    ``version`` grows with every re-plan; a receiver keeps the highest version and treats a
    redelivered one as a no-op. ``profile`` indexes :func:`protocol.effective_profiles`.
    ``offer_revision`` is the revision of the offer the plan was made for, so an agent that
    has since updated its offer can say why a schedule no longer fits (added in 1.1; 0 from
    older senders)."""

    offer_id: Id
    version: Annotated[int, Meta(ge=1, le=2**53)]
    start: Epoch
    profile: NonNegInt = 0
    energy_kwh: list[Kwh]
    issued_at: Epoch | None = None
    offer_revision: NonNegInt = 0


class MeterReading(Struct, array_like=True, frozen=True, gc=False):
    """``[device, start, duration_s, energy_kwh, offer_id]``: energy metered over an interval.

    ``device`` and ``offer_id`` are ids like everywhere else, but their characters are checked
    once per distinct value in :func:`protocol.validate_meter_batch`, not once per reading:
    a batch repeats the same few ids, and the pattern check is most of a reading's cost."""

    device: Annotated[str, Meta(min_length=1, max_length=128)]
    start: Epoch
    duration_s: Annotated[int, Meta(ge=1, le=86_400)]
    energy_kwh: Kwh
    offer_id: Annotated[str, Meta(max_length=128)] = ""


class MeterBatch(_Struct, kw_only=True, frozen=True):
    """Readings sent together; ``seq`` counts batches per agent so gaps can be spotted."""

    agent: Id
    seq: NonNegInt = 0
    readings: list[MeterReading]


class Reason(_Struct, kw_only=True, frozen=True):
    """Why something was refused: a short machine code, the field concerned, and prose."""

    code: Name
    field: Text = ""
    message: Text = ""


class QuarantinedReading(_Struct, kw_only=True, frozen=True):
    """A reading of an acknowledged meter batch that the receiver set aside instead of
    keeping (implausible, an unknown device, in the future), with why (protocol 1.3)."""

    device: Annotated[str, Meta(min_length=1, max_length=128)]
    start: Epoch
    code: Name
    message: Text = ""


class Ack(_Struct, kw_only=True, frozen=True):
    """A message was accepted. ``ref_kind`` and ``ref_id`` name what is acknowledged
    (an offer id and its revision, or a schedule's offer id and version).

    ``quarantined`` (protocol 1.3; empty from older senders) lists the readings of an
    acknowledged meter batch that were set aside rather than kept: the batch's other
    readings are kept, so one implausible reading no longer costs the whole batch."""

    ref_kind: Name
    ref_id: Id
    revision: NonNegInt = 0
    fman_id: Text = ""
    quarantined: list[QuarantinedReading] = []


class Reject(_Struct, kw_only=True, frozen=True):
    """A message was refused, with every reason found."""

    ref_kind: Name
    ref_id: Text
    revision: NonNegInt = 0
    reasons: list[Reason]


class Status(_Struct, kw_only=True, frozen=True):
    """Agent liveness, retained on the status topic and used as the Last Will."""

    agent: Id
    state: Literal["online", "offline"]
    since: Epoch | None = None
    version: Name = ""
    health: dict[str, int | float | str | bool] = {}
    #: The ids of the devices the agent runs (protocol 1.2; empty: not said). FMAN refuses an
    #: offer for a device the agent has not announced, as a plausibility check.
    devices: list[Id] = []


# request/response live in their own module (protocol 1.4); they build on the types above
from ._request import Request, Response  # noqa: E402


def _market_kinds() -> dict[str, type[Struct]]:
    """The market's kinds (protocol 1.4), kept in their own module; it imports this one's
    field types, so it is loaded once they are defined."""
    from ._market import MARKET_KINDS

    return MARKET_KINDS


#: Message body types, keyed by the envelope's ``kind``.
KINDS: dict[str, type[Struct]] = {
    "offer": FlexOffer,
    "offer.delete": Withdraw,
    "schedule": Schedule,
    "meter": MeterBatch,
    "ack": Ack,
    "reject": Reject,
    "status": Status,
    "request": Request,
    "response": Response,
}
KINDS.update(_market_kinds())
KIND_OF: dict[type[Struct], str] = {cls: kind for kind, cls in KINDS.items()}
