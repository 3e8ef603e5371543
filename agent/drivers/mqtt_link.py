"""The MQTT connection of a smart-plug driver, inside the agent's asyncio loop.

Built on aiomqtt 2.x (MQTT v5): it is native asyncio, so a plug driver is a few coroutines in
the agent's one event loop rather than a paho network thread handing messages across; and a
plug sends a handful of small messages a minute, far below where aiomqtt's lower throughput
than paho's would matter. Its early acknowledgement of QoS 1 messages does not matter either:
plug telemetry is QoS 0 and a missed reading is simply read again.

:class:`MqttLink` keeps one connection per driver up: it connects, subscribes, hands every
message to the driver, and after a loss reconnects with capped, jittered exponential backoff.
Broker errors never escape as aiomqtt exceptions: a publish while disconnected is a
:class:`~agent.errors.DeviceFault`. The password is never logged (the URL is logged without
its user information).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiomqtt
from aiomqtt import ProtocolVersion

from agent.errors import DeviceFault
from agent.params import Params

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], Awaitable[None]]
OnConnect = Callable[[], Awaitable[None]]

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where a plug's broker is and how to log in: ``broker`` (``mqtt://host:1883`` or
    ``mqtts://host:8883``), ``username``, ``password``."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @property
    def display(self) -> str:
        """The broker's address for logs: never the credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @classmethod
    def from_params(cls, p: Params) -> BrokerConfig:
        url = p.string("broker", "mqtt://127.0.0.1:1883")
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise p.error("broker", "expected mqtt://host[:port] or mqtts://host[:port]")
        try:
            port = parts.port
        except ValueError as exc:
            raise p.error("broker", "the port is not a number from 1 to 65535") from exc
        tls = parts.scheme == "mqtts"
        username = p.string("username", parts.username or "") or None
        password = p.string("password", parts.password or "") or None
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=username,
            password=password,
        )


class MqttLink:
    """One self-healing MQTT v5 connection with fixed subscriptions."""

    def __init__(
        self,
        *,
        broker: BrokerConfig,
        client_id: str,
        subscriptions: Sequence[str],
        on_message: OnMessage,
        on_connect: OnConnect | None = None,
        device: str,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.on_message = on_message
        self.on_connect = on_connect
        self.device = device
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self, *, wait_s: float = 0.0) -> None:
        """Start connecting in the background; wait up to ``wait_s`` for the first connection
        (a broker that is down at start-up is a fault of the readings, not of the start)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.device}")
        if wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), wait_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._connected.clear()

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 0) -> None:
        client = self._client
        if client is None or not self.connected:
            raise DeviceFault(self.device, f"broker {self.broker.display} not connected")
        try:
            await client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError as exc:
            raise DeviceFault(self.device, f"publish to {self.broker.display}: {exc}") from exc

    def _client_for(self) -> aiomqtt.Client:
        b = self.broker
        return aiomqtt.Client(
            b.host,
            b.port,
            identifier=self.client_id,
            protocol=ProtocolVersion.V5,
            username=b.username,
            password=b.password,
            tls_context=ssl.create_default_context() if b.tls else None,
            keepalive=30,
        )

    async def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                async with self._client_for() as client:
                    for topic in self.subscriptions:
                        await client.subscribe(topic, qos=0)
                    self._client = client
                    self._connected.set()
                    backoff = BACKOFF_MIN_S
                    log.info("device %s: connected to %s", self.device, self.broker.display)
                    if self.on_connect is not None:
                        await self.on_connect()
                    async for message in client.messages:
                        topic = message.topic.value
                        try:
                            await self.on_message(topic, _payload(message.payload))
                        except (ValueError, TypeError, KeyError, AttributeError) as exc:
                            # a plug that sends garbage must not take its driver down
                            log.warning(
                                "device %s: dropped a bad message on %s: %s",
                                self.device,
                                topic,
                                exc,
                            )
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("device %s: lost %s: %s", self.device, self.broker.display, exc)
            finally:
                self._client = None
                self._connected.clear()
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(BACKOFF_MAX_S, backoff * 2)


def _payload(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
