"""The DSO's side of its requests to FMAR: one request out, its response back, over MQTT v5.

What ``atp market congestion`` uses, and what a DSO's own system can copy. The request stays
with the sender until FMAR's answer arrives (a broker's PUBACK is not an answer): unanswered
after ``retry_s`` it is sent again under the same correlation data, which is safe because a
registration is idempotent (the same id and values again is ``stored: again``) and the other
methods only read.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import protocol
from protocol import Request, Response, topics

from ..fman.bus import _read_credentials, parse_url, tls_context
from ._errors import MarketError


class DsoClientError(MarketError):
    """No answer, or no connection to the broker."""


def ask(
    method: str,
    params: dict[str, Any],
    *,
    url: str,
    dso: str = "dso",
    credentials_file: str = "",
    ca_file: str = "",
    timeout_s: float = 30.0,
    retry_s: float = 5.0,
) -> Response:
    """Send ``method`` with ``params`` as DSO ``dso`` and return FMAR's response."""
    host, port, tls = parse_url(url)
    user = ""
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="",
        protocol=mqtt.MQTTv5,
    )
    if tls:
        c.tls_set_context(tls_context(ca_file))
    if credentials_file:
        user, password = _read_credentials(credentials_file)
        c.username_pw_set(user, password)
    tag = secrets.token_hex(8)
    reply = topics.dso_response_topic(dso, tag)
    correlation = secrets.token_bytes(8)
    got: list[Response] = []
    ready, answered = threading.Event(), threading.Event()
    refused: list[str] = []

    def on_connect(client: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        if rc.is_failure:
            refused.append(str(rc))
            ready.set()
            return
        client.subscribe(reply, qos=1)

    def on_subscribe(_c: object, _u: object, _mid: int, rcs: list[Any], _p: object) -> None:
        if any(rc.is_failure for rc in rcs):
            refused.append(f"subscription to {reply} refused ({rcs[0]})")
        ready.set()

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        if getattr(m.properties, "CorrelationData", None) != correlation:
            return
        try:
            msg = protocol.decode(bytes(m.payload), check=False)
        except protocol.DecodeError:
            return
        if isinstance(msg.body, Response):
            got.append(msg.body)
            answered.set()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    try:
        c.connect(host, port, keepalive=30, clean_start=True)
    except (OSError, ValueError) as exc:
        raise DsoClientError(f"cannot connect to {url}: {exc}") from None
    c.loop_start()
    try:
        if not ready.wait(min(timeout_s, 10.0)):
            raise DsoClientError(f"no connection to the broker at {url}")
        if refused:
            raise DsoClientError(f"the broker at {url} refused: {refused[0]}")
        payload = protocol.encode(Request(method=method, params=params), ts=int(time.time()))
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply
        props.CorrelationData = correlation
        deadline = time.monotonic() + timeout_s
        while True:
            c.publish(topics.dso_request_topic(dso, method), payload, qos=1, properties=props)
            wait = min(retry_s, deadline - time.monotonic())
            if wait > 0 and answered.wait(wait):
                return got[0]
            if time.monotonic() >= deadline:
                raise DsoClientError(
                    f"no answer to {method} within {timeout_s:g} s: is `atp fmar run` up, "
                    f"and is {user or 'this client'} allowed on atp/v1/d/{dso}/req/...?"
                )
    finally:
        c.loop_stop()
        c.disconnect()
