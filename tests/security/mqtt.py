"""A small paho-mqtt helper for the security tests: TLS clients that report what happened.

A denied publish is dropped silently by Mosquitto (the publisher still gets its PUBACK), so
every ACL test decides on the subscriber side: :meth:`Client.received` lists what arrived.
"""

from __future__ import annotations

import contextlib
import queue
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests import waiting


@dataclass(frozen=True)
class Credentials:
    username: str | None
    password: str | None = field(repr=False)
    ca_file: Path | None  # None: plain text
    cert_file: Path | None = None
    key_file: Path | None = None


class Client:
    """One MQTT v5 connection attempt; ``connected`` tells whether the broker let it in."""

    def __init__(
        self,
        broker,
        client_id: str,
        creds: Credentials,
        *,
        timeout: float = 5.0,
        session_expiry_s: int = 0,
    ):
        """``session_expiry_s`` > 0 keeps the session (subscriptions, queued messages) across
        reconnections, as the platform's clients do."""
        self.client_id = client_id
        self._messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._acks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self._connack: queue.Queue[ReasonCode | None] = queue.Queue()
        self.disconnected = False
        self.disconnect_reason: str | None = None
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if creds.ca_file is not None:
            c.tls_set(
                ca_certs=str(creds.ca_file),
                certfile=str(creds.cert_file) if creds.cert_file else None,
                keyfile=str(creds.key_file) if creds.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if creds.username is not None:
            c.username_pw_set(creds.username, creds.password)
        self.session_present: bool | None = None

        def on_connect(_c, _u, flags, rc, _p) -> None:
            self.session_present = bool(flags.session_present)
            self._connack.put(rc)

        c.on_connect = on_connect
        c.on_message = lambda _c, _u, m: self._messages.put((m.topic, m.payload))
        c.on_subscribe = lambda _c, _u, _mid, rcs, _p: self._acks.put(rcs)
        c.on_disconnect = self._on_disconnect
        self._c = c
        self.connack: ReasonCode | None = None
        self.error: str | None = None
        props = None
        if session_expiry_s:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry_s
        try:
            c.connect(
                broker.host,
                broker.port,
                keepalive=30,
                clean_start=not session_expiry_s,
                properties=props,
            )
        except (OSError, ssl.SSLError) as exc:
            self.error = repr(exc)
            return
        c.loop_start()
        try:
            self.connack = self._connack.get(timeout=timeout)
        except queue.Empty:
            self.error = "no CONNACK"
        if not self.connected:
            c.loop_stop()  # no automatic reconnection attempts for a refused client

    def _on_disconnect(self, _c, _u, _flags, rc, _props) -> None:
        self.disconnected = True
        self.disconnect_reason = str(rc)
        self._connack.put(None)

    @property
    def connected(self) -> bool:
        return self.connack is not None and not self.connack.is_failure and self._c.is_connected()

    def subscribe(self, *filters: str) -> list[str]:
        """Subscribe to each filter; the broker's answers, e.g. ``["Granted QoS 1"]``."""
        answers = []
        for f in filters:
            self._c.subscribe(f, qos=1)
            answers += [str(rc) for rc in self._acks.get(timeout=5)]
        return answers

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        self._c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def received(self) -> list[tuple[str, bytes]]:
        """What has arrived and was not taken yet, without waiting: look only after a
        positive signal that what you look for would have arrived (:meth:`received_until`)."""
        out = []
        while not self._messages.empty():
            out.append(self._messages.get())
        return out

    def collect(self, n: int, *, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        """What arrives, until ``n`` messages or the deadline (the caller checks how many)."""
        out: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                out.append(self._messages.get(timeout=0.1))
            except queue.Empty:
                continue
        return out

    def wait_for(self, topic: str, payload: bytes, *, timeout: float = 10.0) -> bool:
        """Whether ``(topic, payload)`` arrived before the deadline. What came before it is
        taken and dropped: to check what came before, use :meth:`received_until`."""
        return bool(self.received_until(topic, payload, timeout=timeout))

    def received_until(self, topic: str, payload: bytes, *, timeout: float = 10.0) -> list:
        """Everything that arrived up to and including ``(topic, payload)``; empty if that
        never came. A message asked for last is a positive signal that what was asked for
        before it has all arrived: one connection delivers in order, and Mosquitto passes
        on what it accepted in the order it accepted it, so a publish acknowledged (PUBACK)
        before the marker was sent comes before the marker, from whichever client."""
        out: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                out.append(self._messages.get(timeout=0.1))
            except queue.Empty:
                continue
            if out[-1] == (topic, payload):
                return out
        return []

    def wait_disconnected(self, timeout: float = 10.0) -> bool:
        with contextlib.suppress(AssertionError):
            waiting.wait_for(lambda: self.disconnected, timeout, "a dropped connection")
        return self.disconnected

    def close(self) -> None:
        self._c.reconnect_delay_set(min_delay=60, max_delay=120)
        self._c.disconnect()
        self._c.loop_stop()
