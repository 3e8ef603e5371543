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

Who sends an order is the last level of its topic, ``atp/v1/m/{market}/bid/{party}``, which
the broker's ACL lets only the account ``party`` write; a market takes sell orders and
requests only from the accounts its ``sellers`` and ``buyers`` name. The operator's
``atp market close`` (a row in the store) makes a market refuse orders and open no new gate
until ``atp market open``. fmar.toml is read again when it changes: a market's new
parameters apply from the next gate it opens (each gate keeps the configuration it opened
with), its allow-lists at once. A DSO's requests (:mod:`.dso`) are answered on the order
thread: they are few, and a registration is stored before it is answered, as an order is.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import msgspec

import protocol
from protocol import DecodeError, OrderAnswer, Reason, Request, Response, topics

from ..clock import Clock
from ..fman.bus import Bus
from ..fman.ingest import Incoming
from . import dso, gates
from ._errors import MarketError
from ._parse import book_from_builtins
from .config import Config, MarketSection, load_config
from .orders import Bid, book_doc, check_bid, decode_bid, reasons_of, result_message, sender_of
from .store import GateRow, OrderRow, ResultRow, SqlMarketStore, open_market_store

log = logging.getLogger(__name__)

#: Longest wall time the gate thread sleeps between looks at the clock.
TICK_WALL_S = 0.5


class Service:
    """Runs until :meth:`stop` (or the ``stop`` event given to :meth:`run`)."""

    def __init__(self, *, config: Config, clock: Clock, config_path: Path | None = None) -> None:
        self.config = config
        self.clock = clock
        #: fmar.toml, read again when it changes (``None``: the configuration stays as given)
        self.config_path = config_path
        self._config_stamp = _stamp(config_path)
        self.stats: Counter[str] = Counter()
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self.orders_store = open_market_store(config.service.store)
        self.gates_store = open_market_store(config.service.store)
        s = config.service
        self.bus = Bus(
            url=s.broker,
            client_id=s.id,
            subscriptions=[topics.all_market_bids(), topics.ALL_DSO_REQUESTS],
            on_message=self._queue.put,
            session_expiry_s=s.session_expiry_s,
            credentials_file=s.credentials_file,
            ca_file=s.ca_file,
        )
        self._threads: list[threading.Thread] = []
        self._announced: dict[str, tuple[str, str]] = {}

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
            if m.topic.startswith(f"{topics.PREFIX}/d/"):
                try:
                    self._dso_request(m)
                except Exception:
                    log.exception("DSO request on %s could not be answered; dropped", m.topic)
                    self.stats["dso.failed"] += 1
                    self.bus.ack(m.mid, m.qos)
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
            t = topics.parse(m.topic)
        except ValueError as exc:
            log.warning("order on an unexpected topic dropped: %s", exc)
            self.stats["dropped"] += 1
            return None
        market, (channel, _, party) = t.owner, t.channel.partition("/")
        if t.scope != "m" or channel != "bid" or not party:
            log.warning("order on %s dropped: not a party's bid topic", m.topic)
            self.stats["dropped"] += 1
            return None
        try:
            bid = decode_bid(m.payload)
        except DecodeError as exc:
            kind, _, oid = sender_of(m.payload) or ("market.order", party, "")
            self.stats["refused"] += 1
            log.info("order %s of %s on %s refused: %s", oid, party, market, exc)
            return self._answer(market, party, kind, oid, reasons_of(exc.errors, "invalid"))
        if bid.party != party:
            self.stats["refused"] += 1
            log.warning(
                "order %s on %s names party %r but came from %r: refused",
                bid.id,
                market,
                bid.party,
                party,
            )
            reason = Reason(
                code="party",
                field="party",
                message=f"{bid.party!r} is not the sender: orders on {m.topic} are {party!r}'s",
            )
            return self._answer(market, party, bid.kind, bid.id, [reason])
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
        if not m.allows(bid.side, bid.party):
            who = "sellers" if bid.side == "sell" else "buyers"
            names = getattr(m, who)
            return [
                Reason(
                    code="forbidden",
                    field="party",
                    message=f"{bid.party!r} may not {'sell' if bid.side == 'sell' else 'buy'} "
                    f"on market {market!r} (its {who}: {', '.join(names) or 'none'})",
                )
            ]
        if bid.id.startswith(dso.PREFIX):
            return [
                Reason(
                    code="id",
                    field="id" if bid.side == "request" else "offer.id",
                    message=f"ids beginning {dso.PREFIX!r} are the DSO's registrations'",
                )
            ]
        closed = self._closed(self.orders_store, market)
        if closed:
            return [Reason(code="closed", field="market", message=closed)]
        gate = self._gate_for(market, bid)
        if gate is None:
            return [
                Reason(
                    code="gate", field="gate", message=f"gate {bid.gate!r} does not take orders now"
                )
            ]
        if self.clock.now() >= gate.closes_at:
            return [Reason(code="closed", message=f"gate {gate.gate} is closed")]
        return check_bid(bid, self._gate_config(gate), gate)

    def _closed(self, store: SqlMarketStore, market: str) -> str:
        """Why ``market`` takes no orders (the operator closed it), or empty."""
        c = store.control(market)
        if c is None or c.state == "open":
            return ""
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(c.changed_at))
        note = f": {c.note}" if c.note else ""
        return f"market {market} is closed by its operator since {when}{note}; no orders"

    def _gate_config(self, g: GateRow) -> MarketSection:
        """The parameters ``g`` runs with: those of its opening (a change of fmar.toml
        applies from the next gate), the live ones for a gate stored without them."""
        if g.config:
            return msgspec.json.decode(g.config, type=MarketSection)
        return self.config.markets[g.market]

    def _calendar(self, store: SqlMarketStore, market: str, count: int) -> list[GateRow]:
        """The gate taking orders now and the ``count`` after it. The current one is the
        stored gate open now if there is one (it keeps its parameters), else the one the
        live configuration puts here; the later ones follow from its closure."""
        m = self.config.markets[market]
        now = self.clock.now()
        live = [g for g in store.gates(market, states=("open",)) if g.opens_at <= now < g.closes_at]
        first = min(live, key=lambda g: g.closes_at) if live else gates.current_gate(market, m, now)
        later = gates.calendar(market, m, first.closes_at, count - 1) if count else []
        return [first, *later]

    def _stored(self, store: SqlMarketStore, g: GateRow) -> GateRow:
        """``g`` as stored (inserted with the live parameters of its market if new)."""
        if not g.config:
            g = replace(g, config=msgspec.json.encode(self.config.markets[g.market]).decode())
        return store.ensure_gate(g)

    def _gate_for(self, market: str, bid: Bid) -> GateRow | None:
        store = self.orders_store
        cal = self._calendar(store, market, self.config.service.calendar_gates)
        if not bid.gate:
            return self._stored(store, cal[0])
        for g in cal:
            if g.gate == bid.gate:
                return self._stored(store, g)
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
        self._reload()
        store = self.gates_store
        now = self.clock.now()
        for mid, m in self.config.markets.items():
            closed = bool(self._closed(store, mid))
            cal = self._calendar(store, mid, self.config.service.calendar_gates)
            if closed:
                # no new gate while closed; one opened before the closing still clears
                stored = store.gate(mid, cal[0].gate)
                cal[0] = stored or cal[0]
            else:
                cal[0] = self._stored(store, cal[0])
            state = "closed" if closed else "open"
            if self._announced.get(mid) != (cal[0].gate, state):
                self._announce(mid, m, cal, state)
        for g in store.gates(states=("open", "closed")):
            if self._stop.is_set():
                return
            if g.state == "open" and g.closes_at > now:
                continue
            if g.market not in self.config.markets:
                continue  # a market no longer configured: its gates stay as they are
            self._clear(g, self._gate_config(g))

    def _reload(self) -> None:
        """Read fmar.toml again if it changed; a bad file is logged and the running
        configuration kept. Markets' parameters apply from their next gate."""
        stamp = _stamp(self.config_path)
        if self.config_path is None or stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            cfg = load_config(self.config_path)
        except MarketError as exc:
            log.error(
                "%s changed but is refused, the running configuration stays: %s",
                self.config_path,
                exc,
            )
            self.stats["config.refused"] += 1
            return
        if cfg.service != self.config.service or cfg.clock != self.config.clock:
            log.warning(
                "%s: [service] and [clock] changes apply at the next start", self.config_path
            )
        cfg = msgspec.structs.replace(cfg, service=self.config.service, clock=self.config.clock)
        changed = [mid for mid, m in cfg.markets.items() if self.config.markets.get(mid) != m]
        self.config = cfg
        at = time.time()
        for mid in changed:
            self.gates_store.put_market(mid, msgspec.json.encode(cfg.markets[mid]).decode(), at=at)
        self.stats["config.reloaded"] += 1
        log.info(
            "%s read again; changed market(s), from their next gate: %s",
            self.config_path,
            ", ".join(changed) or "none",
        )

    def _announce(self, market: str, m: MarketSection, cal: list[GateRow], state: str) -> None:
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
            state=state,  # type: ignore[arg-type]  # the callers pass "open" or "closed" only
            upcoming=[times(g) for g in cal[1:]],
            pricing=m.pricing,
        )
        payload = protocol.encode(notice, ts=int(self.clock.now()))
        if self.bus.publish(
            topics.market_topic(market, "gate"), payload, qos=1, retain=True, stop=self._stop
        ):
            self._announced[market] = (cal[0].gate, state)
            if state == "open":
                log.info("market %s: gate %s open until %d", market, cal[0].gate, cal[0].closes_at)
            else:
                log.info("market %s: closed by its operator, no orders taken", market)

    def _clear(self, g: GateRow, m: MarketSection) -> None:
        store = self.gates_store
        started = time.monotonic()
        if g.state == "open":
            self._add_congestion(g)
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

    def _add_congestion(self, g: GateRow) -> None:
        """Every DSO registration's slots in ``g`` as a request of its book, before it
        closes (again after a restart: the store answers ``again`` for one already in)."""
        for reg in self.gates_store.congestion(g.market):
            entry = dso.gate_entry(reg, g)
            if entry is None:
                continue
            row = OrderRow(
                market=g.market,
                gate=g.gate,
                side="request",
                id=entry["id"],
                party=reg.party,
                entry=json.dumps(entry, sort_keys=True),
                received_at=time.time(),
            )
            outcome = self.gates_store.add_order(row)
            if outcome in ("stored", "again"):
                log.info(
                    "gate %s/%s: congestion %s of %s in the book (%s)",
                    g.market,
                    g.gate,
                    reg.id,
                    reg.party,
                    outcome,
                )
            else:
                log.error(
                    "gate %s/%s: congestion %s of %s not in the book: %s",
                    g.market,
                    g.gate,
                    reg.id,
                    reg.party,
                    outcome,
                )

    # -- the DSO's requests ---------------------------------------------------------------------

    def _dso_request(self, m: Incoming) -> None:
        """Answer one request of a DSO (``atp/v1/d/{dso}/req/{method}``) and acknowledge it
        after the answer is handed over; a request naming no response topic of that DSO's
        own is dropped (nobody to tell)."""
        try:
            t = topics.parse(m.topic)
        except ValueError:
            t = None
        method = t.method if t is not None else None
        reply = None
        if t is not None and m.response_topic:
            try:
                r = topics.parse(m.response_topic)
                if r.scope == "d" and r.owner == t.owner and r.channel.startswith("resp/"):
                    reply = m.response_topic
            except ValueError:
                pass
        if t is None or method is None or reply is None:
            log.warning(
                "DSO request on %s without a response topic of its own: dropped", m.topic[:200]
            )
            self.stats["dso.dropped"] += 1
            self.bus.ack(m.mid, m.qos)
            return
        try:
            response = self._dso_answer(t.owner, method, m.payload)
        except MarketError as exc:
            log.error("DSO request %s of %s: %s", method, t.owner, exc)
            response = Response(status="error", reason="the market store is unavailable; ask again")
        self.stats["dso.ok" if response.status == "ok" else "dso.refused"] += 1
        log.info(
            "DSO %s: %s %s%s",
            t.owner,
            method,
            response.status,
            f" ({response.reason})" if response.reason else "",
        )
        payload = protocol.encode(response, ts=int(self.clock.now()))
        done = lambda mid=m.mid, qos=m.qos: self.bus.ack(mid, qos)  # noqa: E731
        self.bus.publish(
            reply, payload, qos=1, done=done, stop=self._stop, correlation=m.correlation
        )

    def _dso_answer(self, party: str, method: str, payload: bytes) -> Response:
        try:
            body = protocol.decode(payload, expect="request").body
        except DecodeError as exc:
            return Response(status="error", reason=f"not a request: {exc}"[:1024])
        assert isinstance(body, Request)
        if body.method != method:
            return Response(
                status="error", reason=f"method: {body.method!r} is not the topic's {method!r}"
            )
        store = self.orders_store
        return dso.answer(
            method,
            body.params,
            party=party,
            markets=self.config.markets,
            store=store,
            next_gate=lambda mid: self._stored(store, self._calendar(store, mid, 0)[0]),
            closed=lambda mid: self._closed(store, mid),
            at=time.time(),
        )

    def _republish(self) -> None:
        for row in self.gates_store.unpublished():
            log.info("publishing the result of gate %s/%s again", row.market, row.gate)
            self._publish_result(row)


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """What tells that ``path`` changed: its modification time and size."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
