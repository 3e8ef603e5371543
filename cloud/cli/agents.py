"""``atp agents``: which agents are online, from their retained status."""

from __future__ import annotations

import threading
import time

import click

from cloud.fman import report

from ._fmandb import db_option, emit_json, json_option, open_db, table, when


@click.group()
def agents() -> None:
    """The agents FMAN knows."""


@agents.command("list")
@db_option
@click.option(
    "--broker",
    help="Read the retained statuses from this broker instead of the store (mqtt://host:port).",
)
@click.option("--wait", default=2.0, show_default=True, help="Seconds to collect (--broker).")
@json_option
def list_(db: str, broker: str | None, wait: float, as_json: bool) -> None:
    """Agents with their status (online or offline) and their offers."""
    rows = _from_broker(broker, wait) if broker else report.agents(open_db(db))
    if as_json:
        emit_json(rows)
        return
    table(
        rows,
        [
            ("agent", "AGENT"),
            ("state", "STATUS"),
            ("since", "SINCE"),
            ("version", "VERSION"),
            ("devices", "DEVICES"),
            ("offers", "OFFERS"),
            ("active", "ACTIVE"),
        ],
        {"since": when},
    )
    online = sum(1 for r in rows if r.get("state") == "online")
    click.echo(f"{len(rows)} agent(s), {online} online")


def _from_broker(url: str, wait: float) -> list[dict]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    import protocol
    from cloud.fman.bus import parse_url
    from protocol import topics

    host, port, tls = parse_url(url)
    found: dict[str, dict] = {}
    subscribed = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, m: mqtt.MQTTMessage) -> None:
        try:
            st = protocol.decode(m.payload, expect="status").body
        except protocol.DecodeError:
            return
        found[st.agent] = {
            "agent": st.agent,
            "state": st.state,
            "since": st.since,
            "version": st.version,
            "devices": len(st.devices),
            "offers": None,
            "active": None,
        }

    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if tls:
        c.tls_set()
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    try:
        c.connect(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    c.loop_start()
    c.subscribe(topics.all_agents("status"), qos=1)
    subscribed.wait(5)
    time.sleep(wait)
    c.loop_stop()
    c.disconnect()
    return sorted(found.values(), key=lambda r: r["agent"])
