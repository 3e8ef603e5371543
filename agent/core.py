"""The agent's protocol rules: offers and their lifecycle, schedules in and their answers.

Offers. Once per slot every generator is asked for its device's offer. The offer's id names
the *episode* it describes (a planning block, a charging session, a dishwasher load): an offer
for an episode the device has no live offer for is new, and is published if its span (see
:func:`agent.revision.span`) overlaps no other episode the device still offers or runs, so one
device never has two schedules for the same time. A prediction for an episode already offered
becomes an update (same id, revision + 1, state ``offered`` until FMAN accepts it anew) only
when :func:`agent.revision.material_change` says the offer as published is materially wrong,
only once FMAN has accepted the revision before it (one revision in flight), and only before
``acceptance_before`` (later it could not be accepted in time). Deadlines of an update are never
later than those of the revision before. An offer that is assigned, executing or final is never
revised. An offer whose generator says nothing any more (the device left) is withdrawn, up to
the moment it starts executing. Every generator is told its device's live episodes, with the
plan in force for each: a device with a state (a battery's charge) offers an episode from what
the earlier ones may leave, so an episode offered while others run holds whatever they are
scheduled to do.

FMAN's answers. Every offer, withdrawal and meter batch stays in the outbox until FMAN's answer
for it is handled here, in the transaction that records what the answer means (the uplink
sends it again, with backoff, until then): delivery is end to end, a broker's PUBACK is not
delivery. An ``Ack`` of the current revision makes the offer ``accepted``. A ``Reject`` of an
offer FMAN never accepted makes it ``rejected``: final, never revised again; its default still
runs (the device needs its energy as it would without the platform), and the device's next
offer for that time, once the default has run, gets a new id. A ``Reject`` of an update leaves
FMAN with the revision it accepted before: the agent goes back to that revision (it is what
FMAN plans and what the default executes) and revises the offer no more.

Agreeing with FMAN on an offer's state. FMAN's verdict on an offer is final whenever it
arrives, and the agent records it; what the device runs follows from it:

- an answer that comes after the agent, hearing nothing by ``assignment_before``, took the
  offer's default into force changes nothing the device does. An ``Ack`` is recorded (FMAN
  records the same default, as an implicit schedule, for an offer it accepted and could not
  schedule in time). A ``Reject`` makes the offer ``rejected`` even though it is already
  ``executing``, ``executed`` or ``expired`` at the agent: it is the ``offered -> rejected``
  step of the lifecycle arriving late (the one state change not checked by
  :func:`protocol.transition`, which knows no late verdicts), and ``rejected`` means exactly
  what ran: the default, outside the platform. FMAN's reasons are kept with the offer;
- a withdrawal FMAN refuses (the offer had begun executing at FMAN before the withdrawal
  arrived, or was final there) leaves the offer ``withdrawn`` at the agent (the device is gone
  and runs nothing), with FMAN's refusal recorded on it; FMAN records the refusal on its side
  and its execution check shows the slots not run;
- a reject of an offer revision FMAN already holds a newer revision of (``superseded``) says
  nothing about the offer and changes nothing.

Meter answers. An ``Ack`` of a batch may name readings FMAN quarantined (implausible, an
unknown device): the agent marks them with FMAN's reason and keeps them; the rest of the batch
is delivered. A batch refused whole goes to ``dead_letters`` with the reason and its readings
are marked (sending it again would be refused again).

Schedules. One is taken (``assigned``, acknowledged on ``schedule/ack``) only if it concerns a
known offer that is still waiting (not withdrawn, not executing, not final), arrives before
``assignment_before``, does not start in a slot that has already begun, is not older than the
schedule in force, and passes :func:`protocol.check_schedule` against the offer's current
revision (whatever revision it was planned for: ``Schedule.offer_revision``). Otherwise it is
refused with a :class:`protocol.Reject` whose reasons say why (code ``malformed``,
``unknown_offer``, ``withdrawn``, ``offer_state``, ``stale``, ``version_conflict``,
``too_late``, ``start_passed``, ``stale_revision`` (planned for an older revision, and it does
not fit the current one; the ``infeasible`` reasons follow) or ``infeasible``, with the field
path). A message handled once (same message id, or the same offer and version with the same
content) changes nothing the second time and is answered as the first time (FMAN sends a
schedule again until it hears the answer: the first answer may have been lost).

Deadlines. With no schedule by ``assignment_before`` the default schedule is taken into force
(shifted to the current slot if its start has already passed and the shift keeps it
feasible). When a plan's first slot begins the offer is ``executing``, after its last slot
``executed``; an offer whose plan ended while the agent was not running is ``expired``.
Every state change goes through :func:`protocol.transition` (except FMAN's late reject, above),
and every plan taken into force passes :func:`protocol.check_assignment` against the offer as
FMAN knows it.

Selling on a market. A device trading in direct mode, on an agent with a ``[market]`` section,
sells its offers on that market itself: each goes to FMAR as a ``market.sell`` order of the
agent's account (with the device's asks, docs/agent.md) on ``atp/v1/m/{market}/bid/{account}``
instead of to FMAN, and stays in the outbox, like an offer to FMAN, until FMAR's
``market.answer`` arrives. An accepted order makes the offer ``accepted``, a refused one
``rejected`` (its default runs). An order in a gate's book is not revised (FMAR takes one order
per offer and gate) and cannot be withdrawn (FMAR takes no withdrawals): the device's next
episode is a new order.

Every decision is written to the store together with the message that announces it, in one
transaction, before the triggering message is acknowledged to the broker. The in-memory view
of the offers that still matter is rebuilt from the store at start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

import protocol
from agent import revision
from agent.clock import Clock
from agent.drivers.base import Measurement
from agent.generators.base import Episode, Generator, OfferContext
from agent.store import ANSWERED_KINDS, LIVE_STATES, OutMessage, Plan, Store
from protocol import (
    Ack,
    DecodeError,
    FlexOffer,
    OfferState,
    OrderAnswer,
    Reason,
    Reject,
    Schedule,
    SellOrder,
    TradingMode,
    Withdraw,
    topics,
)

log = logging.getLogger(__name__)

#: What FMAN answers on the agent's ``ack`` topic (FMAR answers sell orders on its own).
_FMAN_KINDS = ANSWERED_KINDS - {"market.sell"}

#: Longest text of a reason on the wire (protocol ``Text``), and most reasons in one reject.
_TEXT = 1024
_MAX_REASONS = 64
#: How long an offer stays in memory after its plan ended (for tagging late meter readings).
_KEEP_S = 86_400


@dataclass(frozen=True, slots=True)
class MarketRoute:
    """Where a device's offers are sold as orders: market ``market``, party ``account``, at
    ``asks`` (EUR/kWh up and down; ``None``: FMAR reads them from the offer's prices)."""

    market: str
    account: str
    asks: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class OfferSource:
    """A device that makes offers, with what its offers say about where and how they trade;
    ``market`` set: its offers go to that market as sell orders, not to FMAN."""

    device: str
    generator: Generator
    grid_node: str = ""
    mode: TradingMode = "delegated"
    market: MarketRoute | None = None


@dataclass(slots=True)
class _Tracked:
    offer: FlexOffer
    state: OfferState
    plan: Plan | None
    #: the generator's id of the episode (``offer.id`` may carry a suffix)
    episode: str = ""
    #: the last revision FMAN accepted, ``None`` if none
    accepted: FlexOffer | None = None
    #: no more revisions (FMAN refused one)
    locked: bool = False


@dataclass
class CoreStats:
    offers: int = 0
    updates: int = 0
    #: generator predictions that differed from the offer only within the tolerance
    drift_ignored: int = 0
    #: updates FMAN refused (the offer went back to the revision FMAN holds)
    updates_refused: int = 0
    withdrawals: int = 0
    schedules_taken: int = 0
    schedules_rejected: int = 0
    duplicates: int = 0
    malformed: int = 0
    generator_errors: int = 0
    #: FMAN's answers to offers, withdrawals and meter batches handled
    answers: int = 0
    #: offers FMAN rejected after the agent had begun running their default
    rejected_late: int = 0
    withdrawals_refused: int = 0
    readings_quarantined: int = 0
    meter_batches_refused: int = 0


class Core:
    """Offer lifecycle and schedule handling for one agent."""

    def __init__(
        self,
        *,
        agent_id: str,
        store: Store,
        clock: Clock,
        sources: Sequence[OfferSource],
        resolution_s: int = 900,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.agent_id = agent_id
        self.store = store
        self.clock = clock
        self.sources = list(sources)
        self._routes = {s.device: s.market for s in self.sources if s.market is not None}
        self.resolution_s = resolution_s
        self.on_outbox = on_outbox
        self.stats = CoreStats()
        self._tracked: dict[str, _Tracked] = {}
        self._warned: set[str] = set()
        self._load(int(clock.now()))

    def _load(self, now: int) -> None:
        live = self.store.offers(states=(*LIVE_STATES, "rejected"))
        plans = self.store.plans(s.offer.id for s in live)
        for s in live:
            plan = plans.get(s.offer.id)
            if s.state == "rejected" and (plan is None or plan.end <= now):
                continue
            self._tracked[s.offer.id] = _Tracked(
                s.offer, s.state, plan, s.episode, s.accepted, s.locked
            )

    # -- what the EMS and the status need ---------------------------------------------------

    def plans(self, now: float) -> dict[str, Plan]:
        """The plan each device executes in the slot containing ``now``."""
        slot = int(now) // self.resolution_s * self.resolution_s
        out: dict[str, Plan] = {}
        for t in self._tracked.values():
            if t.plan is None or t.state not in ("executing", "rejected"):
                continue
            if t.plan.slot_energy(slot, self.resolution_s) is not None:
                out[t.plan.device] = t.plan
        return out

    def offer_at(self, device: str, ts: int) -> str:
        """The id of the offer whose plan covered ``device`` at ``ts`` (``""`` if none)."""
        for t in self._tracked.values():
            p = t.plan
            if p is not None and p.device == device and p.start <= ts < p.end:
                return p.offer_id
        return ""

    def tracked(self) -> dict[str, tuple[FlexOffer, OfferState, Plan | None]]:
        return {k: (t.offer, t.state, t.plan) for k, t in self._tracked.items()}

    # -- offers out ---------------------------------------------------------------------------

    def refresh(self, now: int, measurements: Mapping[str, Measurement | None]) -> None:
        """Ask every generator for its offer and publish, update or withdraw accordingly.

        A device without a fresh measurement is skipped: a device that does not answer has not
        left, and its offer stands."""
        changed = False
        live = self._live(now)
        for src in self.sources:
            m = measurements.get(src.device)
            if m is None:
                continue
            mine = live.get(src.device, [])
            ctx = OfferContext(
                agent=self.agent_id,
                device=src.device,
                now=now,
                resolution_s=self.resolution_s,
                grid_node=src.grid_node,
                mode=src.mode,
                measurement=m,
                episodes=tuple(_episode(t) for t in mine),
            )
            try:
                new = src.generator.offer(ctx)
            except Exception as exc:
                self.stats.generator_errors += 1
                self._warn(src.device, f"generator of {src.device} failed: {exc!r}")
                continue
            if new is not None:
                new = msgspec.structs.replace(new, issuer=self.agent_id, device=src.device)
                errors = protocol.validate_offer(new)
                if errors:
                    self.stats.generator_errors += 1
                    self._warn(
                        src.device,
                        f"generator of {src.device} made an invalid offer: "
                        + "; ".join(map(str, errors[:5])),
                    )
                    continue
            changed |= self._reconcile(src, ctx, new, now, mine)
        if changed:
            self.on_outbox()

    def _live(self, now: int) -> dict[str, list[_Tracked]]:
        """Each device's offers that still concern it (:meth:`_matters`), earliest first: what
        its generator is told (a stateful device starts the episode it offers from what these
        may leave) and what a new offer must not overlap."""
        out: dict[str, list[_Tracked]] = {}
        for t in self._tracked.values():
            if self._matters(t, now):
                out.setdefault(t.offer.device, []).append(t)
        for mine in out.values():
            if len(mine) > 1:
                mine.sort(key=lambda t: protocol.start_window(t.offer))
        return out

    @staticmethod
    def _matters(t: _Tracked, now: int) -> bool:
        """Whether an offer still concerns its device: live, or rejected with its default
        still to run."""
        if t.state in LIVE_STATES:
            return True
        return t.state == "rejected" and t.plan is not None and t.plan.end > now

    def _reconcile(
        self,
        src: OfferSource,
        ctx: OfferContext,
        new: FlexOffer | None,
        now: int,
        live: Sequence[_Tracked],
    ) -> bool:
        """Publish, update or withdraw after the generator's answer ``new``; ``live`` holds
        the device's offers that still concern it (:meth:`_live`)."""
        mine = list(live)
        changed = False
        for t in list(mine):
            # other episodes the device still offers: do they still hold (the car that left)?
            if t.state not in ("offered", "accepted", "assigned"):
                continue
            if new is not None and t.episode == new.id:
                continue
            own = msgspec.structs.replace(t.offer, id=t.episode)  # the id its generator made
            try:
                valid = src.generator.still_valid(own, ctx)
            except Exception as exc:
                self.stats.generator_errors += 1
                self._warn(src.device, f"generator of {src.device} failed: {exc!r}")
                continue
            if not valid:
                self._withdraw(t, now, "device left")
                mine.remove(t)
                changed = True
        if new is None:
            return changed
        same = next((t for t in mine if t.episode == new.id), None)
        if same is not None:
            return self._revise(same, new, now) or changed
        span = revision.span(new)
        if any(revision.overlaps(span, revision.span(t.offer)) for t in mine):
            # the device still offers, or is committed to, another episode at that time
            return changed
        offer = msgspec.structs.replace(new, id=self._free_id(new.id), revision=0, state="offered")
        self._publish_offer(offer, now, episode=new.id)
        self.stats.offers += 1
        return True

    def _revise(self, t: _Tracked, new: FlexOffer, now: int) -> bool:
        """Publish ``new`` as the next revision of ``t`` if it may and must be revised."""
        cur = t.offer
        if cur.device in self._routes:
            return False  # an order in a gate's book is not revised (see the module's doc)
        if t.state != "accepted" or t.locked or now >= cur.acceptance_before:
            # an answer is pending, a schedule or the default is committed, FMAN refused a
            # revision, or an update could no longer be accepted in time
            return False
        # an update never postpones a deadline: FMAN planned around it, and a rolling offer
        # would otherwise be renewed forever without its default ever running
        new = msgspec.structs.replace(
            new,
            acceptance_before=min(new.acceptance_before, cur.acceptance_before),
            assignment_before=min(new.assignment_before, cur.assignment_before),
        )
        if protocol.validate_offer(new):
            return False
        why = revision.material_change(cur, new)
        if why is None:
            self.stats.drift_ignored += 1
            return False
        update = msgspec.structs.replace(new, id=cur.id, revision=cur.revision + 1, state="offered")
        self._publish_offer(update, now, episode=t.episode, accepted=t.accepted)
        self.stats.updates += 1
        log.debug("%s: %s revised: %s", self.agent_id, cur.id, why)
        return True

    def _free_id(self, wanted: str) -> str:
        candidate, n = wanted, 1
        while candidate in self._tracked or self.store.offer(candidate) is not None:
            n += 1
            candidate = f"{wanted}.{n}"
        return candidate

    def _publish_offer(
        self, offer: FlexOffer, now: int, *, episode: str, accepted: FlexOffer | None = None
    ) -> None:
        route = self._routes.get(offer.device)
        msg_id = f"{offer.id}.r{offer.revision}"
        with self.store.transaction():
            self.store.save_offer(offer, "offered", now, episode=episode, accepted=accepted)
            if route is None:
                self._send(offer, "offer", msg_id, now, ref=offer.id, revision=offer.revision)
            else:
                up, down = route.asks if route.asks is not None else (None, None)
                order = SellOrder(
                    market=route.market,
                    party=route.account,
                    offer=offer,
                    ask_up_eur_per_kwh=up,
                    ask_down_eur_per_kwh=down,
                )
                topic = topics.market_bid_topic(route.market, route.account)
                self._send(order, "", msg_id, now, ref=offer.id, topic=topic)
        self._tracked[offer.id] = _Tracked(offer, "offered", None, episode, accepted)
        where = f" to market {route.market}" if route is not None else ""
        log.info("%s: offer %s revision %d%s", self.agent_id, offer.id, offer.revision, where)

    def _withdraw(self, t: _Tracked, now: int, reason: str) -> None:
        state = protocol.transition(t.state, "withdrawn")
        with self.store.transaction():
            self.store.set_offer_state(t.offer.id, state, now)
            if t.offer.device not in self._routes:  # FMAR takes no withdrawals
                body = Withdraw(offer_id=t.offer.id, reason=reason)
                self._send(body, "offer/delete", f"{t.offer.id}.withdraw", now, ref=t.offer.id)
        del self._tracked[t.offer.id]
        self.stats.withdrawals += 1
        log.info("%s: withdrew %s (%s)", self.agent_id, t.offer.id, reason)

    def withdraw_devices(self, devices: set[str], now: int, reason: str) -> None:
        """Withdraw the waiting offers of devices no longer configured."""
        for t in list(self._tracked.values()):
            if t.offer.device in devices and t.state in ("offered", "accepted", "assigned"):
                self._withdraw(t, now, reason)
        self.on_outbox()

    def _send(
        self,
        body: msgspec.Struct,
        channel: str,
        msg_id: str,
        now: int,
        ref: str,
        revision: int = 0,
        topic: str = "",
    ) -> bytes:
        """Put ``body`` in the outbox, for the agent's ``channel`` (or for ``topic``)."""
        payload = protocol.encode(body, ts=now, msg_id=msg_id)
        self.store.enqueue(
            topic=topic or topics.agent_topic(self.agent_id, channel),
            payload=payload,
            kind=protocol.kind_of(body),
            ref=ref,
            now=now,
            msg_id=msg_id,
            revision=revision,
        )
        return payload

    # -- deadlines ----------------------------------------------------------------------------

    def advance(self, now: int) -> None:
        """Apply the deadlines: default into force, executing, executed, expired."""
        slot = now // self.resolution_s * self.resolution_s
        for t in list(self._tracked.values()):
            oid = t.offer.id
            waiting = t.state in ("offered", "accepted") and t.plan is None
            if waiting and now >= t.offer.assignment_before:
                self._take_default(t, now, slot)
            if t.plan is None:
                continue
            if t.state in ("offered", "accepted", "assigned"):
                if t.plan.end <= slot:
                    self._set_state(t, "expired", now)
                elif t.plan.start <= slot:
                    self._set_state(t, "executing", now)
            elif t.state == "executing" and t.plan.end <= slot:
                self._set_state(t, "executed", now)
            if t.state not in LIVE_STATES and t.plan.end + _KEEP_S <= now:
                del self._tracked[oid]

    @staticmethod
    def _default_plan(offer: FlexOffer, slot: int) -> Plan:
        """The offer's default as a plan, moved to ``slot`` if its start has passed and the
        move keeps it feasible."""
        d = offer.default
        start = d.start
        if start < slot and not protocol.check_assignment(
            offer, start=slot, profile=d.profile, energy_kwh=d.energy_kwh
        ):
            start = slot
        return Plan(
            offer_id=offer.id,
            device=offer.device,
            version=0,
            start=start,
            resolution_s=offer.resolution_s,
            profile=d.profile,
            energy_kwh=tuple(d.energy_kwh),
            source="default",
        )

    def _take_default(self, t: _Tracked, now: int, slot: int) -> None:
        plan = self._default_plan(t.offer, slot)
        with self.store.transaction():
            self.store.save_plan(plan, now)
        t.plan = plan
        log.info(
            "%s: no schedule for %s by its deadline: default in force", self.agent_id, t.offer.id
        )

    def _set_state(self, t: _Tracked, target: OfferState, now: int) -> None:
        state = protocol.transition(t.state, target)
        with self.store.transaction():
            self.store.set_offer_state(t.offer.id, state, now)
        t.state = state

    # -- messages in ----------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        """The uplink's inbound handler (stored before the broker gets its PUBACK)."""
        now = int(self.clock.now())
        try:
            parsed = topics.parse(topic)
        except ValueError:
            return
        channel = parsed.channel
        if parsed.scope == "m":
            if channel.startswith("ack/"):
                self._on_order_answer(payload, now)
        elif channel == "schedule":
            self._on_schedule(payload, now)
        elif channel == "ack":
            self._on_ack(payload, now)

    def _on_ack(self, payload: bytes, now: int) -> None:
        """FMAN's answer to an offer, a withdrawal or a meter batch: the message leaves the
        outbox (delivered), and what the answer means is recorded, in one transaction."""
        try:
            msg = protocol.decode(payload)
        except DecodeError as exc:
            self._malformed("ack", exc)
            return
        body = msg.body
        if not isinstance(body, Ack | Reject) or body.ref_kind not in _FMAN_KINDS:
            return
        kind = body.ref_kind
        why = "" if isinstance(body, Ack) else _why(body.reasons)
        dead = f"refused by FMAN: {why}" if kind == "meter" and why else None
        with self.store.transaction():
            rows = self.store.outbox_answered(kind, body.ref_id, body.revision, dead_reason=dead)
            # an answer to a message FMAN could not even decode names the message id
            ref, revision = body.ref_id, body.revision
            if rows:
                ref, revision = rows[0].ref, rows[0].revision
            if kind == "offer":
                self._offer_answer(body, ref, revision, now, why)
            elif kind == "offer.delete":
                self._withdraw_answer(body, ref, now, why)
            else:
                self._meter_answer(body, rows, why)
        self.stats.answers += 1
        if rows:
            self.on_outbox()  # room for the next message under the uplink's bound

    def _on_order_answer(self, payload: bytes, now: int) -> None:
        """FMAR's answer to a sell order: the order leaves the outbox (delivered) and the
        offer is accepted or rejected as by FMAN's answer, in one transaction."""
        try:
            msg = protocol.decode(payload, expect="market.answer")
        except DecodeError as exc:
            self._malformed("market answer", exc)
            return
        body: OrderAnswer = msg.body
        if body.ref_kind != "market.sell":
            return
        t = self._tracked.get(body.ref_id)
        offer = t.offer if t is not None else None
        if offer is None:
            stored = self.store.offer(body.ref_id)
            if stored is None:
                return  # not an order of this agent's
            offer = stored.offer
        revision = offer.revision
        verdict: Ack | Reject
        if body.accepted:
            verdict = Ack(ref_kind="offer", ref_id=body.ref_id, revision=revision)
        else:
            verdict = Reject(
                ref_kind="offer", ref_id=body.ref_id, revision=revision, reasons=body.reasons
            )
        why = "" if body.accepted else f"market {body.market}: {_why(body.reasons)}"
        with self.store.transaction():
            rows = self.store.outbox_answered("market.sell", body.ref_id, revision)
            self._offer_answer(verdict, body.ref_id, revision, now, why)
        self.stats.answers += 1
        if body.accepted:
            log.info(
                "%s: market %s took %s for gate %s",
                self.agent_id, body.market, body.ref_id, body.gate,
            )  # fmt: skip
        if rows:
            self.on_outbox()

    def _offer_answer(
        self, body: Ack | Reject, offer_id: str, revision: int, now: int, why: str
    ) -> None:
        t = self._tracked.get(offer_id)
        if t is None:
            self._untracked_answer(body, offer_id, revision, now, why)
            return
        if revision != t.offer.revision:
            return  # about another revision (an answer repeated late): nothing to do
        if isinstance(body, Ack):
            if t.state == "offered":
                self._save(t, protocol.transition(t.state, "accepted"), now, accepted=t.offer)
            elif t.accepted is None or t.accepted.revision < t.offer.revision:
                self._save(t, t.state, now, accepted=t.offer)  # implied, or the default runs
            return
        if "superseded" in {r.code for r in body.reasons}:
            return  # FMAN holds a newer revision than this one: it says nothing about it
        if t.accepted is not None and t.state in ("offered", "assigned"):
            self._update_refused(t, now, why)
        elif t.accepted is not None:
            # the update's default has begun to run meanwhile: FMAN keeps the revision it
            # accepted; the device finishes what it began, and the offer is revised no more
            self._save(t, t.state, now, locked=True)
            self.store.note_refusal(t.offer.id, why, now)
            self.stats.updates_refused += 1
        elif t.state == "offered":
            self._rejected(t, now, why)
        elif t.state in ("executing", "executed", "expired"):
            self._rejected_late(t, now, why)

    def _untracked_answer(
        self, body: Ack | Reject, offer_id: str, revision: int, now: int, why: str
    ) -> None:
        """An answer about an offer no longer in memory (finished long ago, the answer held
        up by an outage): a reject is recorded all the same."""
        stored = self.store.offer(offer_id)
        if stored is None or stored.offer.revision != revision or isinstance(body, Ack):
            return
        if "superseded" in {r.code for r in body.reasons}:
            return
        if stored.accepted is None and stored.state in ("executing", "executed", "expired"):
            self.store.set_offer_state(offer_id, "rejected", now)
            self.stats.rejected_late += 1
            log.warning(
                "%s: FMAN rejected %s after it had %s on its default: %s",
                self.agent_id, offer_id, stored.state, why,
            )  # fmt: skip
        self.store.note_refusal(offer_id, why, now)

    def _rejected_late(self, t: _Tracked, now: int, why: str) -> None:
        """FMAN's reject reached an offer whose default the agent had already taken into force
        without an answer: recorded as ``rejected`` (what runs, or ran, is that default)."""
        was = t.state
        with self.store.transaction():
            self.store.set_offer_state(t.offer.id, "rejected", now)
            self.store.note_refusal(t.offer.id, why, now)
        t.state = "rejected"
        self.stats.rejected_late += 1
        log.warning(
            "%s: FMAN rejected %s after it was %s on its default: %s",
            self.agent_id, t.offer.id, was, why,
        )  # fmt: skip

    def _withdraw_answer(self, body: Ack | Reject, offer_id: str, now: int, why: str) -> None:
        if isinstance(body, Ack):
            return
        self.store.note_refusal(offer_id, f"withdrawal refused: {why}", now)
        self.stats.withdrawals_refused += 1
        log.warning("%s: FMAN refused the withdrawal of %s: %s", self.agent_id, offer_id, why)

    def _meter_answer(self, body: Ack | Reject, rows: list[OutMessage], why: str) -> None:
        if isinstance(body, Reject):
            for row in rows:
                self.store.quarantine_batch(int(row.ref), f"refused by FMAN: {why}")
            self.stats.meter_batches_refused += len(rows)
            self._warn("meter", f"FMAN refused meter batch {body.ref_id}: {why}")
            return
        if body.quarantined:
            n = self.store.quarantine(
                [(q.device, q.start, f"{q.code}: {q.message}") for q in body.quarantined]
            )
            self.stats.readings_quarantined += n
            q = body.quarantined[0]
            self._warn(
                "quarantine",
                f"FMAN quarantined {len(body.quarantined)} reading(s) of batch {body.ref_id}, "
                f"e.g. {q.device} at {q.start}: {q.code} {q.message}",
            )

    def _save(
        self,
        t: _Tracked,
        state: OfferState,
        now: int,
        *,
        accepted: FlexOffer | None = None,
        offer: FlexOffer | None = None,
        locked: bool | None = None,
    ) -> None:
        """Persist ``t`` with what changed (state, accepted revision, body, lock)."""
        offer = offer or t.offer
        accepted = accepted or t.accepted
        locked = t.locked if locked is None else locked
        with self.store.transaction():
            self.store.save_offer(
                offer, state, now, episode=t.episode, accepted=accepted, locked=locked
            )
        t.offer, t.state, t.accepted, t.locked = offer, state, accepted, locked

    def _rejected(self, t: _Tracked, now: int, why: str) -> None:
        """FMAN refused the offer itself: final; its default runs (it may be in force)."""
        state = protocol.transition(t.state, "rejected")
        plan = t.plan
        with self.store.transaction():
            self.store.set_offer_state(t.offer.id, state, now)
            self.store.note_refusal(t.offer.id, why, now)
            if plan is None:
                plan = self._default_plan(t.offer, now // self.resolution_s * self.resolution_s)
                self.store.save_plan(plan, now)
        t.state, t.plan = state, plan
        log.info("%s: FMAN rejected %s: %s; its default will run", self.agent_id, t.offer.id, why)

    def _update_refused(self, t: _Tracked, now: int, why: str) -> None:
        """FMAN refused an update and keeps the revision it accepted before: that revision is
        the offer again (FMAN plans it, and its default is what runs without a schedule), and
        the offer is revised no more."""
        assert t.accepted is not None
        back = t.accepted
        state = protocol.transition(t.state, "accepted") if t.state == "offered" else t.state
        replan = t.plan is not None and t.plan.source == "default"
        with self.store.transaction():
            self.store.save_offer(back, state, now, episode=t.episode, accepted=back, locked=True)
            self.store.note_refusal(back.id, why, now)
            if replan:  # the refused revision's default had taken force meanwhile
                plan = self._default_plan(back, now // self.resolution_s * self.resolution_s)
                self.store.save_plan(plan, now)
        t.offer, t.state, t.locked = back, state, True
        if replan:
            t.plan = plan
        self.stats.updates_refused += 1
        log.info(
            "%s: FMAN refused an update of %s (%s); back to revision %d",
            self.agent_id,
            back.id,
            why,
            back.revision,
        )

    def _on_schedule(self, payload: bytes, now: int) -> None:
        try:
            msg = protocol.decode(payload, expect="schedule")
        except DecodeError as exc:
            self._malformed("schedule", exc)
            self._reject_malformed(payload, exc, now)
            return
        if self.store.seen(msg.id):
            self.stats.duplicates += 1
            self._answer_again(msg.id, now)
            return
        sch: Schedule = msg.body
        t = self._tracked.get(sch.offer_id)
        if t is not None and t.plan is not None and _same(sch, t.plan):
            # the schedule in force, again under another message id: nothing changes, and
            # FMAN hears again that it is taken
            self.stats.duplicates += 1
            ack = Ack(ref_kind="schedule", ref_id=sch.offer_id, revision=sch.version)
            with self.store.transaction():
                reply = self._send(
                    ack, "schedule/ack", f"{msg.id[:200]}.ack", now, ref=sch.offer_id
                )
                self.store.remember(msg.id, now, reply)
            self.on_outbox()
            return
        reasons = self._judge(sch, t, now)
        if reasons or t is None:
            self._refuse(msg.id, sch, reasons, now)
        else:
            self._take(msg.id, sch, t, now)
        self.on_outbox()

    def _take(self, msg_id: str, sch: Schedule, t: _Tracked, now: int) -> None:
        plan = Plan(
            offer_id=sch.offer_id,
            device=t.offer.device,
            version=sch.version,
            start=sch.start,
            resolution_s=t.offer.resolution_s,
            profile=sch.profile,
            energy_kwh=tuple(sch.energy_kwh),
            source="fman",
        )
        state = t.state
        if state == "offered":  # a schedule implies the acceptance we have not seen yet
            state = protocol.transition(state, "accepted")
        state = protocol.transition(state, "assigned")
        ack = Ack(ref_kind="schedule", ref_id=sch.offer_id, revision=sch.version)
        with self.store.transaction():
            self.store.save_plan(plan, now)
            self.store.set_offer_state(t.offer.id, state, now)
            reply = self._send(ack, "schedule/ack", f"{msg_id[:200]}.ack", now, ref=sch.offer_id)
            self.store.remember(msg_id, now, reply)
        t.state, t.plan = state, plan
        self.stats.schedules_taken += 1
        log.info("%s: schedule %s v%d taken", self.agent_id, sch.offer_id, sch.version)

    def _refuse(self, msg_id: str, sch: Schedule, reasons: list[Reason], now: int) -> None:
        reject = Reject(
            ref_kind="schedule",
            ref_id=sch.offer_id,
            revision=sch.version,
            reasons=reasons[:_MAX_REASONS],
        )
        with self.store.transaction():
            reply = self._send(
                reject, "schedule/ack", f"{msg_id[:200]}.reject", now, ref=sch.offer_id
            )
            self.store.remember(msg_id, now, reply)
        self.stats.schedules_rejected += 1
        log.warning(
            "%s: rejected schedule %s v%d: %s",
            self.agent_id,
            sch.offer_id,
            sch.version,
            "; ".join(f"{r.code} {r.field} {r.message}".strip() for r in reasons[:3]),
        )

    def _judge(self, sch: Schedule, t: _Tracked | None, now: int) -> list[Reason]:
        """Every reason not to take ``sch``; empty means take it."""
        if t is None:
            stored = self.store.offer(sch.offer_id)
            if stored is None:
                return [_reason("unknown_offer", "offer_id", f"no offer {sch.offer_id!r} here")]
            if stored.state == "withdrawn":
                return [_reason("withdrawn", "offer_id", "the offer was withdrawn")]
            return [_reason("offer_state", "offer_id", f"the offer is {stored.state}")]
        if t.state == "withdrawn":
            return [_reason("withdrawn", "offer_id", "the offer was withdrawn")]
        if t.state not in ("offered", "accepted", "assigned"):
            return [_reason("offer_state", "offer_id", f"the offer is {t.state}")]
        if t.plan is not None and t.plan.source == "fman":
            if sch.version < t.plan.version:
                return [
                    _reason("stale", "version", f"version {t.plan.version} is already in force")
                ]
            if sch.version == t.plan.version:
                return [
                    _reason(
                        "version_conflict",
                        "version",
                        f"version {sch.version} was already taken with other content",
                    )
                ]
        if now >= t.offer.assignment_before or (t.plan is not None and t.plan.source == "default"):
            return [
                _reason(
                    "too_late",
                    "",
                    f"assignment_before {t.offer.assignment_before} has passed; the default runs",
                )
            ]
        slot = now // self.resolution_s * self.resolution_s
        if sch.start < slot:
            return [_reason("start_passed", "start", f"slot {sch.start} has already begun")]
        reasons = [
            _reason("infeasible", e.path, e.message) for e in protocol.check_schedule(t.offer, sch)
        ]
        if reasons and sch.offer_revision < t.offer.revision:
            stale = _reason(
                "stale_revision",
                "offer_revision",
                f"planned for revision {sch.offer_revision}; the offer is at revision "
                f"{t.offer.revision}, which it does not fit",
            )
            return [stale, *reasons]
        return reasons

    def _reject_malformed(self, payload: bytes, exc: DecodeError, now: int) -> None:
        env = _peek(payload)
        body = raw if isinstance(raw := env.get("body"), dict) else {}
        ref = raw if isinstance(raw := body.get("offer_id"), str) else ""
        version = body.get("version")
        msg_id = raw if isinstance(raw := env.get("id"), str) else ""

        if msg_id and self.store.seen(msg_id):
            self._answer_again(msg_id, now)
            return
        reasons = [_reason("malformed", e.path, e.message) for e in exc.errors] or [
            _reason("malformed", "", str(exc))
        ]
        reject = Reject(
            ref_kind="schedule",
            ref_id=ref[:_TEXT],
            revision=version if isinstance(version, int) and 0 <= version < 2**53 else 0,
            reasons=reasons[:_MAX_REASONS],
        )
        reply_id = f"{msg_id[:200]}.reject" if msg_id else None
        with self.store.transaction():
            reply = self._send(
                reject, "schedule/ack", reply_id or _random_id(), now, ref=ref[:_TEXT]
            )
            if msg_id:
                self.store.remember(msg_id, now, reply)
        self.stats.schedules_rejected += 1
        self.on_outbox()

    def _answer_again(self, msg_id: str, now: int) -> None:
        """A schedule handled before came again: FMAN sends one again until it hears the
        answer, so the first answer is sent again (unless it has not even left yet)."""
        reply = self.store.reply_to(msg_id)
        if reply is None:
            return
        reply_id = _peek(reply).get("id")
        if not isinstance(reply_id, str) or self.store.outbox_holds(reply_id):
            return
        body = protocol.decode(reply, check=False).body
        with self.store.transaction():
            self.store.enqueue(
                topic=topics.agent_topic(self.agent_id, "schedule/ack"),
                payload=reply,
                kind=protocol.kind_of(body),
                ref=body.ref_id,
                now=now,
                msg_id=reply_id,
            )
        self.on_outbox()

    def _malformed(self, what: str, exc: DecodeError) -> None:
        self.stats.malformed += 1
        level = logging.WARNING if self.stats.malformed == 1 else logging.DEBUG
        log.log(level, "%s: malformed %s dropped: %s", self.agent_id, what, exc)

    def _warn(self, key: str, message: str) -> None:
        """Log a recurring problem once per key at warning level, then at debug level."""
        log.log(
            logging.DEBUG if key in self._warned else logging.WARNING,
            "%s: %s",
            self.agent_id,
            message,
        )
        self._warned.add(key)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self._tracked.values():
            out[t.state] = out.get(t.state, 0) + 1
        return out


def _episode(t: _Tracked) -> Episode:
    """``t`` as its generator sees it; an update in flight keeps the revision FMAN accepted
    before as the fallback (FMAN may refuse the update, and the offer goes back to it)."""
    pending = t.accepted is not None and t.accepted.revision != t.offer.revision
    return Episode(
        t.episode or t.offer.id, t.offer, t.state, t.plan, t.accepted if pending else None
    )


def _why(reasons: Sequence[Reason]) -> str:
    return "; ".join(r.message or r.code for r in reasons)[:_TEXT]


def _reason(code: str, field: str, message: str) -> Reason:
    return Reason(code=code, field=field[:_TEXT], message=message[:_TEXT])


def _same(sch: Schedule, plan: Plan) -> bool:
    return (
        plan.source == "fman"
        and sch.version == plan.version
        and sch.start == plan.start
        and sch.profile == plan.profile
        and tuple(sch.energy_kwh) == plan.energy_kwh
    )


def _peek(payload: bytes) -> dict[str, Any]:
    """What can be read of a payload that failed to decode, to address the reject."""
    try:
        env = msgspec.msgpack.decode(payload)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return {}
    return env if isinstance(env, dict) else {}


def _random_id() -> str:
    import uuid

    return uuid.uuid4().hex
