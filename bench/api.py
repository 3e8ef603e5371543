"""The HTTP gateway, FMAN's request/response resources and the operator dashboard, each a
real server on a real store: three figures of issue 13.

1. *Gateway* (``atp api serve``, real uvicorn, a store of ``--offers`` accepted offers over 100
   agents, so ``GET /api/v1/flexoffer`` lists 100 offers an answer): requests per second and
   latency (median, p99) of ``GET /flexoffer`` and of ``POST`` of an offer through the
   gateway's ingest, ``--clients`` threads each on one kept-alive HTTP/1.1 connection sending
   back to back for ``--seconds``.
2. *Requests under ingest*: a real Mosquitto and one ``atp fman run`` worker
   (``--ingest-only``: no planning; it still answers requests) on the same store, taking
   1,000 offers a second over MQTT from a publisher process (bench/fman.py's, 1,000 agents)
   while requests arrive at 100 a second: first over MQTT (``flexoffer`` of one of the 100
   agents, MQTT v5 response topic and correlation data, as ``foa offers --remote`` asks),
   then over HTTP (``GET /api/v1/flexoffer`` through ``atp api serve`` beside the worker).
   Latency from sending a request to its whole answer, p50 and p99, and the same requests
   with no ingest before each run; the run fails unless the worker stored every offer. The
   broker runs dev.conf plus ``set_tcp_nodelay true``, as prod.conf has it, and the
   requesting client sets TCP_NODELAY on its socket (``--nagle``: neither does; a client
   sending requests back to back then waits for delayed ACKs, ~40 ms a request).
3. *Dashboard first load*: ``atp web`` on a store of 100,000 offers made with the store's
   own ``put_offers`` (1,000 agents, an offer every 6 hours each over 25 days, the past ones
   executed, 2 % rejected), started afresh for each run; the time of the first ``GET`` of a
   page until its whole answer, for the portfolio (the dashboard's first page), the offers,
   the agents and the counters.

Every figure is the median over ``--runs`` runs. Servers, clients, broker and store share the
machine: on two cores the clients take a good part of it.

    .venv/bin/python bench/api.py                 # all three, 5 runs each
    .venv/bin/python bench/api.py --quick         # 1 run each, shorter
    .venv/bin/python bench/api.py --case dashboard --runs 5
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from msgspec.structs import replace
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import protocol  # noqa: E402
from cloud.api import issue_token  # noqa: E402
from cloud.broker import Mosquitto  # noqa: E402
from cloud.fman.config import dump_toml  # noqa: E402
from cloud.fman.store import OfferRecord, StoreError, open_reader, open_store  # noqa: E402
from protocol import samples, topics  # noqa: E402

#: the commands of this checkout (not whatever ``atp`` is installed)
ATP = [sys.executable, "-c", "from cloud.cli import main; main()"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
DAY = 86_400


def seed(db: Path, offers: int, now: int) -> None:
    proto = samples.two_slot_offer(agent="x", now=now)
    rows = []
    for i in range(offers):
        agent = f"house-{i % 100}"
        o = replace(proto, id=f"{agent}.o{i}", issuer=agent)
        rows.append(
            OfferRecord(
                id=o.id, issuer=agent, revision=0, state="accepted", received_at=now,
                updated_at=now, worker="bench", device="plug", load_type="wet_appliance",
                grid_node="", mode="direct", created_at=now, acceptance_before=now + 600,
                assignment_before=now + 900, start_after=now + 900, start_before=now + 9 * 900,
                n_slots=2, resolution_s=900, payload=protocol.encode(o, ts=now),
            )
        )  # fmt: skip
    with open_store(str(db)) as s:
        s.put_offers(rows)


def fresh_offer() -> protocol.FlexOffer:
    """A two-slot offer made now (the gateway's clock is the real one)."""
    real = int(time.time())
    start = (real + 900) // 900 * 900 + 900
    o = samples.two_slot_offer(agent="x", now=real)
    return replace(
        o,
        start_after=start,
        start_before=start + 8 * 3600,
        default=replace(o.default, start=start),
    )


def start(work: Path) -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen(
        [*ATP, "api", "serve", "--config", str(work / "fman.toml"), "--tokens",
         str(work / "tokens"), "--port", "0", "--rate", "1000000", "--burst", "1000000"],
        stdout=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("atp api: http://"):
        proc.kill()
        raise SystemExit(f"atp api serve did not start: {line}")
    host, port = line.split()[2].removeprefix("http://").split("/")[0].rsplit(":", 1)
    return proc, host, int(port)


def run_case(host: str, port: int, token: str, make, clients: int, seconds: float):
    """``(requests/s, p50 ms, p99 ms)`` of ``clients`` threads sending ``make()`` requests."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.connect()
        # requests go out at once (no Nagle delay waiting for the server's delayed ACK)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        while time.perf_counter() < stop:
            method, path, body = make()
            t = time.perf_counter()
            conn.request(method, path, body=body, headers=auth)
            r = conn.getresponse()
            r.read()
            latencies[k].append(time.perf_counter() - t)
            if r.status != 200 and len(errors) < 5:
                errors.append(f"{method} {path}: {r.status}")
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"requests failed: {errors}")
    all_l = sorted(x for lst in latencies for x in lst)
    assert all_l, "no request was answered"
    p99 = all_l[min(len(all_l) - 1, int(0.99 * len(all_l)))]
    return len(all_l) / elapsed, statistics.median(all_l) * 1e3, p99 * 1e3


def gateway(a: argparse.Namespace) -> dict[str, dict[str, float]]:
    now = int(time.time()) // 900 * 900
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "fman.db"
        seed(db, a.offers, now)
        (work / "fman.toml").write_text(
            dump_toml({"worker": {"broker": "mqtt://127.0.0.1:1", "store": str(db)}})
        )
        _, token = issue_token(work / "tokens", party="bench", role="operator", now=now)
        proc, host, port = start(work)
        ids = itertools.count()
        proto = fresh_offer()

        def get():
            return "GET", "/api/v1/flexoffer?agent=house-7", None

        def post():
            i = next(ids)
            agent = f"poster-{i % 200}"
            o = replace(proto, id=f"{agent}.bench.{i}", issuer=agent)
            body = protocol.to_json(o)
            return "POST", f"/api/v1/flexoffer?agent={agent}", body

        results: dict[str, dict[str, float]] = {}
        try:
            for name, make in (("GET /flexoffer (100 offers)", get), ("POST /flexoffer", post)):
                runs = [
                    run_case(host, port, token, make, a.clients, a.seconds) for _ in range(a.runs)
                ]
                results[name] = {
                    "requests_per_s": round(statistics.median(r[0] for r in runs), 1),
                    "p50_ms": round(statistics.median(r[1] for r in runs), 2),
                    "p99_ms": round(statistics.median(r[2] for r in runs), 2),
                }
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    return results


# -- requests alongside ingest ------------------------------------------------------------------


def _percentiles(xs: list[float]) -> tuple[float, float]:
    assert xs, "no request was answered"
    xs = sorted(xs)
    return statistics.median(xs) * 1e3, xs[min(len(xs) - 1, int(0.99 * len(xs)))] * 1e3


def mqtt_requests(
    b: Mosquitto, rate: float, seconds: float, *, nagle: bool
) -> tuple[float, float, float]:
    """``(requests/s, p50 ms, p99 ms)`` of ``flexoffer`` requests to FMAN over MQTT at
    ``rate`` a second, spread over the 100 seeded agents (FMAN limits each agent's rate)."""
    tag = f"bench{os.getpid()}"
    sent: dict[bytes, float] = {}
    got: dict[bytes, float] = {}
    bad: list[str] = []
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(c, u, m) -> None:
        t = time.perf_counter()
        corr = bytes(getattr(m.properties, "CorrelationData", b""))
        body = protocol.decode(m.payload, expect="response").body
        with lock:
            got[corr] = t
            if body.status != "ok" and len(bad) < 5:
                bad.append(body.reason)

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=tag, protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect(b.host, b.port)
    if not nagle:
        # as the HTTP clients: a request is not held back until the one before is ACKed
        c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.loop_start()
    c.subscribe(f"{topics.PREFIX}/a/+/resp/{tag}", qos=1)
    if not subscribed.wait(10):
        raise SystemExit("no subscription to the response topics")
    t0 = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        agent = f"house-{i % 100}"
        corr = i.to_bytes(8, "big")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.response_topic(agent, tag)
        props.CorrelationData = corr
        payload = protocol.encode(
            protocol.Request(method="flexoffer", params={}), ts=int(time.time())
        )
        with lock:
            sent[corr] = time.perf_counter()
        c.publish(topics.request_topic(agent, "flexoffer"), payload, 1, properties=props)
    elapsed = time.perf_counter() - t0
    deadline = time.time() + 30
    while time.time() < deadline:
        with lock:
            if len(got) >= n:
                break
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    if bad:
        raise SystemExit(f"FMAN refused requests: {bad}")
    if len(got) < n:
        raise SystemExit(f"{n - len(got)} of {n} requests got no answer in 30 s")
    p50, p99 = _percentiles([got[k] - t for k, t in sent.items()])
    return n / elapsed, p50, p99


def http_requests(host: str, port: int, token: str, rate: float, seconds: float):
    """``(requests/s, p50 ms, p99 ms)`` of ``GET /api/v1/flexoffer`` at ``rate`` a second on
    one kept-alive connection (each sent on its schedule, or at once when the one before
    took longer)."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    auth = {"Authorization": f"Bearer {token}"}
    lat: list[float] = []
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter()
        conn.request("GET", f"/api/v1/flexoffer?agent=house-{i % 100}", headers=auth)
        r = conn.getresponse()
        r.read()
        lat.append(time.perf_counter() - t)
        if r.status != 200:
            raise SystemExit(f"GET /flexoffer: {r.status}")
    elapsed = time.perf_counter() - t0
    conn.close()
    p50, p99 = _percentiles(lat)
    return n / elapsed, p50, p99


def _worker(b: Mosquitto, work: Path) -> subprocess.Popen[bytes]:
    since = time.time()
    proc = subprocess.Popen(
        [*ATP, "fman", "run", "--config", str(work / "fman.toml"), "--id", "bench-w0",
         "--ingest-only", "--log-level", "WARNING"],
        cwd=work, env=ENV,
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with open_reader(str(work / "fman.db")) as r:
                if r.stats().get("bench-w0", {}).get("alive_at", 0) > since:
                    return proc
        except StoreError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the FMAN worker did not start")


def _stored(db: Path) -> int:
    with open_reader(str(db)) as r:
        return r.ingest_log().messages


def _broker(work: Path, nagle: bool) -> Mosquitto:
    """The development broker, with ``set_tcp_nodelay true`` as prod.conf has it (unless
    ``nagle``)."""
    if nagle:
        return Mosquitto()
    conf = work / "broker.conf"
    dev = (REPO / "mosquitto" / "dev.conf").read_text()
    conf.write_text(dev + "\nset_tcp_nodelay true\n")
    return Mosquitto(config=conf)


def under_ingest(a: argparse.Namespace) -> dict[str, dict[str, float]]:
    now = int(time.time()) // 900 * 900
    rate, ingest = 100.0, 1000.0
    mqtt_runs, http_runs, idle_mqtt, idle_http, kept = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp, _broker(Path(tmp), a.nagle) as b:
        work = Path(tmp)
        db = work / "fman.db"
        seed(db, a.offers, now)
        worker_cfg = {"broker": b.url, "store": str(db), "requests_per_s": 5.0}
        (work / "fman.toml").write_text(dump_toml({"worker": worker_cfg}))
        _, token = issue_token(work / "tokens", party="bench", role="operator", now=now)
        worker = _worker(b, work)
        gw, host, port = start(work)
        try:
            for k in range(a.runs):
                # the same requests with no ingest: what the ingest adds
                idle_mqtt.append(mqtt_requests(b, rate, a.seconds, nagle=a.nagle))
                idle_http.append(http_requests(host, port, token, rate, a.seconds))
                before = _stored(db)
                n = int(ingest * (2 * a.seconds + 3))
                out = work / f"sent-{k}.json"
                pub = subprocess.Popen(
                    [sys.executable, str(REPO / "bench" / "fman.py"), "--publish", b.host,
                     str(b.port), str(n), str(ingest), f"ing{k}", str(out)],
                    cwd=REPO, env=ENV,
                )  # fmt: skip
                time.sleep(1.0)
                mqtt_runs.append(mqtt_requests(b, rate, a.seconds, nagle=a.nagle))
                http_runs.append(http_requests(host, port, token, rate, a.seconds))
                pub.wait(timeout=120)
                deadline = time.time() + 60
                while _stored(db) < before + n and time.time() < deadline:
                    time.sleep(0.2)
                kept.append(_stored(db) - before >= n)
        finally:
            for p in (gw, worker):
                p.send_signal(signal.SIGTERM)
            for p in (gw, worker):
                p.wait(timeout=30)
    if not all(kept):
        raise SystemExit("the worker did not store every offer of the ingest within a minute")

    def summary(runs):
        return {
            "requests_per_s": round(statistics.median(r[0] for r in runs), 1),
            "p50_ms": round(statistics.median(r[1] for r in runs), 2),
            "p99_ms": round(statistics.median(r[2] for r in runs), 2),
        }

    return {
        "MQTT flexoffer, ingest": summary(mqtt_runs),
        "MQTT flexoffer, no ingest": summary(idle_mqtt),
        "HTTP GET /flexoffer, ingest": summary(http_runs),
        "HTTP GET /flexoffer, no ingest": summary(idle_http),
    }


# -- the dashboard on 100,000 offers ------------------------------------------------------------


def seed_history(db: Path, offers: int, agents: int, now: int) -> None:
    """``offers`` offers of ``agents`` agents, one every 6 hours per agent, the latest
    starting within a day from ``now``: the past ones executed, every 50th rejected."""
    proto = samples.two_slot_offer(agent="x", now=now)
    per_agent = max(1, offers // agents)
    first = now + DAY - per_agent * 6 * 3600
    with open_store(str(db)) as s:
        rows = []
        for i in range(offers):
            agent = f"house-{i % agents}"
            start = first + (i // agents) * 6 * 3600
            state = "rejected" if i % 50 == 0 else ("executed" if start < now else "accepted")
            o = replace(
                proto, id=f"{agent}.o{i}", issuer=agent, created_at=start - 3600,
                acceptance_before=start - 1800, assignment_before=start - 900,
                start_after=start, start_before=start + 8 * 900,
                default=replace(proto.default, start=start),
            )  # fmt: skip
            rows.append(
                OfferRecord(
                    id=o.id, issuer=agent, revision=0, state=state, received_at=start - 3600,
                    updated_at=start, worker="bench", device="plug", load_type="wet_appliance",
                    grid_node="", mode="direct", created_at=start - 3600,
                    acceptance_before=start - 1800, assignment_before=start - 900,
                    start_after=start, start_before=start + 8 * 900, n_slots=2,
                    resolution_s=900, payload=protocol.encode(o, ts=start - 3600),
                )
            )  # fmt: skip
            if len(rows) >= 10_000:
                s.put_offers(rows)
                rows = []
        s.put_offers(rows)


PAGES = ("/", "/offers", "/agents", "/counters")


def dashboard(a: argparse.Namespace) -> dict[str, dict[str, float]]:
    now = int(time.time()) // 900 * 900
    times: dict[str, list[float]] = {p: [] for p in PAGES}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "fman.db"
        t = time.perf_counter()
        seed_history(db, a.dashboard_offers, 1000, now)
        print(f"  (store of {a.dashboard_offers:,} offers made in {time.perf_counter() - t:.1f} s)",
              flush=True)  # fmt: skip
        for _ in range(a.runs):
            for path in PAGES:
                proc = subprocess.Popen(
                    [*ATP, "web", "--store", str(db), "--port", "0", "--refresh", "0",
                     "--users", str(work / "no-users")],
                    stdout=subprocess.PIPE, text=True, env=ENV,
                )  # fmt: skip
                try:
                    assert proc.stdout is not None
                    line = proc.stdout.readline()
                    if not line.startswith("atp web: http://"):
                        raise SystemExit(f"atp web did not start: {line}")
                    host, port = line.split()[2].removeprefix("http://").rstrip("/").rsplit(":", 1)
                    conn = http.client.HTTPConnection(host, int(port), timeout=120)
                    t = time.perf_counter()
                    conn.request("GET", path)
                    r = conn.getresponse()
                    body = r.read()
                    times[path].append(time.perf_counter() - t)
                    if r.status != 200:
                        raise SystemExit(f"GET {path}: {r.status}")
                    sizes[path] = len(body)
                    conn.close()
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=20)
    return {
        p: {"first_load_ms": round(statistics.median(ts) * 1e3, 1), "bytes": sizes[p]}
        for p, ts in times.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=["gateway", "ingest", "dashboard", "all"], default="all")
    ap.add_argument("--offers", type=int, default=10_000)
    ap.add_argument("--dashboard-offers", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument(
        "--nagle",
        action="store_true",
        help="neither the broker nor the requesting MQTT client sets TCP_NODELAY",
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.seconds = 1, 2.0
    out: dict[str, object] = {"runs": a.runs, "load_at_start": os.getloadavg()[0]}
    if a.case in ("gateway", "all"):
        results = gateway(a)
        out["gateway"] = results
        if not a.json:
            print(f"HTTP gateway, {a.clients} clients, median of {a.runs} run(s) of "
                  f"{a.seconds:g} s (load {os.getloadavg()[0]:.1f}):")  # fmt: skip
            for name, r in results.items():
                print(
                    f"  {name:<28} {r['requests_per_s']:>8.1f} req/s   p50 {r['p50_ms']:.2f} ms"
                    f"   p99 {r['p99_ms']:.2f} ms",
                    flush=True,
                )
    if a.case in ("ingest", "all"):
        results = under_ingest(a)
        out["under_ingest"] = results
        if not a.json:
            print(f"requests at 100/s alongside 1,000 offers/s of MQTT ingest into one FMAN "
                  f"worker, median of {a.runs} run(s) of {a.seconds:g} s each "
                  f"(load {os.getloadavg()[0]:.1f}):")  # fmt: skip
            for name, r in results.items():
                print(
                    f"  {name:<28} {r['requests_per_s']:>8.1f} req/s   p50 {r['p50_ms']:.2f} ms"
                    f"   p99 {r['p99_ms']:.2f} ms",
                    flush=True,
                )
    if a.case in ("dashboard", "all"):
        if not a.json:
            print(f"dashboard first load, {a.dashboard_offers:,} offers, a fresh `atp web` "
                  f"per load, median of {a.runs}:", flush=True)  # fmt: skip
        results = dashboard(a)
        out["dashboard"] = results
        if not a.json:
            for path, r in results.items():
                print(f"  GET {path:<10} {r['first_load_ms']:>8.1f} ms   {r['bytes']:,} bytes")
            print(f"  (load {os.getloadavg()[0]:.1f})")
    if a.json:
        out["load_at_end"] = os.getloadavg()[0]
        print(json.dumps(out))


if __name__ == "__main__":
    main()
