"""A flood of malformed and hostile payloads on every topic the worker consumes.

The worker must keep running, count each bad message under its channel, answer the sender
where it can be told (offer, offer/delete, meter: a reject on its ack topic), and still
accept a valid offer afterwards.
"""

from __future__ import annotations

import os
import time

import msgpack

import protocol
from cloud.broker import Mosquitto
from cloud.fman import series
from protocol import Ack, MeterBatch, MeterReading, Status, Withdraw, topics
from protocol.samples import two_slot_offer

from .harness import (
    Observer,
    client,
    query,
    stats,
    wait_for,
    wait_ready,
    write_config,
)

NOW = 1_767_225_600
CHANNELS = ("offer", "offer/delete", "meter", "status", "schedule/ack")
TARGET = "atp/v1/ops/target"


def undecodable() -> list[bytes]:
    """Payloads no channel can decode, whatever it expects."""
    valid = protocol.encode(two_slot_offer(agent="evil", now=NOW), ts=NOW)
    return [
        b"\x00",
        b"not msgpack at all",
        os.urandom(64),
        os.urandom(900_000),
        valid[: len(valid) // 2],  # truncated
        b"\x91" * 50_000 + b"\xc0",  # 50,000 nested arrays
        msgpack.packb({"v": "9.0", "kind": "offer", "id": "x", "ts": NOW, "body": {}}),
        msgpack.packb(
            {"v": "1.0", "kind": "response", "id": "x", "ts": NOW, "body": {"ok": True}}
        ),  # a kind no agent channel carries
        msgpack.packb(
            {"v": "1.0", "kind": "offer", "id": "x", "ts": NOW, "body": {"id": "a/b#", "issuer": 7}}
        ),
        msgpack.packb([1, 2, 3]),
        b"\x81\xa2\xff\xfe\x01",  # a map whose key is a string of invalid UTF-8
        "ünïcødé ☃".encode(),
    ]


def test_flood_of_bad_payloads_is_counted_and_survived(tmp_path, spawn):
    with Mosquitto(workdir=tmp_path / "broker") as broker:
        db = tmp_path / "fman.db"
        cfg = write_config(
            tmp_path / "fman.toml",
            broker,
            db,
            clock={"sim_start": str(NOW), "speed": 1.0},
            objective={"target": {"topic": TARGET}},
        )
        worker = spawn(cfg, "flood-w1")
        wait_ready(db, "flood-w1")
        observer = Observer(broker)
        pub = client(broker, "flood-pub")
        bad = undecodable()

        def send(topic: str, payload: bytes) -> None:
            pub.publish(topic, payload, qos=1).wait_for_publish(5)

        for _ in range(3):
            for ch in CHANNELS:
                for payload in bad:
                    send(topics.agent_topic("evil", ch), payload)
            send("atp/v1/a/bad agent/offer", b"x")  # an id that is no agent id
        # well-formed but hostile: someone else's identity, contract, offer
        send(
            topics.agent_topic("good", "offer"),
            protocol.encode(two_slot_offer(agent="good", now=NOW), ts=NOW),
        )
        hostile = {
            "offer": two_slot_offer(agent="good", now=NOW + 900),  # issuer is not the sender
            "offer/delete": Withdraw(offer_id=f"good.plug.{NOW}"),  # not the sender's offer
            "meter": MeterBatch(agent="good", readings=[MeterReading("plug", NOW, 900, 0.1)]),
            "status": Status(agent="good", state="offline"),
            "schedule/ack": Ack(ref_kind="schedule", ref_id="nobody", revision=3),
        }
        for ch, body in hostile.items():
            send(topics.agent_topic("evil", ch), protocol.encode(body, ts=NOW))

        for payload in bad:
            send(TARGET, payload)
        pub.publish(
            TARGET, series.to_json({NOW: 1.0, NOW + 900: 2.5}), qos=1, retain=True
        ).wait_for_publish(5)

        n = 3 * len(bad)
        expected = {f"malformed.{ch}": n for ch in CHANNELS}
        expected["malformed.topic"] = 3
        expected["malformed.status"] += 1  # the status of another agent
        expected["offer.rejected"] = 1
        expected["withdraw.rejected"] = 1
        expected["meter.rejected"] = 1
        expected["schedule.answers_unknown"] = 1
        expected["offer.accepted"] = 1
        expected["malformed.target"] = len(bad)
        expected["received.target"] = 1
        expected["failed"] = 0  # no payload broke the code (and was dropped unanswered)

        def counted() -> dict:
            s = stats(db).get("flood-w1", {})
            return {k: s.get(k, 0) for k in expected}

        try:
            wait_for(lambda: counted() == expected, 30, "the counters", step=0.3)
        except AssertionError as exc:
            got = counted()
            diff = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
            log = worker.log()[-3000:]
            raise AssertionError(f"{exc}: (counted, expected) {diff}; {log}") from None
        assert worker.alive
        # the senders that can be told were told: every bad offer, withdrawal and batch
        evil_answers = [b for owner, b in observer.get("ack") if owner == "evil"]
        assert sum(1 for b in evil_answers if b.ref_kind == "offer") == n + 1
        assert sum(1 for b in evil_answers if b.ref_kind == "offer.delete") == n + 1
        assert sum(1 for b in evil_answers if b.ref_kind == "meter") == n + 1
        assert all(isinstance(b, protocol.Reject) for b in evil_answers)

        # and the worker still does its job
        send(
            topics.agent_topic("good2", "offer"),
            protocol.encode(two_slot_offer(agent="good2", now=NOW), ts=NOW),
        )
        wait_for(
            lambda: any(
                isinstance(b, protocol.Ack) and b.ref_id == f"good2.plug.{NOW}"
                for _, b in observer.get("ack")
            ),
            10,
            "the valid offer's ack",
        )
        time.sleep(0.3)
        assert stats(db)["flood-w1"].get("failed", 0) == 0
        target = query(db, "SELECT slot, value FROM series WHERE name = 'target' ORDER BY slot")
        assert [(r["slot"], r["value"]) for r in target] == [(NOW, 1.0), (NOW + 900, 2.5)]
        pub.loop_stop()
        observer.close()
        assert worker.stop() == 0, worker.log()[-3000:]
        log = worker.log()
        assert "refused offer message from evil" in log
        assert log.count("refused offer message from evil") == 1  # logged once per sender
