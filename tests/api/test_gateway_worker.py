"""The gateway beside a real FMAN worker and a real Mosquitto: an offer put over HTTP is
acknowledged, planned by the worker and its schedule sent to the agent over MQTT, as one sent
on the offer topic; and the gateway serves TLS with the site's broker certificate."""

from __future__ import annotations

import http.client
import json
import ssl
import threading

from msgspec.structs import replace

import protocol
from protocol import samples, topics
from tests.fman.conftest import spawn  # noqa: F401  (the fixture)
from tests.fman.harness import client, wait_ready, write_config
from tests.waiting import wait_for

from .gateway import NOW, atp, issue, seed, serve

V1 = "/api/v1"


def test_an_offer_put_over_http_is_planned_and_its_schedule_sent_over_mqtt(
    tmp_path,
    broker,
    spawn,  # noqa: F811
):
    db = tmp_path / "fman.db"
    seed(db)
    cfg = write_config(
        tmp_path / "fman.toml",
        broker,
        db,
        clock={"sim_start": str(NOW), "speed": 1.0},
        planning={"replan_min_wall_s": 0.2},
        # a group of its own: the broker keeps a stopped worker's shared subscription in its
        # session, and would hand it other tests' messages of the usual group
        worker={"group": "api-gateway-test"},
    )
    worker = spawn(cfg, "api-w1")
    wait_ready(db, worker.id)
    schedules: list[protocol.Schedule] = []
    got = threading.Event()

    def on_message(_c, _u, m):
        body = protocol.decode(m.payload, check=False).body
        if isinstance(body, protocol.Schedule) and body.offer_id == "h1-via-http":
            schedules.append(body)
            got.set()

    agent = client(broker, "house-1-api-test")
    agent.on_message = on_message
    agent.subscribe(topics.agent_topic("house-1", "schedule"), qos=1)
    tokens = tmp_path / "api-tokens"
    token = issue(tokens, "house-1", cwd=tmp_path)
    try:
        with serve(tmp_path, "--config", str(cfg), "--tokens", str(tokens)) as gw:
            gw.tokens["h1"] = token
            offer = replace(samples.two_slot_offer(agent="house-1", now=NOW), id="h1-via-http")
            r = gw.call(
                "PUT", f"{V1}/flexoffer/h1-via-http", token="h1", body=protocol.to_builtins(offer)
            )
            assert r.status == 200, r.body
            assert r.body["body"]["ref_kind"] == "offer", r.body

            def scheduled():
                return gw.ok(f"{V1}/flexoffer/h1-via-http", "h1").get("schedule")

            sched = wait_for(
                scheduled, 30, "the worker's schedule of the HTTP offer", explain=worker.log
            )
            assert wait_for(got.is_set, 20, "the schedule on house-1's schedule topic")
            assert schedules[0].offer_id == "h1-via-http" and schedules[0].version >= 1
            assert len(sched["energy_kwh"]) == 2
    finally:
        agent.loop_stop()
        agent.disconnect()
    assert worker.stop() == 0, worker.log()[-3000:]


def test_the_gateway_serves_tls_with_the_sites_broker_certificate(tmp_path):
    site = tmp_path / "site"
    out = atp("pki", "init", "--site", str(site), "--hostname", "127.0.0.1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    db = tmp_path / "fman.db"
    seed(db)
    tokens = tmp_path / "api-tokens"
    token = issue(tokens, "house-2", cwd=tmp_path)
    with serve(
        tmp_path, "--store", str(db), "--tokens", str(tokens), "--site-tls", str(site)
    ) as gw:
        host, port = gw.base.removeprefix("https://").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=str(site / "broker" / "ca.crt"))
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=20)
        conn.request("GET", f"{V1}/contract", headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        assert r.status == 200
        assert [c["id"] for c in json.loads(r.read())["body"]] == ["c-house-2"]
        # read-only without --config: a write is refused with a reason, nothing stored
        offer = protocol.to_builtins(samples.two_slot_offer(agent="house-2", now=NOW))
        conn.request(
            "POST", f"{V1}/flexoffer", body=json.dumps(offer),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        r = conn.getresponse()
        assert r.status == 405 and "--config" in json.loads(r.read())["reason"]
        conn.close()
        # plain HTTP to the TLS port gets no answer of the API
        plain = http.client.HTTPConnection(host, int(port), timeout=20)
        try:
            plain.request("GET", f"{V1}/contract")
            assert plain.getresponse().status == 400
        except (ConnectionError, http.client.HTTPException):
            pass
        finally:
            plain.close()
