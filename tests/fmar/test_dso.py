"""Who may trade, the DSO interface, and the operator's control, against ``atp fmar run``.

The service runs as a process on a real broker (the development one: the broker-side ACL
is tests/security's); the DSO speaks to it with ``atp market congestion`` and its client
module, exactly as documented. What is checked:

- the party of an order is the last level of its topic: an order whose body names another
  party, and one from an account the market does not list, are refused with reasons;
- a DSO's congestion registration becomes a request in the next gate, the DSO can list the
  prosumers with open sell orders at its node, and its summary shows what the gate's
  result says it bought;
- ``atp market close`` makes the market refuse orders saying so, ``open`` undoes it;
- a change of fmar.toml applies from the next gate: the open gate keeps its parameters.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import protocol
from cloud.broker import Mosquitto
from cloud.fmar.dso_client import ask
from protocol import SellOrder, topics

from .test_service import ATP, BOOK, CLOSES, D, Fmar, Listener

CONGESTION = Path(__file__).parents[2] / "examples" / "dso" / "congestion.request.json"


def _config(
    tmp_path: Path, broker: Mosquitto, market: str, sim_start: int, speed: float, extra: str = ""
) -> Path:
    path = tmp_path / "fmar.toml"
    path.write_text(
        f"""
[service]
id = "fmar-{market}"
broker = "{broker.url}"
store = "{tmp_path / "fmar.db"}"
calendar_gates = 2

[clock]
sim_start = "{sim_start}"
speed = {speed}

[markets.{market}]
kind = "two-sided"
nodes = ["feeder-1"]
resolution_s = 900
horizon_s = 1800
gate_period_s = 1800
gate_lead_s = 900
time_limit_s = 5.0
sellers = ["seller-*"]
buyers = ["dso"]
{extra}"""
    )
    return path


def _sell_orders(market: str) -> list[SellOrder]:
    book = json.loads(BOOK.read_text())
    assert book["sell"]
    return [
        msgspec.convert({"market": market, "party": f"seller-{i}", **o}, SellOrder)
        for i, o in enumerate(book["sell"])
    ]


def _answers(listener: Listener, market: str) -> dict[str, protocol.OrderAnswer]:
    return {
        m.body.ref_id: m.body
        for m in listener.bodies("")
        if m.kind == "market.answer" and m.body.market == market
    }


def _atp(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([ATP, *args], capture_output=True, text=True, timeout=60)
    assert (out.returncode == 0) == ok, out.stderr
    assert "Traceback" not in out.stderr
    return out


@pytest.fixture
def market() -> str:
    return f"dso-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def listener(broker: Mosquitto, market: str) -> Iterator[Listener]:
    lst = Listener(broker, [f"atp/v1/m/{market}/#"])
    yield lst
    lst.close()


def test_a_dso_registers_congestion_that_trades_in_the_next_gate_and_sums_up_its_trades(
    tmp_path: Path, broker: Mosquitto, market: str, listener: Listener
):
    # four simulated minutes before the closure at 30x: the gate closes ~8 s after start
    svc = Fmar(_config(tmp_path, broker, market, CLOSES - 240, 30.0), tmp_path / "fmar.log")
    svc.start()
    dso = ("--broker", broker.url, "--json")
    try:
        listener.wait_for("the gate calendar", lambda: listener.bodies("/gate"))
        gate = listener.bodies("/gate")[0].body.current
        assert gate.delivery_start == D

        sells = _sell_orders(market)
        for o in sells:
            listener.publish(topics.market_bid_topic(market, o.party), protocol.encode(o, ts=D))
        # an order naming another party than its topic's, and one from an account the
        # market does not list: both refused, with reasons, to the sender's own topic
        forged = msgspec.structs.replace(
            sells[0], offer=msgspec.structs.replace(sells[0].offer, id="forged.1")
        )
        listener.publish(topics.market_bid_topic(market, "seller-9"), protocol.encode(forged, ts=D))
        intruder = msgspec.structs.replace(
            sells[0],
            party="intruder",
            offer=msgspec.structs.replace(sells[0].offer, id="intruder.1"),
        )
        listener.publish(
            topics.market_bid_topic(market, "intruder"), protocol.encode(intruder, ts=D)
        )

        # the DSO's registration, from the example file: the command line over MQTT
        out = _atp("market", "congestion", "add", market, "--file", str(CONGESTION), *dso)
        reg = json.loads(out.stdout)
        params = json.loads(CONGESTION.read_text())["params"]
        assert (reg["id"], reg["stored"], reg["next_gate"]) == (params["id"], "stored", gate.gate)
        assert reg["node"] == "feeder-1" and reg["kwh"] == params["kwh"]
        again = json.loads(
            _atp("market", "congestion", "add", market, "--file", str(CONGESTION), *dso).stdout
        )
        assert again["stored"] == "again"
        # refused with the field named: a node the market does not have, a used id
        bad = _atp(
            "market", "congestion", "add", market, "--id", "c-2", "--node", "elsewhere",
            "--start", str(D), "--kwh", "-1", "--limit", "0.3", "--broker", broker.url, ok=False,
        )  # fmt: skip
        assert "params.node" in bad.stderr and "elsewhere" in bad.stderr
        clash = _atp(
            "market", "congestion", "add", market, "--id", params["id"], "--start", str(D),
            "--kwh", "-9", "--limit", "none", "--broker", broker.url, ok=False,
        )  # fmt: skip
        assert "registered already" in clash.stderr

        ids = {o.offer.id for o in sells} | {"forged.1", "intruder.1"}
        listener.wait_for("every answer", lambda: ids <= set(_answers(listener, market)))
        answers = _answers(listener, market)
        assert all(answers[o.offer.id].accepted for o in sells)
        assert [(r.code, r.field) for r in answers["forged.1"].reasons] == [("party", "party")]
        assert [(r.code, r.field) for r in answers["intruder.1"].reasons] == [
            ("forbidden", "party")
        ]
        # each answer went to the topic of the party that sent it
        on = {m.body.ref_id for m in listener.bodies("/ack/seller-9")}
        assert on == {"forged.1"}
        assert {m.body.ref_id for m in listener.bodies("/ack/intruder")} == {"intruder.1"}

        # the prosumers with open sell orders at the node
        found = ask("prosumers", {"market": market, "node": "feeder-1"}, url=broker.url)
        assert found.status == "ok", found.reason
        parties = {p["party"]: p["offers"] for p in found.body["prosumers"]}
        assert parties.keys() == {o.party for o in sells}
        assert {o["offer_id"] for offers in parties.values() for o in offers} == {
            o.offer.id for o in sells
        }
        unknown = ask("prosumers", {"market": market, "node": "nowhere"}, url=broker.url)
        assert unknown.status == "error" and "params.node" in unknown.reason

        listener.wait_for("the result", lambda: listener.bodies("/result"), timeout=60)
        result = listener.bodies("/result")[0].body
        assert result.gate == gate.gate
        line = next(r for r in result.requests if r.id == f"congestion.dso.{params['id']}")
        assert any(line.accepted_kwh), "the example's sellers cover part of the congestion"

        summary = json.loads(_atp("market", "congestion", "summary", market, *dso).stdout)
        (traded,) = summary["registrations"]
        assert traded["id"] == params["id"]
        assert [g["gate"] for g in traded["gates"]] == [gate.gate]
        assert traded["gates"][0]["accepted_kwh"] == pytest.approx(line.accepted_kwh)
        assert traded["paid_eur"] == pytest.approx(line.paid_eur)
        assert summary["accepted_kwh"] == pytest.approx(sum(abs(v) for v in line.accepted_kwh))
        listed = json.loads(_atp("market", "congestion", "list", market, *dso).stdout)
        assert [(r["id"], r["cleared_gates"]) for r in listed["registrations"]] == [
            (params["id"], [gate.gate])
        ]
    finally:
        svc.stop()
    assert "Traceback" not in svc.log()


def test_a_closed_market_refuses_orders_and_a_new_config_applies_from_the_next_gate(
    tmp_path: Path, broker: Mosquitto, market: str, listener: Listener
):
    # the real pace: the gate stays open through the test
    config = _config(tmp_path, broker, market, CLOSES - 600, 1.0)
    svc = Fmar(config, tmp_path / "fmar.log").start()
    store = ("--store", str(tmp_path / "fmar.db"))
    try:
        listener.wait_for("the gate calendar", lambda: listener.bodies("/gate"))
        notice = listener.bodies("/gate")[0].body
        (o, *_) = _sell_orders(market)

        def send(oid: str, gate: str = "", later_s: int = 0) -> protocol.OrderAnswer:
            f = o.offer
            offer = msgspec.structs.replace(
                f,
                id=oid,
                created_at=f.created_at + later_s,
                acceptance_before=f.acceptance_before + later_s,
                assignment_before=f.assignment_before + later_s,
                start_after=f.start_after + later_s,
                start_before=f.start_before + later_s,
                default=msgspec.structs.replace(f.default, start=f.default.start + later_s),
            )
            order = msgspec.structs.replace(o, gate=gate, offer=offer)
            listener.publish(topics.market_bid_topic(market, o.party), protocol.encode(order, ts=D))
            listener.wait_for(f"the answer to {oid}", lambda: oid in _answers(listener, market))
            return _answers(listener, market)[oid]

        assert send("before.close").accepted
        closed = json.loads(
            _atp("market", "close", market, "--note", "maintenance", *store, "--json").stdout
        )
        assert closed == {"market": market, "state": "closed", "was": "open", "note": "maintenance"}
        refused = send("while.closed")
        assert not refused.accepted
        assert [r.code for r in refused.reasons] == ["closed"]
        assert "closed by its operator" in refused.reasons[0].message
        assert "maintenance" in refused.reasons[0].message
        listener.wait_for(
            "the calendar saying closed",
            lambda: any(m.body.state == "closed" for m in listener.bodies("/gate")),
        )
        # a DSO is told too
        reg = {"market": market, "id": "c-1", "start": D, "kwh": [-1.0], "limit_eur_per_kwh": 0.3}
        told = ask("congestion", reg, url=broker.url)
        assert told.status == "error" and "closed by its operator" in told.reason
        _atp("market", "open", market, *store)
        assert send("after.open").accepted

        # a bigger minimum order size: the open gate keeps its parameters, the next one
        # (its first order creates it) takes the new ones
        # (changed as an operator does, through `atp market set`)
        _atp("market", "set", market, "min_order_kwh=100", "--config", str(config))
        text = config.read_text()
        assert "min_order_kwh = 100.0" in text
        listener.wait_for("the new configuration read", lambda: "read again" in svc.log())
        assert send("same.gate").accepted
        nxt = notice.upcoming[0].gate
        late = send("next.gate", gate=nxt, later_s=1800)
        assert not late.accepted and [r.code for r in late.reasons] == ["size"]
        shown = json.loads(_atp("market", "show", market, *store, "--json").stdout)
        assert shown["config"]["min_order_kwh"] == 100.0
        # a broken file is refused and the running configuration stays
        config.write_text(text.replace("min_order_kwh = 100.0", "min_order_kwh = -1"))
        listener.wait_for("the broken file refused", lambda: "is refused" in svc.log())
        assert send("still.taken").accepted
    finally:
        svc.stop()
    assert "Traceback" not in svc.log()
