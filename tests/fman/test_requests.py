"""Agents' requests against a real broker and a real FMAN worker (``atp fman run``).

The store is seeded with two houses' offers, schedules and contracts; each house asks through
the agent's own request client. Neither can read the other's data by any parameter; bad
requests get a reason; a flood from one house is rate-limited while the other's offers are
still acknowledged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from msgspec.structs import replace

import protocol
from agent.config import BrokerConfig
from agent.requests import RequestClient
from cloud.fman import settlement
from cloud.fman.store import open_store
from cloud.settle import contract_from_dict
from protocol import Status, samples, topics

from .harness import T0, client, query, stats, wait_for, wait_ready, write_config
from .test_store import new_schedule, offer_record

NOW = samples.NOW


def _broker_cfg(broker) -> BrokerConfig:
    return BrokerConfig(
        url=broker.url,
        host=broker.host,
        port=broker.port,
        tls=False,
        username=None,
        password=None,
        ca_file=None,
        cert_file=None,
        key_file=None,
        keepalive_s=30,
        session_expiry_s=86_400,
        backoff_initial_s=1.0,
        backoff_max_s=5.0,
        answer_timeout_s=10.0,
        answer_backoff_max_s=60.0,
        max_unanswered=100,
    )


def _contract(party: str):
    doc = json.loads(Path("examples/contracts/direct.json").read_text())
    doc.update(id=f"c-{party}", party={"id": party, "kind": "prosumer"})
    doc["valid_from"] = "2025-01-01T00:00:00Z"
    doc["devices"] = []  # every device: FMAN accepts readings by the contract's devices
    return contract_from_dict(doc, source=party)


@pytest.fixture
def world(tmp_path, broker, spawn):
    db = tmp_path / "fman.db"
    with open_store(str(db)) as s:
        s.put_offers(
            [
                offer_record("h1-o1", "house-1"),
                offer_record("h1-o2", "house-1", state="rejected"),
                offer_record("h2-o1", "house-2"),
            ]
        )
        s.add_schedules([new_schedule("h1-o1", "house-1", start=NOW + 1800)], now=NOW)
        for party in ("house-1", "house-2"):
            settlement.add_contract(s, _contract(party), now=NOW)
    cfg = write_config(
        tmp_path / "fman.toml",
        broker,
        db,
        clock={"sim_start": str(T0), "speed": 1.0},
        worker={"requests_per_s": 2.0, "requests_burst": 10},
    )
    worker = spawn(cfg, "rq-w1")
    wait_ready(db, worker.id)
    yield db, worker
    assert worker.stop() == 0, worker.log()[-3000:]


def test_each_resource_answers_with_the_agents_own_data(world, broker):
    with RequestClient(_broker_cfg(broker), "house-1") as h1:
        contracts = h1.ask("contract")
        assert [c["id"] for c in contracts] == ["c-house-1"]
        active = h1.ask("flexoffer")
        assert [o["id"] for o in active] == ["h1-o1"]
        ranged = h1.ask("flexoffer/range", {"from": NOW, "to": NOW + 86_400})
        assert sorted(o["id"] for o in ranged) == ["h1-o1", "h1-o2"]
        got = h1.ask("flexoffer/get", {"id": "h1-o1"})
        assert got["offer"]["issuer"] == "house-1" and got["schedule"]["version"] >= 1
        sched = h1.ask("timeseries/schedule", {"from": NOW, "to": NOW + 86_400})
        # the schedule in force (the planner may have made a newer one: read them together)
        got = h1.ask("flexoffer/get", {"id": "h1-o1"})["schedule"]
        expect = {str(got["start"] + i * 900): round(e, 6) for i, e in enumerate(got["energy_kwh"])}
        assert sched["values"] == expect and expect
        base = h1.ask("timeseries/baseline", {"from": NOW, "to": NOW + 86_400})
        assert base["values"] and all(int(t) >= NOW for t in base["values"])
        # a measurement goes through ingest as a meter batch: acknowledged, then in the series
        batch = samples.meter_batch(agent="house-1", now=NOW - 3600, readings=2)
        device = batch.readings[0].device
        c = client(broker, "house-1-status")
        status = Status(agent="house-1", state="online", since=NOW, devices=[device])
        c.publish(topics.agent_topic("house-1", "status"), protocol.encode(status, ts=NOW), 1, True)
        wait_for(
            lambda: query(world[0], "SELECT devices FROM agents WHERE agent = 'house-1'"),
            20,
            "house-1's devices announced",
        )
        ack = h1.ask("measurement", {"batch": protocol.to_builtins(batch), "msg_id": "m1"})
        assert ack["ref_id"] == "m1" and not ack.get("quarantined"), ack
        series = h1.ask("timeseries/measurement", {"from": NOW - 86_400, "to": NOW})
        assert len(series["values"]) == 2, series
        bill = h1.ask("bill", {"period": "2026-01"})
        assert bill["party"] == "house-1" and bill["total_cents"] == 0
        kpis = h1.ask("kpi", {"period": "2026-01"})
        assert set(kpis) == {"2.1.1.1.a", "2.1.1.1.c", "2.1.1.2.a", "2.1.1.2.b"}
        c.disconnect()


def test_house_1_cannot_read_house_2s_data(world, broker):
    with RequestClient(_broker_cfg(broker), "house-1") as h1:
        r = h1.response("flexoffer/get", {"id": "h2-o1"})
        missing = h1.response("flexoffer/get", {"id": "no-such-offer"})
        assert r.status == "error" and "no such offer" in r.reason
        assert r.reason.replace("h2-o1", "X") == missing.reason.replace("no-such-offer", "X")
        forged = h1.response("contract", {"party": "house-2"})
        assert forged.status == "error" and "unknown field" in forged.reason
        forged = h1.response("bill", {"period": "2026-01", "agent": "house-2"})
        assert forged.status == "error"
        assert [o["id"] for o in h1.ask("flexoffer")] == ["h1-o1"]
        assert "h2-o1" not in {
            o["id"] for o in h1.ask("flexoffer/range", {"from": NOW, "to": NOW + 86_400})
        }
        batch = samples.meter_batch(agent="house-2", now=NOW, readings=1)
        r = h1.response("measurement", {"batch": protocol.to_builtins(batch), "msg_id": "x"})
        assert r.status == "error" and "not the requesting agent" in r.reason
        # a response topic of another agent is never answered (counted and dropped)
        corr = b"steal"
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.response_topic("house-2", "t")
        props.CorrelationData = corr
        payload = protocol.encode(
            protocol.Request(method="bill", params={"period": "2026-01"}), ts=NOW
        )
        h1._client.publish(topics.request_topic("house-1", "bill"), payload, 1, properties=props)
        wait_for(
            lambda: stats(world[0]).get("rq-w1", {}).get("requests.dropped.no_response_topic"),
            10,
            "the request with another agent's response topic dropped",
        )


@pytest.mark.parametrize(
    ("method", "params", "reason"),
    [
        ("nope", {}, "unknown method"),
        ("bill", {"period": "January"}, "params.period"),
        ("flexoffer/range", {"from": NOW, "to": NOW + 400 * 86_400}, "longer than a year"),
        ("flexoffer/range", {"from": NOW}, "to"),
        ("flexoffer/get", {"id": "a/b"}, "params.id"),
    ],
)
def test_bad_requests_get_a_reason(world, broker, method, params, reason):
    with RequestClient(_broker_cfg(broker), "house-1") as h1:
        # "nope" is refused by the production broker's ACL; the development broker passes it
        r = h1.response(method, params)
        assert r.status == "error" and reason in r.reason, r


def test_a_flood_is_rate_limited_and_another_agents_offers_are_still_acked(world, broker):
    acks: list[str] = []
    other = client(broker, "house-2-uplink")
    other.on_message = lambda c, u, m: acks.append(m.topic)
    other.subscribe(topics.agent_topic("house-2", "ack"), qos=1)
    offer = samples.two_slot_offer(agent="house-2", now=NOW)
    with RequestClient(_broker_cfg(broker), "house-1") as h1:
        sent = [h1.send("flexoffer") for _ in range(60)]
        for i in range(3):
            o = replace(offer, id=f"h2-new-{i}")
            other.publish(topics.agent_topic("house-2", "offer"), protocol.encode(o, ts=NOW), 1)
        answers = [h1.wait(c) for c in sent]
    assert answers
    limited = [a for a in answers if a.status == "error"]
    assert limited and all("rate limited" in a.reason for a in limited)
    assert sum(a.status == "ok" for a in answers) >= 10
    wait_for(lambda: len(acks) >= 3, 20, "house-2's offers answered during the flood")
    other.disconnect()
