"""FMAN ingest throughput and offer-to-ack latency, on SQLite and on PostgreSQL, against a
bare paho subscriber.

Prints, each as the median of ``--runs`` runs on a fresh broker and a fresh store:

1. the rate of a bare paho-mqtt QoS 1 subscriber (shared subscription, acknowledges on
   receipt, does nothing else): the ceiling of the pipeline on this machine;
2. the rate of one ``atp fman run`` worker on each store: decode, validate, acceptance
   control, one transaction per batch, PUBACK after the commit, an ack message back to every
   agent; with the worker's CPU per offer (and, on PostgreSQL, the server's);
3. draining a backlog: one and two workers on SQLite, one, two and four on PostgreSQL;
4. the latency from an offer's publication to its ack at the agent, p50 and p99, with offers
   published at a steady 1,000 per second, one worker on each store.

Throughput is measured two ways. *Live*: the consumer runs while the publisher publishes as
fast as it can, as in the reference figures of ``DESIGN.md``; on two cores the publisher and
the broker take most of the machine, so this is the pipeline's rate. *Backlog drain*: the
publisher first fills the consumers' persistent sessions in the broker, then the consumers
start and drain them with the machine to themselves and the broker; this is the consumers'
own capacity, and it is where more workers can show. Publisher, broker, subscriber, workers
and PostgreSQL are separate processes. Workers run with ``--ingest-only``: the figure is
ingest. PostgreSQL is a throwaway cluster of Debian's packages (``cloud.pgcluster``) with the
server's defaults: ``fsync`` and ``synchronous_commit`` on, so a commit waits for the disk,
where SQLite (``synchronous = normal``, WAL) does not.

    .venv/bin/python bench/fman.py            # all of it, about ten minutes
    .venv/bin/python bench/fman.py --quick    # one run each, fewer messages
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
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
from cloud.fman import StoreError, open_reader  # noqa: E402
from cloud.pgcluster import PgCluster  # noqa: E402
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


class Stores:
    """Fresh stores for the runs: an SQLite file in a temporary directory, or a new database
    on the benchmark's PostgreSQL cluster."""

    def __init__(self, pg: PgCluster) -> None:
        self.pg = pg
        self._n = itertools.count()

    def new(self, kind: str, tmp: str) -> str:
        if kind == "sqlite":
            return str(Path(tmp, "fman.db"))
        return self.pg.create_database(f"bench{next(self._n)}")


def _start_workers(b: Mosquitto, store: str, count: int, tmp: str) -> list[subprocess.Popen]:
    since = time.time()
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
                    "--store",
                    store,
                    "--id",
                    f"bench-w{k}",
                    "--ingest-only",
                    "--log-level",
                    "WARNING",
                ],
                cwd=tmp,
            )
        )
    # ready when every worker has written its counters since it started
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with open_reader(store) as r:
                stats = r.stats()
            alive = [w for w, v in stats.items() if v.get("alive_at", 0) > since]
            if len(alive) >= count:
                time.sleep(0.5)
                return procs
        except StoreError:
            pass
        time.sleep(0.1)
    raise TimeoutError("workers did not start")


def _wait_count(store: str, n: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open_reader(store) as r:
            if r.ingest_log().messages >= n:
                return
        time.sleep(0.2)
    raise TimeoutError(f"workers stored fewer than {n} messages in {timeout} s")


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def _cpu_s(pids: list[int]) -> float:
    """User plus system CPU seconds the processes have used so far (Linux)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _server_pids(pg: PgCluster) -> list[int]:
    """The PostgreSQL server's processes: the postmaster and its children."""
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    out = [postmaster]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int(d.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    out.append(int(d.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return out


def worker_rate(
    stores: Stores, kind: str, n: int, workers: int, backlog: bool
) -> tuple[float, dict[str, int], float, float]:
    """Offers per second, offers per worker, and (live only) worker and PostgreSQL server CPU
    microseconds per offer: the cost that decides how far more workers go once they have
    cores of their own."""
    cpu_us = server_us = math.nan
    with Mosquitto() as b, tempfile.TemporaryDirectory() as tmp:
        store = stores.new(kind, tmp)
        procs = _start_workers(b, store, workers, tmp)
        try:
            if backlog:  # stop them (their sessions stay), fill the sessions, restart them
                _stop(procs)
                _publish(b, n, tmp, "w")
                procs = _start_workers(b, store, workers, tmp)
                _wait_count(store, n, 600)
            else:
                server = _server_pids(stores.pg) if kind == "postgresql" else []
                cpu0, srv0 = _cpu_s([p.pid for p in procs]), _cpu_s(server)
                _publish(b, n, tmp, "w")
                _wait_count(store, n, 600)
                cpu_us = (_cpu_s([p.pid for p in procs]) - cpu0) / n * 1e6
                if server:
                    server_us = (_cpu_s(server) - srv0) / n * 1e6
        finally:
            _stop(procs)
        with open_reader(store) as r:
            log = r.ingest_log()
            accepted = r.counts().offers.get("accepted", 0)
        if accepted != n:
            raise AssertionError(f"{accepted} of {n} offers accepted")
        assert log.first_at is not None and log.last_at is not None
        return log.messages / (log.last_at - log.first_at), log.per_worker, cpu_us, server_us


def latency(stores: Stores, kind: str, n: int, rate: float) -> tuple[float, float]:
    """Publication-to-ack latency (ms) at ``rate`` offers/s through one worker."""
    with Mosquitto() as b, tempfile.TemporaryDirectory() as tmp:
        store = stores.new(kind, tmp)
        procs = _start_workers(b, store, 1, tmp)
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


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-n", type=int, default=30_000, help="messages per throughput run")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.n = 1, 10_000
    load = os.getloadavg()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load[0]:.1f} at the start; "
        f"{args.n} offers per run, median of {args.runs}",
        flush=True,
    )
    with PgCluster() as pg:
        stores = Stores(pg)
        print(f"PostgreSQL: {pg.version()} with the server's defaults", flush=True)
        live(stores, args)
        drain(stores, args)
        for kind in ("sqlite", "postgresql"):
            p50s, p99s = [], []
            for _ in range(args.runs):
                p50, p99 = latency(stores, kind, 10_000 if not args.quick else 5000, 1000.0)
                p50s.append(p50)
                p99s.append(p99)
            print(
                f"offer-to-ack latency at 1,000 offers/s, one worker on {kind}: p50 "
                f"{statistics.median(p50s):.1f} ms, p99 {statistics.median(p99s):.1f} ms "
                "(target p99 < 200 ms)",
                flush=True,
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def live(stores: Stores, args: argparse.Namespace) -> None:
    bare: list[float] = []
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    cpu: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    server: list[float] = []
    for _ in range(args.runs):
        bare.append(bare_rate(args.n, backlog=False))
        for kind in rates:
            rate, _, c, srv = worker_rate(stores, kind, args.n, 1, backlog=False)
            rates[kind].append(rate)
            cpu[kind].append(c)
            if kind == "postgresql":
                server.append(srv)
        print(
            f"  live run: bare {bare[-1]:,.0f}/s, one worker on SQLite "
            f"{rates['sqlite'][-1]:,.0f}/s, on PostgreSQL {rates['postgresql'][-1]:,.0f}/s",
            flush=True,
        )
    b = statistics.median(bare)
    print(f"live: bare paho QoS 1 subscriber {b:,.0f} msg/s", flush=True)
    for kind, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        r = statistics.median(rates[kind])
        extra = f", PostgreSQL server {_median(server):.0f} us" if kind == "postgresql" else ""
        print(
            f"live: one FMAN worker on {name} {r:,.0f} offers/s (ratio {r / b:.2f}, target "
            f">= 0.5); CPU per offer: worker {_median(cpu[kind]):.0f} us{extra}",
            flush=True,
        )


def drain(stores: Stores, args: argparse.Namespace) -> None:
    cases = [("sqlite", 1), ("sqlite", 2), ("postgresql", 1), ("postgresql", 2), ("postgresql", 4)]
    bare: list[float] = []
    rates: dict[tuple[str, int], list[float]] = {c: [] for c in cases}
    for _ in range(args.runs):
        bare.append(bare_rate(args.n, backlog=True))
        splits = {}
        for kind, workers in cases:
            rate, split, _, _ = worker_rate(stores, kind, args.n, workers, backlog=True)
            rates[(kind, workers)].append(rate)
            splits[(kind, workers)] = sorted(split.values())
        print(
            f"  backlog run: bare {bare[-1]:,.0f}/s; "
            + "; ".join(
                f"{k} x{w} {rates[(k, w)][-1]:,.0f}/s (split {splits[(k, w)]})" for k, w in cases
            ),
            flush=True,
        )
    b = statistics.median(bare)
    print(f"backlog drain: bare paho QoS 1 subscriber {b:,.0f} msg/s", flush=True)
    for kind, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        one = statistics.median(rates[(kind, 1)])
        parts = [f"one worker {one:,.0f} offers/s (ratio {one / b:.2f})"]
        for workers in (2, 4):
            if (kind, workers) in rates:
                r = statistics.median(rates[(kind, workers)])
                target = ", target >= 1.8x" if (kind, workers) == ("postgresql", 2) else ""
                parts.append(
                    f"{workers} workers {r:,.0f} offers/s ({r / one:.2f}x one worker{target})"
                )
        print(f"backlog drain on {name}: " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        h, p, n, r, tag, out = sys.argv[2:8]
        publisher_main(h, int(p), int(n), float(r), tag, out)
    elif len(sys.argv) > 1 and sys.argv[1] == "--bare":
        h, p, n, out = sys.argv[2:6]
        bare_main(h, int(p), int(n), out)
    else:
        main()
