"""The agent's MQTT v5 session with the broker: outbox out, schedules and acks in.

Why paho-mqtt driven by the asyncio loop, and not aiomqtt
---------------------------------------------------------
aiomqtt 2.x acknowledges a QoS 1 message (PUBACK) as soon as paho has read it, before the
application has handled it: a schedule that arrives a moment before a crash would be
acknowledged to the broker and gone. Here paho runs with ``manual_ack=True`` and the PUBACK of
an incoming message is sent only after :class:`agent.core.Core` has committed what it implies
(the schedule, the offer's state, the schedule ack in the outbox) to the store. A crash before
the commit leaves the message unacknowledged; the persistent session makes the broker deliver
it again on the next connection, and the inbox table makes a delivery that did commit change
nothing the second time.

paho is driven the way aiomqtt drives it, without a thread per client: its socket is
registered with the event loop (``add_reader``/``add_writer`` calling ``loop_read``/
``loop_write``) and ``loop_misc`` runs once a second for keep-alive. One process therefore
holds a thousand sessions (the fleet simulator). Only the blocking ``connect()`` (TCP and TLS
handshake) runs on the default executor, as in aiomqtt.

Outbox: delivered means answered
--------------------------------
A fresh paho client is made for every connection, so paho never keeps messages of its own
across connections: the store's outbox is the only queue. The feeder hands at most ``window``
rows to paho at a time, in id order. A broker's PUBACK is not delivery: Mosquitto 2.0
acknowledges and drops what arrives for a shared subscription it has not restored after a
restart. So a row FMAN answers (an offer, a withdrawal, a meter batch) stays in the outbox
until FMAN's own answer for it has been handled (:class:`agent.core.Core` deletes it in the
transaction that handles the answer); its PUBACK only marks it *sent* and sets when it is due
again: ``answer_timeout_s`` wall seconds later, doubling with each send up to
``answer_backoff_max_s``, with "equal jitter" (:func:`backoff_delay`), so a fleet whose
messages a restart dropped does not send them all again at the same moment. Rows nobody
answers (the answers to schedules) are deleted on their PUBACK; FMAN sends a schedule again
until it hears the answer, and the core answers a repeated schedule as it did the first time.

Each wake-up the feeder hands paho, in id order, the rows due again and the rows never
acknowledged by the broker, so the messages of one agent leave in the order they were made
(an update after its insert; FMAN also restores order from revisions, so a resend overtaken
by a newer message changes nothing). At most ``max_unanswered`` rows may be sent and not yet
answered: beyond that, new rows wait (in order) until answers come; resends of rows already
out always go. After a disconnection, or a restart, the rows the broker had not acknowledged
go out again from the oldest, and those waiting for an answer keep their due times. A PUBACK
with an MQTT v5 failure reason moves the row to ``dead_letters`` with the reason (it would
fail again). Every message carries a stable id and FMAN's ingest log answers a repeated one
without storing it twice.

The session
-----------
Client id = agent id; ``clean_start=False`` with a session expiry (default 7 days, at least
one), so subscriptions and the schedules queued while the agent was away survive both a
network cut and a restart. The Last Will is a retained ``offline`` Status; on connect a
retained ``online`` Status with a health summary replaces it; offers are sent only after the
subscriptions are confirmed, so the answer to an offer cannot arrive before the agent listens.
Reconnects wait a jittered, capped exponential backoff. Transport timing (backoff,
keep-alive, timeouts) is wall-clock time, not the agent's clock: it protects a real broker,
also when the agent runs a simulated day in minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

import protocol
from agent.clock import Clock
from agent.errors import StoreError
from agent.store import ANSWERED_KINDS, Store
from protocol import Status, topics

log = logging.getLogger(__name__)

#: ``handler(topic, payload)`` is called for every incoming message, on the event loop; the
#: message is acknowledged to the broker when it returns (not when it raises StoreError).
Inbound = Callable[[str, bytes], None]
#: Returns the health summary put in the retained ``online`` status.
Health = Callable[[], dict[str, int | float | str | bool]]

MIN_SESSION_EXPIRY_S = 86_400


@dataclass(frozen=True, kw_only=True)
class BrokerSettings:
    """Where and how to connect. ``password`` is never logged (it is left out of the repr)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86_400
    connect_timeout_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    answer_timeout_s: float = 10.0
    answer_backoff_max_s: float = 300.0
    max_unanswered: int = 100

    def __post_init__(self) -> None:
        if self.session_expiry_s < MIN_SESSION_EXPIRY_S:
            raise ValueError(f"session_expiry_s must be at least {MIN_SESSION_EXPIRY_S}")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        if not 0 < self.answer_timeout_s <= self.answer_backoff_max_s:
            raise ValueError("need 0 < answer_timeout_s <= answer_backoff_max_s")
        if self.max_unanswered < 1:
            raise ValueError("max_unanswered must be at least 1")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def backoff_delay(attempt: int, *, initial: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): "equal jitter", between half
    and all of ``min(cap, initial * 2**attempt)``, so a fleet that lost its broker at the same
    moment does not come back at the same moment."""
    ceiling = min(cap, initial * 2 ** min(attempt, 32))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class ConnectError(Exception):
    """A connection attempt failed (network, TLS, or a CONNACK refusal)."""


@dataclass
class UplinkStats:
    connects: int = 0
    #: rows handed to the broker, first sends and resends
    sent: int = 0
    #: of those, resends of a row FMAN had not answered
    resent: int = 0
    #: PUBACKs from the broker
    acked: int = 0
    received: int = 0
    dead: int = 0
    #: times new rows waited because ``max_unanswered`` were out
    throttled: int = 0
    last_error: str = ""


class Uplink:
    """One agent's MQTT session. Run :meth:`run` as a task; :meth:`kick` after enqueueing."""

    def __init__(
        self,
        *,
        agent_id: str,
        settings: BrokerSettings,
        store: Store,
        clock: Clock,
        handler: Inbound,
        health: Health = dict,
        devices: tuple[str, ...] = (),
        subscriptions: tuple[str, ...] = (),
        version: str = "",
        window: int = 20,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.agent_id = agent_id
        self.settings = settings
        self.store = store
        self.clock = clock
        self.handler = handler
        self.health = health
        self.devices = devices
        self.version = version
        self.window = window
        self.rng = rng or random.Random()
        #: wall-clock time, for the resend schedule (kept in the store across restarts)
        self.wall = wall
        self.stats = UplinkStats()
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._client: mqtt.Client | None = None
        self._closing = False
        self._since: int | None = None
        self._will_ts = 0
        self._status_topic = topics.agent_topic(agent_id, "status")
        # ``subscriptions``: more topics answers come on (a market's answers to the agent's
        # sell orders), subscribed before anything is sent, like the agent's own
        self._subscriptions = [
            (topics.agent_topic(agent_id, "ack"), 1),
            (topics.agent_topic(agent_id, "schedule"), 1),
            *((t, 1) for t in subscriptions),
        ]

    # -- public -----------------------------------------------------------------------------

    def kick(self) -> None:
        """New rows are in the outbox: send them now rather than at the next wake-up."""
        self._wake.set()

    async def run(self) -> None:
        """Connect, serve, and reconnect with backoff, until cancelled or :meth:`close`."""
        attempt = 0
        while not self._closing:
            try:
                await self._session()
                attempt = 0
            except ConnectError as exc:
                self.stats.last_error = str(exc)
                log.warning("%s: cannot connect to %s: %s", self.agent_id, self.settings.url, exc)
            if self._closing:
                break
            delay = backoff_delay(
                attempt,
                initial=self.settings.backoff_initial_s,
                cap=self.settings.backoff_max_s,
                rng=self.rng,
            )
            attempt += 1
            await asyncio.sleep(delay)

    def publish_status(self) -> None:
        """Refresh the retained ``online`` status with the current health summary."""
        client = self._client
        if client is not None and self.connected.is_set():
            client.publish(self._status_topic, self._status("online"), qos=1, retain=True)

    def undelivered(self) -> int:
        """Rows FMAN has not answered yet (sent or not)."""
        kinds = self.store.outbox_kinds()
        return sum(n for kind, n in kinds.items() if kind in ANSWERED_KINDS)

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` wall seconds for FMAN to answer everything in the outbox
        (while connected: resends go out as due); ``True`` if nothing is left."""
        self.kick()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.undelivered():
                    await asyncio.sleep(0.05)
        return not self.undelivered()

    async def close(self, timeout: float = 3.0) -> None:
        """Say ``offline`` (retained), disconnect cleanly and stop :meth:`run`."""
        self._closing = True
        client = self._client
        if client is None or not self.connected.is_set():
            return
        info = client.publish(self._status_topic, self._status("offline"), qos=1, retain=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not info.is_published() and self.connected.is_set():
                    await asyncio.sleep(0.01)
        client.disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.connected.is_set():
                    await asyncio.sleep(0.01)

    # -- one connection ---------------------------------------------------------------------

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        now = int(self.clock.now())
        health = self.health() if state == "online" else {}
        body = Status(
            agent=self.agent_id,
            state=state,
            since=self._since if state == "online" else now,
            version=self.version,
            health=health,
            devices=list(self.devices) if state == "online" else [],
        )
        return protocol.encode(body, ts=now)

    def _new_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.agent_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        client.connect_timeout = s.connect_timeout_s
        client.max_inflight_messages_set(self.window)
        # the session dates from its Will: FMAN takes a Will as newer than the session's
        # health refreshes only if it is not older than the session's ``since``
        # strictly later than the session before, so its Will never passes for this one's
        self._will_ts = max(int(self.clock.now()), self._will_ts + 1)
        will = Status(agent=self.agent_id, state="offline", version=self.version)
        client.will_set(
            self._status_topic,
            protocol.encode(will, ts=self._will_ts),
            qos=1,
            retain=True,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set_context(s.tls)
        return client

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._new_client()
        conn = _Connection(loop=loop, client=client, owner=self)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        s = self.settings
        try:
            try:
                await loop.run_in_executor(
                    None,
                    lambda: client.connect(
                        s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props
                    ),
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
            try:
                async with asyncio.timeout(s.connect_timeout_s):
                    session_present = await conn.connack
            except TimeoutError:
                raise ConnectError("no CONNACK from the broker") from None
            self._client = client
            self._since = self._will_ts
            self.connected.set()
            self.stats.connects += 1
            log.info(
                "%s: connected to %s (session %s)",
                self.agent_id,
                s.url,
                "resumed" if session_present else "new",
            )
            client.publish(self._status_topic, self._status("online"), qos=1, retain=True)
            await conn.subscribe(self._subscriptions, timeout=s.connect_timeout_s)
            self._mark(connected=True)
            feeder = asyncio.create_task(self._feed(conn), name=f"{self.agent_id}-outbox")
            try:
                await asyncio.wait({conn.lost, feeder}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder  # re-raises what stopped it (a StoreError), after cleanup
        finally:
            was_connected = self.connected.is_set()
            self.connected.clear()
            self._client = None
            conn.close()
            if conn.acked:  # acknowledged before the connection ended: not sent again
                with contextlib.suppress(StoreError):
                    self._settle(conn)
            if was_connected:
                self._mark(connected=False)
                if not self._closing:
                    log.warning("%s: connection lost: %s", self.agent_id, conn.reason)

    def _mark(self, *, connected: bool) -> None:
        """Record the connection state in the store, for ``foa status`` in another process."""
        now = int(self.clock.now())
        values: dict[str, object] = {"connected": int(connected), "broker": self.settings.url}
        values["connected_since" if connected else "disconnected_since"] = now
        try:
            self.store.set_many(values)
        except StoreError as exc:
            log.error("%s: %s", self.agent_id, exc)

    def _settle(self, conn: _Connection) -> None:
        """Put the PUBACKs and refusals that came in into the store: a row FMAN answers is
        now sent, due again if no answer comes; any other row is delivered."""
        acked, conn.acked = conn.acked, []
        if acked:
            wall = self.wall()
            sent, done, resent = [], [], 0
            for row_id in acked:
                kind, attempts = conn.rows.pop(row_id, ("", 0))
                if kind in ANSWERED_KINDS:
                    resent += attempts > 0
                    delay = backoff_delay(
                        attempts,
                        initial=self.settings.answer_timeout_s,
                        cap=self.settings.answer_backoff_max_s,
                        rng=self.rng,
                    )
                    sent.append((row_id, wall + delay))
                else:
                    done.append(row_id)
            if sent:
                self.store.outbox_sent(sent, resent=resent)
            if done:
                self.store.outbox_done(done)
            self.stats.acked += len(acked)
        for row_id, reason in conn.refused:
            log.error(
                "%s: broker refused outbox row %d for good: %s", self.agent_id, row_id, reason
            )
            conn.rows.pop(row_id, None)
            self.store.outbox_dead(row_id, reason)
            self.stats.dead += 1
        conn.refused.clear()

    async def _feed(self, conn: _Connection) -> None:
        """Hand outbox rows to paho in id order: those due again and those the broker never
        acknowledged; at most ``window`` waiting for a PUBACK and ``max_unanswered`` sent
        and not answered."""
        last_id = 0  # the highest row never acknowledged that was handed in this connection
        while True:
            self._wake.clear()
            self._settle(conn)
            free = self.window - len(conn.inflight)
            wall = self.wall()
            if free > 0:
                handed = set(conn.inflight.values())
                due = [
                    r for r in self.store.outbox_due(wall, free + len(handed)) if r.id not in handed
                ]
                room = self.settings.max_unanswered - self.store.outbox_awaiting()
                # first sends still waiting for their PUBACK count too
                room -= sum(1 for k, n in conn.rows.values() if k in ANSWERED_KINDS and n == 0)
                new = []
                for row in self.store.outbox_unsent(last_id, free):
                    if row.kind in ANSWERED_KINDS:
                        if room <= 0:
                            self.stats.throttled += 1
                            break  # in order: nothing newer goes before it
                        room -= 1
                    new.append(row)
                for row in sorted(due[:free] + new, key=lambda r: r.id)[:free]:
                    info = conn.client.publish(row.topic, row.payload, qos=1, retain=row.retain)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        conn.fail(f"publish failed: {mqtt.error_string(info.rc)}")
                        return
                    conn.inflight[info.mid] = row.id
                    conn.rows[row.id] = (row.kind, row.attempts)
                    self.stats.sent += 1
                    if row.due is None:
                        last_id = max(last_id, row.id)
                    else:
                        self.stats.resent += 1
            # sleep until woken (a PUBACK, new rows, an answer) or the next resend is due
            nxt = self.store.outbox_next_due()
            timeout = None if nxt is None else min(60.0, max(0.05, nxt - self.wall()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _deliver(self, conn: _Connection, msg: mqtt.MQTTMessage) -> None:
        """An incoming message: handle it, then acknowledge it (stored before acknowledged)."""
        self.stats.received += 1
        try:
            self.handler(msg.topic, bytes(msg.payload))  # paho may hand a bytearray

        except StoreError as exc:
            if exc.transient:
                # not acknowledged: the broker delivers it again on the next connection
                log.error("%s: cannot store message on %s: %s", self.agent_id, msg.topic, exc)
                conn.fail(f"store error: {exc}")
                return
            # a broken constraint fails again on every delivery: drop it, loudly
            log.exception("%s: message on %s dropped (a bug)", self.agent_id, msg.topic)
        except Exception:
            log.exception("%s: handler failed on %s; message dropped", self.agent_id, msg.topic)
        conn.client.ack(msg.mid, msg.qos)


class _Connection:
    """paho's socket wired to the event loop for the life of one connection."""

    def __init__(
        self, *, loop: asyncio.AbstractEventLoop, client: mqtt.Client, owner: Uplink
    ) -> None:
        self.loop = loop
        self.client = client
        self.owner = owner
        self.connack: asyncio.Future[bool] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.reason = ""
        self.inflight: dict[int, int] = {}  # paho mid -> outbox row id
        #: outbox row id -> (kind, acknowledged sends before this one), while handed to paho
        self.rows: dict[int, tuple[str, int]] = {}
        self.acked: list[int] = []
        self.refused: list[tuple[int, str]] = []
        self._suback: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._fd = -1
        self._thread = threading.get_ident()
        self._misc: asyncio.Task[None] | None = None
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = lambda _c, _u, msg: owner._deliver(self, msg)

    # paho calls the socket callbacks from the executor thread during connect(), later from
    # the loop itself. On the loop they must act at once: paho closes the socket right after
    # on_socket_close returns, and a closed descriptor cannot be taken out of the selector.
    def _threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        if threading.get_ident() == self._thread:
            fn(*args)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._threadsafe(self._start_io, sock.fileno())

    def _start_io(self, fd: int) -> None:
        if self.lost.done():
            return
        self._fd = fd
        self.loop.add_reader(fd, self._read)
        self._misc = self.loop.create_task(self._misc_loop(), name=f"{self.owner.agent_id}-misc")

    def _on_socket_close(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._threadsafe(self._stop_io)

    def _stop_io(self) -> None:
        if self._fd >= 0:
            self.loop.remove_reader(self._fd)
            self.loop.remove_writer(self._fd)
            self._fd = -1

    def _on_register_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._threadsafe(self._add_writer, sock.fileno())

    def _add_writer(self, fd: int) -> None:
        if fd >= 0 and fd == self._fd and not self.lost.done():
            self.loop.add_writer(fd, self._write)

    def _on_unregister_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._threadsafe(self._remove_writer, sock.fileno())

    def _remove_writer(self, fd: int) -> None:
        if fd >= 0 and fd == self._fd:
            self.loop.remove_writer(fd)

    def _read(self) -> None:
        try:
            while True:
                rc = self.client.loop_read()
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    self.fail(mqtt.error_string(rc))
                    return
                sock = self.client.socket()
                if sock is None or not getattr(sock, "pending", lambda: 0)():
                    return
        except Exception as exc:  # a broken pipe or a TLS error: the connection is gone
            self.fail(f"{type(exc).__name__}: {exc}")

    def _write(self) -> None:
        try:
            rc = self.client.loop_write()
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc}")
            return
        if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            self.fail(mqtt.error_string(rc))

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1)
        self.fail("keep-alive lost")

    # -- MQTT callbacks (on the loop, from loop_read) ------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if self.connack.done():
            return
        if rc.is_failure:
            self.connack.set_exception(ConnectError(f"broker refused the connection: {rc}"))
        else:
            self.connack.set_result(bool(flags.session_present))

    def _on_disconnect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        self.fail(f"disconnected ({rc})")

    def _on_publish(self, client: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        row_id = self.inflight.pop(mid, None)
        if row_id is None:
            return  # the status message
        if rc.is_failure:
            self.refused.append((row_id, str(rc)))
        else:
            self.acked.append(row_id)
        self.owner._wake.set()

    def _on_subscribe(
        self, client: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        fut = self._suback.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(codes)

    async def subscribe(self, subscriptions: list[tuple[str, int]], *, timeout: float) -> None:
        rc, mid = self.client.subscribe(subscriptions)
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectError(f"subscribe failed: {mqtt.error_string(rc)}")
        fut: asyncio.Future[list[ReasonCode]] = self.loop.create_future()
        self._suback[mid] = fut
        waiting: set[asyncio.Future[list[ReasonCode]] | asyncio.Future[None]] = {fut, self.lost}
        try:
            async with asyncio.timeout(timeout):
                done, _ = await asyncio.wait(waiting, return_when="FIRST_COMPLETED")

        except TimeoutError:
            raise ConnectError("no SUBACK from the broker") from None
        if fut not in done:
            raise ConnectError(f"connection lost while subscribing: {self.reason}")
        refused = [
            f"{t}: {c}"
            for (t, _), c in zip(subscriptions, fut.result(), strict=False)
            if c.is_failure
        ]
        if refused:
            # without them no schedule can arrive: say so loudly, keep publishing anyway
            log.error("%s: subscriptions refused: %s", self.owner.agent_id, "; ".join(refused))

    def fail(self, reason: str) -> None:
        """The connection is over (idempotent)."""
        if not self.lost.done():
            self.reason = reason
            self.lost.set_result(None)
        if not self.connack.done():
            self.connack.set_exception(ConnectError(reason))
            self.connack.exception()  # retrieved: no "never retrieved" warning
        self.owner._wake.set()

    def close(self) -> None:
        self.fail("closed")
        if self._misc is not None:
            self._misc.cancel()
        self._stop_io()
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
