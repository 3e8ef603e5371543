"""The market service's durable state: markets, gates, orders and results.

The same pattern as FMAN's store, on a smaller scale: a typed interface
(:class:`MarketStore`, :class:`MarketReader`) over frozen rows, the statements written once
(:mod:`._sql`) for an SQLite file (the default) and PostgreSQL, and a versioned schema applied
when a writer opens the store. Two rules the service relies on:

- **Stored before acknowledged.** :meth:`~MarketStore.add_order` commits an order (with the
  check that its gate is still open) before the service answers its sender.
- **Cleared once.** :meth:`~MarketStore.record_result` changes the gate to ``cleared`` and
  writes its result in one transaction, and does nothing for a gate already cleared; a
  service killed in mid-clearing finds the gate ``closed`` without a result and clears it
  again, and the result is published after the commit (again at start if it was not).
"""

from __future__ import annotations

from pathlib import Path

from ...fman.store import check_location, is_postgres
from .._errors import MarketStoreError
from ._interface import (
    AddOutcome,
    CongestionRow,
    ControlRow,
    GateRow,
    GateState,
    MarketReader,
    MarketRow,
    MarketState,
    MarketStore,
    OrderRow,
    ResultRow,
)
from ._sql import LATEST as SCHEMA_VERSION
from ._sql import SqlMarketStore

__all__ = [
    "SCHEMA_VERSION",
    "AddOutcome",
    "CongestionRow",
    "ControlRow",
    "GateRow",
    "GateState",
    "MarketReader",
    "MarketRow",
    "MarketState",
    "MarketStore",
    "OrderRow",
    "ResultRow",
    "SqlMarketStore",
    "open_market_store",
]


def open_market_store(location: str | Path, *, readonly: bool = False) -> SqlMarketStore:
    """The store at ``location``: a file path (SQLite) or a ``postgresql://`` URL. A writer
    creates and migrates it; a reader (``readonly``) refuses one that is missing."""
    where = str(location)
    problem = check_location(where)
    if problem:
        raise MarketStoreError(problem)
    if is_postgres(where):
        from ._postgres import PostgresMarketStore

        return PostgresMarketStore(url=where, readonly=readonly)
    from ._sqlite import SqliteMarketStore

    return SqliteMarketStore(path=where, readonly=readonly)
