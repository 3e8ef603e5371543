"""The market service, an agent trading directly and the DSO, over TLS with their provisioned
accounts on the production broker configuration.

``atp fmar run`` runs with the ``fmar`` account's credentials; agent-a sends a sell order
under its own name and gets FMAR's answer on its own ack topic; the same order sent by
agent-a in agent-b's name never reaches FMAR (agent-b's first answer is to its own order,
sent after the forged one); ``atp market congestion add`` registers congestion with the
``dso`` account's credentials, and ``prosumers`` lists each agent's own orders only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import msgspec

import protocol
from protocol import SellOrder, topics

ATP = str(Path(sys.executable).with_name("atp"))
BOOK = Path(__file__).parents[2] / "examples" / "markets" / "feeder-1.json"
D = 1_767_225_600


def test_fmar_takes_orders_and_dso_requests_from_their_own_accounts_only(
    connect, provisioned, prod_broker, tmp_path
):
    site = provisioned.site
    url = f"mqtts://localhost:{prod_broker.port}"
    fmar_dir = site.service_dir("fmar")
    config = tmp_path / "fmar.toml"
    config.write_text(
        f"""
[service]
id = "fmar"
broker = "{url}"
store = "{tmp_path / "fmar.db"}"
credentials_file = "{fmar_dir / "credentials"}"
ca_file = "{site.ca_cert}"

[clock]
sim_start = "{D - 1800}"
speed = 1.0

[markets.feeder-1]
nodes = ["feeder-1"]
horizon_s = 1800
gate_period_s = 1800
gate_lead_s = 900
sellers = ["agent-*"]
buyers = ["dso"]
"""
    )
    log = tmp_path / "fmar.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [ATP, "fmar", "run", "--config", str(config)], stdout=out, stderr=out
        )
    try:
        a, b = connect("agent-a"), connect("agent-b")
        ack_a = topics.market_answer_topic("feeder-1", "agent-a")
        ack_b = topics.market_answer_topic("feeder-1", "agent-b")
        # an agent subscribes to exactly the policy's filter: its answers of every market
        assert a.subscribe("atp/v1/m/+/ack/agent-a") == ["Granted QoS 1"]
        assert b.subscribe("atp/v1/m/+/ack/agent-b") == ["Granted QoS 1"]
        deadline = time.monotonic() + 20
        while "gate 20260101T0000Z open" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

        entry = json.loads(BOOK.read_text())["sell"][0]

        def order(party: str, oid: str) -> bytes:
            body = {"market": "feeder-1", "party": party, **entry}
            body["offer"] = {**entry["offer"], "id": oid}
            return protocol.encode(msgspec.convert(body, SellOrder), ts=D)

        def first_answer(client, topic: str) -> protocol.OrderAnswer:
            deadline = time.monotonic() + 20
            while True:
                assert time.monotonic() < deadline, log.read_text()
                for t, p in client.collect(1, timeout=0.5):
                    if t == topic:
                        return protocol.decode(p).body

        # in agent-b's name: the broker drops it, FMAR never hears of it ...
        a.publish(topics.market_bid_topic("feeder-1", "agent-b"), order("agent-b", "forged.1"))
        a.publish(topics.market_bid_topic("feeder-1", "agent-a"), order("agent-a", "mine.1"))
        answer = first_answer(a, ack_a)
        assert (answer.ref_id, answer.accepted) == ("mine.1", True), answer
        # ... so agent-b's first answer is to its own order, sent after the forged one
        b.publish(topics.market_bid_topic("feeder-1", "agent-b"), order("agent-b", "b.1"))
        answer = first_answer(b, ack_b)
        assert (answer.ref_id, answer.accepted) == ("b.1", True), answer

        dso_dir = site.service_dir("dso")
        common = [
            "--broker", url, "--credentials", str(dso_dir / "credentials"),
            "--ca-file", str(site.ca_cert), "--json",
        ]  # fmt: skip
        reg = subprocess.run(
            [ATP, "market", "congestion", "add", "feeder-1", "--id", "c1", "--start", str(D),
             "--kwh", "-1,-1", "--limit", "0.3", *common],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert reg.returncode == 0, reg.stderr + log.read_text()
        assert json.loads(reg.stdout)["stored"] == "stored"
        found = subprocess.run(
            [ATP, "market", "congestion", "prosumers", "feeder-1", *common],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
        held = {
            p["party"]: [o["offer_id"] for o in p["offers"]]
            for p in json.loads(found.stdout)["prosumers"]
        }
        assert held == {"agent-a": ["mine.1"], "agent-b": ["b.1"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text()
