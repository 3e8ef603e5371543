"""Faults against the whole platform, and the audit that counts what they cost.

A real fleet (``atp sim fleet``, its agents' stores kept in a directory), two FMAN workers
(``atp fman run``) on one database, and a Mosquitto with persistence share one simulated
timeline. While they run, faults are injected one after another, at wall-clock offsets from
the fleet's start:

1. one FMAN worker is SIGKILLed and started again under its id;
2. the broker is SIGKILLed and started again on the same port and persistence directory;
3. the broker is stopped (SIGTERM, it saves its persistence file) and started again after
   ``outage_s`` wall seconds;
4. the fleet process is SIGKILLed and started again on the same stores and timeline (its
   simulated devices start afresh: their energy counters begin again at zero).

The fleet then runs to the end of its simulated period and stops cleanly; the workers get a
moment to take the last messages. :func:`audit` then compares what every agent's store holds
with FMAN's store: offers, withdrawals and meter readings lost or duplicated, messages still
held by their sender, offers whose state the two sides disagree on, negative consumption
from consumption-only devices. The test (``tests/test_faults.py``) runs a small, fast version
and asserts zero everywhere; ``bench/faults.py`` runs the larger one and prints the table.

Both sides' stores are read with plain SQL, read-only, as an auditor from outside would.
"""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.fleet.mix import site
from cloud.broker import Mosquitto
from tests.fman.harness import T0, WorkerProc, query, stats, wait_ready, write_config
from tests.waiting import wait_for

ATP = str(Path(sys.executable).with_name("atp"))
#: Generators whose devices only ever consume: a negative reading from one is a counter
#: reset or wrap taken for energy.
CONSUMERS = frozenset({"heat_pump", "boiler", "freezer", "ev", "wet_appliance"})
#: Outbox kinds that must reach FMAN.
DELIVERED_KINDS = ("offer", "offer.delete", "meter")


@dataclass(frozen=True, kw_only=True)
class Scenario:
    agents: int = 12
    speed: float = 600.0
    seed: int = 3
    #: wall seconds from the fleet's start to each fault
    worker_kill_at: float = 6.0
    broker_kill_at: float = 12.0
    broker_stop_at: float = 18.0
    outage_s: float = 8.0
    fleet_kill_at: float = 34.0
    #: wall seconds the fleet runs in all (its simulated duration is this times the speed)
    run_s: float = 48.0
    prefix: str = "flt"

    @property
    def duration_s(self) -> int:
        return int(self.run_s * self.speed)


@dataclass
class Run:
    """What happened, for the report: wall times of the faults and the fleet's summaries."""

    events: list[tuple[float, str]] = field(default_factory=list)
    fleet_exit: int | None = None
    #: the summary of the fleet process that ran to the end (the one started after the kill)
    fleet_summary: dict[str, Any] = field(default_factory=dict)
    #: FMAN's counters, summed over its workers
    fman_stats: dict[str, float] = field(default_factory=dict)
    worker_exits: list[int] = field(default_factory=list)


def run(
    scenario: Scenario, work: Path, *, progress: Callable[[str], None] = lambda _m: None
) -> Run:
    """Run the scenario in ``work``; the stores stay there for :func:`audit`."""
    s = scenario
    out = Run()
    work.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir=work / "broker")
    broker.start()
    anchor = time.time() + 4.0
    db = work / "fman.db"
    cfg = write_config(
        work / "fman.toml",
        broker,
        db,
        clock={"sim_start": str(T0), "speed": s.speed, "anchor": anchor},
        acceptance={"default": {"max_power_kw": 1000.0}, "transit_wall_s": 2.5},
        execution={"grace_s": float(max(1800.0, 4 * s.speed))},
        worker={"session_expiry_s": 3600},
    )
    workers = [
        WorkerProc(config=cfg, worker_id=f"{s.prefix}-w{i}", log_dir=work).start() for i in (1, 2)
    ]
    fleet_log = (work / "fleet.log").open("ab")
    args = [
        ATP, "sim", "fleet", "--agents", str(s.agents), "--broker", broker.url,
        "--speed", str(s.speed), "--seed", str(s.seed), "--start", str(T0),
        "--anchor", str(anchor), "--duration", str(s.duration_s), "--prefix", s.prefix,
        "--dir", str(work / "agents"), "--quiet", "--json",
    ]  # fmt: skip

    def start_fleet() -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=fleet_log)

    def at(offset: float, what: str) -> None:
        """Wait for a moment of the timeline (the scenario runs on the wall clock)."""
        while time.time() < anchor + offset:
            if fleet.poll() is not None:
                raise AssertionError(f"the fleet exited early ({fleet.returncode})")
            time.sleep(0.05)
        out.events.append((round(time.time() - anchor, 1), what))
        progress(f"{time.time() - anchor:6.1f} s  {what}")

    fleet: subprocess.Popen[bytes] | None = None
    try:
        for w in workers:
            wait_ready(db, w.id)
        fleet = start_fleet()
        at(s.worker_kill_at, "FMAN worker 1 SIGKILL")
        workers[0].kill()
        time.sleep(1.0)  # scenario: the worker stays dead for a second
        workers[0].start()
        at(s.worker_kill_at + 1.0, "FMAN worker 1 restarted")
        at(s.broker_kill_at, "broker SIGKILL")
        broker.kill()
        time.sleep(0.5)  # scenario: the broker stays dead for half a second
        broker.start()
        at(s.broker_kill_at + 0.5, "broker restarted")
        at(s.broker_stop_at, f"broker stopped for {s.outage_s:g} s")
        broker.stop()
        time.sleep(s.outage_s)  # scenario: the outage's length
        broker.start()
        at(s.broker_stop_at + s.outage_s, "broker started again")
        at(s.fleet_kill_at, "fleet SIGKILL")
        fleet.send_signal(signal.SIGKILL)
        fleet.wait()
        time.sleep(1.0)  # scenario: the fleet stays dead for a second
        fleet = start_fleet()
        at(s.fleet_kill_at + 1.0, "fleet restarted")
        stdout, _ = fleet.communicate(timeout=s.run_s + 120)
        out.fleet_exit = fleet.returncode
        out.fleet_summary = json.loads(stdout) if stdout.strip() else {}
        progress(f"{time.time() - anchor:6.1f} s  fleet done (exit {out.fleet_exit})")
        settled_at = _settle(db)
        # the counters every worker wrote after the last message came in
        wait_for(
            lambda: all(v.get("alive_at", 0) > settled_at for v in stats(db).values()),
            what="every worker's counters written after the last message",
        )
        for values in stats(db).values():
            for k, v in values.items():
                out.fman_stats[k] = out.fman_stats.get(k, 0) + v
    finally:
        if fleet is not None and fleet.poll() is None:
            fleet.kill()
            fleet.wait()
        fleet_log.close()
        out.worker_exits = [w.stop() for w in workers]
        broker.stop()
    return out


def _settle(db: Path, timeout: float = 60.0) -> float:
    """Wait until the workers have been idle for a moment (nothing left to ingest); the wall
    time (``time.time()``) by which the last message had come in."""
    deadline = time.monotonic() + timeout
    last, quiet_since, seen_at = None, time.monotonic(), time.time()
    while time.monotonic() < deadline:
        n = query(db, "SELECT count(*) AS n, max(at) AS t FROM messages")[0]
        key = (n["n"], n["t"])
        if key != last:
            last, quiet_since, seen_at = key, time.monotonic(), time.time()
        elif time.monotonic() - quiet_since >= 2.0:
            return seen_at
        time.sleep(0.2)
    raise AssertionError(f"the workers were still ingesting after {timeout:g} s")


# -- the audit ---------------------------------------------------------------------------------


def _rows(path: Path, sql: str, params: tuple = ()) -> list[dict]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        cur = conn.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()


def _columns(path: Path, table: str) -> set[str]:
    return {r["name"] for r in _rows(path, f"PRAGMA table_info({table})")}


def _tables(path: Path) -> set[str]:
    return {r["name"] for r in _rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}


#: The side of the lifecycle an offer ended on, for comparing the agent's view with FMAN's.
def _side(state: str) -> str:
    return state if state in ("rejected", "withdrawn") else "taken"


def audit(scenario: Scenario, work: Path) -> dict[str, Any]:
    """Count, over every agent of the scenario, what its store holds against FMAN's store."""
    db = work / "fman.db"
    fman_tables = _tables(db)
    log = _rows(db, "SELECT agent, channel, ref_id, revision, outcome FROM messages")
    logged = {(r["agent"], r["channel"], r["ref_id"], r["revision"]) for r in log}
    refused_withdrawals = {
        (r["agent"], r["ref_id"])
        for r in log
        if r["channel"] == "offer/delete" and r["outcome"] == "reject"
    }
    fman_offers = {r["id"]: r for r in _rows(db, "SELECT id, issuer, state FROM offers")}
    fman_readings: dict[tuple[str, str], list[tuple[int, int, float]]] = {}
    for r in _rows(db, "SELECT agent, device, start, duration_s, energy_kwh FROM readings"):
        fman_readings.setdefault((r["agent"], r["device"]), []).append(
            (r["start"], r["duration_s"], r["energy_kwh"])
        )
    quarantined: set[tuple[str, str, int]] = set()
    if "quarantine" in fman_tables:
        quarantined = {
            (r["agent"], r["device"], r["start"])
            for r in _rows(db, "SELECT agent, device, start FROM quarantine")
        }
    in_force = {
        r["offer_id"]: r["status"]
        for r in _rows(
            db,
            "SELECT s.offer_id, s.status FROM schedules s JOIN offers o ON o.id = s.offer_id "
            "AND o.schedule_version = s.version",
        )
    }

    c: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}

    def bad(key: str, what: str) -> None:
        c[key] += 1
        examples.setdefault(key, [])
        if len(examples[key]) < 5:
            examples[key].append(what)

    for i in range(scenario.agents):
        agent = f"{scenario.prefix}-{i:04d}"
        path = work / "agents" / f"{agent}.db"
        if not path.exists():
            bad("agents_missing", agent)
            continue
        consumers = {d for d, t in site(scenario.seed, i).items() if t["generator"] in CONSUMERS}
        meta = dict((r["key"], r["value"]) for r in _rows(path, "SELECT key, value FROM meta"))
        c["agent_resent"] += int(meta.get("resent") or 0)
        held = _rows(path, "SELECT kind, ref FROM outbox")
        held_keys = {(r["kind"], r["ref"]) for r in held}
        c["held"] += sum(1 for r in held if r["kind"] in DELIVERED_KINDS)
        offer_cols = _columns(path, "offers")
        note = "fman_reason" if "fman_reason" in offer_cols else None
        offers = _rows(path, f"SELECT id, revision, state{', ' + note if note else ''} FROM offers")
        c["agent_offers"] += len(offers)
        for o in offers:
            oid, state = o["id"], o["state"]
            if ("offer", oid) in held_keys:
                continue  # still with its sender: not (yet) delivered, not lost
            if (agent, "offer", oid, o["revision"]) not in logged:
                bad("offers_lost", f"{oid} r{o['revision']} ({state} at the agent)")
                continue
            fman = fman_offers.get(oid)
            c["agent_rejected"] += state == "rejected"
            if state == "withdrawn":
                c["agent_withdrawals"] += 1
                if ("offer.delete", oid) in held_keys:
                    continue
                if (agent, "offer/delete", oid, 0) not in logged:
                    bad("withdrawals_lost", oid)
                    continue
                if (agent, oid) in refused_withdrawals:
                    c["withdrawals_refused"] += 1
                    if not (note and o[note]):
                        bad("refusal_unknown_to_agent", f"{oid}: FMAN refused the withdrawal")
                    continue
            fman_state = fman["state"] if fman else "rejected"  # a refusal that keeps no row
            if _side(state) != _side(fman_state):
                bad("state_disagreements", f"{oid}: agent {state}, FMAN {fman_state}")
            elif fman_state == "executed" and in_force.get(oid) not in ("acked", "implicit"):
                bad("executed_without_record", f"{oid}: schedule {in_force.get(oid)}")
        readings = _rows(
            path,
            "SELECT device, start, duration_s, energy_kwh, batch FROM readings "
            "WHERE batch IS NOT NULL",
        )
        c["agent_readings"] += len(readings)
        produced = {(r["device"], r["start"]) for r in readings}
        mine: dict[tuple[str, int], tuple[int, float]] = {}
        for r in readings:
            if ("meter", str(r["batch"])) in held_keys:
                continue
            mine[(r["device"], r["start"])] = (r["duration_s"], r["energy_kwh"])
        for (device, start), (duration, energy) in mine.items():
            got = [x for x in fman_readings.get((agent, device), []) if x[0] == start]
            if not got:
                if (agent, device, start) in quarantined:
                    c["readings_quarantined"] += 1
                else:
                    bad("readings_lost", f"{agent} {device} {start}")
            elif got[0][1] != duration or abs(got[0][2] - energy) > 1e-9:
                bad("readings_altered", f"{agent} {device} {start}: {got[0]} vs {energy}")
        for (a, device), xs in fman_readings.items():
            if a != agent:
                continue
            xs = sorted(xs)
            for (s0, d0, _), (s1, _, _) in itertools.pairwise(xs):
                if s0 + d0 > s1:
                    bad("readings_duplicated", f"{agent} {device} {s0}+{d0} overlaps {s1}")
            for s0, _, e in xs:
                if (device, s0) not in produced:
                    bad("readings_duplicated", f"{agent} {device} {s0}: not the agent's")
                if device in consumers and e < -1e-6:
                    bad("negative_consumption", f"{agent} {device} {s0}: {e:.3f} kWh")
    out: dict[str, Any] = {
        k: c.get(k, 0)
        for k in (
            "agent_offers",
            "agent_withdrawals",
            "agent_readings",
            "agent_rejected",
            "agent_resent",
            "offers_lost",
            "withdrawals_lost",
            "readings_lost",
            "readings_duplicated",
            "readings_altered",
            "held",
            "state_disagreements",
            "executed_without_record",
            "refusal_unknown_to_agent",
            "negative_consumption",
            "withdrawals_refused",
            "readings_quarantined",
            "agents_missing",
        )
    }
    out["examples"] = examples
    return out


#: The counts that must be zero.
MUST_BE_ZERO = (
    "offers_lost",
    "withdrawals_lost",
    "readings_lost",
    "readings_duplicated",
    "readings_altered",
    "held",
    "state_disagreements",
    "executed_without_record",
    "refusal_unknown_to_agent",
    "negative_consumption",
    "agents_missing",
)
