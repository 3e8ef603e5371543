"""An agent with a ``[market]`` sells its direct offers on FMAR itself, end to end.

``foa run`` and ``atp fmar run`` as their users start them, on the real broker and one
simulated clock. The agent's order leaves its outbox only when FMAR's own answer arrives:
sent while FMAR is not running (the broker takes it and nobody reads it), it is still in the
outbox, sent again, until FMAR, started later, stores it and answers; the offer is then
``accepted``, and FMAR's book holds it with the device's asks up and down as configured.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import protocol
from agent.core import Core, MarketRoute, OfferSource
from agent.drivers.base import Measurement
from agent.store import Store
from cloud.broker import Mosquitto
from protocol import OrderAnswer, Reason, topics
from tests.agent.helpers import T0, StepClock
from tests.agent.plugins import CycleOffer
from tests.waiting import wait_for

FOA = str(Path(sys.executable).with_name("foa"))
ATP = str(Path(sys.executable).with_name("atp"))
#: Delivery start of the gate the offer is for (2026-01-01T00:00Z); the gate closes 900 s
#: before it. Both clocks start 45 simulated minutes before it at 30x: 60 wall s to closure.
D = 1_767_225_600
START = D - 2700
SPEED = 30


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the tables are not made yet
        return []
    finally:
        conn.close()


def _write(tmp_path: Path, broker: Mosquitto, market: str, anchor: float) -> tuple[Path, Path]:
    foa = tmp_path / "foa.toml"
    foa.write_text(
        f"""
[agent]
id = "plant-{market}"
store = "foa.db"
grid_node = "feeder-1"

[broker]
url = "{broker.url}"
answer_timeout_s = 1
answer_backoff_max_s = 2

[clock]
start = {START}
speed = {SPEED}
anchor = {anchor}

[market]
id = "{market}"
account = "plant-1"

[devices.hp]
driver = "sim"
model = "heat_pump"
generator = "heat_pump"
seed = 1
horizon_h = 1
lead_s = 900
trading_mode = "direct"
ask_up_eur_per_kwh = 0.05
ask_down_eur_per_kwh = 0.08
"""
    )
    fmar = tmp_path / "fmar.toml"
    fmar.write_text(
        f"""
[service]
id = "fmar-{market}"
broker = "{broker.url}"
store = "{tmp_path / "fmar.db"}"

[clock]
sim_start = "{START}"
speed = {SPEED}
anchor = {anchor}

[markets.{market}]
kind = "two-sided"
nodes = ["feeder-1"]
resolution_s = 900
horizon_s = 3600
gate_period_s = 3600
gate_lead_s = 900
sellers = ["plant-1"]
"""
    )
    return foa, fmar


def test_a_sell_order_stays_in_the_outbox_until_fmar_answers_it(tmp_path, broker):
    market = f"m-{uuid.uuid4().hex[:8]}"
    foa_toml, fmar_toml = _write(tmp_path, broker, market, time.time() + 1)
    check = subprocess.run(
        [FOA, "config", "check", str(foa_toml)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    agent_db, fmar_db = tmp_path / "foa.db", tmp_path / "fmar.db"
    log = (tmp_path / "procs.log").open("w")
    agent = subprocess.Popen([FOA, "run", "-c", str(foa_toml)], stdout=log, stderr=log)
    fmar = None
    try:
        # sent and taken by the broker, but nobody answered: still in the outbox
        sent = "SELECT ref, attempts FROM outbox WHERE kind = 'market.sell' AND due IS NOT NULL"
        wait_for(lambda: _rows(agent_db, sent), timeout=30, what="the order sent, unanswered")
        ((offer_id, _),) = _rows(agent_db, sent)
        states = _rows(agent_db, f"SELECT state FROM offers WHERE id = '{offer_id}'")
        assert states == [("offered",)]

        fmar_run = [ATP, "fmar", "run", "--config", str(fmar_toml)]
        fmar = subprocess.Popen(fmar_run, stdout=log, stderr=log)
        wait_for(
            lambda: (
                _rows(agent_db, f"SELECT state FROM offers WHERE id = '{offer_id}'")
                == [("accepted",)]
            ),
            timeout=40,
            what="the offer accepted on FMAR's answer",
        )
        assert _rows(agent_db, "SELECT id FROM outbox WHERE kind = 'market.sell'") == []
        assert _rows(agent_db, "SELECT * FROM dead_letters") == []

        orders = _rows(fmar_db, "SELECT id, party, gate, entry FROM market_orders")
        assert [(o[0], o[1], o[2]) for o in orders] == [(offer_id, "plant-1", "20260101T0000Z")]
        entry = json.loads(orders[0][3])
        assert entry["ask_up_eur_per_kwh"] == 0.05 and entry["ask_down_eur_per_kwh"] == 0.08
        assert entry["offer"]["mode"] == "direct" and entry["offer"]["grid_node"] == "feeder-1"
    finally:
        for proc in (agent, fmar):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        log.close()


def test_a_refused_order_rejects_the_offer_and_leaves_the_outbox(tmp_path):
    """The core's side, on a real store: the order goes to the market's bid topic with the
    route's asks, FMAR's refusal takes it out of the outbox, rejects the offer with FMAR's
    reasons and puts its default in force; a device that leaves sends FMAR no withdrawal
    (it takes none)."""
    store = Store(path=tmp_path / "core.db", durability="normal")
    clock = StepClock(T0 + 60)
    gone = tmp_path / "gone"
    gen = CycleOffer({"slots": 2, "cycle_s": 3600, "gone_file": str(gone)})
    route = MarketRoute(market="m1", account="plant-1", asks=(0.05, 0.08))
    core = Core(
        agent_id="a1",
        store=store,
        clock=clock,
        sources=[OfferSource(device="d1", generator=gen, market=route)],
    )
    try:
        m = Measurement(ts=T0, power_w=0.0, energy_kwh=0.0)
        core.refresh(int(clock.now()), {"d1": m})
        rows = store.outbox_after(0, 10)
        assert [(r.topic, r.kind) for r in rows] == [("atp/v1/m/m1/bid/plant-1", "market.sell")]
        order = protocol.decode(rows[0].payload, expect="market.sell").body
        assert (order.party, order.ask_up_eur_per_kwh, order.ask_down_eur_per_kwh) == (
            "plant-1",
            0.05,
            0.08,
        )
        refusal = OrderAnswer(
            market="m1",
            ref_kind="market.sell",
            ref_id=order.offer.id,
            accepted=False,
            reasons=[Reason(code="closed", message="gate 20260101T0100Z is closed")],
        )
        core.handle(
            topics.market_answer_topic("m1", "plant-1"), protocol.encode(refusal, ts=T0 + 60)
        )
        assert store.outbox_after(0, 10) == []
        stored = store.offer(order.offer.id)
        assert stored is not None and stored.state == "rejected"
        assert core.plans(order.offer.default.start)["d1"].source == "default"
        # the device leaves while a second order is out: withdrawn here, nothing sent
        clock.t += 3600
        core.refresh(int(clock.now()), {"d1": m})
        second = [r for r in store.outbox_after(0, 10) if r.kind == "market.sell"]
        assert len(second) == 1 and second[0].ref != order.offer.id
        gone.write_text("")
        core.refresh(int(clock.now()) + 60, {"d1": m})
        withdrawn = store.offer(second[0].ref)
        assert withdrawn is not None and withdrawn.state == "withdrawn"
        assert store.outbox_kinds() == {"market.sell": 1}
    finally:
        store.close()
