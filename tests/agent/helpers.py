"""What the agent tests share: a config writer and an FMAN-side peer on the real broker."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import protocol
from protocol import topics
from tests.agent.plugins import DRIVER, GENERATOR

#: Simulated start of the tests: 2026-01-01 00:00 UTC (on every slot grid).
T0 = 1_767_225_600


class StepClock:
    """A clock the test moves by hand (a Clock, not a mock: ``now`` and ``sleep`` work)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def write_config(
    path: Path,
    *,
    agent_id: str,
    broker_url: str,
    devices: dict[str, dict[str, Any]],
    clock: dict[str, float] | None = None,
    agent: dict[str, Any] | None = None,
) -> Path:
    """A foa.toml with test devices (FileMeter + CycleOffer unless a table says otherwise)."""
    lines = ["[agent]", f'id = "{agent_id}"', f'store = "{agent_id}.db"']
    lines += [f"{k} = {_toml(v)}" for k, v in (agent or {}).items()]
    lines += [
        "",
        "[broker]",
        f'url = "{broker_url}"',
        "backoff_initial_s = 0.2",
        "backoff_max_s = 1",
    ]
    if clock:
        lines += ["", "[clock]"] + [f"{k} = {_toml(v)}" for k, v in clock.items()]
    for dev_id, table in devices.items():
        table = {"driver": DRIVER, "generator": GENERATOR, **table}
        lines += ["", f"[devices.{dev_id}]"] + [f"{k} = {_toml(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str | Path):
        return f'"{v}"'
    return repr(v)


@dataclass
class Received:
    topic: str
    channel: str
    msg: protocol.Message
    raw: bytes = field(repr=False)


class Peer:
    """The FMAN side of one agent, on the real broker: records what the agent sends (decoded,
    in arrival order) and can answer with acks and schedules. Persistent session, QoS 1.

    ``answer`` names the channels (``offer``, ``offer/delete``, ``meter``) whose messages it
    acknowledges at once, as FMAN does, so the agent's outbox lets them go."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        agent_id: str,
        client_id: str | None = None,
        answer: tuple[str, ...] = (),
    ):
        self.agent_id = agent_id
        self.answer = answer
        self.received: list[Received] = []
        self.lock = threading.RLock()
        self.arrived = threading.Condition(self.lock)
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"peer-{agent_id}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_message
        subscribed = queue.Queue()
        self.client.on_subscribe = lambda *a: subscribed.put(True)
        self.client.on_connect = lambda c, *a: c.subscribe(
            [
                (f"{topics.PREFIX}/a/{agent_id}/{ch}", 1)
                for ch in ("offer", "offer/delete", "meter", "schedule/ack", "status")
            ]
        )
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect(host, port, clean_start=False, properties=props)
        self.client.loop_start()
        subscribed.get(timeout=10)

    def _on_message(self, client: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        channel = topics.parse(m.topic).channel
        expect = {"schedule/ack": None, "status": "status"}.get(channel)
        msg = protocol.decode(m.payload, expect=expect)
        with self.arrived:
            self.received.append(Received(m.topic, channel, msg, m.payload))
            self.arrived.notify_all()
        if channel in self.answer:
            body = msg.body
            if channel == "offer":
                ack = protocol.Ack(ref_kind="offer", ref_id=body.id, revision=body.revision)
            elif channel == "offer/delete":
                ack = protocol.Ack(ref_kind="offer.delete", ref_id=body.offer_id)
            else:
                ack = protocol.Ack(ref_kind="meter", ref_id=msg.id, revision=body.seq)
            topic = topics.agent_topic(self.agent_id, "ack")
            client.publish(topic, protocol.encode(ack, ts=msg.ts), qos=1)

    def of(self, channel: str, *, unique: bool = True) -> list[Received]:
        """Messages on a channel in arrival order; ``unique`` drops redeliveries (same id)."""
        with self.lock:
            out, seen = [], set()
            for r in self.received:
                if r.channel != channel or (unique and r.msg.id in seen):
                    continue
                seen.add(r.msg.id)
                out.append(r)
            return out

    def wait_for(self, predicate: Callable[[Peer], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out; received {[r.channel for r in self.received]}"
                    )
                self.arrived.wait(left)

    def send(self, channel: str, body: Any, *, ts: int, msg_id: str | None = None) -> None:
        self.send_raw(channel, protocol.encode(body, ts=ts, msg_id=msg_id))

    def send_raw(self, channel: str, payload: bytes) -> None:
        info = self.client.publish(topics.agent_topic(self.agent_id, channel), payload, qos=1)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
