"""``atp demo``: for now, one real offer through a real broker.

This is the interim demo of the foundation: it starts Mosquitto with the development
configuration, publishes the GOFLEX sample offer and a 96-slot heat-pump offer on an agent's
offer topic, receives them on FMAN's shared subscription, decodes and validates them, and
prints what arrived. The end-to-end demo (FMAN worker, simulated fleet, a simulated day)
replaces it.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import click
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from cloud.broker import BrokerError, Mosquitto
from protocol import topics
from protocol.samples import heat_pump_offer

SAMPLE = Path(__file__).resolve().parents[2] / "tests/fixtures/goflex/SampleFO_Cyprus.json"


@click.command()
def demo() -> None:
    """Start a broker, send real offers through it, print them decoded."""
    offers = [heat_pump_offer(agent="demo-agent", now=int(time.time()) // 900 * 900)]
    if SAMPLE.exists():
        offers.insert(0, protocol.from_goflex(json.loads(SAMPLE.read_text()))[0])
    try:
        broker = Mosquitto().start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"1. started Mosquitto (development config) on {broker.url}")
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    ready: queue.Queue[bool] = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-fman", protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: inbox.put((m.topic, m.payload))
    sub.on_subscribe = lambda *a: ready.put(True)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-agent", protocol=mqtt.MQTTv5)
    try:
        for c in (sub, pub):
            c.connect(broker.host, broker.port)
            c.loop_start()
        sub.subscribe(topics.shared("fman", topics.all_agents("offer")), qos=1)
        ready.get(timeout=5)
        for offer in offers:
            payload = protocol.encode(offer, ts=int(time.time()))
            pub.publish(topics.agent_topic(offer.issuer, "offer"), payload, qos=1).wait_for_publish(
                5
            )
            click.echo(f"2. published offer {offer.id} ({len(payload)} bytes of MessagePack)")
        for _ in offers:
            topic, payload = inbox.get(timeout=5)
            msg = protocol.decode(payload, expect="offer")
            o = msg.body
            lo, hi = protocol.start_window(o)
            click.echo(f"3. received on {topic}: valid offer {o.id} from {o.issuer}")
            click.echo(
                f"   {o.load_type}, {o.profiles[0].n_slots} slots of {o.resolution_s} s, "
                f"start window {time.strftime('%Y-%m-%d %H:%M', time.gmtime(lo))} .. "
                f"{time.strftime('%H:%M', time.gmtime(hi))} UTC, default "
                f"{sum(o.default.energy_kwh):.2f} kWh, mode {o.mode}"
            )
    finally:
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()
        broker.close()
    click.echo("4. stopped the broker. (Interim demo: the full platform demo is not built yet.)")
