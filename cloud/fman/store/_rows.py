"""The typed rows that cross the store's interface, in and out.

Frozen, keyword-built value objects: a caller names every field it sets, and reads fields by
name, never by position. They carry Python values (lists, dicts, bytes); how a value is laid
out in a table (JSON text, say) is the store's business. A new table brings its own row types
here, next to the methods that read and write them (see the package docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Offer states in which the offer still awaits or may change its schedule.
OPEN_STATES = ("offered", "accepted", "assigned")
#: Offer states that count as "accepted by FMAN" for the planning cycle and reports.
ACCEPTED_STATES = ("accepted", "assigned", "executing", "executed", "settled")
#: Offer states the planning cycle follows (plans, starts, judges).
ACTIVE_STATES = ("accepted", "assigned", "executing")


# -- offers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferHead:
    """What a decision about an incoming offer needs to know about the stored one."""

    id: str
    issuer: str
    revision: int
    state: str
    assignment_before: int
    schedule_version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferRecord:
    """An offer as ingest decided to keep it: inserted, or replacing the stored revision.

    A withdrawal of an offer not (yet) known leaves a tombstone: revision -1, state
    ``withdrawn``, and none of the offer's own fields."""

    id: str
    issuer: str
    revision: int
    state: str
    reason: str = ""
    received_at: float
    updated_at: float
    worker: str
    device: str | None = None
    load_type: str | None = None
    grid_node: str | None = None
    mode: str | None = None
    created_at: int | None = None
    acceptance_before: int | None = None
    assignment_before: int | None = None
    start_after: int | None = None
    start_before: int | None = None
    n_slots: int | None = None
    resolution_s: int | None = None
    #: the offer as it came over the wire (MessagePack), decoded again where needed
    payload: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredOffer(OfferRecord):
    """An offer with what FMAN added: the schedule in force and the execution summary."""

    schedule_version: int = 0
    metered_slots: int = 0
    flagged_slots: int = 0
    executed_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferStateChange:
    """A stored offer moved to ``state`` by ingest (a withdrawal), with the reason."""

    offer_id: str
    state: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferSummary:
    """One line of ``atp offers list``."""

    id: str
    issuer: str
    device: str | None
    load_type: str | None
    grid_node: str | None
    state: str
    revision: int
    start_after: int | None
    start_before: int | None
    assignment_before: int | None
    schedule_version: int
    metered_slots: int
    flagged_slots: int
    reason: str


# -- schedules -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleKey:
    offer_id: str
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NewSchedule:
    """A schedule the planning cycle decided on, to be stored as the offer's next version."""

    offer_id: str
    issuer: str
    #: the offer revision it was planned for; not stored if the offer has moved on since
    offer_revision: int
    start: int
    profile: int
    energy_kwh: list[float]
    #: ``planned`` or ``default``
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSchedule:
    offer_id: str
    issuer: str
    version: int
    start: int
    profile: int
    energy_kwh: list[float]
    kind: str
    #: ``pending``, ``sent``, ``acked``, ``rejected``, ``superseded``, ``late``, ``implicit``
    status: str
    #: the offer revision the schedule was made for (``Schedule.offer_revision``)
    offer_revision: int = 0
    #: the offer's ``assignment_before`` (where the read joins the offer; else 0)
    deadline: int = 0
    #: the agent's reasons for refusing it (JSON), if it did
    reason: str = ""
    #: whether it is the offer's schedule in force
    in_force: bool = True
    #: the worker that issued it (empty for schedules older than that record)
    worker: str = ""
    #: when it was issued, on the worker's clock
    created_at: float = 0.0

    @property
    def key(self) -> ScheduleKey:
        return ScheduleKey(offer_id=self.offer_id, version=self.version)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleAnswer:
    """An agent's answer to a schedule version: ``acked`` or ``rejected`` (with reasons)."""

    offer_id: str
    version: int
    #: the sender: only the offer's issuer can answer for it
    issuer: str
    status: str
    reason: str
    at: float


# -- ingest log, readings, agents ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageKey:
    agent: str
    msg_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedMessage:
    """One processed message in the ingest log, with the answer it got."""

    agent: str
    msg_id: str
    channel: str
    ref_id: str
    revision: int
    #: ``ack`` or ``reject``
    outcome: str
    #: the reject's reasons (JSON), empty for an ack
    reasons: str
    worker: str
    at: float

    @property
    def key(self) -> MessageKey:
        return MessageKey(agent=self.agent, msg_id=self.msg_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """A meter reading as stored; a redelivered one overwrites itself with the same values."""

    agent: str
    device: str
    start: int
    duration_s: int
    energy_kwh: float
    #: the offer the agent ran when it metered, empty if none
    offer_id: str
    received_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarantined:
    """A reading ingest set aside instead of keeping (implausible, an unknown device, in the
    future), with the reason; the agent was told in its meter batch's ack. One sent again
    replaces itself."""

    agent: str
    device: str
    start: int
    duration_s: int
    energy_kwh: float
    #: the offer the agent ran when it metered, empty if none
    offer_id: str
    #: the reason's code (``implausible``, ``unknown_device``, ``reading_in_future``)
    code: str
    message: str
    #: the meter batch it came in
    msg_id: str
    #: when it came, on the worker's clock
    received_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingSpan:
    """Energy over an interval: what the execution check and the portfolio sum per slot."""

    start: int
    duration_s: int
    energy_kwh: float


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferReadings:
    """The readings of one offer: tagged with it, and untagged ones of its device during
    its schedule."""

    tagged: list[ReadingSpan]
    untagged: list[ReadingSpan]


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus:
    """An agent's retained status as ingest keeps it."""

    agent: str
    state: str
    since: int | None
    #: the status message's own time (its envelope ``ts``)
    status_ts: int
    seen_at: float
    version: str
    health: dict[str, Any] = field(default_factory=dict)
    #: the devices it announced; ``None`` (a Last Will) keeps those announced before
    devices: list[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """The devices an agent last announced, and the time of that status."""

    devices: frozenset[str]
    status_ts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSummary:
    """One line of ``atp agents list``."""

    agent: str
    state: str | None
    since: int | None
    seen_at: float | None
    version: str | None
    devices: int
    offers: int
    active: int


# -- execution, portfolio, counts ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionSlot:
    """One slot of an offer's execution check."""

    slot: int
    scheduled_kwh: float
    baseline_kwh: float
    metered_kwh: float | None
    flagged: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioOffer:
    """An accepted offer (its wire payload) with its schedule in force, if any."""

    offer_id: str
    payload: bytes
    schedule_start: int | None
    schedule_energy_kwh: list[float] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """Headline numbers of the store."""

    #: offers per state (tombstones left out)
    offers: dict[str, int]
    #: schedules in force per status
    schedules_in_force: dict[str, int]
    #: every schedule version per status
    schedule_versions_by_status: dict[str, int]
    readings: int
    schedule_versions: int
    agents: int
    online: int
    offer_rejects: int
    #: executed offers with at least one metered slot
    executed_metered: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestLog:
    """The ingest log in figures: messages processed, by whom, and over which (wall) time."""

    messages: int
    per_worker: dict[str, int]
    first_at: float | None
    last_at: float | None


# -- settlement ------------------------------------------------------------------------------
#
# The store keeps what :mod:`cloud.settle` decides without importing it: contract documents
# and verdicts as JSON text, the ledger as its columns. ``cloud.fman.settlement`` converts.


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractVersion:
    """One version of one contract, never edited: a change or an end is a new version."""

    id: str
    version: int
    party: str
    valid_from: int
    valid_until: int | None
    mode: str
    #: the whole contract as JSON (``cloud.settle.contract_to_dict``)
    document: str
    #: when it was added, on the adder's clock
    added_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketAward:
    """What a market awarded one member offer in one market slot at one gate: the member's
    part of the deviation an aggregate (or the offer alone) was awarded, as disaggregation
    gave it. FMAN writes these from the market's results; settlement pays them.

    A market's result at a gate is final: a row once stored is never changed (adding it
    again changes nothing)."""

    market: str
    #: the gate's start, epoch s
    gate_start: int
    offer_id: str
    #: the market slot's start, epoch s
    slot_start: int
    #: signed awarded deviation from the default this member carries in the slot (+ = up)
    kwh: float
    #: what the market pays per kWh of that deviation: the uniform clearing price, or the
    #: order's ask under pay-as-bid
    price_eur_per_kwh: float
    #: the order (aggregate) the award was made to; the offer's id for an offer alone
    aggregate_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PostingRow:
    account: str
    amount_cents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerTransaction:
    """A ledger transaction with its postings (they sum to zero; the settlement core checks
    that before anything is written). ``rate`` is the exact decimal as text, empty if none."""

    key: str
    base: str
    kind: str
    day: str
    booked_at: int
    account: str
    offer_id: str = ""
    award: str = ""
    contract_id: str = ""
    contract_version: int = 0
    quantity: int = 0
    unit: str = ""
    rate: str = ""
    memo: str = ""
    #: the settlement run that wrote it
    run_id: str
    postings: tuple[PostingRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementRun:
    """One settlement run over a period, and what it did."""

    id: str
    period: str
    start: int
    end: int
    tz: str
    #: the run's clock: the booking time of what it wrote
    booked_at: int
    evaluated: int
    settled: int
    held: int
    skipped: int
    transactions: int
    #: wall time it was recorded
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferVerdict:
    """The latest settlement verdict on one offer (``settled`` or ``held``), as JSON."""

    offer_id: str
    period: str
    agent: str
    device: str
    status: str
    day: str
    #: the offer's slots: the first, and the end of the last
    first_slot: int
    end: int
    document: str
    run_id: str
    evaluated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementSlot:
    """One slot of one evaluated offer in Wh: the row the KPIs are computed from."""

    offer_id: str
    start: int
    resolution_s: int
    default_wh: int
    baseline_wh: int
    scheduled_wh: int
    metered_wh: int | None
    delivered_wh: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBill:
    """A bill as a run issued it (the JSON of ``cloud.settle.bill_json``); a run that changes
    a party's ledger issues a new one, the earlier ones stay."""

    party: str
    period: str
    run_id: str
    issued_at: int
    total_cents: int
    document: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewItem:
    """An offer whose settlement is held for review, with the reasons; ``released`` by an
    operator (the next run settles it), or ``settled`` once a run has."""

    offer_id: str
    period: str
    agent: str
    device: str
    reasons: tuple[str, ...]
    #: ``held``, ``released`` or ``settled``
    status: str
    held_at: float
    run_id: str
    released_at: float | None = None
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementWrite:
    """Everything one settlement run writes, in one transaction."""

    run: SettlementRun
    transactions: tuple[LedgerTransaction, ...]
    verdicts: tuple[OfferVerdict, ...]
    slots: tuple[SettlementSlot, ...]
    #: offers to move from ``executed`` to ``settled``
    settled: tuple[str, ...]
    #: offers held by this run (their review rows are kept or refreshed)
    held: tuple[ReviewItem, ...]
    bills: tuple[StoredBill, ...]
