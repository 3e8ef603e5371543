"""The HTTP gateway (``atp api serve``, a real uvicorn server) on a real FMAN store: requests
per second and latency (median, p99) of ``GET /api/v1/flexoffer`` and of ``POST`` of an offer.

The store holds ``--offers`` accepted offers spread over 100 agents (100 per agent at the
default 10,000), so ``GET /flexoffer`` lists 100 offers per answer; ``POST`` sends fresh
two-slot offers of 200 agents through the gateway's ingest (one SQLite commit each,
``synchronous = full``, as the workers' stores are opened by the gateway). ``--clients``
threads each keep one HTTP/1.1 connection and send requests back to back for ``--seconds``;
every figure is the median over ``--runs`` runs. The gateway, the clients and the store share
the machine: on two cores the clients take a good part of it.

    .venv/bin/python bench/api.py             # 5 runs of 3 s per case
    .venv/bin/python bench/api.py --quick     # 1 run of 2 s
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

from msgspec.structs import replace

import protocol
from cloud.api import issue_token
from cloud.fman.config import dump_toml
from cloud.fman.store import OfferRecord, open_store
from protocol import samples

ATP = str(Path(sys.executable).with_name("atp"))


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
        [ATP, "api", "serve", "--config", str(work / "fman.toml"), "--tokens",
         str(work / "tokens"), "--port", "0", "--rate", "1000000", "--burst", "1000000"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.seconds = 1, 2.0
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
    load = os.getloadavg()[0]
    if a.json:
        print(json.dumps({"results": results, "load": load, "runs": a.runs}))
        return
    print(f"HTTP gateway, {a.clients} clients, median of {a.runs} run(s) of {a.seconds:g} s "
          f"(load {load:.1f}):")  # fmt: skip
    for name, r in results.items():
        print(
            f"  {name:<28} {r['requests_per_s']:>8.1f} req/s   p50 {r['p50_ms']:.2f} ms   "
            f"p99 {r['p99_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
