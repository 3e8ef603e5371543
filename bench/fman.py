"""FMAN ingest throughput and offer-to-ack latency, against a bare paho subscriber.

Prints, each as the median of ``--runs`` runs on a fresh broker:

1. the rate of a bare paho-mqtt QoS 1 subscriber (shared subscription, acknowledges on
   receipt, does nothing else): the ceiling of the pipeline on this machine;
2. the rate of one ``atp fman run`` worker: decode, validate, acceptance control, one SQLite
   transaction per batch, PUBACK after the commit, an ack message back to every agent;
3. the same with two workers on one database;
4. the latency from an offer's publication to its ack at the agent, p50 and p99, with offers
   published at a steady 1,000 per second.

Throughput is measured two ways. *Live*: the consumer runs while the publisher publishes as
fast as it can, as in the reference figures of ``DESIGN.md``; on two cores the publisher and
the broker take most of the machine, so this is the pipeline's rate. *Backlog drain*: the
publisher first fills the consumers' persistent sessions in the broker, then the consumers
start and drain them with the machine to themselves and the broker; this is the consumers'
own capacity, and it is where a second worker can show. Publisher, broker, subscriber and
workers are separate processes. Workers run with ``--ingest-only``: the figure is ingest.

    .venv/bin/python bench/fman.py            # all of it, about two minutes
    .venv/bin/python bench/fman.py --quick    # one run each, fewer messages
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import protocol  # noqa: E402
from cloud.broker import Mosquitto  # noqa: E402
from protocol import topics  # noqa: E402
from protocol.samples import two_slot_offer  # noqa: E402

AGENTS = 1000
PY = sys.executable
ATP = str(Path(sys.executable).with_name("atp"))


def _client(client_id: str, **kw) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, **kw)


def make_offers(n: int, now: int, tag: str) -> list[tuple[str, bytes]]:
    """``n`` distinct, valid offers from ``AGENTS`` agents, encoded: ``(topic, payload)``."""
    out = []
    base = two_slot_offer(agent="x", now=now)
    for i in range(n):
        agent = f"{tag}-{i % AGENTS}"
        offer = protocol.from_builtins(
            {
                **protocol.to_builtins(base),
                "id": f"{agent}.o{i}",
                "issuer": agent,
                "acceptance_before": now + 3600,
                "assignment_before": now + 3600,
            },
            protocol.FlexOffer,
            check=False,
        )
        out.append((topics.agent_topic(agent, "offer"), protocol.encode(offer, ts=now)))
    return out


# -- child processes ----------------------------------------------------------------------


def publisher_main(host: str, port: int, n: int, rate: float, tag: str, out: str) -> None:
    """Publish ``n`` offers as fast as possible (``rate`` 0) or at ``rate`` per second;
    write each offer's publication time to ``out`` (JSON) for the latency measurement."""
    now = int(time.time()) // 900 * 900
    msgs = make_offers(n, now, tag)
    c = _client(f"bench-pub-{tag}")
    c.max_inflight_messages_set(1000)
    slots = threading.BoundedSemaphore(5000)
    c.on_publish = lambda *a: slots.release()
    c.connect(host, port)
    c.loop_start()
    sent = {}
    t0 = time.perf_counter()
    for i, (topic, payload) in enumerate(msgs):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        slots.acquire()
        sent[i] = time.time()
        c.publish(topic, payload, qos=1)
    for _ in range(5000):
        slots.acquire()
    c.loop_stop()
    c.disconnect()
    Path(out).write_text(json.dumps(sent))


def bare_main(host: str, port: int, n: int, out: str) -> None:
    """Bare paho QoS 1 subscriber: count messages, note the first and last arrival. With
    ``n == 0`` it only creates its persistent session and leaves (the backlog mode)."""
    done = threading.Event()
    times: list[float] = []

    def on_message(c, u, m) -> None:
        times.append(time.time())
        if len(times) >= n:
            done.set()

    c = _client("bench-bare")
    c.on_message = on_message
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect(host, port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe(topics.shared("bare", topics.all_agents("offer")), qos=1)
    subscribed.wait(10)
    Path(out + ".ready").write_text("ok")
    if n == 0:
        c.disconnect()
        c.loop_stop()
        return
    done.wait(600)
    c.loop_stop()
    Path(out).write_text(json.dumps({"first": times[0], "last": times[-1], "n": len(times)}))


# -- measurements -------------------------------------------------------------------------


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([PY, __file__, *args], cwd=REPO)


def _wait_file(path: Path, timeout: float) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if time.time() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)


def _publish(b: Mosquitto, n: int, tmp: str, tag: str) -> None:
    _spawn("--publish", b.host, str(b.port), str(n), "0", tag, str(Path(tmp, tag))).wait()


def bare_rate(n: int, backlog: bool) -> float:
    """Live: the subscriber runs while the publisher publishes. Backlog: the publisher fills
    the subscriber's persistent session first, then the subscriber drains it alone."""
    with Mosquitto() as b, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "bare.json")
        if backlog:
            _spawn("--bare", b.host, str(b.port), "0", str(Path(tmp, "prime"))).wait()
            _publish(b, n, tmp, "bare")
        sub = _spawn("--bare", b.host, str(b.port), str(n), str(out))
        if not backlog:
            _wait_file(Path(str(out) + ".ready"), 20)
            _publish(b, n, tmp, "bare")
        sub.wait(timeout=300)
        r = json.loads(out.read_text())
        return r["n"] / (r["last"] - r["first"])


def _start_workers(
    b: Mosquitto, db: Path, count: int, tmp: str, fresh: bool = True
) -> list[subprocess.Popen]:
    if not fresh:
        with sqlite3.connect(db) as c:
            c.execute("DELETE FROM stats")
    procs = []
    for k in range(count):
        procs.append(
            subprocess.Popen(
                [
                    ATP,
                    "fman",
                    "run",
                    "--broker",
                    b.url,
                    "--db",
                    str(db),
                    "--id",
                    f"bench-w{k}",
                    "--ingest-only",
                    "--log-level",
                    "WARNING",
                ],
                cwd=tmp,
            )
        )
    # ready when every worker has written its counters once
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with sqlite3.connect(db) as c:
                n = c.execute("SELECT count(DISTINCT worker) FROM stats").fetchone()[0]
            if n >= count:
                time.sleep(0.5)
                return procs
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    raise TimeoutError("workers did not start")


def _wait_count(db: Path, n: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with sqlite3.connect(db) as c:
            if c.execute("SELECT count(*) FROM messages").fetchone()[0] >= n:
                return
        time.sleep(0.2)
    raise TimeoutError(f"workers stored fewer than {n} messages in {timeout} s")


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def _cpu_s(procs: list[subprocess.Popen]) -> float:
    """User plus system CPU seconds the processes have used so far (Linux)."""
    total = 0
    for p in procs:
        fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def worker_rate(n: int, workers: int, backlog: bool) -> tuple[float, dict[str, int], float]:
    """Offers per second, offers per worker, and (live only) worker CPU microseconds per
    offer: the cost that decides how far more workers go once they have cores of their own."""
    cpu_us = math.nan
    with Mosquitto() as b, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp, "fman.db")
        procs = _start_workers(b, db, workers, tmp)
        try:
            if backlog:  # stop them (their sessions stay), fill the sessions, restart them
                _stop(procs)
                _publish(b, n, tmp, "w")
                procs = _start_workers(b, db, workers, tmp, fresh=False)
                _wait_count(db, n, 300)
            else:
                cpu0 = _cpu_s(procs)
                _publish(b, n, tmp, "w")
                _wait_count(db, n, 300)
                cpu_us = (_cpu_s(procs) - cpu0) / n * 1e6
        finally:
            _stop(procs)
        with sqlite3.connect(db) as c:
            first, last, count = c.execute(
                "SELECT min(at), max(at), count(*) FROM messages"
            ).fetchone()
            per_worker = dict(c.execute("SELECT worker, count(*) FROM messages GROUP BY worker"))
            accepted = c.execute("SELECT count(*) FROM offers WHERE state='accepted'").fetchone()[0]
        if accepted != n:
            raise AssertionError(f"{accepted} of {n} offers accepted")
        return count / (last - first), per_worker, cpu_us


def latency(n: int, rate: float) -> tuple[float, float]:
    """Publication-to-ack latency (ms) at ``rate`` offers/s through one worker."""
    with Mosquitto() as b, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp, "fman.db")
        procs = _start_workers(b, db, 1, tmp)
        got: dict[str, float] = {}
        done = threading.Event()

        def on_message(c, u, m) -> None:
            body = protocol.decode(m.payload).body
            got[body.ref_id] = time.time()
            if len(got) >= n:
                done.set()

        agent_sub = _client("bench-agents")
        agent_sub.on_message = on_message
        agent_sub.connect(b.host, b.port)
        agent_sub.loop_start()
        agent_sub.subscribe(topics.all_agents("ack"), qos=1)
        time.sleep(0.5)
        try:
            out = Path(tmp, "sent.json")
            pub = _spawn("--publish", b.host, str(b.port), str(n), str(rate), "lat", str(out))
            pub.wait()
            done.wait(120)
        finally:
            agent_sub.loop_stop()
            _stop(procs)
        sent = json.loads(out.read_text())
        lat = sorted(
            (got[f"lat-{int(i) % AGENTS}.o{i}"] - t) * 1000
            for i, t in sent.items()
            if f"lat-{int(i) % AGENTS}.o{i}" in got
        )
        if len(lat) != n:
            raise AssertionError(f"{len(lat)} of {n} acks arrived")
        return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-n", type=int, default=30_000, help="messages per throughput run")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.n = 1, 10_000
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {args.n} offers per run, median of {args.runs}"
    )
    for backlog in (False, True):
        mode = "backlog drain" if backlog else "live"
        bare, one, two, cpu1, cpu2 = [], [], [], [], []
        for _ in range(args.runs):
            bare.append(bare_rate(args.n, backlog))
            rate1, _, c1 = worker_rate(args.n, 1, backlog)
            rate2, split, c2 = worker_rate(args.n, 2, backlog)
            one.append(rate1)
            two.append(rate2)
            cpu1.append(c1)
            cpu2.append(c2)
            print(
                f"  {mode} run: bare {bare[-1]:,.0f}/s, one worker {one[-1]:,.0f}/s, two "
                f"workers {two[-1]:,.0f}/s (split {sorted(split.values())})",
                flush=True,
            )
        b, o, t = (statistics.median(x) for x in (bare, one, two))
        print(
            f"{mode}: bare paho QoS 1 subscriber {b:,.0f} msg/s; one FMAN worker {o:,.0f} "
            f"offers/s (ratio {o / b:.2f}, target >= 0.5); two workers {t:,.0f} offers/s "
            f"(ratio {t / b:.2f}, {t / o:.2f}x one worker)",
            flush=True,
        )
        if not backlog:
            c1, c2 = statistics.median(cpu1), statistics.median(cpu2)
            print(
                f"worker CPU per offer: one worker {c1:.0f} us, two workers {c2:.0f} us "
                f"together (a worker with a core of its own: about {1e6 / c1:,.0f} offers/s)",
                flush=True,
            )
    p50s, p99s = [], []
    for _ in range(args.runs):
        p50, p99 = latency(10_000 if not args.quick else 5000, 1000.0)
        p50s.append(p50)
        p99s.append(p99)
    print(
        f"offer-to-ack latency at 1,000 offers/s: p50 {statistics.median(p50s):.1f} ms, "
        f"p99 {statistics.median(p99s):.1f} ms (target p99 < 200 ms)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        h, p, n, r, tag, out = sys.argv[2:8]
        publisher_main(h, int(p), int(n), float(r), tag, out)
    elif len(sys.argv) > 1 and sys.argv[1] == "--bare":
        h, p, n, out = sys.argv[2:6]
        bare_main(h, int(p), int(n), out)
    else:
        main()
