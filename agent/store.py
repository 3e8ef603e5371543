"""The agent's memory: one SQLite file that survives kill -9 and power loss.

Everything the agent produces or accepts is written here, in one transaction with whatever it
implies, before anything else happens: an offer and the outbox row that publishes it; a
schedule, the offer's new state and the schedule ack; a slot's meter readings. The uplink only
ever sends what is in the outbox, in the order of its ids. A row that FMAN answers (an offer,
a withdrawal, a meter batch) stays until FMAN's own answer for it has been handled, in the
transaction that handles it; the broker's PUBACK only marks it sent and sets when to send it
again if no answer comes (``due``). Other rows (answers to schedules) are deleted on their
PUBACK. So a crash at any moment leaves either the whole step or none of it, and after a
restart the messages not answered go out again in the order they were produced.

Durability: WAL journal, ``synchronous=FULL`` by default (each commit is on the disk before it
returns; power loss loses nothing committed). ``durability="normal"`` skips the per-commit
fsync: a killed process still loses nothing, an OS crash may lose the last commits. The fleet
simulator uses it for its thousand stores; the daemon does not.

Readers in other processes (``foa status``) open the file read-only with :meth:`Store.reader`;
WAL lets them read while the daemon writes.

Tables (``sqlite3 foa.db .schema`` shows them): ``outbox`` (messages not yet delivered: not
acknowledged by the broker, or not yet answered by FMAN), ``dead_letters`` (refused for good,
by the broker or by FMAN, with the reason), ``inbox`` (ids of messages handled, with the answer
given, so a redelivery changes nothing and is answered as before), ``offers`` (every revision's
current body, lifecycle state and FMAN's last refusal), ``plans`` (schedules received and
defaults taken into force), ``readings`` (metered energy per device and interval, kept
``retention_s``, with FMAN's reason where it quarantined one), ``meter_cursor`` (each
device's last metered register value, so a restart continues metering where it stopped),
``devices`` (last measurement and fault of each device) and ``meta`` (counters, connection
state, heartbeat).
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from agent.errors import StoreError
from protocol import FlexOffer, MeterReading, OfferState

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
DEFAULT_RETENTION_S = 7 * 86_400
Durability = Literal["full", "normal"]
#: Outbox kinds FMAN (or, for a sell order, FMAR) answers: such a row stays until the answer
#: arrives (a PUBACK is not delivery).
ANSWERED_KINDS = frozenset({"offer", "offer.delete", "meter", "market.sell"})
#: Offer states in which an offer still concerns its device.
LIVE_STATES: tuple[OfferState, ...] = ("offered", "accepted", "assigned", "executing")

_OFFER_ENCODER = msgspec.msgpack.Encoder()
_ENVELOPE = msgspec.msgpack.Decoder(dict[str, Any])
_OFFER_DECODER = msgspec.msgpack.Decoder(FlexOffer)
_FLOATS = msgspec.json.Decoder(list[float])
_IMPORT_LOCK = threading.Lock()


def _import_sqlite_utils() -> ModuleType:
    """``sqlite_utils``, imported without pandas and numpy.

    sqlite-utils imports pandas and numpy at import time whenever they are installed (to
    convert their types on insert). On a gateway they are not; on a development machine with
    the cloud extra they are, and would add half a second and tens of MB to the agent, which
    never passes them a numpy value. So they are hidden while sqlite-utils loads, unless this
    process already imported them (then hiding saves nothing and would only cost them).
    Stores opened on several threads at once (the fleet) import it once, under a lock."""
    with _IMPORT_LOCK:
        if "sqlite_utils" in sys.modules:
            return sys.modules["sqlite_utils"]
        hidden = [m for m in ("pandas", "numpy") if m not in sys.modules]
        for name in hidden:
            # None makes `import name` fail (documented import-system behaviour typeshed omits)
            sys.modules[name] = None  # type: ignore[assignment]  # typeshed: no None values

        try:
            return importlib.import_module("sqlite_utils")
        finally:
            for name in hidden:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One outbox row: a wire message waiting for the broker's PUBACK or FMAN's answer.

    ``ref`` and ``revision`` name what FMAN's answer will name (an offer id and revision, a
    withdrawn offer's id, a meter batch's sequence number); ``due`` is the wall-clock time at
    which a row the broker acknowledged but FMAN has not answered is sent again (``None``:
    not acknowledged by the broker yet); ``attempts`` counts those acknowledged sends."""

    id: int
    topic: str
    payload: bytes
    kind: str
    ref: str
    retain: bool = False
    msg_id: str = ""
    revision: int = 0
    due: float | None = None
    attempts: int = 0
    created: int = 0


@dataclass(frozen=True, slots=True)
class StoredOffer:
    """An offer as last published, with the agent's view of its lifecycle state.

    ``episode`` is the id its generator gave it (the offer's own id may carry a suffix when an
    episode is offered again); ``accepted`` is the last revision FMAN accepted (``None`` if
    none); ``locked`` says the offer may not be revised any more (FMAN refused an update)."""

    offer: FlexOffer
    state: OfferState
    updated: int
    episode: str = ""
    accepted: FlexOffer | None = None
    locked: bool = False
    #: FMAN's reasons the last time it refused something about the offer (the offer, an
    #: update or the withdrawal); empty if it never did
    fman_reason: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """What an offer's device executes: a schedule from FMAN or the offer's default.

    ``version`` is the schedule's version, 0 for the default. ``energy_kwh[i]`` is the energy
    of the slot starting at ``start + i * resolution_s``."""

    offer_id: str
    device: str
    version: int
    start: int
    resolution_s: int
    profile: int
    energy_kwh: tuple[float, ...]
    source: Literal["fman", "default"]

    @property
    def end(self) -> int:
        return self.start + len(self.energy_kwh) * self.resolution_s

    def slot_energy(self, slot_start: int, length_s: int | None = None) -> float | None:
        """Energy of the ``length_s`` seconds from ``slot_start`` (default: one of the plan's
        slots), each plan slot's energy spread evenly over it; ``None`` outside the plan.

        The EMS steps at the agent's resolution, which can be finer than an offer's: an hourly
        DOMS bid on a quarter-hour agent gets a quarter of the hour's energy each quarter, not
        the whole hour's energy crammed into the first one."""
        res = self.resolution_s
        length = res if length_s is None else length_s
        lo, hi = max(slot_start, self.start), min(slot_start + length, self.end)
        if lo >= hi:
            return None
        first, rem = divmod(lo - self.start, res)
        if length == res and rem == 0 and lo == slot_start:
            return self.energy_kwh[first]
        total = 0.0
        for i in range(first, (hi - 1 - self.start) // res + 1):
            s0 = self.start + i * res
            total += self.energy_kwh[i] * (min(hi, s0 + res) - max(lo, s0)) / res
        return total


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """The last thing known about a device, for ``foa devices`` and ``foa status``."""

    id: str
    driver: str
    generator: str
    last_ts: int | None
    power_w: float | None
    energy_kwh: float | None
    fault: str
    fault_since: int | None
    setpoint: str


class Store:
    """One agent's SQLite database. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        *,
        path: str | Path,
        durability: Durability = "full",
        retention_s: int = DEFAULT_RETENTION_S,
        cache_kib: int = 2048,
        readonly: bool = False,
    ) -> None:
        if durability not in ("full", "normal"):
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        self.path = Path(path)
        self.retention_s = retention_s
        self.readonly = readonly
        su = _import_sqlite_utils()
        try:
            if readonly:
                if not self.path.exists():
                    raise StoreError(f"{self.path}: no such database (has the agent run yet?)")
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # one thread at a time uses it; it may be closed on a worker thread
                conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
            try:
                _check_kind(conn, self.path, readonly=readonly)
            except BaseException:
                conn.close()
                raise
            self.db: sqlite_utils.Database = su.Database(conn, execute_plugins=False)
            if not readonly:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch to WAL journal (got {mode})")
                conn.execute(f"PRAGMA synchronous = {durability.upper()}")
                self._create_schema()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        if type(exc) is sqlite3.DatabaseError and "not a database" in str(exc):
            return StoreError(f"{self.path}: not an SQLite database (is it the right file?)")
        return StoreError(
            f"{self.path}: {exc}", transient=isinstance(exc, sqlite3.OperationalError)
        )

    @classmethod
    def reader(cls, path: str | Path) -> Store:
        """A read-only view for another process (the CLI) while the daemon writes."""
        return cls(path=path, readonly=True, cache_kib=512)

    # -- housekeeping --------------------------------------------------------------------

    def _create_schema(self) -> None:
        db = self.db
        with self.transaction():
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "topic TEXT NOT NULL, payload BLOB NOT NULL, kind TEXT NOT NULL, "
                "ref TEXT NOT NULL DEFAULT '', created INTEGER NOT NULL, "
                "retain INTEGER NOT NULL DEFAULT 0)"
            )
            self._add_columns(
                "outbox",
                {"msg_id": "TEXT NOT NULL DEFAULT ''", "revision": "INTEGER NOT NULL DEFAULT 0",
                 "due": "REAL", "attempts": "INTEGER NOT NULL DEFAULT 0"},
                then=self._backfill_outbox,
            )  # fmt: skip
            db.table("outbox").create_index(["due"], if_not_exists=True)
            db.table("outbox").create_index(["kind", "ref", "revision"], if_not_exists=True)
            db.table("dead_letters").create(
                {
                    "id": int,
                    "topic": str,
                    "payload": bytes,
                    "kind": str,
                    "ref": str,
                    "created": int,
                    "reason": str,
                },
                pk="id",
                if_not_exists=True,
            )
            db.table("inbox").create(
                {"msg_id": str, "received": int}, pk="msg_id", if_not_exists=True
            )
            self._add_columns("inbox", {"reply": "BLOB"})
            db.table("offers").create(
                {
                    "id": str,
                    "device": str,
                    "revision": int,
                    "state": str,
                    "body": bytes,
                    "assignment_before": int,
                    "created_at": int,
                    "updated": int,
                },
                pk="id",
                not_null=["device", "state", "body"],
                if_not_exists=True,
            )
            db.table("offers").create_index(["device", "state"], if_not_exists=True)
            columns = db["offers"].columns_dict
            for name, kind in (("episode", str), ("accepted", bytes), ("locked", int)):
                if name not in columns:  # added in schema 2
                    db.table("offers").add_column(name, kind)
            self._add_columns("offers", {"fman_reason": "TEXT NOT NULL DEFAULT ''"})
            db.table("plans").create(
                {
                    "offer_id": str,
                    "device": str,
                    "version": int,
                    "start": int,
                    "resolution_s": int,
                    "profile": int,
                    "energy_kwh": str,
                    "source": str,
                    "received": int,
                },
                pk=("offer_id", "version"),
                if_not_exists=True,
            )
            db.table("readings").create(
                {
                    "device": str,
                    "start": int,
                    "duration_s": int,
                    "energy_kwh": float,
                    "offer_id": str,
                    "batch": int,
                },
                pk=("device", "start"),
                if_not_exists=True,
            )
            db.table("readings").create_index(["batch"], if_not_exists=True)
            self._add_columns("readings", {"quarantine": "TEXT"})
            db.table("meter_cursor").create(
                {"device": str, "ts": int, "energy_kwh": float}, pk="device", if_not_exists=True
            )
            db.table("devices").create(
                {
                    "id": str,
                    "driver": str,
                    "generator": str,
                    "last_ts": int,
                    "power_w": float,
                    "energy_kwh": float,
                    "fault": str,
                    "fault_since": int,
                    "setpoint": str,
                },
                pk="id",
                if_not_exists=True,
            )
            db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            version = self.get("schema")
            if version is None or int(version) < SCHEMA_VERSION:
                self.set("schema", SCHEMA_VERSION)
            elif int(version) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this agent's "
                    f"({SCHEMA_VERSION}); upgrade the agent"
                )

    def _add_columns(
        self, table: str, columns: dict[str, str], then: Callable[[], None] | None = None
    ) -> None:
        """Add the columns a later schema brought, to a table made by an earlier one."""
        have = self.db[table].columns_dict
        missing = {name: sql for name, sql in columns.items() if name not in have}
        for name, sql in missing.items():
            self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql}")
        if missing and then is not None:
            then()

    def _backfill_outbox(self) -> None:
        """Rows queued by schema 2 get the message id and revision FMAN's answer names."""
        for row_id, payload in self._rows("SELECT id, payload FROM outbox"):
            try:
                env = _ENVELOPE.decode(payload)
                body = env.get("body")
                msg_id = str(env.get("id") or "")
                revision = int(body.get("revision") or 0) if isinstance(body, dict) else 0
            except (msgspec.MsgspecError, ValueError, TypeError, AttributeError):
                continue
            self._exec(
                "UPDATE outbox SET msg_id = ?, revision = ? WHERE id = ?",
                (msg_id, revision, row_id),
            )

    def close(self) -> None:
        try:
            # closing the last connection folds the WAL back into the database file
            self.db.close()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nested blocks are savepoints)."""
        try:
            with self.db.atomic():
                yield
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows, in the caller's transaction or in its own."""
        if not self.db.conn.in_transaction:
            with self.transaction():
                self._many(sql, rows)
            return
        try:
            self.db.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        return self._exec(sql, params).fetchall()

    # -- meta: counters, connection state, heartbeat ---------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._exec("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set(self, key: str, value: object) -> None:
        self._exec(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def set_many(self, values: dict[str, object]) -> None:
        with self.transaction():
            for key, value in values.items():
                self.set(key, value)

    def meta(self) -> dict[str, str]:
        return dict(self._rows("SELECT key, value FROM meta"))

    def next_counter(self, key: str) -> int:
        """Increment and return the counter ``key`` (1 the first time)."""
        value = int(self.get(key) or 0) + 1
        self.set(key, value)
        return value

    # -- outbox --------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        topic: str,
        payload: bytes,
        kind: str,
        now: int,
        ref: str = "",
        retain: bool = False,
        msg_id: str = "",
        revision: int = 0,
    ) -> int:
        """Queue a message for the broker; it goes out after every row queued before it.
        ``ref`` and ``revision`` are what FMAN's answer to it will name (kinds in
        :data:`ANSWERED_KINDS`)."""
        cur = self._exec(
            "INSERT INTO outbox(topic, payload, kind, ref, created, retain, msg_id, revision) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (topic, payload, kind, ref, now, int(retain), msg_id, revision),
        )
        return int(cur.lastrowid or 0)

    def _outbox(self, where: str, params: Sequence[Any]) -> list[OutMessage]:
        return [
            OutMessage(
                id=r[0],
                topic=r[1],
                payload=r[2],
                kind=r[3],
                ref=r[4],
                retain=bool(r[5]),
                msg_id=r[6],
                revision=r[7],
                due=r[8],
                attempts=r[9],
                created=r[10],
            )
            for r in self._rows(
                "SELECT id, topic, payload, kind, ref, retain, msg_id, revision, due, attempts, "
                f"created FROM outbox WHERE {where}",
                params,
            )
        ]

    def outbox_after(self, after_id: int, limit: int) -> list[OutMessage]:
        """Up to ``limit`` queued messages with an id above ``after_id``, oldest first."""
        return self._outbox("id > ? ORDER BY id LIMIT ?", (after_id, limit))

    def outbox_unsent(self, after_id: int, limit: int) -> list[OutMessage]:
        """Up to ``limit`` rows above ``after_id`` the broker has not acknowledged, oldest
        first."""
        return self._outbox("id > ? AND due IS NULL ORDER BY id LIMIT ?", (after_id, limit))

    def outbox_due(self, wall: float, limit: int) -> list[OutMessage]:
        """Up to ``limit`` rows sent but not answered whose time to be sent again has come
        (``due <= wall``), oldest first."""
        return self._outbox("due <= ? ORDER BY id LIMIT ?", (wall, limit))

    def outbox_next_due(self) -> float | None:
        """The earliest time a row sent but not answered is due to be sent again."""
        value = self._exec("SELECT min(due) FROM outbox").fetchone()[0]
        return None if value is None else float(value)

    def outbox_awaiting(self) -> int:
        """Rows the broker acknowledged that FMAN has not answered yet."""
        return int(self._exec("SELECT count(*) FROM outbox WHERE due IS NOT NULL").fetchone()[0])

    def outbox_sent(self, sent: Sequence[tuple[int, float]], *, resent: int = 0) -> None:
        """The broker acknowledged these rows, which wait for FMAN's answer: ``(row id,
        when to send it again if none comes)``; ``resent`` of them were sends again (counted
        in ``meta``, for ``foa status`` and audits)."""
        with self.transaction():
            self._many(
                "UPDATE outbox SET due = ?, attempts = attempts + 1 WHERE id = ?",
                [(due, row_id) for row_id, due in sent],
            )
            if resent:
                self.set("resent", int(self.get("resent") or 0) + resent)

    def outbox_done(self, ids: Iterable[int]) -> None:
        """Delivered (the broker acknowledged rows nobody answers): forget them."""
        with self.transaction():
            self._many("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def outbox_answered(
        self, kind: str, ref_id: str, revision: int, *, dead_reason: str | None = None
    ) -> list[OutMessage]:
        """FMAN answered the message of ``kind`` about ``ref_id`` at ``revision`` (or with
        message id ``ref_id``): its rows leave the outbox, for ``dead_letters`` with the reason
        if ``dead_reason`` is given (refused: sending it again would not help). Returns them."""
        rows = self._outbox(
            "kind = ? AND ((ref = ? AND revision = ?) OR (msg_id != '' AND msg_id = ?))",
            (kind, ref_id, revision, ref_id),
        )
        if rows:
            with self.transaction():
                if dead_reason is not None:
                    self._many(
                        "INSERT OR REPLACE INTO dead_letters(id, topic, payload, kind, ref, "
                        "created, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(r.id, r.topic, r.payload, r.kind, r.ref, r.created, dead_reason)
                         for r in rows],
                    )  # fmt: skip
                self._many("DELETE FROM outbox WHERE id = ?", [(r.id,) for r in rows])
        return rows

    def outbox_holds(self, msg_id: str) -> bool:
        """Whether a message with this id is still in the outbox."""
        row = self._exec("SELECT 1 FROM outbox WHERE msg_id = ? LIMIT 1", (msg_id,)).fetchone()
        return row is not None

    def outbox_dead(self, row_id: int, reason: str) -> None:
        """The broker refused this row for good: keep it aside with the reason."""
        with self.transaction():
            self._exec(
                "INSERT OR REPLACE INTO dead_letters(id, topic, payload, kind, ref, created, "
                "reason) SELECT id, topic, payload, kind, ref, created, ? FROM outbox WHERE id = ?",
                (reason, row_id),
            )
            self._exec("DELETE FROM outbox WHERE id = ?", (row_id,))

    def outbox_size(self) -> int:
        return int(self._exec("SELECT count(*) FROM outbox").fetchone()[0])

    def outbox_kinds(self) -> dict[str, int]:
        return dict(self._rows("SELECT kind, count(*) FROM outbox GROUP BY kind"))

    def dead_letter_count(self) -> int:
        return int(self._exec("SELECT count(*) FROM dead_letters").fetchone()[0])

    # -- inbox: idempotent handling of redelivered messages ------------------------------

    def seen(self, msg_id: str) -> bool:
        return self._exec("SELECT 1 FROM inbox WHERE msg_id = ?", (msg_id,)).fetchone() is not None

    def reply_to(self, msg_id: str) -> bytes | None:
        """The answer given to a message handled before (``None``: none, or not handled)."""
        row = self._exec("SELECT reply FROM inbox WHERE msg_id = ?", (msg_id,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def remember(self, msg_id: str, now: int, reply: bytes | None = None) -> None:
        """``msg_id`` is handled; ``reply`` is the answer it got, to give again if it comes
        again (the sender did not hear the first one)."""
        self._exec(
            "INSERT OR IGNORE INTO inbox(msg_id, received, reply) VALUES (?, ?, ?)",
            (msg_id, now, reply),
        )

    # -- offers --------------------------------------------------------------------------

    def save_offer(
        self,
        offer: FlexOffer,
        state: OfferState,
        now: int,
        *,
        episode: str | None = None,
        accepted: FlexOffer | None = None,
        locked: bool = False,
    ) -> None:
        """Insert an offer or replace it by another revision, with its state, its episode
        (default: its id), the last revision FMAN accepted and whether it is locked."""
        self._exec(
            "INSERT INTO offers(id, device, revision, state, body, assignment_before, "
            "created_at, updated, episode, accepted, locked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?) ON CONFLICT(id) DO UPDATE SET revision = excluded.revision, state = "
            "excluded.state, body = excluded.body, assignment_before = "
            "excluded.assignment_before, updated = excluded.updated, episode = excluded.episode, "
            "accepted = excluded.accepted, locked = excluded.locked",
            (
                offer.id,
                offer.device,
                offer.revision,
                state,
                _OFFER_ENCODER.encode(offer),
                offer.assignment_before,
                offer.created_at,
                now,
                episode or offer.id,
                None if accepted is None else _OFFER_ENCODER.encode(accepted),
                int(locked),
            ),
        )

    def set_offer_state(self, offer_id: str, state: OfferState, now: int) -> None:
        self._exec("UPDATE offers SET state = ?, updated = ? WHERE id = ?", (state, now, offer_id))

    def note_refusal(self, offer_id: str, reason: str, now: int) -> None:
        """Record FMAN's reasons for refusing something about the offer."""
        self._exec(
            "UPDATE offers SET fman_reason = ?, updated = ? WHERE id = ?", (reason, now, offer_id)
        )

    def offer(self, offer_id: str) -> StoredOffer | None:
        row = self._exec(
            f"SELECT {_OFFER_COLUMNS} FROM offers WHERE id = ?", (offer_id,)
        ).fetchone()
        return None if row is None else _stored(row)

    def offers(
        self, *, states: Iterable[str] | None = None, device: str | None = None
    ) -> list[StoredOffer]:
        """Offers, oldest first, optionally only in ``states`` and of ``device``."""
        where, params = [], []
        if states is not None:
            states = list(states)
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params += states
        if device is not None:
            where.append("device = ?")
            params.append(device)
        sql = f"SELECT {_OFFER_COLUMNS} FROM offers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_stored(r) for r in self._rows(sql + " ORDER BY created_at, rowid", params)]

    def offer_counts(self) -> dict[str, int]:
        return dict(self._rows("SELECT state, count(*) FROM offers GROUP BY state"))

    # -- plans: schedules and defaults in force -------------------------------------------

    def save_plan(self, plan: Plan, now: int) -> None:
        """Store a plan; a default (version 0) replaces an earlier default of the offer."""
        self._exec(
            "INSERT OR REPLACE INTO plans(offer_id, device, version, start, resolution_s, profile, "
            "energy_kwh, source, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                plan.offer_id,
                plan.device,
                plan.version,
                plan.start,
                plan.resolution_s,
                plan.profile,
                msgspec.json.encode(list(plan.energy_kwh)).decode(),
                plan.source,
                now,
            ),
        )

    def plan(self, offer_id: str) -> Plan | None:
        """The plan in force for an offer: its highest schedule version, else its default."""
        row = self._exec(
            f"SELECT {_PLAN_COLUMNS} FROM plans WHERE offer_id = ? ORDER BY version DESC LIMIT 1",
            (offer_id,),
        ).fetchone()
        return None if row is None else _plan(row)

    def plans(self, offer_ids: Iterable[str]) -> dict[str, Plan]:
        """The plan in force of each of ``offer_ids`` that has one."""
        ids = list(offer_ids)
        if not ids:
            return {}
        rows = self._rows(
            f"SELECT {_PLAN_COLUMNS} FROM plans p WHERE offer_id IN ({', '.join('?' * len(ids))})"
            " AND version = (SELECT max(version) FROM plans q WHERE q.offer_id = p.offer_id)",
            ids,
        )
        return {r[0]: _plan(r) for r in rows}

    # -- meter readings ------------------------------------------------------------------

    def add_readings(self, readings: Sequence[MeterReading]) -> int:
        """Buffer readings; one for a device and start already there is ignored (nothing
        counted twice). Returns how many were new."""
        before = self.db.conn.total_changes
        self._many(
            "INSERT OR IGNORE INTO readings(device, start, duration_s, energy_kwh, offer_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [msgspec.structs.astuple(r) for r in readings],
        )
        return self.db.conn.total_changes - before

    def unbatched_readings(self) -> list[MeterReading]:
        return [
            MeterReading(*r)
            for r in self._rows(
                "SELECT device, start, duration_s, energy_kwh, offer_id FROM readings "
                "WHERE batch IS NULL ORDER BY start, device"
            )
        ]

    def quarantine(self, items: Sequence[tuple[str, int, str]]) -> int:
        """FMAN set these readings aside, ``(device, start, reason)``: they stay here, marked
        with the reason, and count no more as delivered. Returns how many were known."""
        before = self.db.conn.total_changes
        self._many(
            "UPDATE readings SET quarantine = ? WHERE device = ? AND start = ?",
            [(reason, device, start) for device, start, reason in items],
        )
        return self.db.conn.total_changes - before

    def quarantine_batch(self, seq: int, reason: str) -> int:
        """FMAN refused meter batch ``seq`` whole: its readings are marked with the reason."""
        return self._exec(
            "UPDATE readings SET quarantine = ? WHERE batch = ?", (reason, seq)
        ).rowcount

    def quarantined(self) -> list[tuple[MeterReading, str]]:
        """Readings FMAN set aside, with its reason, oldest first."""
        return [
            (MeterReading(*r[:5]), r[5])
            for r in self._rows(
                "SELECT device, start, duration_s, energy_kwh, offer_id, quarantine FROM readings "
                "WHERE quarantine IS NOT NULL ORDER BY start, device"
            )
        ]

    def mark_batched(self, readings: Iterable[MeterReading], seq: int) -> None:
        self._many(
            "UPDATE readings SET batch = ? WHERE device = ? AND start = ?",
            [(seq, r.device, r.start) for r in readings],
        )

    def readings(self, *, device: str | None = None, since: int = 0) -> list[MeterReading]:
        sql = (
            "SELECT device, start, duration_s, energy_kwh, offer_id FROM readings WHERE start >= ?"
        )
        params: list[Any] = [since]
        if device is not None:
            sql += " AND device = ?"
            params.append(device)
        return [MeterReading(*r) for r in self._rows(sql + " ORDER BY start, device", params)]

    def last_readings(self) -> list[MeterReading]:
        """The latest reading of each device."""
        return [
            MeterReading(*r)
            for r in self._rows(
                "SELECT device, start, duration_s, energy_kwh, offer_id FROM readings r "
                "WHERE start = (SELECT max(start) FROM readings q WHERE q.device = r.device) "
                "ORDER BY device"
            )
        ]

    def cursor(self, device: str) -> tuple[int, float] | None:
        """Where metering of ``device`` stands: ``(time, register kWh)`` of its last reading."""
        row = self._exec(
            "SELECT ts, energy_kwh FROM meter_cursor WHERE device = ?", (device,)
        ).fetchone()
        return None if row is None else (int(row[0]), float(row[1]))

    def set_cursors(self, cursors: Sequence[tuple[str, int, float]]) -> None:
        """``(device, time, register kWh)`` where metering of each device now stands."""
        self._many(
            "INSERT INTO meter_cursor(device, ts, energy_kwh) VALUES (?, ?, ?) "
            "ON CONFLICT(device) DO UPDATE SET ts = excluded.ts, energy_kwh = excluded.energy_kwh",
            cursors,
        )

    # -- devices -------------------------------------------------------------------------

    def save_devices(self, statuses: Sequence[DeviceStatus]) -> None:
        self._many(
            "INSERT OR REPLACE INTO devices(id, driver, generator, last_ts, power_w, energy_kwh, "
            "fault, fault_since, setpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    s.id,
                    s.driver,
                    s.generator,
                    s.last_ts,
                    s.power_w,
                    s.energy_kwh,
                    s.fault,
                    s.fault_since,
                    s.setpoint,
                )
                for s in statuses
            ],
        )

    def devices(self) -> list[DeviceStatus]:
        return [
            DeviceStatus(*r)
            for r in self._rows(
                "SELECT id, driver, generator, last_ts, power_w, energy_kwh, fault, fault_since, "
                "setpoint FROM devices ORDER BY id"
            )
        ]

    # -- retention -----------------------------------------------------------------------

    def purge(self, now: int) -> dict[str, int]:
        """Drop what is older than the retention: sent readings, handled message ids, finished
        offers and their plans, and (counted as dropped) meter batches never delivered."""
        cutoff = now - self.retention_s
        final = ("executed", "settled", "rejected", "withdrawn", "expired")
        marks = ", ".join("?" * len(final))
        with self.transaction():
            dropped = self._exec(
                "DELETE FROM outbox WHERE kind = 'meter' AND created < ?", (cutoff,)
            ).rowcount
            counts = {
                "readings": self._exec(
                    "DELETE FROM readings WHERE start < ? AND batch IS NOT NULL", (cutoff,)
                ).rowcount,
                "inbox": self._exec("DELETE FROM inbox WHERE received < ?", (cutoff,)).rowcount,
                "plans": self._exec(
                    f"DELETE FROM plans WHERE offer_id IN (SELECT id FROM offers WHERE "
                    f"state IN ({marks}) AND updated < ?)",
                    (*final, cutoff),
                ).rowcount,
                "offers": self._exec(
                    f"DELETE FROM offers WHERE state IN ({marks}) AND updated < ?",
                    (*final, cutoff),
                ).rowcount,
                "dropped_meter_batches": dropped,
            }
            if dropped:
                self.set(
                    "dropped_meter_batches", int(self.get("dropped_meter_batches") or 0) + dropped
                )
        return counts


_PLAN_COLUMNS = "offer_id, device, version, start, resolution_s, profile, energy_kwh, source"


#: Tables every agent store has had since schema 1; FMAN's database has other ones.
_AGENT_TABLES = frozenset({"outbox", "offers", "meta"})
_FMAN_TABLES = frozenset({"schedules", "messages", "lease"})


def _check_kind(conn: sqlite3.Connection, path: Path, *, readonly: bool) -> None:
    """Refuse a database that is not an agent's store before anything is written to it.

    Pointed at FMAN's database (or any other), the daemon would otherwise add its tables to
    it and a reader would fail on a missing column. An empty database is fine for the daemon
    (it makes its store there), not for a reader."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        if readonly:
            raise StoreError(f"{path}: has no tables: not an agent store (has the agent run yet?)")
        return
    columns = {r[1] for r in conn.execute("PRAGMA table_info(offers)")}
    if tables >= _AGENT_TABLES and "body" in columns:
        return
    hint = (
        "it looks like an FMAN database; "
        if tables >= _FMAN_TABLES and "payload" in columns
        else f"its tables: {', '.join(sorted(tables)[:6])}; "
    )
    raise StoreError(
        f"{path}: not an agent store ({hint}the agent's store is agent.store of foa.toml)"
    )


def _plan(row: tuple[Any, ...]) -> Plan:
    return Plan(
        offer_id=row[0],
        device=row[1],
        version=row[2],
        start=row[3],
        resolution_s=row[4],
        profile=row[5],
        energy_kwh=tuple(_FLOATS.decode(row[6])),
        source=row[7],
    )


_OFFER_COLUMNS = "body, state, updated, episode, accepted, locked, fman_reason"


def _stored(row: tuple[Any, ...]) -> StoredOffer:
    offer = _OFFER_DECODER.decode(row[0])
    return StoredOffer(
        offer=offer,
        state=row[1],
        updated=row[2],
        episode=row[3] or offer.id,
        accepted=None if row[4] is None else _OFFER_DECODER.decode(row[4]),
        locked=bool(row[5]),
        fman_reason=row[6] or "",
    )
