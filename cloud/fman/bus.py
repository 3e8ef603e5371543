"""The worker's one MQTT connection: paho-mqtt with manual acknowledgement.

paho rather than aiomqtt because ingest must acknowledge a QoS 1 message only after it is
stored: paho's ``manual_ack`` lets the worker send the PUBACK itself, after the commit, while
aiomqtt acknowledges before user code runs. paho's network thread is also several times faster
per process.

The session is persistent (``clean_start`` false, a session expiry), under a client id that
stays the same across restarts: the broker keeps the worker's subscriptions and everything it
had sent but not yet seen acknowledged, and hands it over again when the worker comes back,
SIGKILLed or not.

Subscriptions are made again on every connection, whatever the CONNACK's session-present flag
says: Mosquitto 2.0.11 restores an offline persistent session after a restart but not its
*shared* subscriptions, so until the worker subscribes again the broker acknowledges and drops
what agents send to the group. Reconnection waits at most ``RECONNECT_MAX_S``, to keep that
window short (agents send again whatever FMAN does not answer, so it costs a delay, not data).

Publishing is bounded: at most ``max_in_flight`` messages wait for the broker's PUBACK (paho's
message ids wrap at 65,535), so a slow broker slows the caller instead of growing a queue.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ._errors import BusError
from .ingest import Incoming

log = logging.getLogger(__name__)

#: Subscription identifier of the retained-message sweep.
SWEEP_ID = 7
#: Longest wait between reconnection attempts (a worker is one of few clients: the broker can
#: take its attempts; a long wait is time in which the group's share is dropped).
RECONNECT_MAX_S = 5


def parse_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of an ``mqtt://`` or ``mqtts://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise BusError(f"{url!r} is not an mqtt://host:port or mqtts://host:port URL")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


class Bus:
    """One paho client: subscriptions, manual acks, bounded publishing."""

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        subscriptions: Sequence[str],
        on_message: Callable[[Incoming], None],
        session_expiry_s: int = 3600,
        credentials_file: str = "",
        ca_file: str = "",
        max_in_flight: int = 20_000,
    ) -> None:
        self.url = url
        self.host, self.port, tls = parse_url(url)
        self.subscriptions = list(subscriptions)
        self._on_message_cb = on_message
        self.connected = threading.Event()
        self._subscribed = threading.Event()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()  # guards the two dicts below, never held across paho
        self._waiting: dict[int, Callable[[], None] | None] = {}
        self._early: set[int] = set()
        self.session_expiry_s = session_expiry_s
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        # no paho-side limit: its queue of not-yet-sent messages is scanned on every PUBACK;
        # ``max_in_flight`` bounds what is outstanding instead
        c.max_inflight_messages_set(0)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        if tls:
            c.tls_set_context(tls_context(ca_file))
        if credentials_file:
            user, password = _read_credentials(credentials_file)
            c.username_pw_set(user, password)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        self.client = c

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; :class:`BusError` if that does not happen in ``timeout``."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        try:
            self.client.connect_async(
                self.host, self.port, keepalive=30, clean_start=False, properties=props
            )
        except (OSError, ValueError) as exc:
            raise BusError(f"cannot connect to {self.url}: {exc}") from exc
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise BusError(f"no connection to the broker at {self.url} within {timeout:g} s")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- callbacks (paho's network thread: never raise) ---------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: mqtt.ReasonCode,
        props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker %s refused the connection: %s", self.url, reason)
            return
        log.info("connected to %s (session present: %s)", self.url, flags.session_present)
        self.connected.set()
        # always, even with a session present: a restarted Mosquitto 2.0 keeps the session but
        # not its shared subscriptions
        opts = SubscribeOptions(qos=1)
        client.subscribe([(f, opts) for f in self.subscriptions])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list, props: Properties | None
    ) -> None:
        bad = [str(c) for c in codes if c.is_failure]
        if bad:
            log.error("broker refused subscriptions: %s", ", ".join(bad))
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: mqtt.ReasonCode,
        props: Properties | None,
    ) -> None:
        self.connected.clear()
        if reason.value != 0:
            log.warning("disconnected from %s: %s; reconnecting", self.url, reason)

    def _on_message(self, client: mqtt.Client, userdata: object, m: mqtt.MQTTMessage) -> None:
        ids = getattr(m.properties, "SubscriptionIdentifier", None) or ()
        if SWEEP_ID in ids and not m.retain:
            # a live message through the sweep's subscription: the shared subscription
            # delivers it too, to this worker or another one
            self.ack(m.mid, m.qos)
            return
        try:
            topic = m.topic
        except UnicodeDecodeError:
            topic = ""
        props = m.properties
        reply = getattr(props, "ResponseTopic", "") or ""
        correlation = getattr(props, "CorrelationData", None)
        try:
            payload = bytes(m.payload)  # paho may hand a bytearray; a bytes object is kept as is
            self._on_message_cb(Incoming(topic, payload, m.mid, m.qos, reply, correlation))
        except Exception:  # the network thread must survive whatever the consumer does
            log.exception("message handler failed")

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: mqtt.ReasonCode,
        props: Properties,
    ) -> None:
        with self._lock:
            if mid in self._waiting:
                done = self._waiting.pop(mid)
            else:
                self._early.add(mid)
                done = None
        self._slots.release()
        if done is not None:
            try:
                done()
            except Exception:
                log.exception("publish callback failed")

    # -- actions (any thread) -----------------------------------------------------------------

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a delivered message; call only after it is stored."""
        if qos:
            self.client.ack(mid, qos)

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        done: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
        retain: bool = False,
        correlation: bytes | None = None,
    ) -> bool:
        """Queue ``payload``; ``done`` runs once the broker has it. Blocks while too many are
        in flight; returns ``False`` (nothing queued) if ``stop`` is set meanwhile."""
        while not self._slots.acquire(timeout=0.5):
            if stop is not None and stop.is_set():
                return False
        props = None
        if correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._slots.release()
            log.error("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return False
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                early = True
            else:
                self._waiting[info.mid] = done
                early = False
        if early and done is not None:
            done()
        return True

    def subscribe_retained(self, topic_filter: str) -> None:
        """Subscribe to ``topic_filter`` for its retained messages only (a shared subscription
        never receives retained messages); undo with :meth:`unsubscribe`."""
        props = Properties(PacketTypes.SUBSCRIBE)
        props.SubscriptionIdentifier = SWEEP_ID
        self.client.subscribe(topic_filter, options=SubscribeOptions(qos=1), properties=props)

    def unsubscribe(self, topic_filter: str) -> None:
        self.client.unsubscribe(topic_filter)

    @property
    def in_flight(self) -> int:
        return len(self._waiting)


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """A client context that verifies the broker: against ``ca_file`` (PEM) if given, else
    against the system's trust store."""
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise BusError(f"cannot read the CA file {ca_file}: {exc}") from exc


def _read_credentials(path: str) -> tuple[str, str]:
    p = Path(path)
    try:
        if p.stat().st_mode & 0o077:
            raise BusError(f"{path}: credentials file must be private (chmod 600)")
        user, sep, password = p.read_text().strip().partition(":")
    except OSError as exc:
        raise BusError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    if not sep or not user:
        raise BusError(f"{path}: expected one line 'username:password'")
    return user, password
