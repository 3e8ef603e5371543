"""``atp fmar run`` against the real broker: a gate cycle on a fast simulated clock.

Sellers and buyers publish the orders of examples/markets/feeder-1.json; FMAR answers each,
closes the gate, clears it and publishes a result that must equal what ``atp market clear``
prints for the same book. Bad orders (malformed, an unknown market) are refused with reasons
and disturb nothing. A service SIGKILLed in mid-clearing and started again clears that gate
once.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from cloud.broker import Mosquitto
from protocol import MarketRequest, SellOrder, topics

ATP = str(Path(sys.executable).with_name("atp"))
BOOK = Path(__file__).parents[2] / "examples" / "markets" / "feeder-1.json"
#: The book's delivery start; the gate delivering it closes 900 s before.
D = 1_767_225_600
CLOSES = D - 900


class Listener:
    """A test's own MQTT client: everything on the topics it subscribes, in order."""

    def __init__(self, broker: Mosquitto, filters: list[str]) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self._ready.set()
        c.connect(broker.host, broker.port)
        c.loop_start()
        c.subscribe([(f, 1) for f in filters])
        assert self._ready.wait(10)
        self.client = c

    def _on_message(self, client: mqtt.Client, userdata: object, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((m.topic, m.payload, bool(m.retain)))

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def bodies(self, suffix: str) -> list[protocol.Message]:
        with self._lock:
            found = [p for t, p, _ in self.messages if t.endswith(suffix) and "/bid/" not in t]
        return [protocol.decode(p) for p in found]

    def wait_for(self, what: str, cond: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Fmar:
    """One ``atp fmar run`` process, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log_path = config, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Fmar:
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [ATP, "fmar", "run", "--config", str(self.config)], stdout=log, stderr=log
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _config(tmp_path: Path, broker: Mosquitto, market: str, sim_start: int, speed: float) -> Path:
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
buyers = ["buyer-*"]
"""
    )
    return path


def _orders(market: str) -> list[msgspec.Struct]:
    book = json.loads(BOOK.read_text())
    assert book["sell"] and book["requests"]
    sell = [
        msgspec.convert({"market": market, "party": f"seller-{i}", **o}, SellOrder)
        for i, o in enumerate(book["sell"])
    ]
    reqs = [
        msgspec.convert({"market": market, "party": "buyer-1", **r}, MarketRequest)
        for r in book["requests"]
    ]
    return [*sell, *reqs]


def _offline_clear(tmp_path: Path) -> dict:
    """``atp market clear`` on the book the gate holds: the example's orders on the gate's
    horizon (two quarter hours from D)."""
    book = json.loads(BOOK.read_text())
    book["market"] = {"start": D, "slots": 2, "resolution_s": 900}
    path = tmp_path / "gate-book.json"
    path.write_text(json.dumps(book))
    out = subprocess.run(
        [ATP, "market", "clear", "--book", str(path), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


@pytest.fixture
def market() -> str:
    return f"feeder-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def listener(broker: Mosquitto, market: str) -> Iterator[Listener]:
    lst = Listener(broker, [f"atp/v1/m/{market}/#", "atp/v1/m/nowhere/#"])
    yield lst
    lst.close()


def _send_all(listener: Listener, market: str) -> list[msgspec.Struct]:
    orders = _orders(market)
    for o in orders:
        listener.publish(
            topics.market_bid_topic(market, o.party), protocol.encode(o, ts=CLOSES - 60)
        )
    return orders


def _answers(listener: Listener, market: str) -> dict[str, protocol.OrderAnswer]:
    """The last answer to each order id on ``market``."""
    return {
        m.body.ref_id: m.body
        for m in listener.bodies("")
        if m.kind == "market.answer" and m.body.market == market
    }


def test_a_gate_takes_orders_refuses_bad_ones_and_clears_as_the_offline_command(
    tmp_path: Path, broker: Mosquitto, market: str, listener: Listener
):
    # two simulated minutes before the closure, at 30x: the gate closes ~4 s after start
    svc = Fmar(_config(tmp_path, broker, market, CLOSES - 120, 30.0), tmp_path / "fmar.log")
    svc.start()
    try:
        listener.wait_for("the retained gate calendar", lambda: listener.bodies("/gate"))
        notice = listener.bodies("/gate")[0].body
        assert notice.current.delivery_start == D and notice.current.closes_at == CLOSES
        assert notice.state == "open" and len(notice.upcoming) == 2

        orders = _send_all(listener, market)
        # a malformed order (a negative ask), one for a market FMAR does not run, garbage
        good = orders[0]
        bad = msgspec.structs.replace(
            good, ask_up_eur_per_kwh=-1.0, offer=msgspec.structs.replace(good.offer, id="bad.1")
        )
        to_good = topics.market_bid_topic(market, good.party)
        listener.publish(to_good, protocol.encode(bad, ts=CLOSES))
        stray = msgspec.structs.replace(good, market="nowhere")
        listener.publish(
            topics.market_bid_topic("nowhere", good.party), protocol.encode(stray, ts=CLOSES)
        )
        listener.publish(to_good, b"\x00not msgpack")
        # the same order again (a resend): answered again, stored once
        listener.publish(to_good, protocol.encode(good, ts=CLOSES))

        ids = {getattr(o, "id", None) or o.offer.id for o in orders}
        listener.wait_for(
            "an answer to every order",
            lambda: (
                ids | {"bad.1"} <= set(_answers(listener, market))
                and any(
                    m.kind == "market.answer"
                    for m in listener.bodies("/ack/seller-0")
                    if m.body.market == "nowhere"
                )
            ),
        )
        answers = _answers(listener, market)
        assert all(answers[i].accepted and answers[i].gate for i in ids), answers
        refused = answers["bad.1"]
        assert not refused.accepted
        assert [r.field for r in refused.reasons] == ["ask_up_eur_per_kwh"]
        stray_answer = next(
            m.body
            for m in listener.bodies("")
            if m.kind == "market.answer" and m.body.market == "nowhere"
        )
        assert not stray_answer.accepted and stray_answer.reasons[0].code == "market"
        assert "unknown market" in stray_answer.reasons[0].message
        # answers go to each sender's own topic
        assert all(
            m.body.ref_id == good.offer.id
            for m in listener.bodies(f"/ack/{good.party}")
            if m.body.market == market and m.body.accepted
        )

        listener.wait_for("the result", lambda: listener.bodies("/result"), timeout=60)
        result = listener.bodies("/result")[0].body
        assert result.gate == notice.current.gate
        offline = _offline_clear(tmp_path)
        assert result.status == offline["status"]
        assert result.welfare_eur == pytest.approx(offline["welfare_eur"], abs=1e-6)
        assert set(result.prices) == set(offline["prices"])
        for node, prices in offline["prices"].items():
            assert result.prices[node] == pytest.approx(prices)
        assert offline["awards"] and offline["requests"]
        assert [
            (a.offer_id, a.start, a.profile, a.deviation_kwh, a.paid_eur) for a in result.awards
        ] == [
            (
                a["offer_id"],
                a["start"],
                a["profile"],
                pytest.approx(a["deviation_kwh"]),
                pytest.approx(a["paid_eur"]),
            )
            for a in offline["awards"]
        ]
        assert [(r.id, r.accepted_kwh, r.paid_eur) for r in result.requests] == [
            (r["id"], pytest.approx(r["accepted_kwh"]), pytest.approx(r["paid_eur"]))
            for r in offline["requests"]
        ]
        listener.wait_for(
            "the next gate on the calendar",
            lambda: any(
                m.body.current.gate != notice.current.gate for m in listener.bodies("/gate")
            ),
        )
    finally:
        svc.stop()
    assert "Traceback" not in svc.log()
    _check_operator_commands(tmp_path, market, result)


def _atp(*args: str) -> str:
    out = subprocess.run([ATP, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _check_operator_commands(tmp_path: Path, market: str, result: protocol.MarketResult) -> None:
    """``atp market list|show|book|results`` read what the service stored: the gate's book
    cleared offline gives the published result again."""
    store = ("--store", str(tmp_path / "fmar.db"))
    listed = json.loads(_atp("market", "list", *store, "--json"))
    assert [(m["id"], m["cleared"]) for m in listed] == [(market, 1)]
    shown = json.loads(_atp("market", "show", market, *store, "--json"))
    assert shown["config"]["nodes"] == ["feeder-1"]
    cleared = [g for g in shown["gates"] if g["state"] == "cleared"]
    assert [(g["gate"], g["orders"]) for g in cleared] == [(result.gate, 6)]
    book = tmp_path / "stored-book.json"
    book.write_text(_atp("market", "book", market, "--gate", result.gate, *store))
    again = json.loads(_atp("market", "clear", "--book", str(book), "--json"))
    assert again["welfare_eur"] == pytest.approx(result.welfare_eur, abs=1e-6)
    assert [a["offer_id"] for a in again["awards"]] == [a.offer_id for a in result.awards]
    rows = json.loads(_atp("market", "results", market, *store, "--json"))
    assert [(r["gate"], r["published"]) for r in rows] == [(result.gate, True)]
    full = json.loads(_atp("market", "results", market, "--gate", result.gate, *store))
    assert full["welfare_eur"] == result.welfare_eur
    assert "cleared" in _atp("market", "show", market, *store)
    refused = subprocess.run(
        [ATP, "market", "show", "nowhere", *store], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "no market 'nowhere'" in refused.stderr
    assert "Traceback" not in refused.stderr


def _store_rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_service_killed_while_clearing_clears_that_gate_once_after_its_restart(
    tmp_path: Path, broker: Mosquitto, market: str, listener: Listener
):
    config = _config(tmp_path, broker, market, CLOSES - 120, 30.0)
    svc = Fmar(config, tmp_path / "fmar.log").start()
    try:
        listener.wait_for("the gate calendar", lambda: listener.bodies("/gate"))
        orders = _send_all(listener, market)
        listener.wait_for("every answer", lambda: len(_answers(listener, market)) == len(orders))
        # the service logs the closure once the gate is closed in the store, and only then
        # loads the solvers (most of a second): it is killed in that window
        listener.wait_for("the closure", lambda: "closed: clearing" in svc.log(), timeout=60)
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGKILL)
        svc.proc.wait()
    finally:
        svc.stop()
    db = tmp_path / "fmar.db"
    gate = listener.bodies("/gate")[0].body.current.gate
    assert _store_rows(db, f"SELECT state FROM market_gates WHERE gate = '{gate}'") == [
        ("closed",)
    ], "the kill did not land in mid-clearing"
    assert _store_rows(db, "SELECT COUNT(*) FROM market_results") == [(0,)]
    assert listener.bodies("/result") == []

    svc = Fmar(config, tmp_path / "fmar.log").start()
    try:
        listener.wait_for("the result", lambda: listener.bodies("/result"), timeout=60)
        listener.wait_for(
            "the result marked published",
            lambda: _store_rows(db, "SELECT published FROM market_results") == [(1,)],
        )
    finally:
        svc.stop()
    # a fence: once it arrives, everything the service published before it has arrived
    fence = protocol.encode(
        protocol.MarketResult(
            market=market,
            gate="fence",
            status="optimal",
            welfare_eur=0,
            delivery_start=D,
            resolution_s=900,
        ),
        ts=D,
    )
    listener.publish(topics.market_topic(market, "result"), fence)
    listener.wait_for(
        "the fence", lambda: any(m.body.gate == "fence" for m in listener.bodies("/result"))
    )
    results = [m.body for m in listener.bodies("/result") if m.body.gate != "fence"]
    assert [r.gate for r in results] == [gate]
    assert results[0].awards
    assert _store_rows(db, "SELECT gate, state FROM market_gates WHERE state = 'cleared'") == [
        (gate, "cleared")
    ]
