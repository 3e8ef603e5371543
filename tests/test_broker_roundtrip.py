"""An encoded offer goes through a real Mosquitto and comes back decoded, unchanged."""

from __future__ import annotations

import queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from protocol import topics
from protocol.samples import heat_pump_offer


def _client(broker, client_id: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def test_offer_roundtrip_through_mosquitto(broker, topic_root):
    offer = heat_pump_offer(agent=topic_root)
    received: queue.Queue[bytes] = queue.Queue()
    sub = _client(broker, f"{topic_root}-sub")
    subscribed = queue.Queue()
    sub.on_message = lambda c, u, msg: received.put(msg.payload)
    sub.on_subscribe = lambda *a: subscribed.put(True)
    # a group and a topic of its own: workers of earlier tests on this broker may have left
    # persistent sessions in the "fman" group, among which the broker would share the message
    own = topics.agent_topic(topic_root, "offer")
    sub.subscribe(topics.shared(f"{topic_root}-fman", own), qos=1)
    subscribed.get(timeout=5)
    pub = _client(broker, f"{topic_root}-pub")
    info = pub.publish(
        topics.agent_topic(topic_root, "offer"), protocol.encode(offer, ts=offer.created_at), qos=1
    )
    info.wait_for_publish(5)
    msg = protocol.decode(received.get(timeout=5), expect="offer")
    assert msg.body == offer
    assert protocol.validate_offer(msg.body) == []
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
