"""The store's reads and writes in SQL that SQLite and PostgreSQL both run.

:class:`SqlStore` holds every statement; a subclass per database supplies the connection,
the transactions and the few things the two spell differently (placeholders and ``IN``
lists, the clock of the lease, row locks). Statements are written with ``?`` placeholders.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import fields
from typing import Any, ClassVar

from .._errors import StoreError
from ._market import MarketTables
from ._migrations import (
    DELIVERY_END,
    LATEST,
    STEPS,
    Dialect,
    foreign_kind,
    unversioned_version,
    version_table,
)
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

Row = dict[str, Any]

_OFFER_COLUMNS = tuple(f.name for f in fields(OfferRecord))
_STORED_OFFER_COLUMNS = tuple(f.name for f in fields(StoredOffer))
_SUMMARY_COLUMNS = tuple(f.name for f in fields(OfferSummary))
_SCHEDULE_COLUMNS = (
    "s.offer_id, s.issuer, s.version, s.start, s.profile, s.energy_kwh, s.kind, s.status, "
    "s.offer_revision, s.reason, s.worker, s.created_at"
)
_IN_FORCE = "JOIN offers o ON o.id = s.offer_id AND o.schedule_version = s.version"


class SqlStore(MarketTables):
    """The named reads and writes over a connection; see :class:`~.Store` for each one's
    meaning. Subclasses implement the primitives below."""

    dialect: ClassVar[Dialect]
    #: appended to the read of the planner lease that fences a schedule write
    _FENCE: ClassVar[str] = ""

    where: str
    lock_wait_s: float
    lock_held_s: float
    _in_tx: bool

    # -- primitives ------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the rows it changed."""
        raise NotImplementedError

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement per row; returns the rows changed in all."""
        raise NotImplementedError

    def write(self, *, offers: Collection[str] | None = None) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _in(self, column: str, values: Collection[Any]) -> Iterator[tuple[str, list[Any]]]:
        """``column`` among ``values``: one or more ``(condition, params)``, each to be run
        as its own statement, whose results together are the answer."""
        raise NotImplementedError

    def _db_now(self) -> float:
        """Epoch seconds on the clock that leases expire by."""
        raise NotImplementedError

    def _tables(self) -> set[str]:
        raise NotImplementedError

    def _columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row:
        rows = self._rows(sql, params)
        if not rows:
            raise StoreError(f"{self.where}: no result from {sql.split()[0]}")
        return rows[0]

    # -- schema ----------------------------------------------------------------------------

    def schema_version(self) -> int:
        try:
            return int(self._one("SELECT max(version) AS v FROM schema_version")["v"] or 0)
        except StoreError:
            if "schema_version" not in self._tables():
                return 0
            raise

    def _check_kind(self) -> None:
        """Refuse a database that is not FMAN's (an agent's store, say) before writing."""
        tables = self._tables()
        problem = foreign_kind(tables, self._columns("offers") if "offers" in tables else set())
        if problem:
            raise StoreError(not_fman(self.where, problem))

    def _migrate(self) -> None:
        """Bring the database to :data:`LATEST`, in one transaction (see ``_migrations``)."""
        with self.write():
            self._check_kind()
            self._exec(version_table(self.dialect))
            current = self._one("SELECT max(version) AS v FROM schema_version")["v"]
            if current is None:
                current = unversioned_version(
                    self._tables(), {t: self._columns(t) for t in ("agents", "schedules")}
                )
                if current:
                    self._exec(
                        "INSERT INTO schema_version(version, description, applied_at) "
                        "VALUES (?, ?, ?)",
                        (current, "found: made before versions were recorded", time.time()),
                    )
            if current > LATEST:
                raise StoreError(
                    f"{self.where}: the database has schema version {current}, newer than "
                    f"this atp knows ({LATEST}): upgrade atp"
                )
            for step in STEPS[current:]:
                for statement in step.statements(self.dialect):
                    self._exec(statement)
                self._exec(
                    "INSERT INTO schema_version(version, description, applied_at) VALUES (?, ?, ?)",
                    (step.version, step.description, time.time()),
                )

    def _check_version(self) -> None:
        """For a reader: the database must be FMAN's, at the version this code reads."""
        self._check_kind()
        version = self.schema_version()
        if version == 0:  # made before versions were recorded, or not an FMAN database
            version = unversioned_version(
                self._tables(), {t: self._columns(t) for t in ("agents", "schedules")}
            )
        if version == 0:
            raise StoreError(f"{self.where}: not an FMAN database (yet): no schema version")
        if version < LATEST:
            raise StoreError(
                f"{self.where}: schema version {version}, this atp reads {LATEST}: run "
                "`atp fman migrate` (or start a worker) to upgrade it"
            )
        if version > LATEST:
            raise StoreError(
                f"{self.where}: schema version {version}, newer than this atp knows "
                f"({LATEST}): upgrade atp"
            )

    # -- ingest: reads ---------------------------------------------------------------------

    def seen_messages(self, keys: Collection[MessageKey]) -> dict[MessageKey, LoggedMessage]:
        out: dict[MessageKey, LoggedMessage] = {}
        for key in set(keys):  # one primary-key probe each: cheaper than any IN list here
            for r in self._rows(
                "SELECT * FROM messages WHERE agent=? AND msg_id=?", (key.agent, key.msg_id)
            ):
                out[key] = _logged(r)
        return out

    def offer_heads(self, ids: Collection[str]) -> dict[str, OfferHead]:
        out: dict[str, OfferHead] = {}
        for cond, params in self._in("id", set(ids)):
            for r in self._rows(
                "SELECT id, issuer, revision, state, assignment_before, schedule_version "
                f"FROM offers WHERE {cond}",
                params,
            ):
                out[r["id"]] = OfferHead(
                    id=r["id"],
                    issuer=r["issuer"],
                    revision=r["revision"],
                    state=r["state"],
                    assignment_before=r["assignment_before"] or 0,
                    schedule_version=r["schedule_version"] or 0,
                )
        return out

    def open_offer_counts(self, issuers: Collection[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        ((states, state_params),) = self._in("state", OPEN_STATES)
        for cond, params in self._in("issuer", set(issuers)):
            for r in self._rows(
                f"SELECT issuer, count(*) AS n FROM offers WHERE {cond} AND {states} "
                "GROUP BY issuer",
                [*params, *state_params],
            ):
                out[r["issuer"]] = int(r["n"])
        return out

    def announced_devices(self, agents: Collection[str]) -> dict[str, Announcement]:
        out: dict[str, Announcement] = {}
        for cond, params in self._in("agent", set(agents)):
            for r in self._rows(
                f"SELECT agent, devices, status_ts FROM agents WHERE {cond} "
                "AND devices IS NOT NULL",
                params,
            ):
                out[r["agent"]] = Announcement(
                    devices=frozenset(json.loads(r["devices"])), status_ts=r["status_ts"] or 0
                )
        return out

    # -- ingest: writes --------------------------------------------------------------------

    def log_messages(self, rows: Sequence[LoggedMessage]) -> int:
        with self.write():
            return self._many(
                "INSERT INTO messages(agent, msg_id, channel, ref_id, revision, outcome, "
                "reasons, worker, at) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (agent, msg_id) DO NOTHING",
                [
                    (
                        m.agent,
                        m.msg_id,
                        m.channel,
                        m.ref_id,
                        m.revision,
                        m.outcome,
                        m.reasons,
                        m.worker,
                        m.at,
                    )
                    for m in rows
                ],
            )

    def put_offers(self, rows: Iterable[OfferRecord]) -> None:
        cols = ", ".join(_OFFER_COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in _OFFER_COLUMNS if c != "id")
        marks = ",".join("?" * len(_OFFER_COLUMNS))
        with self.write():
            self._many(
                f"INSERT INTO offers({cols}) VALUES ({marks}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates}",
                [tuple(getattr(r, c) for c in _OFFER_COLUMNS) for r in rows],
            )

    def set_offer_states(self, rows: Iterable[OfferStateChange]) -> None:
        with self.write():
            self._many(
                "UPDATE offers SET state=?, reason=?, updated_at=? WHERE id=?",
                [(r.state, r.reason, r.at, r.offer_id) for r in rows],
            )

    def bump(self, key: str) -> None:
        with self.write():
            self._exec(
                "INSERT INTO meta(key, value) VALUES (?, 1) ON CONFLICT (key) DO UPDATE "
                "SET value = meta.value + 1",
                (key,),
            )

    def put_readings(self, rows: Iterable[Reading]) -> None:
        with self.write():
            self._many(
                "INSERT INTO readings(agent, device, start, duration_s, energy_kwh, offer_id, "
                "received_at) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT (agent, device, start, duration_s) DO UPDATE SET "
                "energy_kwh=excluded.energy_kwh, offer_id=excluded.offer_id",
                [
                    (
                        r.agent,
                        r.device,
                        r.start,
                        r.duration_s,
                        r.energy_kwh,
                        r.offer_id,
                        r.received_at,
                    )
                    for r in rows
                ],
            )

    def put_quarantined(self, rows: Iterable[Quarantined]) -> None:
        with self.write():
            self._many(
                "INSERT INTO quarantine(agent, device, start, duration_s, energy_kwh, offer_id, "
                "code, message, msg_id, received_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (agent, device, start, duration_s) DO UPDATE SET "
                "energy_kwh=excluded.energy_kwh, code=excluded.code, message=excluded.message, "
                "msg_id=excluded.msg_id",
                [
                    (
                        q.agent,
                        q.device,
                        q.start,
                        q.duration_s,
                        q.energy_kwh,
                        q.offer_id,
                        q.code,
                        q.message,
                        q.msg_id,
                        q.received_at,
                    )
                    for q in rows
                ],
            )

    def put_statuses(self, rows: Iterable[AgentStatus]) -> None:
        with self.write():
            self._many(
                "INSERT INTO agents(agent, state, since, status_ts, seen_at, version, health, "
                "devices) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (agent) DO UPDATE SET "
                "state=excluded.state, since=excluded.since, seen_at=excluded.seen_at, "
                "version=excluded.version, health=excluded.health, "
                # a Will is older than the session's refreshes: a refresh of that session
                # that arrives after it (redelivered) must not bring the agent back
                "status_ts=CASE WHEN excluded.status_ts > agents.status_ts "
                "THEN excluded.status_ts ELSE agents.status_ts END, "
                "devices=coalesce(excluded.devices, agents.devices) "
                "WHERE excluded.status_ts >= agents.status_ts OR (excluded.state = 'offline' "
                "AND agents.state = 'online' AND excluded.status_ts >= agents.since)",
                [
                    (
                        s.agent,
                        s.state,
                        s.since,
                        s.status_ts,
                        s.seen_at,
                        s.version,
                        json.dumps(s.health),
                        json.dumps(s.devices) if s.devices is not None else None,
                    )
                    for s in rows
                ],
            )

    def answer_schedules(self, rows: Iterable[ScheduleAnswer]) -> int:
        with self.write():
            return self._many(
                "UPDATE schedules SET status=?, answered_at=?, reason=? "
                "WHERE offer_id=? AND version=? AND issuer=?",
                [(a.status, a.at, a.reason, a.offer_id, a.version, a.issuer) for a in rows],
            )

    def put_series(self, name: str, values: Mapping[int, float]) -> None:
        with self.write():
            self._many(
                "INSERT INTO series(name, slot, value) VALUES (?,?,?) "
                "ON CONFLICT (name, slot) DO UPDATE SET value=excluded.value",
                [(name, int(k), float(v)) for k, v in values.items()],
            )

    # -- planning cycle: reads -------------------------------------------------------------

    def counter(self, key: str) -> int:
        # ``key`` itself, and ``key@writer`` where each writer counts in a row of its own
        row = self._one(
            "SELECT sum(value) AS n FROM meta WHERE key = ? OR substr(key, 1, ?) = ?",
            (key, len(key) + 1, f"{key}@"),
        )
        return int(row["n"] or 0)

    def unscheduled_before(self, deadline: float) -> bool:
        return bool(
            self._rows(
                "SELECT 1 AS x FROM offers WHERE state = 'accepted' AND assignment_before <= ? "
                "AND schedule_version = 0 LIMIT 1",
                (deadline,),
            )
        )

    def offers_in(
        self, states: Collection[str], *, deadline_after: float | None = None
    ) -> list[StoredOffer]:
        ((cond, params),) = self._in("state", tuple(states))
        sql = f"SELECT * FROM offers WHERE {cond}"
        if deadline_after is not None:
            sql += " AND assignment_before > ?"
            params = [*params, deadline_after]
        return [_stored_offer(r) for r in self._rows(sql, params)]

    def offer_payloads(self, ids: Collection[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for cond, params in self._in("id", tuple(ids)):
            for r in self._rows(f"SELECT id, payload FROM offers WHERE {cond}", params):
                if r["payload"]:
                    out[r["id"]] = bytes(r["payload"])
        return out

    def offer(self, offer_id: str) -> StoredOffer | None:
        rows = self._rows("SELECT * FROM offers WHERE id=?", (offer_id,))
        return _stored_offer(rows[0]) if rows else None

    def current_schedules(
        self, offer_ids: Collection[str] | None = None
    ) -> dict[str, StoredSchedule]:
        sql = f"SELECT {_SCHEDULE_COLUMNS} FROM schedules s {_IN_FORCE}"
        out: dict[str, StoredSchedule] = {}
        if offer_ids is None:
            parts: Iterable[tuple[str, list[Any]]] = [("", [])]
        else:
            parts = ((f" WHERE {c}", p) for c, p in self._in("s.offer_id", set(offer_ids)))
        for where, params in parts:
            for r in self._rows(sql + where, params):
                out[r["offer_id"]] = _schedule(r)
        return out

    def refused_current(self) -> list[StoredSchedule]:
        rows = self._rows(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules s {_IN_FORCE} "
            "WHERE s.status IN ('rejected', 'late')"
        )
        return [_schedule(r) for r in rows]

    def unsent_schedules(self, *, resend_before: float, now: float) -> list[StoredSchedule]:
        rows = self._rows(
            f"SELECT {_SCHEDULE_COLUMNS}, o.assignment_before AS deadline FROM schedules s "
            f"{_IN_FORCE} WHERE s.status = 'pending' "
            "OR (s.status = 'sent' AND s.sent_at < ? AND (o.assignment_before > ? OR "
            "(o.state IN ('assigned', 'executing') AND EXISTS (SELECT 1 FROM agents a "
            "WHERE a.agent = s.issuer AND a.state = 'online'))))",
            (resend_before, now),
        )
        return [_schedule(r) for r in rows]

    def readings_of(
        self, *, offer_id: str, agent: str, device: str, start: int, end: int
    ) -> OfferReadings:
        tagged = self._rows(
            "SELECT start, duration_s, energy_kwh FROM readings WHERE offer_id=?", (offer_id,)
        )
        untagged = self._rows(
            "SELECT start, duration_s, energy_kwh FROM readings WHERE agent=? AND device=? "
            "AND start>=? AND start<? AND (offer_id IS NULL OR offer_id='')",
            (agent, device, start, end),
        )
        return OfferReadings(
            tagged=[_span(r) for r in tagged], untagged=[_span(r) for r in untagged]
        )

    def series(self, name: str) -> dict[int, float]:
        return {
            int(r["slot"]): float(r["value"])
            for r in self._rows("SELECT slot, value FROM series WHERE name=?", (name,))
        }

    def lease_holder(self, name: str) -> str | None:
        rows = self._rows("SELECT holder FROM lease WHERE name=?", (name,))
        return rows[0]["holder"] if rows else None

    # -- planning cycle: writes ------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, *, ttl_s: float) -> bool:
        # one atomic statement on the lease's row: no need to hold other writers up
        with self.write(offers=()):
            now = self._db_now()
            n = self._exec(
                "INSERT INTO lease(name, holder, expires) VALUES (?,?,?) ON CONFLICT (name) DO "
                "UPDATE SET holder=excluded.holder, expires=excluded.expires "
                "WHERE lease.holder=excluded.holder OR lease.expires < ?",
                (name, holder, now + ttl_s, now),
            )
        return n > 0

    def release_lease(self, name: str, holder: str) -> None:
        with self.write(offers=()):
            self._exec("DELETE FROM lease WHERE name=? AND holder=?", (name, holder))

    def add_schedules(
        self,
        rows: Sequence[NewSchedule],
        *,
        now: float,
        holder: str | None = None,
        status: str = "pending",
        states: Collection[str] = OPEN_STATES,
    ) -> list[StoredSchedule]:
        out: list[StoredSchedule] = []
        if not rows:
            return out
        with self.write():
            if holder is not None:
                lease = self._rows(f"SELECT holder FROM lease WHERE name='planner'{self._FENCE}")
                if not lease or lease[0]["holder"] != holder:
                    return []
            ids = [r.offer_id for r in rows]
            heads = self.offer_heads(ids)
            latest = self._latest_versions(ids)
            for r in rows:
                head = heads.get(r.offer_id)
                if head is None or head.revision != r.offer_revision or head.state not in states:
                    continue
                # after a refusal the version in force may be older than the newest one issued
                version = max(head.schedule_version, latest.get(r.offer_id, 0)) + 1
                latest[r.offer_id] = version
                self._exec(
                    "INSERT INTO schedules(offer_id, version, issuer, start, profile, energy_kwh, "
                    "kind, status, created_at, offer_revision, n_slots, worker) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        r.offer_id,
                        version,
                        r.issuer,
                        r.start,
                        r.profile,
                        json.dumps(r.energy_kwh),
                        r.kind,
                        status,
                        now,
                        r.offer_revision,
                        len(r.energy_kwh),
                        holder,
                    ),
                )
                self._exec(
                    "UPDATE schedules SET status='superseded' WHERE offer_id=? AND version<? "
                    "AND status IN ('pending','sent')",
                    (r.offer_id, version),
                )
                self._exec(
                    "UPDATE offers SET schedule_version=?, updated_at=?, state=CASE WHEN state "
                    "IN ('offered','accepted') THEN 'assigned' ELSE state END WHERE id=?",
                    (version, now, r.offer_id),
                )
                out.append(
                    StoredSchedule(
                        offer_id=r.offer_id,
                        issuer=r.issuer,
                        version=version,
                        start=r.start,
                        profile=r.profile,
                        energy_kwh=list(r.energy_kwh),
                        kind=r.kind,
                        status=status,
                        offer_revision=r.offer_revision,
                        worker=holder or "",
                        created_at=now,
                    )
                )
        return out

    def _latest_versions(self, offer_ids: Collection[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for cond, params in self._in("offer_id", set(offer_ids)):
            for r in self._rows(
                f"SELECT offer_id, max(version) AS v FROM schedules WHERE {cond} GROUP BY offer_id",
                params,
            ):
                out[r["offer_id"]] = int(r["v"])
        return out

    def fall_back(self, offer_id: str, refused_version: int) -> int:
        with self.write():
            row = self._one(
                "SELECT max(version) AS v FROM schedules WHERE offer_id=? AND version<? "
                "AND status IN ('acked','implicit')",
                (offer_id, refused_version),
            )
            version = int(row["v"] or 0)
            self._exec(
                "UPDATE offers SET schedule_version=? WHERE id=? AND schedule_version=?",
                (version, offer_id, refused_version),
            )
        return version

    def mark_sent(self, keys: Iterable[ScheduleKey], at: float) -> None:
        with self.write():
            self._many(
                "UPDATE schedules SET sent_at=?, status=CASE WHEN status='pending' THEN 'sent' "
                "ELSE status END WHERE offer_id=? AND version=?",
                [(at, k.offer_id, k.version) for k in keys],
            )

    def mark_late(self, keys: Iterable[ScheduleKey], at: float) -> None:
        with self.write():
            self._many(
                "UPDATE schedules SET status='late', answered_at=? WHERE offer_id=? AND "
                "version=? AND status='pending'",
                [(at, k.offer_id, k.version) for k in keys],
            )

    def mark_executing(self, offer_ids: Iterable[str], *, at: float) -> None:
        with self.write():
            self._many(
                "UPDATE offers SET state='executing', updated_at=? WHERE id=? "
                "AND state IN ('accepted', 'assigned')",
                [(at, oid) for oid in offer_ids],
            )

    def move_schedule(self, key: ScheduleKey, start: int) -> None:
        with self.write():
            self._exec(
                "UPDATE schedules SET start=? WHERE offer_id=? AND version=? AND status='implicit'",
                (start, key.offer_id, key.version),
            )

    def put_execution(self, offer_id: str, rows: Sequence[ExecutionSlot]) -> None:
        with self.write():
            self._exec("DELETE FROM execution WHERE offer_id=?", (offer_id,))
            self._many(
                "INSERT INTO execution(offer_id, slot, scheduled_kwh, baseline_kwh, metered_kwh, "
                "flagged) VALUES (?,?,?,?,?,?)",
                [
                    (
                        offer_id,
                        r.slot,
                        r.scheduled_kwh,
                        r.baseline_kwh,
                        r.metered_kwh,
                        int(r.flagged),
                    )
                    for r in rows
                ],
            )

    def set_execution_summary(
        self, offer_id: str, *, metered: int, flagged: int, executed_at: float | None
    ) -> None:
        with self.write():
            if executed_at is None:
                self._exec(
                    "UPDATE offers SET metered_slots=?, flagged_slots=? WHERE id=?",
                    (metered, flagged, offer_id),
                )
            else:
                self._exec(
                    "UPDATE offers SET metered_slots=?, flagged_slots=?, executed_at=?, "
                    "state=CASE WHEN state='executing' THEN 'executed' ELSE state END "
                    "WHERE id=?",
                    (metered, flagged, executed_at, offer_id),
                )

    # -- counters --------------------------------------------------------------------------

    def put_stats(self, worker: str, values: Mapping[str, float], *, at: float) -> None:
        with self.write(offers=()):  # the worker's own rows: alongside ingest
            self._many(
                "INSERT INTO stats(worker, key, value, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT (worker, key) DO UPDATE SET value=excluded.value, "
                "updated_at=excluded.updated_at",
                [(worker, k, float(v), at) for k, v in values.items()],
            )

    def stats(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for r in self._rows("SELECT worker, key, value FROM stats"):
            out.setdefault(r["worker"], {})[r["key"]] = float(r["value"])
        return out

    # -- reports ---------------------------------------------------------------------------

    def list_offers(
        self,
        *,
        agent: str | None = None,
        states: Collection[str] = (),
        start_from: int | None = None,
        start_to: int | None = None,
        limit: int = 1000,
    ) -> list[OfferSummary]:
        where, params = self._offer_filter(agent, states, start_from, start_to)
        rows = self._rows(
            f"SELECT {', '.join(_SUMMARY_COLUMNS)} FROM offers WHERE {where} "
            "ORDER BY start_after DESC, id LIMIT ?",
            [*params, limit],
        )
        return [
            OfferSummary(
                **{
                    **r,
                    "schedule_version": r["schedule_version"] or 0,
                    "metered_slots": r["metered_slots"] or 0,
                    "flagged_slots": r["flagged_slots"] or 0,
                    "reason": r["reason"] or "",
                }
            )
            for r in rows
        ]

    def count_offers(
        self,
        *,
        agent: str | None = None,
        states: Collection[str] = (),
        start_from: int | None = None,
        start_to: int | None = None,
    ) -> int:
        where, params = self._offer_filter(agent, states, start_from, start_to)
        return int(self._one(f"SELECT count(*) AS n FROM offers WHERE {where}", params)["n"])

    def _offer_filter(
        self,
        agent: str | None,
        states: Collection[str],
        start_from: int | None,
        start_to: int | None,
    ) -> tuple[str, list[Any]]:
        where = ["revision >= 0"]
        params: list[str | float] = []
        if agent:
            where.append("issuer = ?")
            params.append(agent)
        if states:
            ((cond, state_params),) = self._in("state", tuple(states))
            where.append(cond)
            params.extend(state_params)
        if start_from is not None:
            where.append("start_before >= ?")
            params.append(start_from)
        if start_to is not None:
            where.append("start_after <= ?")
            params.append(start_to)
        return " AND ".join(where), params

    def schedules(
        self,
        *,
        offer_id: str | None = None,
        agent: str | None = None,
        status: str | None = None,
        all_versions: bool = False,
        limit: int = 1000,
    ) -> list[StoredSchedule]:
        where, params = _schedule_filter(offer_id, agent, status, all_versions)
        rows = self._rows(
            f"SELECT {_SCHEDULE_COLUMNS}, o.assignment_before AS deadline, "
            "s.version = o.schedule_version AS in_force "
            f"FROM schedules s JOIN offers o ON o.id = s.offer_id WHERE {where}"
            " ORDER BY s.start, s.offer_id, s.version LIMIT ?",
            [*params, limit],
        )
        return [_schedule(r) for r in rows]

    def count_schedules(
        self,
        *,
        offer_id: str | None = None,
        agent: str | None = None,
        status: str | None = None,
        all_versions: bool = False,
    ) -> int:
        where, params = _schedule_filter(offer_id, agent, status, all_versions)
        return int(
            self._one(
                "SELECT count(*) AS n FROM schedules s JOIN offers o ON o.id = s.offer_id "
                f"WHERE {where}",
                params,
            )["n"]
        )

    def execution_of(self, offer_id: str) -> list[ExecutionSlot]:
        return [
            ExecutionSlot(
                slot=r["slot"],
                scheduled_kwh=r["scheduled_kwh"],
                baseline_kwh=r["baseline_kwh"],
                metered_kwh=r["metered_kwh"],
                flagged=bool(r["flagged"]),
            )
            for r in self._rows(
                "SELECT slot, scheduled_kwh, baseline_kwh, metered_kwh, flagged FROM execution "
                "WHERE offer_id = ? ORDER BY slot",
                (offer_id,),
            )
        ]

    def agents(self) -> list[AgentSummary]:
        ((active, params),) = self._in("o.state", ACTIVE_STATES)
        rows = self._rows(
            "SELECT a.agent, a.state, a.since, a.seen_at, a.version, a.devices, "
            "(SELECT count(*) FROM offers o WHERE o.issuer = a.agent AND o.revision >= 0) "
            "AS offers, "
            f"(SELECT count(*) FROM offers o WHERE o.issuer = a.agent AND {active}) AS active "
            "FROM agents a ORDER BY a.agent",
            params,
        )
        return [
            AgentSummary(
                agent=r["agent"],
                state=r["state"],
                since=r["since"],
                seen_at=r["seen_at"],
                version=r["version"],
                devices=len(json.loads(r["devices"])) if r["devices"] else 0,
                offers=int(r["offers"]),
                active=int(r["active"]),
            )
            for r in rows
        ]

    def portfolio_offers(
        self,
        states: Collection[str] = ACCEPTED_STATES,
        *,
        agent: str | None = None,
        window: tuple[int | None, int | None] = (None, None),
    ) -> list[PortfolioOffer]:
        start, end = window
        # with a window, the state is checked row by row (``|| ''`` keeps an index off it):
        # SQLite, without statistics, would otherwise walk every offer of those states
        # rather than the window's few by idx_offers_delivery_end
        column = "o.state" if start is None else "o.state || ''"
        ((cond, params),) = self._in(column, tuple(states))
        if agent is not None:
            cond, params = f"{cond} AND o.issuer = ?", [*params, agent]
        if start is not None:
            # the expression of idx_offers_delivery_end (DELIVERY_END), which finds them
            end_of = "o.start_before + o.n_slots * o.resolution_s"
            cond, params = f"{cond} AND ({end_of}) > ?", [*params, start]
        if end is not None:
            cond, params = f"{cond} AND o.start_after < ?", [*params, end]
        rows = self._rows(
            "SELECT o.id, o.payload, s.start AS s_start, s.energy_kwh AS s_energy "
            "FROM offers o LEFT JOIN schedules s ON s.offer_id = o.id "
            f"AND s.version = o.schedule_version WHERE {cond}",
            params,
        )
        return [
            PortfolioOffer(
                offer_id=r["id"],
                payload=bytes(r["payload"]),
                schedule_start=r["s_start"],
                schedule_energy_kwh=json.loads(r["s_energy"]) if r["s_energy"] else None,
            )
            for r in rows
        ]

    def latest_delivery_end(self) -> int | None:
        # idx_offers_delivery_end answers it without reading the offers
        row = self._rows(f"SELECT MAX({DELIVERY_END}) AS e FROM offers")
        return None if not row or row[0]["e"] is None else int(row[0]["e"])

    def portfolio_readings(
        self,
        states: Collection[str] = ACCEPTED_STATES,
        *,
        window: tuple[int | None, int | None] = (None, None),
    ) -> list[ReadingSpan]:
        start, end = window
        # with a window, the readings' index on their start leads (see portfolio_offers)
        column = "o.state" if start is None else "o.state || ''"
        ((cond, params),) = self._in(column, tuple(states))
        if start is not None:
            # a reading lasts a day at most (protocol): the bound idx_readings_start can use
            cond = f"{cond} AND r.start >= ? AND r.start + r.duration_s > ?"
            params = [*params, start - 86_400, start]
        if end is not None:
            cond, params = f"{cond} AND r.start < ?", [*params, end]
        rows = self._rows(
            "SELECT r.start, r.duration_s, r.energy_kwh FROM readings r JOIN offers o "
            f"ON o.id = r.offer_id WHERE {cond} UNION ALL "
            "SELECT r.start, r.duration_s, r.energy_kwh FROM offers o "
            "JOIN schedules s ON s.offer_id = o.id AND s.version = o.schedule_version "
            "JOIN readings r ON r.agent = o.issuer AND r.device = o.device "
            "AND r.start >= s.start AND r.start < s.start + s.n_slots * o.resolution_s "
            f"WHERE (r.offer_id IS NULL OR r.offer_id = '') AND {cond}",
            [*params, *params],
        )
        return [_span(r) for r in rows]

    def readings(
        self,
        *,
        agent: str | None = None,
        device: str | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int = 1000,
    ) -> list[Reading]:
        where, params = _reading_filter(agent, device, start, end)
        rows = self._rows(
            "SELECT agent, device, start, duration_s, energy_kwh, offer_id, received_at "
            f"FROM readings WHERE {where} ORDER BY agent, device, start LIMIT ?",
            [*params, limit],
        )
        return [
            Reading(
                agent=r["agent"],
                device=r["device"],
                start=int(r["start"]),
                duration_s=int(r["duration_s"]),
                energy_kwh=float(r["energy_kwh"]),
                offer_id=r["offer_id"] or "",
                received_at=float(r["received_at"] or 0.0),
            )
            for r in rows
        ]

    def count_readings(
        self,
        *,
        agent: str | None = None,
        device: str | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> int:
        where, params = _reading_filter(agent, device, start, end)
        return int(self._one(f"SELECT count(*) AS n FROM readings WHERE {where}", params)["n"])

    def quarantined(
        self, *, agent: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Quarantined]:
        where: list[str] = []
        params: list[str | float] = []
        if agent is not None:
            where.append("agent = ?")
            params.append(agent)
        if since is not None:
            where.append("received_at >= ?")
            params.append(since)
        rows = self._rows(
            "SELECT agent, device, start, duration_s, energy_kwh, offer_id, code, message, "
            "msg_id, received_at FROM quarantine"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY received_at DESC, agent, device, start LIMIT ?",
            [*params, limit],
        )
        return [_quarantined(r) for r in rows]

    def counts(self) -> Counts:
        offers = {
            r["state"]: int(r["n"])
            for r in self._rows(
                "SELECT state, count(*) AS n FROM offers WHERE revision >= 0 GROUP BY state"
            )
        }
        in_force = {
            r["status"]: int(r["n"])
            for r in self._rows(
                f"SELECT s.status, count(*) AS n FROM schedules s {_IN_FORCE} GROUP BY s.status"
            )
        }
        versions = {
            r["status"]: int(r["n"])
            for r in self._rows("SELECT status, count(*) AS n FROM schedules GROUP BY status")
        }
        one = self._one(
            "SELECT (SELECT count(*) FROM readings) AS readings, "
            "(SELECT count(*) FROM agents) AS agents, "
            "(SELECT count(*) FROM agents WHERE state = 'online') AS online, "
            "(SELECT count(*) FROM messages WHERE outcome = 'reject' AND channel = 'offer') "
            "AS offer_rejects, "
            "(SELECT count(*) FROM offers WHERE state = 'executed' AND metered_slots > 0) "
            "AS executed_metered"
        )
        return Counts(
            offers=offers,
            schedules_in_force=in_force,
            schedule_versions_by_status=versions,
            readings=int(one["readings"]),
            schedule_versions=sum(versions.values()),
            agents=int(one["agents"]),
            online=int(one["online"]),
            offer_rejects=int(one["offer_rejects"]),
            executed_metered=int(one["executed_metered"]),
        )

    def ingest_log(self) -> IngestLog:
        rows = self._rows(
            "SELECT worker, count(*) AS n, min(at) AS first_at, max(at) AS last_at "
            "FROM messages GROUP BY worker"
        )
        firsts = [r["first_at"] for r in rows if r["first_at"] is not None]
        lasts = [r["last_at"] for r in rows if r["last_at"] is not None]
        return IngestLog(
            messages=sum(int(r["n"]) for r in rows),
            per_worker={r["worker"]: int(r["n"]) for r in rows},
            first_at=min(firsts) if firsts else None,
            last_at=max(lasts) if lasts else None,
        )

    # -- settlement: reads -----------------------------------------------------------------

    def contracts(self, contract_id: str | None = None) -> list[ContractVersion]:
        where, params = ("WHERE id = ?", [contract_id]) if contract_id else ("", [])
        return [
            ContractVersion(**r)
            for r in self._rows(
                "SELECT id, version, party, valid_from, valid_until, mode, document, added_at "
                f"FROM contracts {where} ORDER BY id, version",
                params,
            )
        ]

    def delivered_offers(
        self, *, start: int, end: int, states: Collection[str] = ("executed", "settled")
    ) -> list[StoredOffer]:
        ((cond, params),) = self._in("state", tuple(states))
        return [
            _stored_offer(r)
            for r in self._rows(
                f"SELECT * FROM offers WHERE {cond} AND revision >= 0 AND start_after < ? "
                "AND start_before >= ? ORDER BY id",
                [*params, end, start],
            )
        ]

    def readings_between(
        self, *, start: int, end: int, agents: Collection[str] | None = None
    ) -> list[Reading]:
        sql = (
            "SELECT agent, device, start, duration_s, energy_kwh, offer_id, received_at "
            "FROM readings WHERE start >= ? AND start < ?"
        )
        parts = (
            [("", [])]
            if agents is None
            else [(f" AND {c}", p) for c, p in self._in("agent", set(agents))]
        )
        out: list[Reading] = []
        for cond, params in parts:
            for r in self._rows(sql + cond, [start, end, *params]):
                out.append(
                    Reading(
                        agent=r["agent"],
                        device=r["device"],
                        start=r["start"],
                        duration_s=r["duration_s"],
                        energy_kwh=r["energy_kwh"],
                        offer_id=r["offer_id"] or "",
                        received_at=r["received_at"] or 0.0,
                    )
                )
        return out

    def quarantined_between(
        self, *, start: int, end: int, agents: Collection[str] | None = None
    ) -> list[Quarantined]:
        sql = (
            "SELECT agent, device, start, duration_s, energy_kwh, offer_id, code, message, "
            "msg_id, received_at FROM quarantine WHERE start >= ? AND start < ?"
        )
        parts = (
            [("", [])]
            if agents is None
            else [(f" AND {c}", p) for c, p in self._in("agent", set(agents))]
        )
        return [
            _quarantined(r)
            for cond, params in parts
            for r in self._rows(sql + cond, [start, end, *params])
        ]

    def ledger(
        self,
        *,
        day_from: str | None = None,
        day_to: str | None = None,
        account: str | None = None,
    ) -> list[LedgerTransaction]:
        where, params = [], []
        if day_from is not None:
            where.append("l.day >= ?")
            params.append(day_from)
        if day_to is not None:
            where.append("l.day <= ?")
            params.append(day_to)
        if account is not None:
            where.append("l.key IN (SELECT key FROM postings WHERE account = ?)")
            params.append(account)
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        postings: dict[str, list[PostingRow]] = {}
        for r in self._rows(
            f"SELECT p.key, p.account, p.amount_cents FROM postings p JOIN ledger l "
            f"ON l.key = p.key{cond} ORDER BY p.key, p.n",
            params,
        ):
            postings.setdefault(r["key"], []).append(
                PostingRow(account=r["account"], amount_cents=int(r["amount_cents"]))
            )
        return [
            LedgerTransaction(
                key=r["key"],
                base=r["base"],
                kind=r["kind"],
                day=r["day"],
                booked_at=int(r["booked_at"]),
                account=r["account"],
                offer_id=r["offer_id"] or "",
                award=r["award"] or "",
                contract_id=r["contract_id"] or "",
                contract_version=int(r["contract_version"] or 0),
                quantity=int(r["quantity"] or 0),
                unit=r["unit"] or "",
                rate=r["rate"] or "",
                memo=r["memo"] or "",
                run_id=r["run_id"],
                postings=tuple(postings.get(r["key"], ())),
            )
            for r in self._rows(f"SELECT * FROM ledger l{cond} ORDER BY l.key", params)
        ]

    def settlement_runs(self, period: str | None = None) -> list[SettlementRun]:
        where, params = ("WHERE period = ?", [period]) if period else ("", [])
        return [
            SettlementRun(
                id=r["id"],
                period=r["period"],
                start=r["start"],
                end=r["end_"],
                tz=r["tz"],
                booked_at=r["booked_at"],
                evaluated=r["evaluated"] or 0,
                settled=r["settled"] or 0,
                held=r["held"] or 0,
                skipped=r["skipped"] or 0,
                transactions=r["transactions"] or 0,
                at=r["at"] or 0.0,
            )
            for r in self._rows(f"SELECT * FROM settlement_runs {where} ORDER BY at, id", params)
        ]

    def offer_verdicts(
        self, *, period: str | None = None, status: str | None = None
    ) -> list[OfferVerdict]:
        where, params = [], []
        if period is not None:
            where.append("period = ?")
            params.append(period)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        return [
            OfferVerdict(
                offer_id=r["offer_id"],
                period=r["period"],
                agent=r["agent"],
                device=r["device"],
                status=r["status"],
                day=r["day"] or "",
                first_slot=r["first_slot"] or 0,
                end=r["end_"] or 0,
                document=r["document"],
                run_id=r["run_id"],
                evaluated_at=r["evaluated_at"] or 0.0,
            )
            for r in self._rows(
                "SELECT * FROM settlement_offers"
                + (f" WHERE {' AND '.join(where)}" if where else "")
                + " ORDER BY first_slot, offer_id",
                params,
            )
        ]

    def settlement_slots(self, *, start: int, end: int) -> list[SettlementSlot]:
        return [
            SettlementSlot(**r)
            for r in self._rows(
                "SELECT offer_id, start, resolution_s, default_wh, baseline_wh, scheduled_wh, "
                "metered_wh, delivered_wh FROM settlement_slots WHERE start >= ? AND start < ? "
                "ORDER BY start, offer_id",
                (start, end),
            )
        ]

    def late_readings(self, period: str) -> list[str]:
        rows = self._rows(
            "SELECT v.offer_id FROM settlement_offers v WHERE v.period = ? "
            "AND v.status = 'settled' AND EXISTS (SELECT 1 FROM readings r "
            "WHERE r.agent = v.agent AND r.start >= v.first_slot AND r.start < v.end_ "
            "AND r.received_at > v.evaluated_at) ORDER BY v.offer_id",
            (period,),
        )
        return [r["offer_id"] for r in rows]

    def bills(self, *, period: str, party: str | None = None) -> list[StoredBill]:
        where, params = "period = ?", [period]
        if party is not None:
            where += " AND party = ?"
            params.append(party)
        latest: dict[str, StoredBill] = {}
        for r in self._rows(
            f"SELECT * FROM bills WHERE {where} ORDER BY issued_at, run_id", params
        ):
            latest[r["party"]] = StoredBill(**r)
        return [latest[p] for p in sorted(latest)]

    def review_items(self, *, status: str | None = None) -> list[ReviewItem]:
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        return [
            ReviewItem(
                offer_id=r["offer_id"],
                period=r["period"],
                agent=r["agent"] or "",
                device=r["device"] or "",
                reasons=tuple(json.loads(r["reasons"] or "[]")),
                status=r["status"],
                held_at=r["held_at"] or 0.0,
                run_id=r["run_id"] or "",
                released_at=r["released_at"],
                note=r["note"] or "",
            )
            for r in self._rows(f"SELECT * FROM review {where} ORDER BY period, offer_id", params)
        ]

    def market_awards(self, start: int, end: int) -> list[MarketAward]:
        return [
            MarketAward(
                market=r["market"],
                gate_start=int(r["gate_start"]),
                offer_id=r["offer_id"],
                slot_start=int(r["slot_start"]),
                kwh=float(r["kwh"]),
                price_eur_per_kwh=float(r["price_eur_per_kwh"]),
                aggregate_id=r["aggregate_id"],
            )
            for r in self._rows(
                "SELECT market, gate_start, offer_id, slot_start, kwh, price_eur_per_kwh, "
                "aggregate_id FROM market_awards WHERE slot_start >= ? AND slot_start < ? "
                "ORDER BY market, gate_start, aggregate_id, offer_id, slot_start",
                (start, end),
            )
        ]

    # -- settlement: writes ----------------------------------------------------------------

    def add_contract(self, row: ContractVersion) -> bool:
        with self.write(offers=()):
            return (
                self._exec(
                    "INSERT INTO contracts(id, version, party, valid_from, valid_until, mode, "
                    "document, added_at) VALUES (?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (id, version) DO NOTHING",
                    (
                        row.id,
                        row.version,
                        row.party,
                        row.valid_from,
                        row.valid_until,
                        row.mode,
                        row.document,
                        row.added_at,
                    ),
                )
                > 0
            )

    def record_settlement(self, row: SettlementWrite) -> None:
        run = row.run
        with self.write():
            self._exec(
                "INSERT INTO settlement_runs(id, period, start, end_, tz, booked_at, evaluated, "
                "settled, held, skipped, transactions, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.id,
                    run.period,
                    run.start,
                    run.end,
                    run.tz,
                    run.booked_at,
                    run.evaluated,
                    run.settled,
                    run.held,
                    run.skipped,
                    run.transactions,
                    run.at,
                ),
            )
            self._many(
                "INSERT INTO ledger(key, base, kind, day, booked_at, account, offer_id, award, "
                "contract_id, contract_version, quantity, unit, rate, memo, run_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        t.key,
                        t.base,
                        t.kind,
                        t.day,
                        t.booked_at,
                        t.account,
                        t.offer_id,
                        t.award,
                        t.contract_id,
                        t.contract_version,
                        t.quantity,
                        t.unit,
                        t.rate,
                        t.memo,
                        t.run_id,
                    )
                    for t in row.transactions
                ],
            )
            self._many(
                "INSERT INTO postings(key, n, account, amount_cents) VALUES (?,?,?,?)",
                [
                    (t.key, n, p.account, p.amount_cents)
                    for t in row.transactions
                    for n, p in enumerate(t.postings)
                ],
            )
            ids = [v.offer_id for v in row.verdicts]
            for cond, params in self._in("offer_id", ids):
                self._exec(f"DELETE FROM settlement_slots WHERE {cond}", params)
            self._many(
                "INSERT INTO settlement_offers(offer_id, period, agent, device, status, day, "
                "first_slot, end_, document, run_id, evaluated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (offer_id) DO UPDATE SET period=excluded.period, "
                "status=excluded.status, day=excluded.day, first_slot=excluded.first_slot, "
                "end_=excluded.end_, document=excluded.document, run_id=excluded.run_id, "
                "evaluated_at=excluded.evaluated_at",
                [
                    (
                        v.offer_id,
                        v.period,
                        v.agent,
                        v.device,
                        v.status,
                        v.day,
                        v.first_slot,
                        v.end,
                        v.document,
                        v.run_id,
                        v.evaluated_at,
                    )
                    for v in row.verdicts
                ],
            )
            self._many(
                "INSERT INTO settlement_slots(offer_id, start, resolution_s, default_wh, "
                "baseline_wh, scheduled_wh, metered_wh, delivered_wh) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        s.offer_id,
                        s.start,
                        s.resolution_s,
                        s.default_wh,
                        s.baseline_wh,
                        s.scheduled_wh,
                        s.metered_wh,
                        s.delivered_wh,
                    )
                    for s in row.slots
                ],
            )
            self._many(
                "UPDATE offers SET state='settled', updated_at=? WHERE id=? AND state='executed'",
                [(run.at, oid) for oid in row.settled],
            )
            self._many(
                "UPDATE review SET status='settled', run_id=? WHERE offer_id=? "
                "AND status <> 'settled'",
                [(run.id, v.offer_id) for v in row.verdicts if v.status == "settled"],
            )
            self._many(
                "INSERT INTO review(offer_id, period, agent, device, reasons, status, held_at, "
                "run_id, released_at, note) VALUES (?,?,?,?,?,'held',?,?,NULL,'') "
                "ON CONFLICT (offer_id) DO UPDATE SET reasons=excluded.reasons, "
                "run_id=excluded.run_id, status=CASE WHEN review.status = 'settled' "
                "THEN 'held' ELSE review.status END",
                [
                    (
                        h.offer_id,
                        h.period,
                        h.agent,
                        h.device,
                        json.dumps(list(h.reasons)),
                        h.held_at,
                        h.run_id,
                    )
                    for h in row.held
                ],
            )
            self._many(
                "INSERT INTO bills(party, period, run_id, issued_at, total_cents, document) "
                "VALUES (?,?,?,?,?,?)",
                [
                    (b.party, b.period, b.run_id, b.issued_at, b.total_cents, b.document)
                    for b in row.bills
                ],
            )

    def release_review(self, offer_ids: Collection[str], *, at: float, note: str = "") -> int:
        with self.write():
            return self._many(
                "UPDATE review SET status='released', released_at=?, note=? "
                "WHERE offer_id=? AND status='held'",
                [(at, note, oid) for oid in offer_ids],
            )

    def add_market_awards(self, rows: Iterable[MarketAward]) -> int:
        with self.write(offers=()):
            return self._many(
                "INSERT INTO market_awards(market, gate_start, offer_id, slot_start, kwh, "
                "price_eur_per_kwh, aggregate_id) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT (market, gate_start, offer_id, slot_start) DO NOTHING",
                [
                    (
                        r.market,
                        r.gate_start,
                        r.offer_id,
                        r.slot_start,
                        r.kwh,
                        r.price_eur_per_kwh,
                        r.aggregate_id,
                    )
                    for r in rows
                ],
            )


def _reading_filter(
    agent: str | None, device: str | None, start: int | None, end: int | None
) -> tuple[str, list[Any]]:
    where, params = ["1 = 1"], []
    for cond, value in (
        ("agent = ?", agent),
        ("device = ?", device),
        ("start >= ?", start),
        ("start < ?", end),
    ):
        if value is not None:
            where.append(cond)
            params.append(value)
    return " AND ".join(where), params


def _schedule_filter(
    offer_id: str | None, agent: str | None, status: str | None, all_versions: bool
) -> tuple[str, list[Any]]:
    where, params = ["1 = 1"], []
    if not all_versions:
        where.append("s.version = o.schedule_version")
    if offer_id:
        where.append("s.offer_id = ?")
        params.append(offer_id)
    if agent:
        where.append("s.issuer = ?")
        params.append(agent)
    if status:
        where.append("s.status = ?")
        params.append(status)
    return " AND ".join(where), params


def not_fman(where: str, problem: str) -> str:
    return (
        f"{where}: not an FMAN database ({problem}; FMAN's store is worker.store of fman.toml "
        "or --store)"
    )


# -- rows from the database ------------------------------------------------------------------


def _logged(r: Row) -> LoggedMessage:
    return LoggedMessage(
        agent=r["agent"],
        msg_id=r["msg_id"],
        channel=r["channel"],
        ref_id=r["ref_id"] or "",
        revision=r["revision"] or 0,
        outcome=r["outcome"],
        reasons=r["reasons"] or "",
        worker=r["worker"] or "",
        at=r["at"] or 0.0,
    )


def _stored_offer(r: Row) -> StoredOffer:
    values = {c: r[c] for c in _STORED_OFFER_COLUMNS}
    values["reason"] = values["reason"] or ""
    for c in ("schedule_version", "metered_slots", "flagged_slots"):
        values[c] = values[c] or 0
    if values["payload"] is not None:
        values["payload"] = bytes(values["payload"])
    return StoredOffer(**values)


def _schedule(r: Row) -> StoredSchedule:
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
        in_force=bool(r.get("in_force", True)),
        worker=r.get("worker") or "",
        created_at=r.get("created_at") or 0.0,
    )


def _quarantined(r: Row) -> Quarantined:
    return Quarantined(
        agent=r["agent"],
        device=r["device"],
        start=r["start"],
        duration_s=r["duration_s"],
        energy_kwh=r["energy_kwh"],
        offer_id=r["offer_id"] or "",
        code=r["code"] or "",
        message=r["message"] or "",
        msg_id=r["msg_id"] or "",
        received_at=r["received_at"] or 0.0,
    )


def _span(r: Row) -> ReadingSpan:
    return ReadingSpan(start=r["start"], duration_s=r["duration_s"], energy_kwh=r["energy_kwh"])
