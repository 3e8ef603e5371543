"""Gate latency of the market service: from a gate's closure to its result at a subscriber.

Each run starts a development Mosquitto's worth of traffic against a fresh ``atp fmar run``
(its own store, a simulated clock at 60x whose anchor this script sets, so the wall instant of
every closure is known exactly), sends the sell orders and requests of two gates, and times
the arrival of each gate's result on ``atp/v1/m/{market}/result`` against the closure:

- the *first* gate of a process also loads the solvers (OR-Tools, HiGHS), once per process;
- the *second* is the steady state of a running service: close in the store, read the book,
  clear it, record the result, publish it, the subscriber receives it.

Books: ``small`` is examples/markets/feeder-1.json (3 sell orders, 3 requests on 2 quarter
hours); ``1000`` is its sell orders repeated to 1,000 (each its own party) against its
requests. The service's own log line ("closure to result published") is printed beside it.

Run: ``.venv/bin/python bench/gate.py [--runs N] [--books small,1000]``. Times are wall
clock, noisy on a shared machine: the load average is printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from cloud.broker import Mosquitto
from protocol import MarketRequest, SellOrder, topics

ROOT = Path(__file__).resolve().parents[1]
ATP = str(Path(sys.executable).with_name("atp"))
BOOK = ROOT / "examples" / "markets" / "feeder-1.json"
D = 1_767_225_600  # the example's delivery start: gate 1 delivers it, gate 2 from D + 900
CLOSES = D - 900
SPEED = 60.0
LEAD_S = 600  # simulated seconds between the service's start and the first closure


def machine() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{os.cpu_count()} cores, Python {platform.python_version()}, load {load}"


def _shifted(entry: dict, dt: int) -> dict:
    e = json.loads(json.dumps(entry))
    o = e.get("offer")
    if o is None:
        e["start"] += dt
        return e
    for key in (
        "created_at",
        "acceptance_before",
        "assignment_before",
        "start_after",
        "start_before",
    ):
        if key in o:
            o[key] += dt
    o["default"]["start"] += dt
    return e


def orders(market: str, size: str, gate_dt: int, gate: str) -> list[tuple[str, msgspec.Struct]]:
    book = json.loads(BOOK.read_text())
    sells = book["sell"]
    count = len(sells) if size == "small" else int(size)
    out: list[tuple[str, msgspec.Struct]] = []
    for i in range(count):
        e = _shifted(sells[i % len(sells)], gate_dt)
        e["offer"]["id"] = f"{e['offer']['id']}.{i}"
        party = f"seller-{i}"
        out.append(
            (
                party,
                msgspec.convert({"market": market, "party": party, "gate": gate, **e}, SellOrder),
            )
        )
    for r in book["requests"]:
        e = _shifted(r, gate_dt)
        out.append(
            (
                "buyer-1",
                msgspec.convert(
                    {"market": market, "party": "buyer-1", "gate": gate, **e}, MarketRequest
                ),
            )
        )
    return out


def one_run(broker: Mosquitto, size: str, workdir: Path) -> tuple[list[float], list[float]]:
    market = f"bench-{uuid.uuid4().hex[:8]}"
    anchor = time.time() + 3.0
    sim_start = CLOSES - LEAD_S
    cfg = workdir / f"{market}.toml"
    cfg.write_text(
        f"""
[service]
id = "fmar-{market}"
broker = "{broker.url}"
store = "{workdir / (market + ".db")}"
calendar_gates = 2

[clock]
sim_start = "{sim_start}"
speed = {SPEED}
anchor = {anchor}

[markets.{market}]
kind = "two-sided"
nodes = ["feeder-1"]
resolution_s = 900
horizon_s = 1800
gate_period_s = 900
gate_lead_s = 900
time_limit_s = 10.0
sellers = ["seller-*"]
buyers = ["buyer-*"]
"""
    )
    arrived: dict[str, float] = {}
    answers: set[str] = set()
    lock = threading.Lock()

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        now = time.time()
        msg = protocol.decode(m.payload, check=False)
        with lock:
            if m.topic.endswith("/result"):
                arrived.setdefault(msg.body.gate, now)
            elif msg.kind == "market.answer":
                if not msg.body.accepted:
                    print(f"  refused: {msg.body.ref_id}: {msg.body.reasons}", file=sys.stderr)
                answers.add(f"{msg.body.gate}/{msg.body.ref_id}")

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{market}")
    c.on_message = on_message
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.subscribe([(f"atp/v1/m/{market}/result", 1), (f"atp/v1/m/{market}/ack/+", 1)])
    log_path = workdir / f"{market}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([ATP, "fmar", "run", "--config", str(cfg)], stdout=log, stderr=log)
    try:
        gates = [time.strftime("%Y%m%dT%H%MZ", time.gmtime(D + k * 900)) for k in (0, 1)]
        sent = [o for k, g in enumerate(gates) for o in orders(market, size, k * 900, g)]
        while time.time() < anchor:
            time.sleep(0.05)
        for party, o in sent:
            c.publish(topics.market_bid_topic(market, party), protocol.encode(o, ts=D), qos=1)
        deadline = anchor + LEAD_S / SPEED
        while len(answers) < len(sent):
            if time.time() > deadline:
                raise SystemExit(
                    f"only {len(answers)} of {len(sent)} orders answered before the closure"
                )
            time.sleep(0.02)
        closures = [anchor + (CLOSES + k * 900 - sim_start) / SPEED for k in (0, 1)]
        end = closures[1] + 120
        while len(arrived) < 2 and time.time() < end:
            time.sleep(0.02)
        if len(arrived) < 2:
            raise SystemExit(f"no result for every gate; see {log_path}")
        lat = [arrived[g] - t for g, t in zip(gates, closures, strict=True)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        c.loop_stop()
        c.disconnect()
    logged = [
        float(x)
        for x in re.findall(r"closure to result published ([0-9.]+) s", log_path.read_text())
    ]
    return lat, logged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--books", default="small,1000")
    args = ap.parse_args()
    print(f"gate latency, closure to result received; {machine()}")
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(workdir=Path(tmp) / "broker") as broker:
        for size in args.books.split(","):
            first, second, own = [], [], []
            for _ in range(args.runs):
                lat, logged = one_run(broker, size, Path(tmp))
                first.append(lat[0])
                second.append(lat[1])
                own += logged[1:]
            book = json.loads(BOOK.read_text())
            n = f"{len(book['sell']) if size == 'small' else int(size)} sell orders"
            med = statistics.median
            print(
                f"{n:>16}, {len(book['requests'])} requests: first gate of a process median "
                f"{med(first):.3f} s "
                f"(max {max(first):.3f}); later gates median {med(second):.3f} s "
                f"(max {max(second):.3f}); service's own figure {med(own):.3f} s "
                f"({args.runs} runs)"
            )


if __name__ == "__main__":
    main()
