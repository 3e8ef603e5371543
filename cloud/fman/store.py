"""FMAN's durable state in one SQLite file: agents, offers and their states, versioned
schedules, meter readings, the ingest log, the planner lease and the workers' counters.

Why SQLite, and how several workers share it: every worker process of one host opens the same
file in WAL mode; a write is one ``BEGIN IMMEDIATE`` transaction per ingest batch, so decisions
that read the current state (is this a newer revision? is the offer still open?) and the
writes they lead to are atomic across workers. Readers (the CLI) never block writers. A crash
(SIGKILL) loses nothing that was committed, and ingest acknowledges to the broker only after
the commit, so nothing acknowledged is lost either. ``synchronous = full`` makes that hold
across a power cut too. A deployment that needs workers on several hosts swaps this class for
one on a server database with the same methods; nothing else in FMAN touches SQL.

Rows cross this interface as plain tuples and dicts: the store neither decides nor validates,
it keeps what ingest and the planning cycle decided.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from ._errors import StoreError

#: Offer states in which the offer still awaits or may change its schedule.
OPEN_STATES = ("offered", "accepted", "assigned")
#: Offer states that count as "accepted by FMAN" for the planning cycle and reports.
ACCEPTED_STATES = ("accepted", "assigned", "executing", "executed", "settled")

_OFFER_COLUMNS = (
    "id",
    "issuer",
    "device",
    "load_type",
    "grid_node",
    "mode",
    "revision",
    "state",
    "created_at",
    "acceptance_before",
    "assignment_before",
    "start_after",
    "start_before",
    "n_slots",
    "resolution_s",
    "payload",
    "reason",
    "received_at",
    "updated_at",
    "worker",
)


@dataclass(frozen=True, slots=True)
class OfferHead:
    """What a decision about an incoming offer needs to know about the stored one."""

    id: str
    issuer: str
    revision: int
    state: str
    assignment_before: int
    schedule_version: int


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    offer_id: str
    issuer: str
    version: int
    start: int
    profile: int
    energy_kwh: list[float]
    kind: str
    status: str
    #: the offer revision the schedule was made for (``Schedule.offer_revision``)
    offer_revision: int = 0
    #: the offer's ``assignment_before`` (where the query joins the offer; else 0)
    deadline: int = 0
    #: the agent's reasons for refusing it (JSON), if it did
    reason: str = ""


def _schema(db: sqlite_utils.Database) -> None:
    if "offers" not in db.table_names():
        db["offers"].create(
            {
                "id": str,
                "issuer": str,
                "device": str,
                "load_type": str,
                "grid_node": str,
                "mode": str,
                "revision": int,
                "state": str,
                "created_at": int,
                "acceptance_before": int,
                "assignment_before": int,
                "start_after": int,
                "start_before": int,
                "n_slots": int,
                "resolution_s": int,
                "payload": bytes,
                "reason": str,
                "received_at": float,
                "updated_at": float,
                "worker": str,
                "schedule_version": int,
                "metered_slots": int,
                "flagged_slots": int,
                "executed_at": float,
            },
            pk="id",
            not_null={"issuer", "state", "revision"},
            defaults={"schedule_version": 0, "metered_slots": 0, "flagged_slots": 0},
        )
        db["offers"].create_index(["issuer", "state"])
        db["offers"].create_index(["state", "assignment_before"])
        db["offers"].create_index(["start_after"])
    if "schedules" not in db.table_names():
        db["schedules"].create(
            {
                "offer_id": str,
                "version": int,
                "issuer": str,
                "start": int,
                "profile": int,
                "energy_kwh": str,
                "kind": str,
                "status": str,
                "created_at": float,
                "sent_at": float,
                "answered_at": float,
                "reason": str,
                "offer_revision": int,
            },
            pk=("offer_id", "version"),
            not_null={"issuer", "status"},
        )
        db["schedules"].create_index(["status"])
    elif "offer_revision" not in db["schedules"].columns_dict:  # databases before protocol 1.1
        db["schedules"].add_column("offer_revision", int, not_null_default=0)
    if "readings" not in db.table_names():
        db["readings"].create(
            {
                "agent": str,
                "device": str,
                "start": int,
                "duration_s": int,
                "energy_kwh": float,
                "offer_id": str,
                "received_at": float,
            },
            pk=("agent", "device", "start", "duration_s"),
        )
        db["readings"].create_index(["offer_id"])
        db["readings"].create_index(["start"])
    if "quarantine" not in db.table_names():
        # readings an agent sent that ingest set aside (implausible, an unknown device, in the
        # future), with the reason, for the operator; the agent was told in its ack
        db["quarantine"].create(
            {
                "agent": str,
                "device": str,
                "start": int,
                "duration_s": int,
                "energy_kwh": float,
                "offer_id": str,
                "code": str,
                "message": str,
                "msg_id": str,
                "received_at": float,
            },
            pk=("agent", "device", "start", "duration_s"),
        )
        db["quarantine"].create_index(["received_at"])
    if "agents" not in db.table_names():
        db["agents"].create(
            {
                "agent": str,
                "state": str,
                "since": int,
                "status_ts": int,
                "seen_at": float,
                "version": str,
                "health": str,
                "devices": str,
            },
            pk="agent",
        )
    elif "devices" not in db["agents"].columns_dict:  # databases before protocol 1.2
        db["agents"].add_column("devices", str)
    if "messages" not in db.table_names():
        # the ingest log: one row per message id and sender, so a redelivered message is
        # recognised and answered as before, and "processed twice" can be checked
        db["messages"].create(
            {
                "agent": str,
                "msg_id": str,
                "channel": str,
                "ref_id": str,
                "revision": int,
                "outcome": str,
                "reasons": str,
                "worker": str,
                "at": float,
            },
            pk=("agent", "msg_id"),
        )
        db["messages"].create_index(["at"])
    if "execution" not in db.table_names():
        db["execution"].create(
            {
                "offer_id": str,
                "slot": int,
                "scheduled_kwh": float,
                "baseline_kwh": float,
                "metered_kwh": float,
                "flagged": int,
            },
            pk=("offer_id", "slot"),
        )
        db["execution"].create_index(["slot"])
    if "series" not in db.table_names():
        db["series"].create({"name": str, "slot": int, "value": float}, pk=("name", "slot"))
    if "meta" not in db.table_names():
        db["meta"].create({"key": str, "value": int}, pk="key")
    if "lease" not in db.table_names():
        db["lease"].create({"name": str, "holder": str, "expires": float}, pk="name")
    if "stats" not in db.table_names():
        db["stats"].create(
            {"worker": str, "key": str, "value": float, "updated_at": float}, pk=("worker", "key")
        )


class Store:
    """One connection to the FMAN database; open one per thread (SQLite connections are not
    shared between threads). Writes go through :meth:`write`, a ``BEGIN IMMEDIATE``
    transaction that commits on success and rolls back on any exception."""

    def __init__(
        self, *, path: str | Path, synchronous: str = "normal", timeout_s: float = 30.0
    ) -> None:
        self.path = Path(path)
        self._in_tx = False
        self._lock_fd: int | None = None
        #: Seconds spent waiting for and holding the write lock (for the counters).
        self.lock_wait_s = 0.0
        self.lock_held_s = 0.0
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # writers of every process queue on this lock (the kernel wakes the next one
                # at once) instead of SQLite's busy handler, which polls with sleeps
                self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            conn = sqlite3.connect(
                str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            conn.execute("PRAGMA foreign_keys=OFF")
            self.db = sqlite_utils.Database(conn)
            with self.write():
                _schema(self.db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the FMAN database {path}: {exc}") from exc
        self.conn = conn

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Store]:
        """An immediate (write-locked) transaction; nested calls join the outer one."""
        if self._in_tx:
            yield self
            return
        conn = self.db.conn
        t0 = time.perf_counter()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        t1 = time.perf_counter()
        self.lock_wait_s += t1 - t0
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot begin a write: {exc}") from exc
            self._in_tx = True
            try:
                yield self
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    conn.execute("ROLLBACK")
                    raise StoreError(f"{self.path}: commit failed: {exc}") from exc
            finally:
                self._in_tx = False
        finally:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self.lock_held_s += time.perf_counter() - t1

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            cur = self.db.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        cols = [d[0] for d in cur.description or ()]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]  # type: ignore[misc]

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self.db.conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self.db.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    @staticmethod
    def _marks(n: int) -> str:
        return ",".join("?" * n)

    # -- ingest ----------------------------------------------------------------------------

    def seen_messages(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        """Ingest-log rows of messages already processed, keyed by ``(agent, msg_id)``."""
        out: dict[tuple[str, str], dict] = {}
        cols = None
        conn = self.db.conn
        try:
            for key in set(keys):  # one primary-key probe each: cheaper than any IN list here
                cur = conn.execute("SELECT * FROM messages WHERE agent=? AND msg_id=?", key)
                row = cur.fetchone()
                if row is not None:
                    cols = cols or [d[0] for d in cur.description]
                    out[key] = dict(zip(cols, row, strict=True))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        return out

    def log_messages(self, rows: Sequence[tuple]) -> int:
        """``(agent, msg_id, channel, ref_id, revision, outcome, reasons_json, worker, at)``;
        returns how many were new (a message already logged is left as it was)."""
        before = self.db.conn.total_changes
        self._many(
            "INSERT OR IGNORE INTO messages(agent,msg_id,channel,ref_id,revision,outcome,reasons,"
            "worker,at) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
        return self.db.conn.total_changes - before

    def offer_heads(self, ids: Sequence[str]) -> dict[str, OfferHead]:
        out: dict[str, OfferHead] = {}
        for chunk in _chunks(list(set(ids)), 900):
            for r in self._rows(
                "SELECT id, issuer, revision, state, assignment_before, schedule_version "
                f"FROM offers WHERE id IN ({self._marks(len(chunk))})",
                chunk,
            ):
                out[r["id"]] = OfferHead(**r)
        return out

    def open_offer_counts(self, issuers: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        states = self._marks(len(OPEN_STATES))
        for chunk in _chunks(list(set(issuers)), 900):
            for r in self._rows(
                f"SELECT issuer, count(*) AS n FROM offers WHERE issuer IN "
                f"({self._marks(len(chunk))}) AND state IN ({states}) GROUP BY issuer",
                [*chunk, *OPEN_STATES],
            ):
                out[r["issuer"]] = r["n"]
        return out

    def put_offers(self, rows: Iterable[dict[str, Any]]) -> None:
        """Insert or replace offers (missing columns become NULL). The caller has decided that
        each row is newer than what is stored."""
        cols = ",".join(_OFFER_COLUMNS)
        updates = ",".join(f"{c}=excluded.{c}" for c in _OFFER_COLUMNS[1:])
        self._many(
            f"INSERT INTO offers({cols}) VALUES ({self._marks(len(_OFFER_COLUMNS))}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}",
            [tuple(map(row.get, _OFFER_COLUMNS)) for row in rows],
        )

    def set_offer_states(self, rows: Iterable[tuple[str, str, float, str]]) -> None:
        """``(state, reason, updated_at, offer_id)`` per row."""
        self._many("UPDATE offers SET state=?, reason=?, updated_at=? WHERE id=?", rows)

    def put_readings(self, rows: Iterable[tuple]) -> None:
        """``(agent, device, start, duration_s, energy_kwh, offer_id, received_at)``; a
        redelivered reading overwrites itself with the same values."""
        self._many(
            "INSERT INTO readings(agent,device,start,duration_s,energy_kwh,offer_id,received_at) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT(agent,device,start,duration_s) DO UPDATE SET "
            "energy_kwh=excluded.energy_kwh, offer_id=excluded.offer_id",
            rows,
        )

    def put_quarantined(self, rows: Iterable[tuple]) -> None:
        """``(agent, device, start, duration_s, energy_kwh, offer_id, code, message, msg_id,
        received_at)``: readings set aside; one sent again replaces itself."""
        self._many(
            "INSERT INTO quarantine(agent,device,start,duration_s,energy_kwh,offer_id,code,"
            "message,msg_id,received_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(agent,device,"
            "start,duration_s) DO UPDATE SET energy_kwh=excluded.energy_kwh, code=excluded.code, "
            "message=excluded.message, msg_id=excluded.msg_id",
            rows,
        )

    def quarantined(
        self, *, agent: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[dict]:
        """Quarantined readings, newest first, optionally of one agent and received since
        ``since`` (the worker's clock)."""
        where, params = [], []
        if agent is not None:
            where.append("agent=?")
            params.append(agent)
        if since is not None:
            where.append("received_at>=?")
            params.append(since)
        sql = "SELECT * FROM quarantine"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._rows(sql + " ORDER BY received_at DESC, agent, device, start LIMIT ?",
                          [*params, limit])  # fmt: skip

    def put_statuses(self, rows: Iterable[tuple]) -> None:
        """``(agent, state, since, status_ts, seen_at, version, health_json, devices_json)``; a
        status older than the stored one (reordered by the shared subscription) changes
        nothing, and one that names no devices (the Last Will) keeps those last announced.

        The Last Will is the exception to "older": the broker holds it from the connection's
        start, so it carries that time, older than every health refresh of the session; it
        counts if it is not older than the session's ``since`` (the agent dates its session
        from the moment it made the Will). A Will of an earlier session stays out."""
        self._many(
            "INSERT INTO agents(agent,state,since,status_ts,seen_at,version,health,devices) "
            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(agent) DO UPDATE SET state=excluded.state, "
            "since=excluded.since, seen_at=excluded.seen_at, "
            "version=excluded.version, health=excluded.health, "
            # a Will is older than the session's refreshes: a refresh of that session that
            # arrives after it (redelivered) must not bring the agent back
            "status_ts=max(agents.status_ts, excluded.status_ts), "
            "devices=coalesce(excluded.devices, agents.devices) "
            "WHERE excluded.status_ts >= agents.status_ts OR (excluded.state = 'offline' "
            "AND agents.state = 'online' AND excluded.status_ts >= agents.since)",
            rows,
        )

    def announced_devices(self, agents: Sequence[str]) -> dict[str, tuple[frozenset[str], int]]:
        """The devices each of ``agents`` last announced in its status, with the time of that
        status (absent: never announced)."""
        out: dict[str, tuple[frozenset[str], int]] = {}
        for chunk in _chunks(list(set(agents)), 900):
            for r in self._rows(
                f"SELECT agent, devices, status_ts FROM agents WHERE agent IN "
                f"({self._marks(len(chunk))}) AND devices IS NOT NULL",
                chunk,
            ):
                out[r["agent"]] = (frozenset(json.loads(r["devices"])), r["status_ts"] or 0)
        return out

    def answer_schedules(self, rows: Iterable[tuple]) -> int:
        """``(status, answered_at, reason, offer_id, version, issuer)``: the agent's answer to a
        schedule. Only the issuer of the offer can answer for it."""
        n = 0
        for row in rows:
            n += self._exec(
                "UPDATE schedules SET status=?, answered_at=?, reason=? "
                "WHERE offer_id=? AND version=? AND issuer=?",
                row,
            )
        return n

    # -- planning --------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        """Take or renew lease ``name`` for ``holder`` if it is free, expired or ours."""
        with self.write():
            n = self._exec(
                "INSERT INTO lease(name, holder, expires) VALUES (?,?,?) ON CONFLICT(name) DO "
                "UPDATE SET holder=excluded.holder, expires=excluded.expires "
                "WHERE lease.holder=excluded.holder OR lease.expires < ?",
                (name, holder, now + ttl_s, now),
            )
        return n > 0

    def holds_lease(self, name: str, holder: str, now: float) -> bool:
        rows = self._rows("SELECT holder, expires FROM lease WHERE name=?", (name,))
        return bool(rows) and rows[0]["holder"] == holder and rows[0]["expires"] >= now

    def release_lease(self, name: str, holder: str) -> None:
        with self.write():
            self._exec("DELETE FROM lease WHERE name=? AND holder=?", (name, holder))

    def offers_in(
        self, states: Sequence[str], *, deadline_after: float | None = None
    ) -> list[dict]:
        """Offers in ``states`` (with payload), optionally only those whose assignment
        deadline is later than ``deadline_after``."""
        sql = f"SELECT * FROM offers WHERE state IN ({self._marks(len(states))})"
        params: list[Any] = list(states)
        if deadline_after is not None:
            sql += " AND assignment_before > ?"
            params.append(deadline_after)
        return self._rows(sql, params)

    def current_schedules(
        self, offer_ids: Sequence[str] | None = None
    ) -> dict[str, StoredSchedule]:
        """The schedule in force (highest version) of each offer that has one."""
        sql = (
            "SELECT s.* FROM schedules s JOIN offers o ON o.id = s.offer_id "
            "AND o.schedule_version = s.version"
        )
        params: list[Any] = []
        out: dict[str, StoredSchedule] = {}
        chunks = [None] if offer_ids is None else list(_chunks(list(offer_ids), 900))
        for chunk in chunks:
            where = "" if chunk is None else f" WHERE s.offer_id IN ({self._marks(len(chunk))})"
            params = [] if chunk is None else list(chunk)
            for r in self._rows(sql + where, params):
                out[r["offer_id"]] = _schedule(r)
        return out

    def add_schedules(
        self,
        rows: Sequence[tuple[str, str, int, int, int, list[float], str]],
        *,
        now: float,
        holder: str | None = None,
        status: str = "pending",
        states: Sequence[str] = OPEN_STATES,
    ) -> list[StoredSchedule]:
        """Store new schedules ``(offer_id, issuer, expected_revision, start, profile,
        energy, kind)`` as the next version of each offer, in one transaction, and make them
        the schedule in force (an open offer becomes ``assigned``).

        A row whose offer changed revision or left ``states`` since it was planned is skipped:
        the next cycle plans the new revision. With ``holder``, nothing is written unless
        ``holder`` still holds the planner lease (a fence against a paused ex-leader)."""
        out: list[StoredSchedule] = []
        with self.write():
            if holder is not None:
                lease = self._rows("SELECT holder FROM lease WHERE name='planner'")
                if not lease or lease[0]["holder"] != holder:
                    return []
            heads = self.offer_heads([r[0] for r in rows])
            latest = self._latest_versions([r[0] for r in rows])
            for offer_id, issuer, revision, start, profile, energy, kind in rows:
                head = heads.get(offer_id)
                if head is None or head.revision != revision or head.state not in states:
                    continue
                # after a refusal the version in force may be older than the newest one issued
                version = max(head.schedule_version, latest.get(offer_id, 0)) + 1
                latest[offer_id] = version
                heads[offer_id] = OfferHead(
                    offer_id,
                    head.issuer,
                    head.revision,
                    head.state,
                    head.assignment_before,
                    version,
                )
                self._exec(
                    "INSERT INTO schedules(offer_id,version,issuer,start,profile,energy_kwh,kind,"
                    "status,created_at,offer_revision) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        offer_id,
                        version,
                        issuer,
                        start,
                        profile,
                        json.dumps(energy),
                        kind,
                        status,
                        now,
                        revision,
                    ),
                )
                self._exec(
                    "UPDATE schedules SET status='superseded' WHERE offer_id=? AND version<? "
                    "AND status IN ('pending','sent')",
                    (offer_id, version),
                )
                self._exec(
                    "UPDATE offers SET schedule_version=?, updated_at=?, state=CASE WHEN state "
                    "IN ('offered','accepted') THEN 'assigned' ELSE state END WHERE id=?",
                    (version, now, offer_id),
                )
                out.append(
                    StoredSchedule(
                        offer_id, issuer, version, start, profile, energy, kind, status, revision
                    )
                )
        return out

    def _latest_versions(self, offer_ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in _chunks(list(set(offer_ids)), 900):
            for r in self._rows(
                "SELECT offer_id, max(version) AS v FROM schedules "
                f"WHERE offer_id IN ({self._marks(len(chunk))}) GROUP BY offer_id",
                chunk,
            ):
                out[r["offer_id"]] = r["v"]
        return out

    def refused_current(self) -> list[StoredSchedule]:
        """Schedules in force that their agent refused, or that were too late to send."""
        rows = self._rows(
            "SELECT s.* FROM schedules s JOIN offers o ON o.id = s.offer_id "
            "AND o.schedule_version = s.version WHERE s.status IN ('rejected', 'late')"
        )
        return [_schedule(r) for r in rows]

    def fall_back(self, offer_id: str, refused_version: int) -> int:
        """Make the newest version the agent acknowledged before ``refused_version`` the one
        in force; returns it, or 0 if there is none."""
        with self.write():
            rows = self._rows(
                "SELECT max(version) AS v FROM schedules WHERE offer_id=? AND version<? "
                "AND status IN ('acked','implicit')",
                (offer_id, refused_version),
            )
            version = rows[0]["v"] or 0
            self._exec(
                "UPDATE offers SET schedule_version=? WHERE id=? AND schedule_version=?",
                (version, offer_id, refused_version),
            )
        return version

    def unscheduled_before(self, deadline: float) -> bool:
        """Whether an accepted offer without a schedule has its deadline before ``deadline``."""
        return bool(
            self._rows(
                "SELECT 1 FROM offers WHERE state = 'accepted' AND assignment_before <= ? "
                "AND schedule_version = 0 LIMIT 1",
                (deadline,),
            )
        )

    def offer_row(self, offer_id: str) -> dict:
        rows = self._rows("SELECT * FROM offers WHERE id=?", (offer_id,))
        if not rows:
            raise StoreError(f"{self.path}: no offer {offer_id!r}")
        return rows[0]

    def counter(self, key: str) -> int:
        rows = self._rows("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else 0

    def bump(self, key: str) -> None:
        """Count a change of ``key`` (inside the caller's transaction), so the planning cycle
        of any worker sees that offers changed without scanning them."""
        self._exec(
            "INSERT INTO meta(key, value) VALUES (?, 1) ON CONFLICT(key) DO UPDATE SET "
            "value = value + 1",
            (key,),
        )

    def unsent_schedules(self, *, resend_before: float, now: float) -> list[StoredSchedule]:
        """Current schedules not yet handed to the broker, or sent before ``resend_before``
        (wall time) and still unanswered: while their offer's assignment deadline (``now``
        is the worker's clock) has not passed, and after it while the offer is still assigned
        or executing and its agent online (the agent took the schedule or not; its answer
        was lost, and FMAN must hear it to agree with the agent on what runs)."""
        rows = self._rows(
            "SELECT s.*, o.assignment_before AS deadline FROM schedules s JOIN offers o "
            "ON o.id = s.offer_id AND o.schedule_version = s.version WHERE s.status = 'pending' "
            "OR (s.status = 'sent' AND s.sent_at < ? AND (o.assignment_before > ? OR "
            "(o.state IN ('assigned', 'executing') AND EXISTS (SELECT 1 FROM agents a "
            "WHERE a.agent = s.issuer AND a.state = 'online'))))",
            (resend_before, now),
        )
        return [_schedule(r) for r in rows]

    def mark_sent(self, keys: Iterable[tuple[str, int]], at: float) -> None:
        with self.write():
            self._many(
                "UPDATE schedules SET sent_at=?, status=CASE WHEN status='pending' THEN 'sent' "
                "ELSE status END WHERE offer_id=? AND version=?",
                [(at, o, v) for o, v in keys],
            )

    def mark_late(self, keys: Iterable[tuple[str, int]], at: float) -> None:
        """Schedules never sent because they could no longer reach their agent in time."""
        with self.write():
            self._many(
                "UPDATE schedules SET status='late', answered_at=? WHERE offer_id=? AND "
                "version=? AND status='pending'",
                [(at, o, v) for o, v in keys],
            )

    def set_states(self, rows: Iterable[tuple[str, float, str, Sequence[str]]]) -> None:
        """``(new_state, updated_at, offer_id, allowed_current_states)``."""
        with self.write():
            for state, at, offer_id, allowed in rows:
                self._exec(
                    f"UPDATE offers SET state=?, updated_at=? WHERE id=? AND state IN "
                    f"({self._marks(len(allowed))})",
                    (state, at, offer_id, *allowed),
                )

    # -- execution -------------------------------------------------------------------------

    def readings_of(
        self, offer_id: str, agent: str, device: str, start: int, end: int
    ) -> tuple[list[tuple[int, int, float]], list[tuple[int, int, float]]]:
        """``(start, duration_s, energy_kwh)`` of the readings of one offer: those tagged with
        it, and untagged ones of its device in ``[start, end)``, as two lists."""
        tagged = self._rows(
            "SELECT start, duration_s, energy_kwh FROM readings WHERE offer_id=?", (offer_id,)
        )
        untagged = self._rows(
            "SELECT start, duration_s, energy_kwh FROM readings WHERE agent=? AND device=? "
            "AND start>=? AND start<? AND (offer_id IS NULL OR offer_id='')",
            (agent, device, start, end),
        )
        return (
            [(r["start"], r["duration_s"], r["energy_kwh"]) for r in tagged],
            [(r["start"], r["duration_s"], r["energy_kwh"]) for r in untagged],
        )

    def move_schedule(self, offer_id: str, version: int, start: int) -> None:
        """Correct the start of a recorded (implicit) schedule to the one its agent ran."""
        self._exec(
            "UPDATE schedules SET start=? WHERE offer_id=? AND version=? AND status='implicit'",
            (start, offer_id, version),
        )

    def put_execution(
        self, offer_id: str, rows: Sequence[tuple[int, float, float, float | None, int]]
    ) -> None:
        """Replace the per-slot execution check of one offer:
        ``(slot, scheduled, baseline, metered, flagged)``."""
        self._exec("DELETE FROM execution WHERE offer_id=?", (offer_id,))
        self._many(
            "INSERT INTO execution(offer_id,slot,scheduled_kwh,baseline_kwh,metered_kwh,flagged) "
            "VALUES (?,?,?,?,?,?)",
            [(offer_id, *r) for r in rows],
        )

    def set_execution_summary(
        self, offer_id: str, *, metered: int, flagged: int, executed_at: float | None
    ) -> None:
        self._exec(
            "UPDATE offers SET metered_slots=?, flagged_slots=?, executed_at=coalesce(?, "
            "executed_at), state=CASE WHEN ? IS NOT NULL AND state='executing' THEN 'executed' "
            "ELSE state END WHERE id=?",
            (metered, flagged, executed_at, executed_at, offer_id),
        )

    # -- series, counters ------------------------------------------------------------------

    def put_series(self, name: str, values: dict[int, float]) -> None:
        with self.write():
            self._many(
                "INSERT INTO series(name, slot, value) VALUES (?,?,?) ON CONFLICT(name, slot) "
                "DO UPDATE SET value=excluded.value",
                [(name, int(k), float(v)) for k, v in values.items()],
            )

    def series(self, name: str) -> dict[int, float]:
        return {
            r["slot"]: r["value"]
            for r in self._rows("SELECT slot, value FROM series WHERE name=?", (name,))
        }

    def put_stats(self, worker: str, values: dict[str, float]) -> None:
        now = time.time()
        with self.write():
            self._many(
                "INSERT INTO stats(worker,key,value,updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(worker,key) DO UPDATE SET value=excluded.value, "
                "updated_at=excluded.updated_at",
                [(worker, k, float(v), now) for k, v in values.items()],
            )

    def stats(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for r in self._rows("SELECT worker, key, value FROM stats"):
            out.setdefault(r["worker"], {})[r["key"]] = r["value"]
        return out

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        """A read-only query for reports (the CLI)."""
        return self._rows(sql, params)


def _schedule(r: dict) -> StoredSchedule:
    return StoredSchedule(
        offer_id=r["offer_id"],
        issuer=r["issuer"],
        version=r["version"],
        start=r["start"],
        profile=r["profile"],
        energy_kwh=json.loads(r["energy_kwh"]),
        kind=r["kind"],
        status=r["status"],
        offer_revision=r.get("offer_revision") or 0,
        deadline=r.get("deadline") or 0,
        reason=r.get("reason") or "",
    )


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


OFFER_COLUMNS = _OFFER_COLUMNS
