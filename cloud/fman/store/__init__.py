"""FMAN's durable state behind one typed interface: agents, offers and their states,
versioned schedules, meter readings, the ingest log, the execution check, objective series,
the planner lease and the workers' counters.

Two implementations: one SQLite file (the default, embedded, for the workers of one host and
the demo) and PostgreSQL (for workers on several hosts). :func:`open_store` picks one from
where the store is (a path or a ``postgresql://`` URL); :func:`open_reader` opens either
read-only, for the operator commands and reports.

Why it is built so:

- **Named methods over typed rows.** Callers say what they want (``offer_heads``,
  ``add_schedules``, ``counts``) and get frozen rows (:mod:`._rows`); no caller writes SQL or
  indexes a tuple. Every statement is in :mod:`._sql`, written once for both databases, so
  the same test suite runs against each.
- **Stored before acknowledged.** Ingest writes a batch in one transaction and acknowledges
  its messages to the broker only after the commit; a crash loses nothing committed.
  ``synchronous = "full"`` makes SQLite's commits survive a power cut too; PostgreSQL's
  durability is the server's (``synchronous_commit``, on by default).
- **Versioned schema.** :mod:`._migrations` is an ordered list of steps; every database
  records the steps applied, and a worker applies the missing ones at start.

Adding a table (markets, settlement, the web interface): append a migration step that
creates it; add its row types to :mod:`._rows`; declare its reads in :class:`StoreReader`
and its writes in :class:`Store`; write their SQL once in :class:`~._sql.SqlStore` (a method
only one database can do well is overridden in that database's class); add cases to the
store's test suite, which runs them on both databases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .._errors import StoreError
from ._interface import Store, StoreReader
from ._market import MarketBid, MarketGate, MarketWon
from ._migrations import LATEST as SCHEMA_VERSION
from ._rows import (
    ACCEPTED_STATES,
    ACTIVE_STATES,
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
    PostingRow,
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
from ._url import check as check_location
from ._url import describe, is_postgres

__all__ = [
    "ACCEPTED_STATES",
    "ACTIVE_STATES",
    "OPEN_STATES",
    "SCHEMA_VERSION",
    "AgentStatus",
    "AgentSummary",
    "Announcement",
    "ContractVersion",
    "Counts",
    "ExecutionSlot",
    "IngestLog",
    "LedgerTransaction",
    "LoggedMessage",
    "MarketAward",
    "MarketBid",
    "MarketGate",
    "MarketWon",
    "MessageKey",
    "NewSchedule",
    "OfferHead",
    "OfferReadings",
    "OfferRecord",
    "OfferStateChange",
    "OfferSummary",
    "OfferVerdict",
    "PortfolioOffer",
    "PostingRow",
    "Quarantined",
    "Reading",
    "ReadingSpan",
    "ReviewItem",
    "ScheduleAnswer",
    "ScheduleKey",
    "SettlementRun",
    "SettlementSlot",
    "SettlementWrite",
    "Store",
    "StoreError",
    "StoreReader",
    "StoredBill",
    "StoredOffer",
    "StoredSchedule",
    "check_location",
    "describe",
    "is_postgres",
    "open_reader",
    "open_store",
]


def open_store(location: str | Path, *, synchronous: Literal["normal", "full"] = "normal") -> Store:
    """A connection for a worker (one per thread): the database is created or migrated to
    :data:`SCHEMA_VERSION` first. ``synchronous`` applies to SQLite."""
    where = str(location)
    problem = check_location(where)
    if problem:
        raise StoreError(f"store {describe(where)}: {problem}")
    if is_postgres(where):
        return _postgres_store()(url=where)
    from ._sqlite import SqliteStore

    return SqliteStore(path=where, synchronous=synchronous)


def open_reader(location: str | Path) -> StoreReader:
    """A read-only connection: takes no write lock, creates and migrates nothing, and refuses
    a database that does not exist or is not at :data:`SCHEMA_VERSION`."""
    where = str(location)
    problem = check_location(where)
    if problem:
        raise StoreError(f"store {describe(where)}: {problem}")
    if is_postgres(where):
        return _postgres_store()(url=where, readonly=True)
    from ._sqlite import SqliteStore

    return SqliteStore(path=where, readonly=True)


def _postgres_store() -> type:
    try:
        from ._postgres import PostgresStore
    except ImportError as exc:  # psycopg comes with the cloud extra
        raise StoreError(
            f"PostgreSQL needs psycopg ({exc.name} is missing): pip install 'atp-flex[cloud]'"
        ) from None
    return PostgresStore
