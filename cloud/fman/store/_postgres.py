"""The store on PostgreSQL (psycopg 3): for FMAN workers on several hosts.

The same statements as SQLite (:mod:`._sql`), with these differences:

- **Write transactions.** SQLite's single writer made every ingest batch atomic against
  every other. Here a transaction takes advisory locks instead: ingest names the agents and
  offers of its batch and takes a transaction-scoped lock on each (in one sorted order, so two
  batches cannot deadlock) under a *shared* lock on the writers' key; everything else (the
  planning cycle's writes, migrations) takes that key *exclusively*. So batches about
  different agents commit side by side, while a decision and the write it leads to stay
  atomic against every other writer of the same agent or offer and against the planner:
  the ordering rules of ingest hold across hosts as they do in one file.
- **The change counter** (``meta``), which every batch that changes offers bumps, is bumped
  just before the commit, so concurrent batches queue on that one row only for the commit.
- **The planner lease** expires by the database server's clock, so the hosts' clocks need
  not agree; the fence of a schedule write reads the lease row ``FOR SHARE``, so a worker
  taking over an expired lease waits until a write the old holder began has committed.
- **Connections** are re-opened when the server dropped them (a restart, say): the failed
  statement raises :class:`StoreError` (the worker retries the batch), the next one
  reconnects.

A reader (``readonly``) runs every statement in read-only transactions and never migrates.
Nothing here logs or raises with the URL's password: :attr:`where` leaves it out.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from .._errors import StoreError
from ._rows import LoggedMessage, MessageKey, OfferRecord, Reading
from ._sql import Row, SqlStore, _logged
from ._url import describe

#: Advisory lock keys (the two-int form; the one-int keys of agents and offers never meet it).
_NAMESPACE = 0x41545046  # "ATPF"
_WRITERS = 1
#: What a change counter may be called (it is written into a statement).
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


#: The offer columns and their types, for the array form of :meth:`PostgresStore.put_offers`.
_OFFER_TYPES = tuple(
    (name, "bigint" if kind == "int" else "float8" if kind == "float" else kind)
    for name, kind in (
        ("id", "text"),
        ("issuer", "text"),
        ("revision", "int"),
        ("state", "text"),
        ("reason", "text"),
        ("received_at", "float"),
        ("updated_at", "float"),
        ("worker", "text"),
        ("device", "text"),
        ("load_type", "text"),
        ("grid_node", "text"),
        ("mode", "text"),
        ("created_at", "int"),
        ("acceptance_before", "int"),
        ("assignment_before", "int"),
        ("start_after", "int"),
        ("start_before", "int"),
        ("n_slots", "int"),
        ("resolution_s", "int"),
        ("payload", "bytea"),
    )
)
assert [c for c, _ in _OFFER_TYPES] == [f.name for f in fields(OfferRecord)]


def lock_key(offer_id: str) -> int:
    """A stable 64-bit advisory lock key for an offer."""
    digest = hashlib.blake2b(offer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore(SqlStore):
    dialect = "postgresql"
    _FENCE = " FOR SHARE"

    def __init__(self, *, url: str, readonly: bool = False, connect_timeout_s: int = 10) -> None:
        self._url = url
        self.where = describe(url)
        self.readonly = readonly
        self.lock_wait_s = 0.0
        self.lock_held_s = 0.0
        self._in_tx = False
        self._bumps: Counter[str] = Counter()
        #: this connection's own row of each change counter (see the module docstring)
        self._writer = uuid.uuid4().hex[:12]
        self._sql: dict[str, str] = {}
        self._timeout = connect_timeout_s
        self._conn: psycopg.Connection[Row] | None = None
        try:
            self._conn = self._connect()
            if readonly:
                self._check_version()
            else:
                self._migrate()
        except StoreError:
            self.close()
            raise

    def _connect(self) -> psycopg.Connection[Row]:
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=self._timeout,
                application_name="atp-fman",
            )
            # plan every statement for its parameters: a plan cached while a table was small
            # (a new database) would scan it whole once it has grown
            conn.execute("SET plan_cache_mode = force_custom_plan")
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the FMAN database {self.where}: {exc}") from None
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> psycopg.Connection[Row]:
        """The connection, opened again if the server dropped it (outside transactions)."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if self._in_tx:
                raise StoreError(f"{self.where}: the connection was lost in a transaction")
            conn = self._conn = self._connect()
        return conn

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def write(self, *, offers: Collection[str] | None = None) -> Iterator[PostgresStore]:
        if self.readonly:
            raise StoreError(f"{self.where}: opened read-only")
        if self._in_tx:
            yield self
            return
        conn = self.conn
        t0 = time.perf_counter()
        t1 = t0
        # BEGIN and the locks go out as one string, as do the bumps and COMMIT: a batch of a
        # few messages makes a dozen round trips, and these save three (every value in the
        # strings is an integer or a checked name made here)
        if offers is None:
            start = f"BEGIN; SELECT pg_advisory_xact_lock({_NAMESPACE}, {_WRITERS})"
        else:
            start = f"BEGIN; SELECT pg_advisory_xact_lock_shared({_NAMESPACE}, {_WRITERS})"
            if offers:
                keys = ",".join(str(k) for k in sorted({lock_key(o) for o in offers}))
                start += (
                    "; SELECT count(pg_advisory_xact_lock(k)) "
                    f"FROM unnest('{{{keys}}}'::bigint[]) k"
                )
        try:
            conn.execute(start)
            t1 = time.perf_counter()
            self.lock_wait_s += t1 - t0
            self._in_tx = True
            try:
                yield self
                conn.execute(self._bumps_sql() + "COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
            finally:
                self._in_tx = False
                self._bumps.clear()
        except psycopg.Error as exc:
            self._rollback(conn)
            raise StoreError(f"{self.where}: {exc}") from exc
        finally:
            self.lock_held_s += time.perf_counter() - t1

    def _rollback(self, conn: psycopg.Connection[Row]) -> None:
        """End a failed transaction; a connection that broke is opened again on next use."""
        if conn.closed or conn.broken or conn.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()

    def bump(self, key: str) -> None:
        if self._in_tx:  # applied just before the commit: see the module docstring
            self._bumps[key] += 1
        else:
            super().bump(key)

    def _bumps_sql(self) -> str:
        """The transaction's counts, in this writer's own rows (no two writers queue on one)."""
        out = ""
        for key, n in sorted(self._bumps.items()):
            if not _KEY.match(key):
                raise StoreError(f"{self.where}: {key!r} is not a counter name")
            out += (
                f"INSERT INTO meta(key, value) VALUES ('{key}@{self._writer}', {int(n)}) "
                "ON CONFLICT (key) DO UPDATE SET value = meta.value + excluded.value; "
            )
        return out

    # -- primitives ------------------------------------------------------------------------

    def _q(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = sql.replace("?", "%s")
        return out

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self.conn.execute(self._q(sql), params).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self.conn.execute(self._q(sql), params).rowcount
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        try:
            with self.conn.cursor() as cur:
                cur.executemany(self._q(sql), rows)
                return cur.rowcount
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _in(self, column: str, values: Collection[Any]) -> Iterator[tuple[str, list[Any]]]:
        items = list(values)
        if not items:
            yield "1 = 0", []
        else:
            yield f"{column} = ANY(?)", [items]

    def _db_now(self) -> float:
        return float(
            self._one("SELECT extract(epoch FROM clock_timestamp())::float8 AS now")["now"]
        )

    def _tables(self) -> set[str]:
        return {
            r["table_name"]
            for r in self._rows(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }

    def _columns(self, table: str) -> set[str]:
        return {
            r["column_name"]
            for r in self._rows(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ?",
                (table,),
            )
        }

    # -- writes and reads that one statement serves better here ------------------------------
    #
    # A batch of hundreds of rows is one statement over arrays (``unnest``), not hundreds of
    # statements: the time a batch holds its locks is mostly the server's per-statement work.

    def _bulk(self, sql: str, columns: Sequence[tuple[str, list[Any]]]) -> int:
        """Run ``sql`` with ``{rows}`` replaced by a ``SELECT`` of the given columns, each
        ``(array type, values)``; returns the rows changed."""
        if not columns or not columns[0][1]:
            return 0
        rows = "SELECT * FROM unnest(" + ", ".join(f"%b::{t}[]" for t, _ in columns) + ")"
        try:
            return self.conn.execute(
                sql.format(rows=rows), [values for _, values in columns]
            ).rowcount
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def log_messages(self, rows: Sequence[LoggedMessage]) -> int:
        rows = sorted(rows, key=lambda m: (m.agent, m.msg_id))  # see put_offers
        with self.write():
            return self._bulk(
                "INSERT INTO messages(agent, msg_id, channel, ref_id, revision, outcome, reasons, "
                "worker, at) {rows} ON CONFLICT (agent, msg_id) DO NOTHING",
                [
                    ("text", [m.agent for m in rows]),
                    ("text", [m.msg_id for m in rows]),
                    ("text", [m.channel for m in rows]),
                    ("text", [m.ref_id for m in rows]),
                    ("bigint", [m.revision for m in rows]),
                    ("text", [m.outcome for m in rows]),
                    ("text", [m.reasons for m in rows]),
                    ("text", [m.worker for m in rows]),
                    ("float8", [m.at for m in rows]),
                ],
            )

    def put_offers(self, rows: Iterable[OfferRecord]) -> None:
        # one row per id (a later one wins), as one statement cannot update a row twice; in
        # key order, as every writer inserts, so two cannot wait for each other's rows
        latest = sorted({r.id: r for r in rows}.values(), key=lambda r: r.id)
        updates = ", ".join(f"{c}=excluded.{c}" for c, _ in _OFFER_TYPES if c != "id")
        with self.write():
            self._bulk(
                f"INSERT INTO offers({', '.join(c for c, _ in _OFFER_TYPES)}) {{rows}} "
                f"ON CONFLICT (id) DO UPDATE SET {updates}",
                [(t, [getattr(r, c) for r in latest]) for c, t in _OFFER_TYPES],
            )

    def put_readings(self, rows: Iterable[Reading]) -> None:
        keyed = {(r.agent, r.device, r.start, r.duration_s): r for r in rows}
        latest = [keyed[k] for k in sorted(keyed)]
        with self.write():
            self._bulk(
                "INSERT INTO readings(agent, device, start, duration_s, energy_kwh, offer_id, "
                "received_at) {rows} ON CONFLICT (agent, device, start, duration_s) DO UPDATE "
                "SET energy_kwh=excluded.energy_kwh, offer_id=excluded.offer_id",
                [
                    ("text", [r.agent for r in latest]),
                    ("text", [r.device for r in latest]),
                    ("bigint", [r.start for r in latest]),
                    ("bigint", [r.duration_s for r in latest]),
                    ("float8", [r.energy_kwh for r in latest]),
                    ("text", [r.offer_id for r in latest]),
                    ("float8", [r.received_at for r in latest]),
                ],
            )

    # -- reads that one round trip serves better here ----------------------------------------

    def seen_messages(self, keys: Collection[MessageKey]) -> dict[MessageKey, LoggedMessage]:
        unique = list(set(keys))
        if not unique:
            return {}
        rows = self._rows(
            "SELECT m.* FROM messages m JOIN unnest(?::text[], ?::text[]) AS k(agent, msg_id) "
            "ON m.agent = k.agent AND m.msg_id = k.msg_id",
            ([k.agent for k in unique], [k.msg_id for k in unique]),
        )
        out: dict[MessageKey, LoggedMessage] = {}
        for r in rows:
            m = _logged(r)
            out[m.key] = m
        return out
