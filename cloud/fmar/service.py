"""The market service (``atp fmar run``): takes orders, runs each market's gates, clears them.

Threads, and why each exists:

- paho's network thread puts arriving orders on a queue and nothing else;
- the order thread judges each order (:mod:`.orders`), stores it, publishes the answer to its
  sender and only then acknowledges the message to the broker: a crash before the answer
  makes the broker hand the order over again, and the store recognises it (``again``) and
  answers the same. A broker's PUBACK is not an answer; the sender keeps its order until
  FMAR's own answer arrives;
- the gate thread keeps the calendar on the clock (:mod:`.gates`): it opens the current gate
  of every market and publishes the retained calendar, and at a gate's closure closes it in
  the store, clears its book with :func:`cloud.fmar.clear`, writes the ``cleared`` state and
  the result in one transaction and publishes the result. Killed anywhere in between, the
  service finds at its start the gate ``closed`` without a result (and clears it then) or
  the result written but not marked published (and publishes it), so a gate is cleared once.

Several markets share the threads: clearing is the long step and one gate at a time keeps
the two cores of a small host free for the order thread.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter

import msgspec

import protocol
from protocol import DecodeError, OrderAnswer, Reason, topics

from ..clock import Clock
from ..fman.bus import Bus
from ..fman.ingest import Incoming
from . import gates
from ._errors import MarketError
from ._parse import book_from_builtins
from .config import Config, MarketSection
from .orders import Bid, book_doc, check_bid, decode_bid, reasons_of, result_message, sender_of
from .store import GateRow, OrderRow, ResultRow, open_market_store

log = logging.getLogger(__name__)

#: Longest wall time the gate thread sleeps between looks at the clock.
TICK_WALL_S = 0.5


class Service:
    """Runs until :meth:`stop` (or the ``stop`` event given to :meth:`run`)."""

    def __init__(self, *, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self.orders_store = open_market_store(config.service.store)
        self.gates_store = open_market_store(config.service.store)
        s = config.service
        self.bus = Bus(
            url=s.broker,
            client_id=s.id,
            subscriptions=[topics.all_markets("bid")],
            on_message=self._queue.put,
            session_expiry_s=s.session_expiry_s,
            credentials_file=s.credentials_file,
            ca_file=s.ca_file,
        )
        self._threads: list[threading.Thread] = []
        self._announced: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        now = time.time()
        for mid, m in self.config.markets.items():
            self.gates_store.put_market(mid, msgspec.json.encode(m).decode(), at=now)
        self._threads = [
            threading.Thread(target=self._order_loop, name="fmar-orders", daemon=True),
            threading.Thread(target=self._gate_loop, name="fmar-gates", daemon=True),
        ]
        self.bus.start()
        for t in self._threads:
            t.start()
        log.info(
            "market service %s: %d market(s) (%s), orders from %s, store %s",
            self.config.service.id,
            len(self.config.markets),
            ", ".join(self.config.markets),
            self.bus.url,
            self.gates_store.where,
        )

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self.bus.stop()
        self.orders_store.close()
        self.gates_store.close()

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    # -- orders --------------------------------------------------------------------------------

    def _order_loop(self) -> None:
        while not self._stop.is_set():
            try:
                m = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                answer = self._judge(m)
            except MarketError as exc:  # the store: leave it unacknowledged, try again
                log.error("order on %s not stored, retrying: %s", m.topic, exc)
                self._queue.put(m)
                self._stop.wait(0.5)
                continue
            except Exception:
                log.exception("order on %s could not be processed; dropped", m.topic)
                self.stats["failed"] += 1
                self.bus.ack(m.mid, m.qos)
                continue
            if answer is None:
                self.bus.ack(m.mid, m.qos)
                continue
            topic, body = answer
            payload = protocol.encode(body, ts=int(self.clock.now()))
            done = lambda mid=m.mid, qos=m.qos: self.bus.ack(mid, qos)  # noqa: E731
            self.bus.publish(topic, payload, qos=1, done=done, stop=self._stop)

    def _judge(self, m: Incoming) -> tuple[str, OrderAnswer] | None:
        """The answer to one order (its topic and body), after storing an accepted one;
        ``None`` when no sender can be named (logged and counted)."""
        try:
            market = topics.parse(m.topic).owner
        except ValueError as exc:
            log.warning("order on an unexpected topic dropped: %s", exc)
            self.stats["dropped"] += 1
            return None
        try:
            bid = decode_bid(m.payload)
        except DecodeError as exc:
            sender = sender_of(m.payload)
            self.stats["refused"] += 1
            if sender is None:
                log.warning("undecodable order on %s dropped (no sender to tell): %s", m.topic, exc)
                return None
            kind, party, oid = sender
            log.info("order %s of %s on %s refused: %s", oid, party, market, exc)
            return self._answer(market, party, kind, oid, reasons_of(exc.errors, "invalid"))
        reasons = self._reasons(market, bid)
        if reasons:
            self.stats["refused"] += 1
            log.info(
                "order %s of %s on %s refused: %s",
                bid.id,
                bid.party,
                market,
                "; ".join(f"{r.field}: {r.message}" if r.field else r.message for r in reasons),
            )
            return self._answer(market, bid.party, bid.kind, bid.id, reasons)
        gate = self._gate_for(market, bid)
        assert gate is not None  # _reasons checked it
        row = OrderRow(
            market=market,
            gate=gate.gate,
            side=bid.side,
            id=bid.id,
            party=bid.party,
            entry=json.dumps(bid.entry, sort_keys=True),
            received_at=time.time(),
        )
        outcome = self.orders_store.add_order(row)
        if outcome in ("stored", "again"):
            self.stats["orders"] += outcome == "stored"
            return self._answer(market, bid.party, bid.kind, bid.id, [], gate=gate.gate)
        self.stats["refused"] += 1
        reason = (
            Reason(
                code="duplicate",
                field="id",
                message=f"another order with id {bid.id!r} is in gate {gate.gate}",
            )
            if outcome == "conflict"
            else Reason(code="closed", message=f"gate {gate.gate} is closed")
        )
        return self._answer(market, bid.party, bid.kind, bid.id, [reason])

    def _reasons(self, market: str, bid: Bid) -> list[Reason]:
        m = self.config.markets.get(market)
        if m is None:
            known = ", ".join(self.config.markets)
            return [
                Reason(
                    code="market",
                    field="market",
                    message=f"unknown market {market!r} (this service runs {known})",
                )
            ]
        if bid.market != market:
            return [
                Reason(
                    code="market",
                    field="market",
                    message=f"{bid.market!r} sent on the topic of market {market!r}",
                )
            ]
        gate = self._gate_for(market, bid)
        if gate is None:
            return [
                Reason(
                    code="gate", field="gate", message=f"gate {bid.gate!r} does not take orders now"
                )
            ]
        if self.clock.now() >= gate.closes_at:
            return [Reason(code="closed", message=f"gate {gate.gate} is closed")]
        return check_bid(bid, m, gate)

    def _gate_for(self, market: str, bid: Bid) -> GateRow | None:
        m = self.config.markets[market]
        cal = gates.calendar(market, m, self.clock.now(), self.config.service.calendar_gates)
        if not bid.gate:
            return self.orders_store.ensure_gate(cal[0])
        for g in cal:
            if g.gate == bid.gate:
                return self.orders_store.ensure_gate(g)
        return None

    def _answer(
        self, market: str, party: str, kind: str, oid: str, reasons: list[Reason], gate: str = ""
    ) -> tuple[str, OrderAnswer]:
        body = OrderAnswer(
            market=market,
            ref_kind=kind,
            ref_id=oid,
            accepted=not reasons,
            gate=gate,
            reasons=reasons,
        )
        return topics.market_answer_topic(market, party), body

    # -- gates ---------------------------------------------------------------------------------

    def _gate_loop(self) -> None:
        try:
            self._republish()
            while not self._stop.is_set():
                self._tick()
                self.clock.wait(self._sleep_s(), self._stop)
        except Exception:
            log.exception("the gate cycle crashed; stopping")
            self.stats["gates.crashed"] += 1
            self._stop.set()

    def _sleep_s(self) -> float:
        now = self.clock.now()
        nxt = min(
            gates.current_gate(mid, m, now).closes_at for mid, m in self.config.markets.items()
        )
        return max(0.0, min(nxt - now, TICK_WALL_S * self.clock.speed))

    def _tick(self) -> None:
        store = self.gates_store
        now = self.clock.now()
        for mid, m in self.config.markets.items():
            cal = gates.calendar(mid, m, now, self.config.service.calendar_gates)
            store.ensure_gate(cal[0])
            if self._announced.get(mid) != cal[0].gate:
                self._announce(mid, m, cal)
        for g in store.gates(states=("open", "closed")):
            if self._stop.is_set():
                return
            if g.state == "open" and g.closes_at > now:
                continue
            section = self.config.markets.get(g.market)
            if section is None:
                continue  # a market no longer configured: its gates stay as they are
            self._clear(g, section)

    def _announce(self, market: str, m: MarketSection, cal: list[GateRow]) -> None:
        def times(g: GateRow) -> protocol.GateTimes:
            return protocol.GateTimes(
                gate=g.gate,
                opens_at=g.opens_at,
                closes_at=g.closes_at,
                delivery_start=g.delivery_start,
                slots=g.slots,
                resolution_s=g.resolution_s,
            )

        notice = protocol.GateNotice(
            market=market,
            current=times(cal[0]),
            state="open",
            upcoming=[times(g) for g in cal[1:]],
            pricing=m.pricing,
        )
        payload = protocol.encode(notice, ts=int(self.clock.now()))
        if self.bus.publish(
            topics.market_topic(market, "gate"), payload, qos=1, retain=True, stop=self._stop
        ):
            self._announced[market] = cal[0].gate
            log.info("market %s: gate %s open until %d", market, cal[0].gate, cal[0].closes_at)

    def _clear(self, g: GateRow, m: MarketSection) -> None:
        store = self.gates_store
        started = time.monotonic()
        store.close_gate(g.market, g.gate, at=time.time())
        orders = store.orders(g.market, g.gate)
        log.info("gate %s/%s closed: clearing %d order(s)", g.market, g.gate, len(orders))
        from ._clear import clear  # the solvers load on the first clearing, not at start

        try:
            book = book_from_builtins(book_doc(m, g, orders))
            clearing = clear(
                book, pricing=m.pricing, time_limit_s=m.time_limit_s, voll=m.voll, check=False
            )
        except MarketError as exc:
            # orders are judged one by one on arrival; a rule that spans them failing here
            # is a defect: the gate is recorded as cleared with nothing traded, loudly
            log.error("gate %s/%s: the book could not be cleared: %s", g.market, g.gate, exc)
            self.stats["gates.failed"] += 1
            body = protocol.MarketResult(
                market=g.market,
                gate=g.gate,
                status="infeasible",
                welfare_eur=0.0,
                delivery_start=g.delivery_start,
                resolution_s=g.resolution_s,
                pricing=m.pricing,
            )
        else:
            body = result_message(g.market, g, clearing)
        row = ResultRow(
            market=g.market,
            gate=g.gate,
            status=body.status,
            welfare_eur=body.welfare_eur,
            payload=protocol.to_json(body).decode(),
            cleared_at=time.time(),
        )
        if not store.record_result(row):
            log.warning("gate %s/%s was already cleared; its result stands", g.market, g.gate)
            return
        self._publish_result(row)
        latency = time.monotonic() - started
        self.stats["gates.cleared"] += 1
        log.info(
            "gate %s/%s cleared: %s, welfare %.6g EUR, %d award(s), %d request(s); "
            "closure to result published %.3f s",
            g.market,
            g.gate,
            body.status,
            body.welfare_eur,
            len(body.awards),
            len(body.requests),
            latency,
        )

    def _publish_result(self, row: ResultRow) -> None:
        body = protocol.from_json(row.payload, protocol.MarketResult)
        payload = protocol.encode(body, ts=int(self.clock.now()), msg_id=f"{row.market}.{row.gate}")
        delivered = threading.Event()
        topic = topics.market_topic(row.market, "result")
        if not self.bus.publish(topic, payload, qos=1, done=delivered.set, stop=self._stop):
            return
        while not delivered.wait(0.5):
            if self._stop.is_set():
                return  # published again at the next start
        self.gates_store.mark_published(row.market, row.gate)

    def _republish(self) -> None:
        for row in self.gates_store.unpublished():
            log.info("publishing the result of gate %s/%s again", row.market, row.gate)
            self._publish_result(row)
