"""The market store's schema and statements, written once for SQLite and PostgreSQL.

The tables carry a ``market_`` prefix and their own version table, so the market may share
a PostgreSQL database with FMAN without either's migrations touching the other's tables.
Statements use ``?`` placeholders; the PostgreSQL class turns them into ``%s``. To change the
schema, append a step to :data:`STEPS`; never edit one that has shipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import MarketStoreError
from ._interface import (
    AddOutcome,
    CongestionRow,
    ControlRow,
    GateRow,
    GateState,
    MarketRow,
    OrderRow,
    ResultRow,
)

Dialect = Literal["sqlite", "postgresql"]
Row = dict[str, Any]

TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"int": "INTEGER", "real": "REAL"},
    "postgresql": {"int": "BIGINT", "real": "DOUBLE PRECISION"},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    version: int
    description: str
    sql: tuple[str, ...]


STEPS: tuple[Step, ...] = (
    Step(
        version=1,
        description="markets, gates, orders and results",
        sql=(
            "CREATE TABLE market_markets (id TEXT PRIMARY KEY, config TEXT NOT NULL, "
            "updated_at {real} NOT NULL)",
            "CREATE TABLE market_gates (market TEXT NOT NULL, gate TEXT NOT NULL, "
            "opens_at {int} NOT NULL, closes_at {int} NOT NULL, delivery_start {int} NOT NULL, "
            "slots {int} NOT NULL, resolution_s {int} NOT NULL, state TEXT NOT NULL, "
            "changed_at {real} NOT NULL, PRIMARY KEY (market, gate))",
            "CREATE INDEX market_gates_state ON market_gates (state, closes_at)",
            "CREATE TABLE market_orders (market TEXT NOT NULL, gate TEXT NOT NULL, "
            "side TEXT NOT NULL, id TEXT NOT NULL, party TEXT NOT NULL, entry TEXT NOT NULL, "
            "received_at {real} NOT NULL, PRIMARY KEY (market, gate, id))",
            "CREATE TABLE market_results (market TEXT NOT NULL, gate TEXT NOT NULL, "
            "status TEXT NOT NULL, welfare_eur {real} NOT NULL, payload TEXT NOT NULL, "
            "cleared_at {real} NOT NULL, published {int} NOT NULL DEFAULT 0, "
            "PRIMARY KEY (market, gate))",
        ),
    ),
    Step(
        version=2,
        description="each gate's market configuration, operator control, DSO congestion",
        sql=(
            "ALTER TABLE market_gates ADD COLUMN config TEXT NOT NULL DEFAULT ''",
            "CREATE TABLE market_control (market TEXT PRIMARY KEY, state TEXT NOT NULL, "
            "changed_at {real} NOT NULL, note TEXT NOT NULL)",
            "CREATE TABLE market_congestion (market TEXT NOT NULL, id TEXT NOT NULL, "
            "party TEXT NOT NULL, node TEXT NOT NULL, start {int} NOT NULL, kwh TEXT NOT NULL, "
            "limit_eur TEXT NOT NULL, partial {int} NOT NULL, registered_at {real} NOT NULL, "
            "PRIMARY KEY (market, party, id))",
        ),
    ),
)
LATEST = STEPS[-1].version
VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS market_schema (version {int} PRIMARY KEY, "
    "description TEXT NOT NULL, applied_at {real} NOT NULL)"
)

_GATE_COLS = (
    "market, gate, opens_at, closes_at, delivery_start, slots, resolution_s, state, changed_at, "
    "config"
)
_CONGESTION_COLS = "market, id, party, node, start, kwh, limit_eur, partial, registered_at"
_ORDER_COLS = "market, gate, side, id, party, entry, received_at"
_RESULT_COLS = "market, gate, status, welfare_eur, payload, cleared_at, published"


class SqlMarketStore:
    """The statements; a subclass supplies the connection, transactions and ``_rows``."""

    dialect: Dialect
    where: str
    readonly: bool
    #: added to the read of a gate's state inside a write (PostgreSQL locks the row)
    _LOCK = ""

    # -- what a subclass provides ------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        raise NotImplementedError

    def write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- schema ------------------------------------------------------------------------------

    def _version(self) -> int:
        rows = self._rows("SELECT MAX(version) AS v FROM market_schema")
        return int(rows[0]["v"] or 0) if rows else 0

    def _migrate(self) -> None:
        with self.write():
            self._exec(VERSION_TABLE.format(**TYPES[self.dialect]))
            have = self._version()
            if have > LATEST:
                raise MarketStoreError(
                    f"{self.where}: market schema version {have} is newer than this "
                    f"program's {LATEST}; upgrade the program"
                )
            for step in STEPS:
                if step.version <= have:
                    continue
                for sql in step.sql:
                    self._exec(sql.format(**TYPES[self.dialect]))
                self._exec(
                    "INSERT INTO market_schema (version, description, applied_at) VALUES (?, ?, ?)",
                    (step.version, step.description, time.time()),
                )

    def schema_version(self) -> int:
        return self._version()

    # -- reads -------------------------------------------------------------------------------

    def markets(self) -> list[MarketRow]:
        rows = self._rows("SELECT id, config, updated_at FROM market_markets ORDER BY id")
        return [MarketRow(**r) for r in rows]

    def gate(self, market: str, gate: str) -> GateRow | None:
        rows = self._rows(
            f"SELECT {_GATE_COLS} FROM market_gates WHERE market = ? AND gate = ?", (market, gate)
        )
        return GateRow(**rows[0]) if rows else None

    def gates(
        self, market: str | None = None, *, states: tuple[GateState, ...] = ()
    ) -> list[GateRow]:
        where, params = [], []
        if market is not None:
            where.append("market = ?")
            params.append(market)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(states)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(
            f"SELECT {_GATE_COLS} FROM market_gates{clause} ORDER BY market, delivery_start",
            params,
        )
        return [GateRow(**r) for r in rows]

    def orders(self, market: str, gate: str) -> list[OrderRow]:
        rows = self._rows(
            f"SELECT {_ORDER_COLS} FROM market_orders WHERE market = ? AND gate = ? "
            "ORDER BY side, id",
            (market, gate),
        )
        return [OrderRow(**r) for r in rows]

    def result(self, market: str, gate: str) -> ResultRow | None:
        rows = self._rows(
            f"SELECT {_RESULT_COLS} FROM market_results WHERE market = ? AND gate = ?",
            (market, gate),
        )
        return _result(rows[0]) if rows else None

    def results(self, market: str | None = None, *, limit: int = 100) -> list[ResultRow]:
        clause, params = ("WHERE market = ? ", [market]) if market is not None else ("", [])
        rows = self._rows(
            f"SELECT {_RESULT_COLS} FROM market_results {clause}"
            "ORDER BY cleared_at DESC, market, gate LIMIT ?",
            [*params, limit],
        )
        return [_result(r) for r in rows]

    def control(self, market: str) -> ControlRow | None:
        rows = self._rows(
            "SELECT market, state, changed_at, note FROM market_control WHERE market = ?",
            (market,),
        )
        return ControlRow(**rows[0]) if rows else None

    def congestion(
        self, market: str | None = None, *, party: str | None = None
    ) -> list[CongestionRow]:
        where, params = [], []
        for col, value in (("market", market), ("party", party)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(
            f"SELECT {_CONGESTION_COLS} FROM market_congestion{clause} "
            "ORDER BY market, start, party, id",
            params,
        )
        return [_congestion(r) for r in rows]

    def unpublished(self) -> list[ResultRow]:
        rows = self._rows(
            f"SELECT {_RESULT_COLS} FROM market_results WHERE published = 0 "
            "ORDER BY cleared_at, market, gate"
        )
        return [_result(r) for r in rows]

    # -- writes ------------------------------------------------------------------------------

    def put_market(self, market: str, config: str, *, at: float) -> None:
        with self.write():
            changed = self._exec(
                "UPDATE market_markets SET config = ?, updated_at = ? WHERE id = ?",
                (config, at, market),
            )
            if not changed:
                self._exec(
                    "INSERT INTO market_markets (id, config, updated_at) VALUES (?, ?, ?)",
                    (market, config, at),
                )

    def ensure_gate(self, gate: GateRow) -> GateRow:
        with self.write():
            have = self.gate(gate.market, gate.gate)
            if have is not None:
                return have
            self._insert_gate(gate)
            return gate

    def _insert_gate(self, g: GateRow) -> None:
        self._exec(
            f"INSERT INTO market_gates ({_GATE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                g.market,
                g.gate,
                g.opens_at,
                g.closes_at,
                g.delivery_start,
                g.slots,
                g.resolution_s,
                g.state,
                g.changed_at,
                g.config,
            ),
        )

    def add_order(self, order: OrderRow) -> AddOutcome:
        with self.write():
            state = self._rows(
                f"SELECT state FROM market_gates WHERE market = ? AND gate = ?{self._LOCK}",
                (order.market, order.gate),
            )
            have = self._rows(
                "SELECT side, party, entry FROM market_orders "
                "WHERE market = ? AND gate = ? AND id = ?",
                (order.market, order.gate, order.id),
            )
            if have:
                same = have[0] == {"side": order.side, "party": order.party, "entry": order.entry}
                return "again" if same else "conflict"
            if not state or state[0]["state"] != "open":
                return "closed"
            self._exec(
                f"INSERT INTO market_orders ({_ORDER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    order.market,
                    order.gate,
                    order.side,
                    order.id,
                    order.party,
                    order.entry,
                    order.received_at,
                ),
            )
            return "stored"

    def close_gate(self, market: str, gate: str, *, at: float) -> bool:
        with self.write():
            return (
                self._exec(
                    "UPDATE market_gates SET state = 'closed', changed_at = ? "
                    "WHERE market = ? AND gate = ? AND state = 'open'",
                    (at, market, gate),
                )
                > 0
            )

    def record_result(self, result: ResultRow) -> bool:
        with self.write():
            changed = self._exec(
                "UPDATE market_gates SET state = 'cleared', changed_at = ? "
                "WHERE market = ? AND gate = ? AND state <> 'cleared'",
                (result.cleared_at, result.market, result.gate),
            )
            if not changed:
                return False
            self._exec(
                f"INSERT INTO market_results ({_RESULT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    result.market,
                    result.gate,
                    result.status,
                    result.welfare_eur,
                    result.payload,
                    result.cleared_at,
                    int(result.published),
                ),
            )
            return True

    def mark_published(self, market: str, gate: str) -> None:
        with self.write():
            self._exec(
                "UPDATE market_results SET published = 1 WHERE market = ? AND gate = ?",
                (market, gate),
            )

    def set_control(self, row: ControlRow) -> None:
        with self.write():
            changed = self._exec(
                "UPDATE market_control SET state = ?, changed_at = ?, note = ? WHERE market = ?",
                (row.state, row.changed_at, row.note, row.market),
            )
            if not changed:
                self._exec(
                    "INSERT INTO market_control (market, state, changed_at, note) "
                    "VALUES (?, ?, ?, ?)",
                    (row.market, row.state, row.changed_at, row.note),
                )

    def add_congestion(self, row: CongestionRow) -> AddOutcome:
        values = (
            row.market,
            row.id,
            row.party,
            row.node,
            row.start,
            row.kwh,
            row.limit,
            int(row.partial),
            row.registered_at,
        )
        with self.write():
            have = self._rows(
                "SELECT node, start, kwh, limit_eur, partial FROM market_congestion "
                "WHERE market = ? AND party = ? AND id = ?",
                (row.market, row.party, row.id),
            )
            if have:
                same = have[0] == dict(
                    zip(("node", "start", "kwh", "limit_eur", "partial"), values[3:8], strict=True)
                )
                return "again" if same else "conflict"
            self._exec(
                f"INSERT INTO market_congestion ({_CONGESTION_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return "stored"


def _congestion(row: Row) -> CongestionRow:
    return CongestionRow(
        market=row["market"],
        id=row["id"],
        party=row["party"],
        node=row["node"],
        start=int(row["start"]),
        kwh=row["kwh"],
        limit=row["limit_eur"],
        partial=bool(row["partial"]),
        registered_at=row["registered_at"],
    )


def _result(row: Row) -> ResultRow:
    return ResultRow(**{**row, "published": bool(row["published"])})
