"""FMAN on the markets: bids in each gate of the markets in ``[[market]]``, and turns what it
won into schedules (docs/trading.md).

Two parts, and why:

- :class:`MarketInbox` runs in every worker, in a thread of its own: it keeps the latest
  retained gate calendar of each market in memory, and writes FMAR's answers to orders and
  the gates' results into the store before acknowledging them to the broker. Every worker
  subscribes (not as a shared group): whichever worker gets a message first stores it, the
  others find it stored, so a worker that takes the planner lease over finds every result.
- :class:`Trader` is a part of the planning cycle, so only the holder of the planner lease
  bids. A gate is bid once: the bids are stored, with the gate's row, before any is sent,
  and the row's insert is what only one worker can win. Each order is sent again until
  FMAR's answer arrives (a broker's PUBACK is not an answer) or the gate closes. A stored
  result is applied once: awarded aggregates are split into member schedules
  (:func:`.bidding.member_parts`), issued as the planner's are, and the members are held
  out of later plans; the rest of the portfolio is planned again around them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import protocol
from protocol import DecodeError, FlexOffer, GateNotice, MarketResult, OrderAnswer, topics

from ..fmar._book import Market
from ..optim.errors import OptimError
from . import bidding
from .config import Config, MarketEntry
from .counters import Counters
from .ingest import Incoming
from .store import MarketAward, MarketBid, MarketGate, MarketWon, NewSchedule, Store

if TYPE_CHECKING:
    from .cycle import Cycle

log = logging.getLogger(__name__)

#: Deviation below this (kWh) is no award.
EPS_KWH = 1e-6


def subscriptions(config: Config) -> list[str]:
    out = []
    for m in config.market:
        out += [
            topics.market_topic(m.id, "gate"),
            topics.market_topic(m.id, "result"),
            topics.market_answer_topic(m.id, m.party),
        ]
    return out


def is_market_topic(topic: str) -> bool:
    return topic.startswith(topics.PREFIX + "/m/")


class MarketInbox:
    """Market messages into memory (gate calendars) and the store (answers, results)."""

    def __init__(
        self,
        *,
        config: Config,
        open_store: Callable[[], Store],
        ack: Callable[[Incoming], None],
        stats: Counters,
    ) -> None:
        self.config = config
        self._open_store = open_store
        self._ack = ack
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        #: the latest gate calendar of each market
        self.notices: dict[str, GateNotice] = {}
        self.stats = stats

    def put(self, m: Incoming) -> None:
        self._queue.put(m)

    def run(self, stop: threading.Event) -> None:
        store = self._open_store()
        try:
            while not stop.is_set():
                try:
                    m = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    self.handle(m, store)
                except Exception:  # the store: not acknowledged, the broker hands it over again
                    log.exception("market message on %s not stored; retrying", m.topic)
                    self._queue.put(m)
                    stop.wait(0.5)
                    continue
                self._ack(m)
        finally:
            store.close()

    def _count(self, key: str) -> None:
        self.stats.add(key)

    def handle(self, m: Incoming, store: Store) -> None:
        try:
            t = topics.parse(m.topic)
            msg = protocol.decode(m.payload)
        except (ValueError, DecodeError) as exc:
            log.warning("market message on %s dropped: %s", m.topic, exc)
            self._count("market.dropped")
            return
        body = msg.body
        if isinstance(body, GateNotice) and t.channel == "gate":
            self.notices[body.market] = body
        elif isinstance(body, OrderAnswer):
            reason = "; ".join(
                f"{r.field}: {r.message}" if r.field else r.message for r in body.reasons
            )
            gate = body.gate or body.ref_id.split(".", 1)[0]
            if store.answer_bid(
                body.market,
                gate,
                body.ref_id,
                accepted=body.accepted,
                reason=reason,
                at=time.time(),
            ):
                self._count("market.accepted" if body.accepted else "market.refused")
                if not body.accepted:
                    log.warning("market %s refused bid %s: %s", body.market, body.ref_id, reason)
        elif isinstance(body, MarketResult):
            outcome = store.put_market_result(
                body.market, body.gate, protocol.to_json(body).decode(), at=time.time()
            )
            self._count(f"market.result_{outcome}")
            if outcome == "duplicate":
                log.info("result of gate %s/%s again: ignored", body.market, body.gate)
        else:
            self._count("market.dropped")


def rewards(store: Store, offers: list[FlexOffer], at: int) -> dict[str, float | None]:
    """Each offer's delegated contract's reward per kWh at ``at`` (``None``: none in force, or
    one that prices from the offer's own asks); revenue sharing asks nothing: the prosumer
    gets a share of whatever the market pays."""
    from ..settle._contract import RevenueSharing, StrictRewards
    from .settlement import contract_book

    book = contract_book(store)
    out: dict[str, float | None] = {}
    if not len(book):
        return out
    for o in offers:
        c = book.in_force(o.issuer, o.device, at)
        terms = None if c is None else c.terms
        if isinstance(terms, StrictRewards):
            out[o.id] = float(terms.reward_eur_per_kwh)
        elif isinstance(terms, RevenueSharing):
            out[o.id] = float(Decimal(0))
        else:
            out[o.id] = None
    return out


class Trader:
    """The market part of the planning cycle (see the module docstring)."""

    def __init__(self, *, cycle: Cycle, notices: Mapping[str, GateNotice]) -> None:
        self.cycle = cycle
        self.config = cycle.config
        self.store = cycle.store
        self.notices = notices
        #: gates this worker knows to be bid (by it or another), so it looks them up once
        self._known: set[tuple[str, str]] = set()
        self._sent_at: dict[tuple[str, str, str], float] = {}

    @property
    def stats(self) -> Any:
        return self.cycle.stats

    def step(self, now: float) -> None:
        for entry in self.config.market:
            notice = self.notices.get(entry.id)
            if notice is not None and notice.state == "open":
                self._maybe_bid(entry, notice.current, now)
        self._resend(now)
        self._apply_results(now)

    # -- bidding ---------------------------------------------------------------------------

    def _maybe_bid(self, entry: MarketEntry, g: protocol.GateTimes, now: float) -> None:
        key = (entry.id, g.gate)
        if key in self._known or now >= g.closes_at:
            return
        lead = entry.bid_before_close_s + self.cycle.clock.speed * entry.bid_before_close_wall_s
        if now < max(g.opens_at, g.closes_at - lead):
            return
        if any(r.gate == g.gate for r in self.store.market_gates(entry.id)):
            self._known.add(key)
            return
        t0 = time.monotonic()
        rows = self.store.offers_in(bidding.BIDDABLE_STATES)
        candidates = [
            bidding.Candidate(state=r.state, offer=self.cycle._offer(r))
            for r in rows
            if r.payload is not None
        ]
        offers = bidding.biddable(
            candidates,
            gate=g,
            deliver_by=g.closes_at + self.cycle.margin_s(),
            nodes=entry.nodes,
            exclude=self.store.market_members(int(now) - 86_400),
        )
        bids = bidding.build_bids(
            offers,
            gate=g,
            rewards=rewards(self.store, offers, g.delivery_start),
            default_ask=entry.default_ask_eur_per_kwh,
            max_group_size=entry.max_group_size,
            min_bid_kwh=entry.min_bid_kwh,
        )
        claimed = self.store.claim_market_gate(
            MarketGate(
                market=entry.id,
                gate=g.gate,
                party=entry.party,
                delivery_start=g.delivery_start,
                closes_at=g.closes_at,
                worker=self.cycle.worker_id,
                bid_at=now,
            ),
            [
                MarketBid(
                    market=entry.id,
                    gate=g.gate,
                    aggregate_id=b.id,
                    node=b.node,
                    offer=protocol.to_json(b.aggregate.offer).decode(),
                    ask_up=b.ask_up,
                    ask_down=b.ask_down,
                    members=b.members,
                )
                for b in bids
            ],
        )
        self._known.add(key)
        if not claimed:
            return
        self.stats.add("market.gates_bid")
        self.stats.add("market.bids", len(bids))
        log.info(
            "market %s gate %s: %d offer(s) bid as %d aggregate(s) in %.2f s",
            entry.id,
            g.gate,
            len(offers),
            len(bids),
            time.monotonic() - t0,
        )
        self._resend(now)

    def _resend(self, now: float) -> None:
        waiting = self.store.market_bids(waiting=True)
        if not waiting:
            return
        gates = {(r.market, r.gate): r for r in self.store.market_gates()}
        entries = {e.id: e for e in self.config.market}
        wall = time.time()
        sent: dict[tuple[str, str], list[str]] = {}
        for b in waiting:
            g = gates.get((b.market, b.gate))
            entry = entries.get(b.market)
            if g is None or entry is None or now >= g.closes_at:
                continue  # the gate closed without an answer: FMAR has it or not; the result says
            key = (b.market, b.gate, b.aggregate_id)
            last = self._sent_at.get(key)
            if last is not None and wall - last < entry.resend_after_wall_s:
                continue
            order = protocol.SellOrder(
                market=b.market,
                party=g.party,
                offer=protocol.from_json(b.offer, FlexOffer, check=False),
                node=b.node,
                ask_up_eur_per_kwh=b.ask_up,
                ask_down_eur_per_kwh=b.ask_down,
                gate=b.gate,
            )
            payload = protocol.encode(order, ts=int(now), msg_id=b.aggregate_id)
            if not self.cycle.publish(
                topics.market_bid_topic(b.market, g.party), payload, qos=1, stop=self.cycle.stopping
            ):
                break
            if last is not None:
                self.stats.add("market.bids_resent")
            self._sent_at[key] = wall
            sent.setdefault((b.market, b.gate), []).append(b.aggregate_id)
        for (market, gate), ids in sent.items():
            self.store.mark_bids_sent(market, gate, ids, wall)

    # -- results ---------------------------------------------------------------------------

    def _apply_results(self, now: float) -> None:
        for g in self.store.market_gates(result_state="new"):
            if g.result is None:
                continue
            try:
                self._apply(g, protocol.from_json(g.result, MarketResult, check=False), now)
            except (OptimError, ValueError) as exc:
                log.error("result of gate %s/%s could not be applied: %s", g.market, g.gate, exc)
                self.store.settle_market_result(
                    g.market, g.gate, state="failed", note=str(exc)[:500], won=[]
                )

    def _apply(self, g: MarketGate, result: MarketResult, now: float) -> None:
        bids = {b.aggregate_id: b for b in self.store.market_bids(g.market, g.gate)}
        margin = self.cycle.margin_s()
        in_time = now + margin
        won: list[MarketWon] = []
        schedules: list[NewSchedule] = []
        awards: list[MarketAward] = []
        late = 0
        for a in result.awards:
            bid = bids.get(a.offer_id)
            if bid is None or max((abs(d) for d in a.deviation_kwh), default=0.0) <= EPS_KWH:
                continue
            up = sum(d for d in a.deviation_kwh if d > 0)
            down = -sum(d for d in a.deviation_kwh if d < 0)
            moved = up + down
            base = MarketWon(
                market=g.market,
                gate=g.gate,
                aggregate_id=a.offer_id,
                node=a.node,
                start=a.start,
                energy_kwh=list(a.energy_kwh),
                deviation_kwh=list(a.deviation_kwh),
                up_kwh=up,
                down_kwh=down,
                paid_eur=a.paid_eur,
                price_eur_per_kwh=a.paid_eur / moved if moved > EPS_KWH else 0.0,
                state="applied",
                at=time.time(),
            )
            if in_time >= a.start:
                # delivery has begun, or begins before a schedule could reach the agents
                won.append(replace(base, state="late", note="result after delivery began"))
                late += 1
                continue
            rows, parts_awards, skipped = self._split(g, result, a, bid, in_time)
            schedules += rows
            awards += parts_awards
            note = f"{len(skipped)} member(s) not scheduled: {', '.join(skipped[:20])}"
            won.append(replace(base, state="changed", note=note) if skipped else base)
        state = "late" if won and late == len(won) else "applied"
        note = f"{len(won)} aggregate(s) won, {late} late"
        with self.store.write():
            if not self.store.settle_market_result(
                g.market, g.gate, state=state, note=note, won=won
            ):
                return  # applied already (by this worker before, or another)
            if schedules:
                self.store.add_schedules(schedules, now=now, holder=self.cycle.worker_id)
            if awards:
                self.store.add_market_awards(awards)
        self.stats.add("market.results_applied")
        self.stats.add("market.aggregates_won", len(won) - late)
        self.stats.add("market.results_late_aggregates", late)
        self.stats.add("market.schedules_from_awards", len(schedules))
        self.cycle.market_changed(awarded=bool(schedules))
        log.info(
            "market %s gate %s: %s; %d member schedule(s) issued",
            g.market,
            g.gate,
            note,
            len(schedules),
        )

    def _split(
        self,
        g: MarketGate,
        result: MarketResult,
        a: protocol.AwardLine,
        bid: MarketBid,
        in_time: float,
    ) -> tuple[list[NewSchedule], list[MarketAward], list[str]]:
        """The member schedules and awards of one awarded aggregate, for the members that
        are as they were bid and can still be told; the others' ids."""
        heads = self.store.offer_heads([m for m, _ in bid.members])
        ok: list[FlexOffer] = []
        skipped: list[str] = []
        for oid, rev in bid.members:
            head = heads.get(oid)
            row = self.store.offer(oid) if head is not None else None
            if (
                head is None
                or row is None
                or row.payload is None
                or head.revision != rev
                or head.state not in bidding.BIDDABLE_STATES
                or (row.assignment_before or 0) <= in_time
            ):
                skipped.append(oid)
                continue
            p = bidding.pinned(self.cycle._offer(row))
            if p is None:
                skipped.append(oid)
                continue
            ok.append(p)
        agg = protocol.from_json(bid.offer, FlexOffer, check=False)
        market = Market(
            start=result.delivery_start,
            slots=len(a.deviation_kwh),
            resolution_s=result.resolution_s,
        )
        prices = bidding.award_prices(
            a,
            node_prices=result.prices.get(a.node, [0.0] * market.slots),
            pricing=result.pricing,
            bid_up=bid.ask_up,
            bid_down=bid.ask_down,
        )
        rows: list[NewSchedule] = []
        awards: list[MarketAward] = []
        by_id = {o.id: o for o in ok}
        for part in bidding.member_parts(agg, ok, a, market=market):
            offer = by_id[part.offer_id]
            s = part.schedule
            if protocol.check_assignment(
                offer, start=s.start, profile=s.profile, energy_kwh=list(s.energy_kwh)
            ):
                skipped.append(part.offer_id)  # cannot happen for a box member; never sent
                continue
            rows.append(
                NewSchedule(
                    offer_id=offer.id,
                    issuer=offer.issuer,
                    offer_revision=offer.revision,
                    start=s.start,
                    profile=s.profile,
                    energy_kwh=[float(e) for e in s.energy_kwh],
                    kind="planned",
                )
            )
            for j, d in enumerate(part.deviation_kwh):
                if abs(d) > EPS_KWH:
                    awards.append(
                        MarketAward(
                            market=g.market,
                            gate_start=result.delivery_start,
                            offer_id=offer.id,
                            slot_start=market.start + j * market.resolution_s,
                            kwh=d,
                            price_eur_per_kwh=prices[j],
                            aggregate_id=a.offer_id,
                        )
                    )
        return rows, awards, skipped
