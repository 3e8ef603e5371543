"""Ingest: a batch of MQTT messages in, one committed transaction, answers out.

The worker hands over what the broker delivered (topic, payload); :meth:`Ingest.process`
decodes and validates each message (outside any lock), then, in one write transaction,
recognises redeliveries, judges offers, withdrawals and meter batches against the stored state,
and writes the outcome. Only after the commit does the worker acknowledge the batch to the
broker and publish the answers returned here: a message is never acknowledged before it is
stored, and a crash in between makes the broker redeliver it, which the ingest log turns into
the same answer again, never a second row.

Answers are what end-to-end delivery rests on: an agent keeps an offer, a withdrawal or a meter
batch until it hears the answer for that message, and sends it again until then. A message
sent again is found in the ingest log (agent, message id) and answered exactly as the first
time, quarantined readings of a meter batch included, without a second row.

Ordering across workers: the shared subscription may hand an offer's update to one worker and
its insert to another, so order is restored from the data itself rather than from delivery:
an offer is kept only if its ``revision`` is higher than the stored one (the older revision,
arriving late, is answered ``superseded``); a withdrawal of an unknown offer leaves a
tombstone that its late insert cannot revive; a status is kept only if its timestamp is newer.
The check and the write share one write transaction that excludes every other writer of the
same offers (on SQLite, every other writer), so two workers cannot interleave between them.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import msgspec

import protocol
from protocol import (
    Ack,
    DecodeError,
    FlexOffer,
    MeterBatch,
    QuarantinedReading,
    Reason,
    Reject,
    Status,
    Withdraw,
    start_window,
    topics,
)

from ..clock import Clock
from . import refusals, series
from .acceptance import Verdict, judge_meter, judge_offer, judge_withdraw
from .config import Config, Contract
from .counters import Counters
from .store import (
    AgentStatus,
    Announcement,
    LoggedMessage,
    MessageKey,
    OfferHead,
    OfferRecord,
    OfferStateChange,
    Quarantined,
    Reading,
    ScheduleAnswer,
    Store,
    StoreReader,
)

if TYPE_CHECKING:
    from cloud.settle import ContractBook

log = logging.getLogger(__name__)

#: Agent channels FMAN consumes, and the message kinds each carries.
CHANNELS: dict[str, tuple[str, ...]] = {
    "offer": ("offer",),
    "offer/delete": ("offer.delete",),
    "meter": ("meter",),
    "status": ("status",),
    "schedule/ack": ("ack", "reject"),
}
#: Channels whose sender is told about a refused message (on its ack topic).
ANSWERED = {"offer": "offer", "offer/delete": "offer.delete", "meter": "meter"}
_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_PREFIX = topics.PREFIX + "/a/"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One delivered message. ``mid`` and ``qos`` are the broker's, for the acknowledgement;
    ``response_topic`` and ``correlation`` its MQTT v5 properties (requests carry them)."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 1
    response_topic: str = ""
    correlation: bytes | None = None


class _Conflict(Exception):
    """Another worker changed what a batch was decided on; decide again under the lock."""


@dataclass(slots=True)
class _Decisions:
    """What one batch comes to: the rows to write, the answers, the counters, and the offer
    heads the decisions were based on."""

    read: dict[str, OfferHead | None] = field(default_factory=dict)
    log_rows: list[LoggedMessage] = field(default_factory=list)
    offer_rows: dict[str, OfferRecord] = field(default_factory=dict)
    state_rows: list[OfferStateChange] = field(default_factory=list)
    reading_rows: list[Reading] = field(default_factory=list)
    quarantine_rows: list[Quarantined] = field(default_factory=list)
    status_rows: list[AgentStatus] = field(default_factory=list)
    schedule_rows: list[ScheduleAnswer] = field(default_factory=list)
    series: list[tuple[str, dict[int, float]]] = field(default_factory=list)
    answers: list[Outgoing] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)

    def still_valid(self, tx: StoreReader) -> bool:
        """Whether every offer decided on is still as it was read (issuer, revision, state)."""
        if not self.read:
            return True
        now = tx.offer_heads(list(self.read))
        return all(_key(now.get(oid)) == _key(head) for oid, head in self.read.items())


def _key(head: OfferHead | None) -> tuple | None:
    return None if head is None else (head.issuer, head.revision, head.state)


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes


@dataclass(slots=True)
class _Item:
    channel: str
    agent: str
    msg: protocol.Message | None
    payload: bytes
    series: dict[int, float] | None = None


def series_topics(config: Config) -> dict[str, str]:
    """Topics carrying objective series (non-shared: every worker keeps them), by name."""
    obj = config.objective
    return {
        src.topic: name
        for name, src in (("target", obj.target), ("prices", obj.prices))
        if src.topic
    }


def split_topic(topic: str) -> tuple[str, str] | None:
    """``(agent, channel)`` of an agent topic FMAN consumes, else ``None``."""
    if not topic.startswith(_PREFIX):
        return None
    agent, _, channel = topic[len(_PREFIX) :].partition("/")
    if channel not in CHANNELS or not _ID.match(agent):
        return None
    return agent, channel


class Ingest:
    """Decides on batches of messages; holds no connection, only a store and counters."""

    def __init__(
        self, *, store: Store, config: Config, clock: Clock, worker: str, stats: Counters
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.worker = worker
        self.stats = stats
        self.fman_id = config.worker.group
        self._warned: dict[tuple[str, str], int] = {}
        self.series_topics = series_topics(config)
        acc = config.acceptance
        self.tolerance_s = acc.clock_skew_s + clock.speed * acc.transit_wall_s
        # the contracts kept in the store (their acceptance limits), as of the counter
        self._contracts: ContractBook | None = None
        self._contracts_at: int | None = None
        # answer ids: unique per process start, cheaper than a UUID per message
        self._ids = itertools.count()
        self._id_prefix = f"{worker}.{uuid.uuid4().hex[:12]}."

    # -- contracts ---------------------------------------------------------------------------

    def _load_contracts(self, tx: StoreReader) -> None:
        """Read the store's contracts again if a version was added since they were read."""
        from .settlement import CONTRACTS_COUNTER, contract_book

        n = tx.counter(CONTRACTS_COUNTER)
        if n != self._contracts_at:
            book = contract_book(tx)
            self._contracts = book if len(book) else None
            self._contracts_at = n

    def _contract(self, agent: str, now: float) -> Contract:
        """The acceptance limits of ``agent``: those of its contracts in force in the store
        (docs/settlement.md), else the configuration's ``[acceptance]``."""
        if self._contracts is not None:
            from .settlement import acceptance_of

            limits = acceptance_of(self._contracts, agent, now)
            if limits is not None:
                return Contract(
                    max_power_kw=limits.max_power_kw,
                    devices=limits.devices,
                    max_open_offers=limits.max_open_offers,
                )
        return self.config.contract(agent)

    # -- decoding (pure) --------------------------------------------------------------------

    def _decode(
        self, m: Incoming, answers: list[Outgoing], now: float, counts: Counter[str]
    ) -> _Item | None:
        where = split_topic(m.topic)
        if where is None and m.topic in self.series_topics:
            return self._decode_series(m, counts)
        if where is None:
            counts["malformed.topic"] += 1
            self._warn("?", "topic", f"unexpected topic {m.topic[:200]!r}")
            return None
        agent, channel = where
        counts[f"received.{channel}"] += 1
        if channel == "status" and not m.payload:
            counts["status.cleared"] += 1  # a retained status removed: nothing to keep
            return None
        kinds = CHANNELS[channel]
        try:
            msg = protocol.decode(m.payload, expect=kinds[0] if len(kinds) == 1 else None)
            if msg.kind not in kinds:
                raise DecodeError(
                    [protocol.FieldError("kind", f"{msg.kind!r} is not sent on {channel}")]
                )
        except DecodeError as exc:
            counts[f"malformed.{channel}"] += 1
            counts[refusals.key(channel, "invalid")] += 1
            self._warn(agent, channel, str(exc))
            if channel in ANSWERED:
                answers.append(self._refusal(agent, channel, m.payload, exc, now))
            return None
        return _Item(channel, agent, msg, m.payload)

    def _decode_series(self, m: Incoming, counts: Counter[str]) -> _Item | None:
        name = self.series_topics[m.topic]
        try:
            values = series.parse_json(m.payload)
        except series.SeriesError as exc:
            counts[f"malformed.{name}"] += 1
            self._warn(m.topic, name, str(exc))
            return None
        counts[f"received.{name}"] += 1
        return _Item(f"series:{name}", "", None, m.payload, values)

    def _refusal(
        self, agent: str, channel: str, payload: bytes, exc: DecodeError, now: float
    ) -> Outgoing:
        """The reject for an undecodable message: it names the message id if one can be read."""
        ref = _peek_id(payload)
        reasons = [
            Reason(code="invalid", field=e.path[:200], message=e.message[:500])
            for e in exc.errors[:16]
        ]
        body = Reject(ref_kind=ANSWERED[channel], ref_id=ref, reasons=reasons)
        return Outgoing(topics.agent_topic(agent, "ack"), protocol.encode(body, ts=int(now)))

    def _warn(self, agent: str, channel: str, text: str) -> None:
        """Log the first bad message of each sender and channel, then every 1000th."""
        key = (agent, channel)
        n = self._warned.get(key, 0)
        self._warned[key] = n + 1
        if len(self._warned) > 100_000:
            self._warned.clear()
        if n % 1000 == 0:
            log.warning("refused %s message from %s: %s (%d so far)", channel, agent, text, n + 1)

    # -- the batch ---------------------------------------------------------------------------

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        """Decide on ``batch`` and commit; returns the answers to publish after the commit.

        The decisions are made first without the write lock, on what the store holds now;
        under the lock only the offers concerned are read again, and if any changed meanwhile
        (another worker, the planner) the batch is decided again under the lock. So two
        workers mostly overlap their work and queue only for the writes."""
        now = self.clock.now()
        wall = time.time()
        answers: list[Outgoing] = []
        # counted only once the batch is through: a batch that fails (a store error to retry,
        # a poison message that makes the worker split it) is decoded again
        counts: Counter[str] = Counter()
        items = [it for m in batch if (it := self._decode(m, answers, now, counts)) is not None]
        if not items:
            self.stats.update(counts)
            return answers
        d = self._decide(self.store, items, now, wall)
        offers = _scope(items)
        try:
            with self.store.write(offers=offers) as tx:
                if not d.still_valid(tx):
                    self.stats.add("ingest.redecided")
                    d = self._decide(tx, items, now, wall)
                self._write(tx, d)
        except _Conflict:
            self.stats.add("ingest.redecided")
            with self.store.write(offers=offers) as tx:
                d = self._decide(tx, items, now, wall)
                self._write(tx, d)
        self.stats.update(counts)
        self.stats.update(d.stats)
        return answers + d.answers

    def _decide(self, tx: StoreReader, items: list[_Item], now: float, wall: float) -> _Decisions:
        d = _Decisions()
        logged = [(it, m) for it in items if it.channel in ANSWERED and (m := it.msg) is not None]
        seen = (
            tx.seen_messages([MessageKey(agent=it.agent, msg_id=m.id) for it, m in logged])
            if logged
            else {}
        )
        offer_ids = [
            m.body.id if it.channel == "offer" else m.body.offer_id
            for it, m in logged
            if it.channel in ("offer", "offer/delete")
        ]
        heads = tx.offer_heads(offer_ids) if offer_ids else {}
        d.read = {oid: heads.get(oid) for oid in offer_ids}
        new_issuers = [
            it.agent for it, m in logged if it.channel == "offer" and m.body.id not in heads
        ]
        self._load_contracts(tx)
        open_counts = tx.open_offer_counts(new_issuers) if new_issuers else {}
        announced = tx.announced_devices(new_issuers) if new_issuers else {}
        # a status in this very batch is newer than the stored one: an agent restarted with a
        # new device announces it just before it sends the device's first offers
        # (unless it is older: a redelivered status must not bring back a dropped device)
        for it in items:
            if it.channel != "status" or it.msg is None:
                continue
            news: Status = it.msg.body
            known = announced.get(it.agent, Announcement(devices=frozenset(), status_ts=0))
            if news.devices and news.agent == it.agent and it.msg.ts >= known.status_ts:
                announced[it.agent] = Announcement(
                    devices=frozenset(news.devices), status_ts=it.msg.ts
                )
        log_rows = d.log_rows
        offer_rows = d.offer_rows
        state_rows = d.state_rows
        reading_rows = d.reading_rows
        status_rows = d.status_rows
        schedule_rows = d.schedule_rows
        answers = d.answers
        stats = d.stats
        batch_seen: set[MessageKey] = set()

        for it in items:
            msg = it.msg
            if msg is None:  # an objective series from its topic
                assert it.series is not None
                d.series.append((it.channel.removeprefix("series:"), it.series))
                continue
            body: Any = msg.body
            agent = it.agent
            if it.channel in ANSWERED:
                key = MessageKey(agent=agent, msg_id=msg.id)
                previous = seen.get(key)
                if previous is not None or key in batch_seen:
                    stats["duplicate"] += 1
                    if previous is not None:
                        answers.append(self._repeat(agent, previous, now))
                    continue
                batch_seen.add(key)

            if it.channel == "offer":
                offer: FlexOffer = body
                stored = heads.get(offer.id)
                verdict = judge_offer(
                    offer,
                    sender=agent,
                    stored=stored,
                    now=now,
                    open_offers=open_counts.get(agent, 0),
                    announced=announced[agent].devices if agent in announced else None,
                    contract=self._contract(agent, now),
                    rules=self.config.acceptance,
                    tolerance_s=self.tolerance_s,
                )
                if verdict.outcome == "accept":
                    state = stored.state if stored and stored.state == "assigned" else "accepted"
                    offer_rows[offer.id] = _offer_row(
                        offer, state, "", it.payload, now, self.worker
                    )
                    heads[offer.id] = OfferHead(
                        id=offer.id,
                        issuer=agent,
                        revision=offer.revision,
                        state=state,
                        assignment_before=offer.assignment_before,
                        schedule_version=stored.schedule_version if stored else 0,
                    )
                    if stored is None:
                        open_counts[agent] = open_counts.get(agent, 0) + 1
                    stats["offer.accepted" if stored is None else "offer.updated"] += 1
                elif verdict.outcome == "reject":
                    stats["offer.rejected"] += 1
                    stats[
                        refusals.key("offer", verdict.reasons[0].code if verdict.reasons else "")
                    ] += 1
                    if stored is None and verdict.reasons[0].code not in _NOT_KEPT:
                        reason = _reasons_json(verdict.reasons)
                        offer_rows[offer.id] = _offer_row(
                            offer, "rejected", reason, it.payload, now, self.worker
                        )
                        heads[offer.id] = OfferHead(
                            id=offer.id,
                            issuer=agent,
                            revision=offer.revision,
                            state="rejected",
                            assignment_before=offer.assignment_before,
                            schedule_version=0,
                        )
                else:  # the same revision again, in a new message: answer as before
                    stats["offer.repeated"] += 1
                    if stored is not None and stored.state == "rejected":
                        verdict = Verdict(
                            "reject",
                            (Reason(code="rejected", field="id", message="rejected before"),),
                        )
                answers.append(self._answer(agent, "offer", offer.id, offer.revision, verdict, now))
                log_rows.append(
                    _log_row(
                        agent, msg.id, "offer", offer.id, offer.revision, verdict, self.worker, wall
                    )
                )

            elif it.channel == "offer/delete":
                wd: Withdraw = body
                stored = heads.get(wd.offer_id)
                verdict = judge_withdraw(wd, sender=agent, stored=stored)
                if verdict.outcome == "accept":
                    stats["offer.withdrawn"] += 1
                    reason = wd.reason or "withdrawn by the agent"
                    if stored is None:
                        offer_rows[wd.offer_id] = _tombstone(
                            wd.offer_id, agent, reason, now, self.worker
                        )
                    elif wd.offer_id in offer_rows:  # inserted earlier in this very batch
                        offer_rows[wd.offer_id] = replace(
                            offer_rows[wd.offer_id], state="withdrawn", reason=reason
                        )
                    else:
                        state_rows.append(
                            OfferStateChange(
                                offer_id=wd.offer_id, state="withdrawn", reason=reason, at=now
                            )
                        )
                    heads[wd.offer_id] = OfferHead(
                        id=wd.offer_id,
                        issuer=agent,
                        revision=-1,
                        state="withdrawn",
                        assignment_before=0,
                        schedule_version=stored.schedule_version if stored else 0,
                    )
                elif verdict.outcome == "reject":
                    stats["withdraw.rejected"] += 1
                    stats[
                        refusals.key("withdraw", verdict.reasons[0].code if verdict.reasons else "")
                    ] += 1
                    ran = ("executing", "executed", "settled")
                    if stored is not None and stored.issuer == agent and stored.state in ran:
                        # the offer keeps its state; its record says the agent withdrew it
                        refused = "; ".join(r.message or r.code for r in verdict.reasons)
                        note = f"withdrawn by the agent too late ({refused}): {wd.reason}"
                        if wd.offer_id in offer_rows:
                            offer_rows[wd.offer_id] = replace(
                                offer_rows[wd.offer_id], reason=note[:1024]
                            )
                        else:
                            state_rows.append(
                                OfferStateChange(
                                    offer_id=wd.offer_id,
                                    state=stored.state,
                                    reason=note[:1024],
                                    at=now,
                                )
                            )
                answers.append(self._answer(agent, "offer.delete", wd.offer_id, 0, verdict, now))
                log_rows.append(
                    _log_row(
                        agent, msg.id, "offer/delete", wd.offer_id, 0, verdict, self.worker, wall
                    )
                )

            elif it.channel == "meter":
                mb: MeterBatch = body
                verdict = judge_meter(
                    mb,
                    sender=agent,
                    now=now,
                    contract=self._contract(agent, now),
                    rules=self.config.acceptance,
                    tolerance_s=self.tolerance_s,
                )
                quarantined: list[QuarantinedReading] = []
                if verdict.accepted:
                    aside = dict(verdict.quarantined)
                    for i, r in enumerate(mb.readings):
                        why = aside.get(i)
                        if why is None:
                            reading_rows.append(
                                Reading(
                                    agent=agent,
                                    device=r.device,
                                    start=r.start,
                                    duration_s=r.duration_s,
                                    energy_kwh=r.energy_kwh,
                                    offer_id=r.offer_id,
                                    received_at=now,
                                )
                            )
                            continue
                        quarantined.append(
                            QuarantinedReading(
                                device=r.device, start=r.start, code=why.code, message=why.message
                            )
                        )
                        d.quarantine_rows.append(
                            Quarantined(
                                agent=agent,
                                device=r.device,
                                start=r.start,
                                duration_s=r.duration_s,
                                energy_kwh=r.energy_kwh,
                                offer_id=r.offer_id,
                                code=why.code,
                                message=why.message,
                                msg_id=msg.id,
                                received_at=now,
                            )
                        )
                    stats["meter.readings"] += len(mb.readings) - len(quarantined)
                    stats["meter.quarantined"] += len(quarantined)
                    for q in quarantined:
                        stats[refusals.key("reading", q.code)] += 1
                else:
                    stats["meter.rejected"] += 1
                    stats[
                        refusals.key("meter", verdict.reasons[0].code if verdict.reasons else "")
                    ] += 1
                answers.append(
                    self._answer(
                        agent, "meter", msg.id[:128], mb.seq, verdict, now, quarantined=quarantined
                    )
                )
                log_rows.append(
                    _log_row(
                        agent, msg.id, "meter", "", mb.seq, verdict, self.worker, wall,
                        quarantined=quarantined,
                    )
                )  # fmt: skip

            elif it.channel == "status":
                st: Status = body
                if st.agent != agent:
                    stats["malformed.status"] += 1
                    self._warn(agent, "status", f"status of {st.agent!r} on this agent's topic")
                    continue
                stats[f"status.{st.state}"] += 1
                status_rows.append(
                    AgentStatus(
                        agent=agent,
                        state=st.state,
                        since=st.since,
                        status_ts=msg.ts,
                        seen_at=now,
                        version=st.version,
                        health=dict(st.health),
                        devices=list(st.devices) if st.devices else None,
                    )
                )

            else:  # schedule/ack: the agent took or refused a schedule version
                status = "acked" if isinstance(body, Ack) else "rejected"
                reason = "" if isinstance(body, Ack) else _reasons_json(body.reasons)
                schedule_rows.append(
                    ScheduleAnswer(
                        offer_id=body.ref_id,
                        version=body.revision,
                        issuer=agent,
                        status=status,
                        reason=reason,
                        at=wall,
                    )
                )

        return d

    def _write(self, tx: Store, d: _Decisions) -> None:
        if d.log_rows and tx.log_messages(d.log_rows) != len(d.log_rows):
            raise _Conflict  # another worker logged one of these messages meanwhile
        for name, values in d.series:
            tx.put_series(name, values)
        if d.offer_rows:
            tx.put_offers(d.offer_rows.values())
        if d.state_rows:
            tx.set_offer_states(d.state_rows)
        if d.offer_rows or d.state_rows:
            tx.bump("offers")
        if d.reading_rows:
            tx.put_readings(d.reading_rows)
        if d.quarantine_rows:
            tx.put_quarantined(d.quarantine_rows)
        if d.status_rows:
            tx.put_statuses(d.status_rows)
        if d.schedule_rows:
            matched = tx.answer_schedules(d.schedule_rows)
            d.stats["schedule.answers"] += matched
            d.stats["schedule.answers_unknown"] += len(d.schedule_rows) - matched

    # -- answers -----------------------------------------------------------------------------

    def _answer(
        self,
        agent: str,
        kind: str,
        ref: str,
        revision: int,
        verdict: Verdict,
        now: float,
        *,
        quarantined: Sequence[QuarantinedReading] = (),
    ) -> Outgoing:
        body: Ack | Reject
        if verdict.outcome == "reject":
            body = Reject(
                ref_kind=kind, ref_id=ref, revision=revision, reasons=list(verdict.reasons)
            )
        else:
            body = Ack(
                ref_kind=kind,
                ref_id=ref,
                revision=revision,
                fman_id=self.fman_id,
                quarantined=list(quarantined),
            )
        msg_id = f"{self._id_prefix}{next(self._ids)}"
        return Outgoing(
            topics.agent_topic(agent, "ack"), protocol.encode(body, ts=int(now), msg_id=msg_id)
        )

    def _repeat(self, agent: str, row: LoggedMessage, now: float) -> Outgoing:
        """The answer a redelivered message got the first time."""
        kind = ANSWERED.get(row.channel, row.channel)
        quarantined: list[QuarantinedReading] = []
        if row.outcome == "reject":
            reasons = tuple(msgspec.convert(json.loads(row.reasons), list[Reason]))
            verdict = Verdict("reject", reasons)
        else:
            verdict = Verdict("accept")
            if row.channel == "meter" and row.reasons:
                quarantined = msgspec.json.decode(row.reasons, type=list[QuarantinedReading])
        ref = row.ref_id or row.msg_id[:128]
        return self._answer(agent, kind, ref, row.revision, verdict, now, quarantined=quarantined)


# -- rows ------------------------------------------------------------------------------------

#: Rejections that leave no offer row: the id may belong to someone else, or a flood is on.
_NOT_KEPT = frozenset({"issuer_mismatch", "id_conflict", "too_many_offers"})


def _reasons_json(reasons: Sequence[Reason]) -> str:
    return msgspec.json.encode(list(reasons)).decode()


def _offer_row(
    o: FlexOffer, state: str, reason: str, payload: bytes, now: float, worker: str
) -> OfferRecord:
    lo, hi = start_window(o)
    return OfferRecord(
        id=o.id,
        issuer=o.issuer,
        device=o.device,
        load_type=o.load_type,
        grid_node=o.grid_node,
        mode=o.mode,
        revision=o.revision,
        state=state,
        created_at=o.created_at,
        acceptance_before=o.acceptance_before,
        assignment_before=o.assignment_before,
        start_after=lo,
        start_before=hi,
        n_slots=max(p.n_slots for p in o.profiles),
        resolution_s=o.resolution_s,
        payload=payload,
        reason=reason,
        received_at=now,
        updated_at=now,
        worker=worker,
    )


def _tombstone(offer_id: str, agent: str, reason: str, now: float, worker: str) -> OfferRecord:
    """What a withdrawal of a not (yet) known offer leaves: revision -1, state withdrawn."""
    return OfferRecord(
        id=offer_id,
        issuer=agent,
        revision=-1,
        state="withdrawn",
        reason=reason,
        received_at=now,
        updated_at=now,
        worker=worker,
    )


def _log_row(
    agent: str,
    msg_id: str,
    channel: str,
    ref: str,
    revision: int,
    verdict: Verdict,
    worker: str,
    wall: float,
    *,
    quarantined: Sequence[QuarantinedReading] = (),
) -> LoggedMessage:
    """The ingest-log row; an accepted meter batch keeps its quarantined readings where a
    refusal keeps its reasons, so a repeated batch gets the very same answer."""
    outcome = "reject" if verdict.outcome == "reject" else "ack"
    reasons = _reasons_json(verdict.reasons) if verdict.reasons else ""
    if quarantined:
        reasons = msgspec.json.encode(list(quarantined)).decode()
    return LoggedMessage(
        agent=agent,
        msg_id=msg_id,
        channel=channel,
        ref_id=ref,
        revision=revision,
        outcome=outcome,
        reasons=reasons,
        worker=worker,
        at=wall,
    )


def _scope(items: Sequence[_Item]) -> set[str]:
    """The offers a batch decides about: what its write transaction locks (on a server
    database, batches about other offers commit alongside)."""
    offers: set[str] = set()
    for it in items:
        if it.msg is None:
            continue
        if it.channel == "offer":
            offers.add(it.msg.body.id)
        elif it.channel == "offer/delete":
            offers.add(it.msg.body.offer_id)
    return offers


_PEEK = msgspec.msgpack.Decoder(dict)


def _peek_id(payload: bytes) -> str:
    """The envelope id of an otherwise unreadable message, or ``""``."""
    try:
        env = _PEEK.decode(payload)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # invalid UTF-8 is a ValueError
        return ""
    value = env.get("id") if isinstance(env, dict) else None
    return value[:128] if isinstance(value, str) else ""
