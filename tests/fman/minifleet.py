"""A small publisher of protocol messages that behaves like a fleet of agents, for FMAN tests.

One MQTT client speaks for ``agents`` agents on their own topics: each publishes its retained
online status, then Flex-Offers over the simulated period (an EV charge, a heat pump run, a
wet appliance), answers every schedule on ``schedule/ack`` (refusing an infeasible one or one
that arrives after the offer's ``assignment_before``, keeping the highest version), and
meters each slot of the schedule in force once the slot is over, tagged with the offer id.
It runs on the same simulated clock as the worker.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from cloud.clock import SimClock
from protocol import (
    Ack,
    Bounds,
    DefaultSchedule,
    FlexOffer,
    MeterBatch,
    MeterReading,
    Profile,
    Reason,
    Reject,
    Schedule,
    Status,
    topics,
)

RES = 900


@dataclass
class Tracked:
    offer: FlexOffer
    answer: str = ""  # "ack" or "reject" from FMAN
    schedule: Schedule | None = None  # in force at the agent
    refused: list[int] = field(default_factory=list)
    metered_until: int = 0
    published: bool = False


def make_offer(
    agent: str,
    n: int,
    created: int,
    rng: random.Random,
    *,
    lead_s: int = 7200,
    window_s: int = 6 * 3600,
) -> FlexOffer:
    kind = rng.choice(["ev", "heat_pump", "wet_appliance"])
    slots = {"ev": rng.randint(4, 12), "heat_pump": rng.randint(4, 8), "wet_appliance": 2}[kind]
    hi = {"ev": 2.75, "heat_pump": 1.0, "wet_appliance": 0.5}[kind]
    lo = 0.0 if kind != "wet_appliance" else 0.2
    start = created + lead_s
    total = None
    default = [round((lo + hi) / 2, 3)] * slots
    if kind == "ev":
        need = sum(default)
        total = Bounds(need, need)
    return FlexOffer(
        id=f"{agent}.{kind}.{n}",
        issuer=agent,
        device=f"{kind}-{n}",
        load_type=kind,
        grid_node=f"node-{sum(map(ord, agent)) % 3}",
        created_at=created,
        acceptance_before=created + lead_s // 2,
        assignment_before=start,
        start_after=start,
        start_before=start + window_s,
        profiles=[Profile(lower_kwh=[lo] * slots, upper_kwh=[hi] * slots, total=total)],
        default=DefaultSchedule(start=start, energy_kwh=default),
    )


class MiniFleet:
    def __init__(
        self,
        *,
        broker,
        clock: SimClock,
        agents: int,
        offers_per_agent: int,
        span_s: int,
        seed: int = 1,
        prefix: str = "ag",
        lead_s: int = 7200,
        window_s: int = 6 * 3600,
        meter: bool = True,
        refuse_first: bool = False,
        refuse_all: str = "",
    ) -> None:
        self.clock, self.meter = clock, meter
        #: refuse every offer's first schedule version (as an agent whose device changed would)
        self.refuse_first = refuse_first
        #: refuse every schedule with this reason code (as an agent that lost its store would)
        self.refuse_all = refuse_all
        rng = random.Random(seed)
        self.agents = [f"{prefix}-{i}" for i in range(agents)]
        self.offers: dict[str, Tracked] = {}
        start = int(clock.start) // RES * RES
        for a in self.agents:
            for n in range(offers_per_agent):
                created = start + rng.randrange(0, max(1, span_s // RES)) * RES
                o = make_offer(a, n, created, rng, lead_s=lead_s, window_s=window_s)
                self.offers[o.id] = Tracked(o)
        self.lock = threading.Lock()
        #: every reading published: (agent, device, start)
        self.readings_sent: set[tuple[str, str, int]] = set()
        self.stop_event = threading.Event()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"minifleet-{prefix}", protocol=mqtt.MQTTv5
        )
        self.c.max_inflight_messages_set(1000)
        self.c.on_message = self._on_message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        self.c.subscribe([(f"atp/v1/a/+/{ch}", 1) for ch in ("ack", "schedule")])
        assert subscribed.wait(5)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def publish(self, agent: str, channel: str, body, *, retain: bool = False) -> None:
        self.c.publish(
            topics.agent_topic(agent, channel),
            protocol.encode(body, ts=int(self.clock.now())),
            qos=1,
            retain=retain,
        )

    def start(self) -> MiniFleet:
        for a in self.agents:
            self.publish(
                a,
                "status",
                Status(agent=a, state="online", since=int(self.clock.now())),
                retain=True,
            )
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(5)
        self.c.loop_stop()
        self.c.disconnect()

    # -- agents' side of the protocol -------------------------------------------------------

    def _on_message(self, c, u, m) -> None:
        t = topics.parse(m.topic)
        msg = protocol.decode(m.payload)
        now = self.clock.now()
        with self.lock:
            if t.channel == "ack":
                b = msg.body
                if b.ref_kind == "offer" and b.ref_id in self.offers:
                    self.offers[b.ref_id].answer = "ack" if msg.kind == "ack" else "reject"
                return
            s: Schedule = msg.body
            tr = self.offers.get(s.offer_id)
            if tr is None or tr.offer.issuer != t.owner:
                return
            current = tr.schedule
            if current is not None and s.version <= current.version:
                answer = Ack(ref_kind="schedule", ref_id=s.offer_id, revision=s.version)
            elif now >= tr.offer.assignment_before:
                tr.refused.append(s.version)
                answer = Reject(
                    ref_kind="schedule",
                    ref_id=s.offer_id,
                    revision=s.version,
                    reasons=[Reason(code="late", message="after assignment_before")],
                )
            elif self.refuse_all:
                tr.refused.append(s.version)
                answer = Reject(
                    ref_kind="schedule",
                    ref_id=s.offer_id,
                    revision=s.version,
                    reasons=[Reason(code=self.refuse_all)],
                )
            elif protocol.check_schedule(tr.offer, s) or (self.refuse_first and not tr.refused):
                tr.refused.append(s.version)
                answer = Reject(
                    ref_kind="schedule",
                    ref_id=s.offer_id,
                    revision=s.version,
                    reasons=[Reason(code="infeasible")],
                )
            else:
                tr.schedule = s
                answer = Ack(ref_kind="schedule", ref_id=s.offer_id, revision=s.version)
        self.publish(t.owner, "schedule/ack", answer)

    def _run(self) -> None:
        while not self.stop_event.wait(0.02):
            now = self.clock.now()
            batches: dict[str, list[MeterReading]] = {}
            with self.lock:
                for tr in self.offers.values():
                    o = tr.offer
                    if not tr.published and o.created_at <= now:
                        tr.published = True
                        self.publish(o.issuer, "offer", o)
                    if not self.meter or tr.answer != "ack":
                        continue
                    s = tr.schedule
                    start, energy = (
                        (s.start, s.energy_kwh) if s else (o.default.start, o.default.energy_kwh)
                    )
                    for i, e in enumerate(energy):
                        slot = start + i * RES
                        if slot < tr.metered_until or slot + RES > now:
                            continue
                        batches.setdefault(o.issuer, []).append(
                            MeterReading(o.device, slot, RES, e, o.id)
                        )
                        self.readings_sent.add((o.issuer, o.device, slot))
                        tr.metered_until = slot + RES
            for agent, readings in batches.items():
                self.publish(agent, "meter", MeterBatch(agent=agent, readings=readings))

    # -- views --------------------------------------------------------------------------------

    def done(self, until: float) -> bool:
        return self.clock.now() >= until

    def snapshot(self) -> dict[str, Tracked]:
        with self.lock:
            return dict(self.offers)


def sleep_until(clock: SimClock, t: float) -> None:
    while clock.now() < t:
        time.sleep(0.05)
