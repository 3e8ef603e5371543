"""Ask FMAN for a resource (protocol 1.4 request/response) and wait for the answer.

One short-lived MQTT v5 connection per :class:`RequestClient`: it subscribes to its own
``resp/{tag}`` topic, publishes each request with that topic as the *response topic* and a
fresh *correlation data*, and matches answers by it. It does not share the running agent's
connection (a command asks once and exits), so it uses a client id of its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import protocol
from agent.config import BrokerConfig
from protocol import Request, Response, topics


class RequestError(Exception):
    """No answer, a broker that refuses us, or FMAN's error response (``reason``)."""


class RequestClient:
    """``with RequestClient(broker, agent) as c: c.ask("bill", {"period": "2026-01"})``."""

    def __init__(
        self,
        broker: BrokerConfig,
        agent: str,
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent = agent
        self.clock = clock
        self.timeout_s = timeout_s
        self.tag = uuid.uuid4().hex[:16]
        self.reply_topic = topics.response_topic(agent, self.tag)
        self._answers: dict[bytes, Response] = {}
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{agent}-req-{self.tag}", protocol=mqtt.MQTTv5
        )
        if broker.username:
            c.username_pw_set(
                broker.username, broker.password.reveal() if broker.password else None
            )
        ctx = broker.ssl_context()
        if ctx is not None:
            c.tls_set_context(ctx)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._on_message
        self._client = c
        self._broker = broker

    def __enter__(self) -> RequestClient:
        try:
            self._client.connect(self._broker.host, self._broker.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise RequestError(f"cannot connect to {self._broker.url}: {exc}") from exc
        self._client.loop_start()
        if not self._subscribed.wait(self.timeout_s):
            self.close()
            raise RequestError(f"no connection to {self._broker.url} in {self.timeout_s:g} s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, u: object, f: object, reason: Any, p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.reply_topic, qos=1)

    def _on_message(self, client: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        corr = getattr(m.properties, "CorrelationData", None)
        try:
            body = protocol.decode(m.payload, expect="response").body
        except protocol.DecodeError:
            return
        if corr is None or not isinstance(body, Response):
            return
        with self._cond:
            self._answers[bytes(corr)] = body
            self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        """Publish one request; its correlation data (to :meth:`wait` for)."""
        corr = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = corr
        payload = protocol.encode(Request(method=method, params=params or {}), ts=int(self.clock()))
        self._client.publish(topics.request_topic(self.agent, method), payload, 1, properties=props)
        return corr

    def wait(self, corr: bytes, timeout_s: float | None = None) -> Response:
        with self._cond:
            if not self._cond.wait_for(lambda: corr in self._answers, timeout_s or self.timeout_s):
                raise RequestError(f"no answer from FMAN in {timeout_s or self.timeout_s:g} s")
            return self._answers.pop(corr)

    def response(self, method: str, params: dict[str, Any] | None = None) -> Response:
        return self.wait(self.send(method, params))

    def ask(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The body of an ``ok`` answer; :class:`RequestError` with FMAN's reason otherwise."""
        r = self.response(method, params)
        if r.status != "ok":
            raise RequestError(f"FMAN refused {method}: {r.reason}")
        return r.body
