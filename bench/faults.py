"""Faults against the whole platform, at the issue's scale: what they cost, as an audit table.

A fleet of 100 agents (``atp sim fleet``), two FMAN workers on one database and a Mosquitto
with persistence; one after another: a worker SIGKILLed and restarted, the broker SIGKILLed
and restarted, the broker stopped for a minute, the fleet SIGKILLed and restarted. Then every
agent's store is compared with FMAN's (:mod:`tests.faultrig` says how) and the counts are
printed: what the agents made, what was lost, duplicated or altered, what the agents still
hold, and offers whose state the two sides disagree on. ``make test`` runs a small, fast
version of the same (``tests/test_faults.py``).

    .venv/bin/python bench/faults.py                # 100 agents, a 60 s outage, about 4 min
    .venv/bin/python bench/faults.py --quick        # the test's scenario, about 1 min
    .venv/bin/python bench/faults.py --runs 3 --keep /tmp/faults
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.faultrig import MUST_BE_ZERO, Scenario, audit, run  # noqa: E402

FULL = Scenario(
    agents=100,
    speed=60.0,
    seed=1,
    worker_kill_at=20.0,
    broker_kill_at=45.0,
    broker_stop_at=75.0,
    outage_s=60.0,
    fleet_kill_at=165.0,
    run_s=215.0,
    prefix="bf",
)
QUICK = Scenario()

ROWS = [
    ("agent_offers", "offers made by the agents"),
    ("agent_withdrawals", "of them withdrawn"),
    ("agent_rejected", "of them rejected by FMAN (recorded at both ends)"),
    ("agent_readings", "meter readings made"),
    ("offers_lost", "offers lost"),
    ("withdrawals_lost", "withdrawals lost"),
    ("readings_lost", "readings lost"),
    ("readings_duplicated", "readings duplicated (overlapping or not the agent's)"),
    ("readings_altered", "readings altered"),
    ("held", "messages still held by an agent, unanswered"),
    ("state_disagreements", "offers whose state agent and FMAN disagree on"),
    ("executed_without_record", "offers FMAN executed without the agent's answer"),
    ("refusal_unknown_to_agent", "refused withdrawals the agent does not know of"),
    ("withdrawals_refused", "withdrawals FMAN refused (recorded at both ends)"),
    ("negative_consumption", "negative readings of consumption-only devices"),
    ("readings_quarantined", "readings FMAN quarantined"),
]


def machine() -> str:
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} at the start"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the test's small, fast scenario")
    ap.add_argument("--runs", type=int, default=1, help="how many runs (each one printed)")
    ap.add_argument("--agents", type=int, help="override the number of agents")
    ap.add_argument("--outage", type=float, help="override the broker outage, wall seconds")
    ap.add_argument("--keep", type=Path, help="keep the stores under this directory")
    ap.add_argument("--json", action="store_true", help="print the audits as JSON")
    args = ap.parse_args()
    scenario = QUICK if args.quick else FULL
    if args.agents:
        scenario = dataclasses.replace(scenario, agents=args.agents)
    if args.outage:
        scenario = dataclasses.replace(scenario, outage_s=args.outage)
    print(f"faults: {scenario.agents} agents at {scenario.speed:g}x, two FMAN workers; {machine()}")
    results = []
    for i in range(args.runs):
        base = args.keep or Path(tempfile.mkdtemp(prefix="atp-faults-"))
        work = base / f"run-{i + 1}"
        t0 = time.monotonic()
        happened = run(scenario, work, progress=lambda m: print(f"  {m}", flush=True))
        result = audit(scenario, work)
        result["wall_s"] = round(time.monotonic() - t0, 1)
        result["meter_resets"] = happened.fleet_summary.get("meter_resets")
        result["fman_duplicates"] = int(happened.fman_stats.get("duplicate", 0))
        result["fleet_exit"] = happened.fleet_exit
        results.append(result)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return
    width = max(len(label) for _, label in ROWS)
    print(f"\n{'':{width}}  " + "  ".join(f"run {i + 1:>3}" for i in range(len(results))))
    for key, label in ROWS:
        print(f"{label:{width}}  " + "  ".join(f"{r[key]:>7}" for r in results))
    extras = [
        ("messages sent again for want of an answer", "agent_resent"),
        ("redeliveries FMAN answered from its ingest log", "fman_duplicates"),
        ("energy registers found reset after the fleet restart", "meter_resets"),
        ("wall seconds", "wall_s"),
    ]
    for label, key in extras:
        print(f"{label:{width}}  " + "  ".join(f"{r[key]!s:>7}" for r in results))
    bad = [(i + 1, k, r[k]) for i, r in enumerate(results) for k in MUST_BE_ZERO if r[k]]
    for run_no, key, value in bad:
        print(f"run {run_no}: {key} = {value}, e.g. {results[run_no - 1]['examples'].get(key)}")
    print("\nall zero where it must be" if not bad else "\nNOT ZERO: see above")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
