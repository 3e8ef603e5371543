"""Run real FMAN workers (``atp fman run`` subprocesses) and watch the wire, for the tests."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from cloud.fman import StoreError, open_reader
from cloud.fman.config import dump_toml
from protocol import topics
from tests.waiting import wait_for

ATP = str(Path(sys.executable).with_name("atp"))
T0 = 1_767_225_600  # 2026-01-01T00:00Z


def client(broker, client_id: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def write_config(path: Path, broker, db: Path | str, **sections: dict) -> Path:
    """A worker configuration; ``db`` is the store: an SQLite file or a postgresql:// URL."""
    data: dict[str, Any] = {
        "worker": {"broker": broker.url, "store": str(db), "stats_interval_s": 0.2},
        # these tests run the clock thousands of times faster than real time, where a
        # solver's wall second is simulated minutes: the greedy planner answers in
        # milliseconds (the security end-to-end test runs the optimiser, the default)
        "planning": {"planner": "greedy"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path.write_text(dump_toml(data))
    return path


class WorkerProc:
    """One ``atp fman run`` process; its log goes to ``<log_dir>/<id>.log``."""

    def __init__(self, *, config: Path, worker_id: str, log_dir: Path, extra: tuple = ()) -> None:
        self.config, self.id, self.extra = config, worker_id, extra
        self.log_path = log_dir / f"{worker_id}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProc:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [ATP, "fman", "run", "-c", str(self.config), "--id", self.id, *self.extra],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def query(db: Path, sql: str, params: tuple = ()) -> list[dict]:
    """A look straight into an SQLite store (the tests of the store's own rows)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        cur = conn.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()


def stats(db: Path | str) -> dict[str, dict[str, float]]:
    """Every worker's counters (empty while the store does not exist yet)."""
    try:
        with open_reader(db) as r:
            return r.stats()
    except StoreError:
        return {}


def wait_ready(db: Path | str, worker_id: str, timeout: float = 20.0) -> None:
    wait_for(lambda: worker_id in stats(db), timeout, f"worker {worker_id}")


class Observer:
    """A passive, non-shared subscriber to every agent topic: what really went over the wire."""

    def __init__(self, broker, name: str = "observer") -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        subscribed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        self.c.subscribe("atp/v1/a/#", qos=1)
        assert subscribed.wait(5)

    def _on_message(self, c, u, m) -> None:
        try:
            t = topics.parse(m.topic)
            body = protocol.decode(m.payload).body
        except (ValueError, protocol.DecodeError):
            return
        with self.lock:
            self.seen[t.channel].append((t.owner, body))

    def get(self, channel: str) -> list[tuple[str, Any]]:
        with self.lock:
            return list(self.seen[channel])

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:4000]


def check_every_accepted_offer(db: Path | str, fleet: dict) -> set[str]:
    """Every offer FMAN accepted is executed, with exactly one schedule in force: the version
    its agent holds (or, if the agent holds none, FMAN's explicit record that the default ran),
    metered in every slot. Returns the accepted offer ids."""
    accepted = {oid for oid, tr in fleet.items() if tr.answer == "ack"}
    assert accepted
    with open_reader(db) as r:
        rows = {o.id: o for o in r.list_offers(limit=1_000_000)}
        in_force = r.current_schedules()  # one per offer: (offer_id, version) is the key
    executed = {oid for oid, o in rows.items() if o.state == "executed"}
    assert executed == accepted, (sorted(executed ^ accepted)[:5], len(executed), len(accepted))
    for oid in accepted:
        s = in_force[oid]
        agent_side = fleet[oid].schedule
        if s.status == "acked":
            assert agent_side is not None and agent_side.version == s.version, (oid, s)
            assert agent_side.energy_kwh == s.energy_kwh
        else:
            assert s.status == "implicit" and s.kind == "default", (oid, s)
            assert agent_side is None, (oid, s, agent_side)
        n = len(s.energy_kwh)
        assert rows[oid].metered_slots == n, (oid, rows[oid].metered_slots, n)
    return accepted
