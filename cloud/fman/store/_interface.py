"""The store's interface: named reads (:class:`StoreReader`) and, for workers, named writes in
transactions (:class:`Store`). FMAN, the operator commands and the demo use these methods
only; every SQL statement lives behind them, in one implementation per database."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, Self

from ._market import MarketBid, MarketGate, MarketWon
from ._rows import (
    ACCEPTED_STATES,
    OPEN_STATES,
    AgentStatus,
    AgentSummary,
    Announcement,
    ContractVersion,
    Counts,
    ExecutionSlot,
    IngestLog,
    LedgerTransaction,
    LoggedMessage,
    MarketAward,
    MessageKey,
    NewSchedule,
    OfferHead,
    OfferReadings,
    OfferRecord,
    OfferStateChange,
    OfferSummary,
    OfferVerdict,
    PortfolioOffer,
    Quarantined,
    Reading,
    ReadingSpan,
    ReviewItem,
    ScheduleAnswer,
    ScheduleKey,
    SettlementRun,
    SettlementSlot,
    SettlementWrite,
    StoredBill,
    StoredOffer,
    StoredSchedule,
)


class StoreReader(Protocol):
    """What can be asked of the store without changing it. A read-only reader
    (:func:`~cloud.fman.store.open_reader`) implements this alone: it never takes the write
    lock, never migrates and never creates anything."""

    #: the database, for messages and logs (never with a password)
    where: str

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None:
        """Closes the connection."""
        ...

    def schema_version(self) -> int:
        """The version of the database's schema (the last migration step applied)."""
        ...

    # -- what ingest asks ----------------------------------------------------------------

    def seen_messages(self, keys: Collection[MessageKey]) -> dict[MessageKey, LoggedMessage]:
        """Ingest-log rows of the messages among ``keys`` already processed."""
        ...

    def offer_heads(self, ids: Collection[str]) -> dict[str, OfferHead]: ...

    def open_offer_counts(self, issuers: Collection[str]) -> dict[str, int]:
        """Offers in an open state per issuer (issuers with none are left out)."""
        ...

    def announced_devices(self, agents: Collection[str]) -> dict[str, Announcement]:
        """The devices each of ``agents`` last announced (left out: never announced)."""
        ...

    # -- what the planning cycle asks ----------------------------------------------------

    def counter(self, key: str) -> int:
        """A change counter (see :meth:`Store.bump`); 0 if never bumped."""
        ...

    def unscheduled_before(self, deadline: float) -> bool:
        """Whether an accepted offer without a schedule has its deadline before ``deadline``."""
        ...

    def offers_in(
        self, states: Collection[str], *, deadline_after: float | None = None
    ) -> list[StoredOffer]:
        """Offers in ``states`` (with payload), optionally only those whose assignment
        deadline is later than ``deadline_after``."""
        ...

    def offer(self, offer_id: str) -> StoredOffer | None: ...

    def offer_payloads(self, ids: Collection[str]) -> dict[str, bytes]:
        """The encoded offer message of each of ``ids`` that has one (tombstones do not)."""
        ...

    def current_schedules(
        self, offer_ids: Collection[str] | None = None
    ) -> dict[str, StoredSchedule]:
        """The schedule in force of each offer (of ``offer_ids``, or all) that has one."""
        ...

    def refused_current(self) -> list[StoredSchedule]:
        """Schedules in force that their agent refused, or that were too late to send."""
        ...

    def unsent_schedules(self, *, resend_before: float, now: float) -> list[StoredSchedule]:
        """Schedules in force not yet handed to the broker, or sent before ``resend_before``
        (wall time) and unanswered: while their offer's deadline is after ``now`` (the
        worker's clock), and after it while the offer is still assigned or executing and its
        agent online (the agent took the schedule or not; its answer was lost, and FMAN must
        hear it to agree with the agent on what runs). With the deadline."""
        ...

    def readings_of(
        self, *, offer_id: str, agent: str, device: str, start: int, end: int
    ) -> OfferReadings:
        """Readings tagged with the offer, and untagged ones of its device in ``[start, end)``."""
        ...

    def series(self, name: str) -> dict[int, float]: ...

    def lease_holder(self, name: str) -> str | None:
        """Who holds lease ``name`` (expired or not), if anybody."""
        ...

    # -- what reports, the operator commands and the demo ask ----------------------------

    def list_offers(
        self,
        *,
        agent: str | None = None,
        states: Collection[str] = (),
        start_from: int | None = None,
        start_to: int | None = None,
        limit: int = 1000,
    ) -> list[OfferSummary]:
        """Offers (tombstones left out), latest start window first; ``start_from`` and
        ``start_to`` keep those whose start window overlaps ``[start_from, start_to]``."""
        ...

    def count_offers(
        self,
        *,
        agent: str | None = None,
        states: Collection[str] = (),
        start_from: int | None = None,
        start_to: int | None = None,
    ) -> int:
        """How many offers :meth:`list_offers` would list without a limit."""
        ...

    def schedules(
        self,
        *,
        offer_id: str | None = None,
        agent: str | None = None,
        status: str | None = None,
        all_versions: bool = False,
        limit: int = 1000,
    ) -> list[StoredSchedule]:
        """Schedules in force (or every version), by start, offer and version."""
        ...

    def count_schedules(
        self,
        *,
        offer_id: str | None = None,
        agent: str | None = None,
        status: str | None = None,
        all_versions: bool = False,
    ) -> int:
        """How many schedules :meth:`schedules` would list without a limit."""
        ...

    def execution_of(self, offer_id: str) -> list[ExecutionSlot]:
        """The execution check of one offer, by slot."""
        ...

    def agents(self) -> list[AgentSummary]: ...

    def portfolio_offers(
        self,
        states: Collection[str] = ACCEPTED_STATES,
        *,
        agent: str | None = None,
        window: tuple[int | None, int | None] = (None, None),
    ) -> list[PortfolioOffer]:
        """Offers in ``states`` with their schedule in force, of ``agent`` (or all): what
        an agent's aggregated series are made of. With a ``window`` ``(start, end)``, only
        the offers whose delivery window (earliest start to latest start plus the longest
        profile) meets it."""
        ...

    def latest_delivery_end(self) -> int | None:
        """When the latest delivery window of any offer ends (``None`` without offers): where
        a view of the portfolio's recent days ends."""
        ...

    def portfolio_readings(
        self,
        states: Collection[str] = ACCEPTED_STATES,
        *,
        window: tuple[int | None, int | None] = (None, None),
    ) -> list[ReadingSpan]:
        """Readings of the offers in ``states``: tagged with the offer, or untagged ones of
        its device during its schedule in force; within ``window`` if given (a reading that
        overlaps it counts)."""
        ...

    def readings(
        self,
        *,
        agent: str | None = None,
        device: str | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int = 1000,
    ) -> list[Reading]:
        """Readings kept, by agent, device and start, optionally of one agent or device and
        starting in ``[start, end)``."""
        ...

    def count_readings(
        self,
        *,
        agent: str | None = None,
        device: str | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> int:
        """How many readings :meth:`readings` would list without a limit."""
        ...

    def quarantined(
        self, *, agent: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Quarantined]:
        """Readings ingest set aside, newest first, optionally of one agent and received at
        or after ``since`` (the worker's clock)."""
        ...

    def counts(self) -> Counts: ...

    def ingest_log(self) -> IngestLog: ...

    def stats(self) -> dict[str, dict[str, float]]:
        """Each worker's counters, as it last wrote them."""
        ...

    # -- settlement ----------------------------------------------------------------------

    def contracts(self, contract_id: str | None = None) -> list[ContractVersion]:
        """Every version of every contract (or of ``contract_id``), by id and version."""
        ...

    def delivered_offers(
        self, *, start: int, end: int, states: Collection[str] = ("executed", "settled")
    ) -> list[StoredOffer]:
        """Offers in ``states`` whose start window overlaps ``[start, end)``: those that can
        have been delivered in a period (the settlement core keeps the ones that were)."""
        ...

    def readings_between(
        self, *, start: int, end: int, agents: Collection[str] | None = None
    ) -> list[Reading]:
        """Readings that start in ``[start, end)``, of ``agents`` (or all)."""
        ...

    def quarantined_between(
        self, *, start: int, end: int, agents: Collection[str] | None = None
    ) -> list[Quarantined]:
        """Readings set aside whose interval starts in ``[start, end)``, of ``agents``."""
        ...

    def ledger(
        self,
        *,
        day_from: str | None = None,
        day_to: str | None = None,
        account: str | None = None,
    ) -> list[LedgerTransaction]:
        """Ledger transactions of the delivery days ``[day_from, day_to]`` (inclusive,
        ``YYYY-MM-DD``), optionally only those with a posting on ``account``; by key."""
        ...

    def settlement_runs(self, period: str | None = None) -> list[SettlementRun]:
        """Runs, oldest first."""
        ...

    def offer_verdicts(
        self, *, period: str | None = None, status: str | None = None
    ) -> list[OfferVerdict]: ...

    def settlement_slots(self, *, start: int, end: int) -> list[SettlementSlot]:
        """Slot rows of evaluated offers with their slot in ``[start, end)``."""
        ...

    def late_readings(self, period: str) -> list[str]:
        """Offers of ``period`` settled before a reading of their device within their slots
        arrived: a run evaluates them again."""
        ...

    def bills(self, *, period: str, party: str | None = None) -> list[StoredBill]:
        """The latest bill of each party (or of ``party``) for ``period``."""
        ...

    def review_items(self, *, status: str | None = None) -> list[ReviewItem]: ...

    def market_awards(self, start: int, end: int) -> list[MarketAward]:
        """The awards of market slots that start in ``[start, end)``, ordered by market,
        gate, aggregate, offer and slot."""
        ...

    # -- market bidding (:mod:`._market`) --------------------------------------------------

    def market_gates(
        self, market: str | None = None, *, result_state: str | None = None
    ) -> list[MarketGate]: ...

    def market_bids(
        self, market: str | None = None, gate: str | None = None, *, waiting: bool = False
    ) -> list[MarketBid]: ...

    def market_members(self, since: int = 0) -> set[str]: ...

    def market_won(self, market: str | None = None) -> list[MarketWon]: ...


class Store(StoreReader, Protocol):
    """The reads and the writes of one connection; open one per thread.

    Writes happen in :meth:`write` transactions; a write method called outside one runs in
    a transaction of its own. Nested :meth:`write` calls join the outer transaction."""

    #: wall seconds spent waiting for, and holding, write transactions (the workers' counters)
    lock_wait_s: float
    lock_held_s: float

    def write(self, *, offers: Collection[str] | None = None) -> AbstractContextManager[Store]:
        """A write transaction: commits on success, rolls back on any exception.

        Without ``offers`` it excludes every other writer. Ingest names the offers its batch
        decides about (none, for a batch of readings): then it excludes only the writers of
        the same offers and the exclusive ones, so on a server database batches about other
        offers commit side by side. (SQLite has one writer whatever is named.)"""
        ...

    # -- ingest ----------------------------------------------------------------------------

    def log_messages(self, rows: Sequence[LoggedMessage]) -> int:
        """Log processed messages; returns how many were new (a message already logged is
        left as it was)."""
        ...

    def put_offers(self, rows: Iterable[OfferRecord]) -> None:
        """Insert or replace offers; the caller has decided each is newer than the stored one.
        What FMAN added (schedule in force, execution summary) stays."""
        ...

    def set_offer_states(self, rows: Iterable[OfferStateChange]) -> None: ...

    def bump(self, key: str) -> None:
        """Count a change of ``key``, so the planning cycle of any worker sees that offers
        changed without scanning them."""
        ...

    def put_readings(self, rows: Iterable[Reading]) -> None: ...

    def put_quarantined(self, rows: Iterable[Quarantined]) -> None:
        """Keep readings set aside, with their reasons; one sent again replaces itself."""
        ...

    def put_statuses(self, rows: Iterable[AgentStatus]) -> None:
        """Keep statuses: one older than the stored one changes nothing, except the Last Will,
        which counts if it is not older than the stored session's ``since`` (the broker
        dates it from the connection's start, before the session's health refreshes)."""
        ...

    def answer_schedules(self, rows: Iterable[ScheduleAnswer]) -> int:
        """Record agents' answers; returns how many matched a schedule of their own."""
        ...

    def put_series(self, name: str, values: Mapping[int, float]) -> None: ...

    # -- the planning cycle ----------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, *, ttl_s: float) -> bool:
        """Take or renew lease ``name`` for ``holder`` for ``ttl_s`` seconds of the database's
        clock, if it is free, expired or already ``holder``'s."""
        ...

    def release_lease(self, name: str, holder: str) -> None: ...

    def add_schedules(
        self,
        rows: Sequence[NewSchedule],
        *,
        now: float,
        holder: str | None = None,
        status: str = "pending",
        states: Collection[str] = OPEN_STATES,
    ) -> list[StoredSchedule]:
        """Store new schedules as the next version of each offer, in one transaction, and make
        them the schedules in force (an open offer becomes ``assigned``).

        A row whose offer changed revision or left ``states`` since it was planned is skipped.
        With ``holder``, nothing is written unless ``holder`` holds the ``planner`` lease (a
        fence against a paused ex-leader); the rows record ``holder`` as their worker."""
        ...

    def fall_back(self, offer_id: str, refused_version: int) -> int:
        """Make the newest version the agent acknowledged before ``refused_version`` the one
        in force; returns it, or 0 if there is none."""
        ...

    def mark_sent(self, keys: Iterable[ScheduleKey], at: float) -> None: ...

    def mark_late(self, keys: Iterable[ScheduleKey], at: float) -> None:
        """Schedules never sent because they could no longer reach their agent in time."""
        ...

    def mark_executing(self, offer_ids: Iterable[str], *, at: float) -> None:
        """Accepted or assigned offers whose schedule (or default) has started."""
        ...

    def move_schedule(self, key: ScheduleKey, start: int) -> None:
        """Correct the start of an implicit schedule to the one its agent ran."""
        ...

    def put_execution(self, offer_id: str, rows: Sequence[ExecutionSlot]) -> None:
        """Replace the execution check of one offer."""
        ...

    def set_execution_summary(
        self, offer_id: str, *, metered: int, flagged: int, executed_at: float | None
    ) -> None:
        """Count metered and deviating slots; with ``executed_at``, an executing offer
        becomes ``executed``."""
        ...

    # -- counters --------------------------------------------------------------------------

    def put_stats(self, worker: str, values: Mapping[str, float], *, at: float) -> None: ...

    # -- settlement --------------------------------------------------------------------------

    def add_contract(self, row: ContractVersion) -> bool:
        """Keep a contract version; ``False`` if that ``(id, version)`` is already kept (the
        caller checks it is the same content: a version is never edited)."""
        ...

    def record_settlement(self, row: SettlementWrite) -> None:
        """Write what a run decided, in one transaction: its run row, new ledger transactions
        (a key already kept is an error: corrections have keys of their own), the verdicts
        and slot rows of the offers it evaluated (replacing earlier ones), the offers it
        settled moved from ``executed`` to ``settled`` (and their review items marked
        settled), the offers it held put up for review, and the bills it issued."""
        ...

    def release_review(self, offer_ids: Collection[str], *, at: float, note: str = "") -> int:
        """Mark held offers as reviewed, so the next run settles them; returns how many."""
        ...

    def add_market_awards(self, rows: Iterable[MarketAward]) -> int:
        """Keep what markets awarded the member offers; returns how many rows were new. A row
        whose (market, gate, offer, slot) is kept already changes nothing: a market's result
        at a gate is final, and FMAN may write it again after a restart."""
        ...

    # -- market bidding (:mod:`._market`) --------------------------------------------------

    def claim_market_gate(self, gate: MarketGate, bids: Sequence[MarketBid]) -> bool:
        """Record the bids of a gate unless a worker already bid in it (``False``)."""
        ...

    def mark_bids_sent(self, market: str, gate: str, ids: Sequence[str], at: float) -> None: ...

    def answer_bid(
        self, market: str, gate: str, aggregate_id: str, *, accepted: bool, reason: str, at: float
    ) -> bool: ...

    def put_market_result(self, market: str, gate: str, payload: str, *, at: float) -> str:
        """``stored``, ``duplicate`` or ``unknown`` (no bid in that gate)."""
        ...

    def settle_market_result(
        self, market: str, gate: str, *, state: str, note: str, won: Sequence[MarketWon]
    ) -> bool: ...
