"""Talking to a running broker through its admin socket (``listener 0 <path>`` in prod.conf).

The socket is a Unix socket on the broker host, reachable by root and the broker's user
only; the two accounts that use it (``atp-admin``, ``atp-sessions``) cannot log in on the
public listener at all (see :mod:`._dynsec`). Provisioning uses it to

- send dynamic-security commands (create, delete, re-password an account) and wait for the
  plugin's answer to each;
- end an account's session, offline persistent ones included: ``atp-sessions`` connects
  with the account's client id and a clean start, which discards the session the broker
  kept for it, and leaves with a session expiry of 0;
- find and clear the retained messages a revoked agent left.

paho-mqtt's errors are wrapped in :class:`BrokerAdminError` here.
"""

from __future__ import annotations

import json
import queue
import secrets
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ._dynsec import ADMIN_CLIENT_ID, CONTROL, RESPONSE, Json
from ._errors import ProvisionError
from ._ids import ADMIN, SESSIONS

DEFAULT_SOCKET = Path("/run/mosquitto/atp-admin.sock")


class BrokerAdminError(ProvisionError):
    """The broker refused a command, or could not be reached on its admin socket."""


def running(path: Path) -> bool:
    """Whether a broker listens on the admin socket ``path``; ``False`` when there is no such
    socket or nobody accepts on it (a stale file after a crash). Other errors (permissions,
    a path too long) are :class:`BrokerAdminError`: the broker may well be running."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except OSError as exc:
            raise BrokerAdminError(
                f"cannot reach the broker's admin socket {path}: {exc.strerror or exc}"
            ) from exc
    return True


class _Session:
    """One paho connection over the admin socket, driven from this thread."""

    def __init__(
        self,
        path: Path,
        *,
        username: str,
        password: str,
        client_id: str,
        timeout: float,
        session_expiry_s: int = 0,
    ) -> None:
        self.timeout = timeout
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, transport="unix"
        )
        c.username_pw_set(username, password)
        c.on_connect = lambda _c, _u, _f, rc, _p: self.events.put(("connack", rc))
        c.on_subscribe = lambda _c, _u, _m, rcs, _p: self.events.put(("suback", rcs))
        c.on_message = lambda _c, _u, m: self.events.put(("message", m))
        c.on_disconnect = lambda _c, _u, _f, rc, _p: self.events.put(("gone", rc))
        self.client = c
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        try:
            c.connect(str(path), 1, keepalive=30, clean_start=True, properties=props)
        except OSError as exc:
            raise BrokerAdminError(f"cannot connect to the admin socket {path}: {exc}") from exc
        c.loop_start()
        kind, rc = self.wait("connack", "gone")
        if kind != "connack" or rc.is_failure:
            self.close()
            raise BrokerAdminError(
                f"the broker refused {username} on its admin socket ({rc}): is the site's "
                "pki/broker-admin the one this broker was installed with?"
            )

    def wait(self, *kinds: str) -> tuple[str, Any]:
        try:
            while True:
                kind, value = self.events.get(timeout=self.timeout)
                if kind in kinds:
                    return kind, value
        except queue.Empty:
            raise BrokerAdminError(
                f"the broker did not answer within {self.timeout:g} s ({'/'.join(kinds)})"
            ) from None

    def subscribe(self, topic_filter: str, qos: int) -> None:
        self.client.subscribe(topic_filter, qos=qos)
        _, codes = self.wait("suback")
        if any(c.is_failure for c in codes):
            raise BrokerAdminError(f"the broker refused the subscription {topic_filter}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise BrokerAdminError(f"the broker did not acknowledge a message on {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class BrokerAdmin:
    """``with BrokerAdmin(socket=..., password=...) as admin: admin.run([...])``."""

    def __init__(self, *, socket_path: Path, password: str, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._password = password
        self.timeout = timeout
        self._session: _Session | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> BrokerAdmin:
        self._session = _Session(
            self.socket_path,
            username=ADMIN,
            password=self._password,
            client_id=ADMIN_CLIENT_ID,
            timeout=self.timeout,
        )
        self._session.subscribe(RESPONSE, 0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def session(self) -> _Session:
        if self._session is None:
            raise BrokerAdminError("use BrokerAdmin in a with block")
        return self._session

    def run(self, commands: list[Json], *, missing_ok: bool = False) -> list[Json]:
        """Send ``commands`` in one message and return the plugin's answers, in order;
        :class:`BrokerAdminError` naming the first refused one (``missing_ok``: a delete of
        something that does not exist counts as done)."""
        if not commands:
            return []
        tag = secrets.token_hex(8)
        tagged = [{**c, "correlationData": f"{tag}-{i}"} for i, c in enumerate(commands)]
        self.session.publish(CONTROL, json.dumps({"commands": tagged}).encode())
        answers: dict[str, Json] = {}
        while len(answers) < len(tagged):
            _, message = self.session.wait("message")
            if message.topic != RESPONSE:
                continue
            try:
                for r in json.loads(message.payload).get("responses", []):
                    if str(r.get("correlationData", "")).startswith(f"{tag}-"):
                        answers[r["correlationData"]] = r
            except (ValueError, AttributeError):
                continue
        out = [answers[c["correlationData"]] for c in tagged]
        for cmd, answer in zip(commands, out, strict=True):
            error = answer.get("error")
            if error and not (missing_ok and "not found" in error.lower()):
                what = cmd.get("username") or cmd.get("rolename") or ""
                raise BrokerAdminError(f"the broker refused {cmd['command']} {what}: {error}")
        return out

    def retained(self, topic_filter: str) -> list[str]:
        """Topics under ``topic_filter`` that hold a retained message right now.

        Retained messages are sent right after the SUBACK; a harmless command sent after it
        is answered behind them on the same connection (all at QoS 0, so nothing overtakes),
        so once its answer is in, every retained message is."""
        s = self.session
        s.subscribe(topic_filter, 0)
        tag = secrets.token_hex(8)
        request = {"commands": [{"command": "getDefaultACLAccess", "correlationData": tag}]}
        s.publish(CONTROL, json.dumps(request).encode())
        found: list[str] = []
        while True:
            _, message = s.wait("message")
            if message.topic == RESPONSE and tag.encode() in message.payload:
                break
            if message.retain and message.payload:
                found.append(message.topic)
        s.client.unsubscribe(topic_filter)
        return sorted(set(found))

    def clear_retained(self, topics: list[str]) -> None:
        for topic in topics:
            self.session.publish(topic, b"", retain=True)


def end_session(socket_path: Path, *, password: str, client_id: str, timeout: float = 10.0) -> None:
    """Discard the session the broker keeps for ``client_id`` (open or offline): take the
    client id over with a clean start, then leave with a session expiry of 0."""
    s = _Session(
        socket_path,
        username=SESSIONS,
        password=password,
        client_id=client_id,
        timeout=timeout,
        session_expiry_s=0,
    )
    s.close()
