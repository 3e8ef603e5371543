"""End to end: a fleet of 50 agents through a simulated day with one real FMAN worker.

Every accepted offer must end with exactly one schedule in force (the one its agent holds),
executed and metered; planning must move the portfolio towards the target. The CLI commands
are then run against the very database the day produced.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from cloud.broker import Mosquitto
from cloud.clock import SimClock
from cloud.fman import series

from .harness import (
    ATP,
    T0,
    Observer,
    WorkerProc,
    check_every_accepted_offer,
    query,
    stats,
    wait_for,
    wait_ready,
    write_config,
)
from .minifleet import MiniFleet, sleep_until

SPEED = 4000.0
AGENTS = 50
DAY = 86_400


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fman-day")
    target = {T0 + i * 900: (16.0 if 40 <= i < 64 else 4.0) for i in range(96)}
    (tmp / "target.json").write_bytes(series.to_json(target))
    with Mosquitto(workdir=tmp / "broker") as broker:
        clock = SimClock(start=T0, speed=SPEED, anchor=time.time() + 3)
        cfg = write_config(
            tmp / "fman.toml",
            broker,
            tmp / "fman.db",
            clock={"sim_start": str(T0), "speed": SPEED, "anchor": clock.anchor},
            objective={"target": {"file": str(tmp / "target.json")}},
        )
        worker = WorkerProc(config=cfg, worker_id="day-w1", log_dir=tmp).start()
        wait_ready(tmp / "fman.db", "day-w1")
        observer = Observer(broker)
        fleet = MiniFleet(
            broker=broker,
            clock=clock,
            agents=AGENTS,
            offers_per_agent=3,
            span_s=12 * 3600,
            window_s=4 * 3600,
        ).start()
        try:
            sleep_until(clock, T0 + DAY)
            db = tmp / "fman.db"
            wait_for(
                lambda: (
                    not query(
                        db,
                        "SELECT id FROM offers WHERE state IN ('accepted','assigned','executing')",
                    )
                ),
                20,
                "every offer executed",
            )
            yield {
                "db": db,
                "fleet": fleet.snapshot(),
                "observer": observer,
                "worker": worker,
                "tmp": tmp,
            }
        finally:
            fleet.close()
            observer.close()
            assert worker.stop() == 0, worker.log()[-3000:]


def test_every_accepted_offer_has_one_schedule_in_force_executed_and_metered(day):
    accepted = check_every_accepted_offer(day["db"], day["fleet"])
    assert len(accepted) >= 0.9 * len(day["fleet"]), "most offers should be accepted"
    flagged = query(day["db"], "SELECT id FROM offers WHERE flagged_slots > 0")
    assert not flagged, "the fleet runs its schedules exactly: no deviations"


def test_schedules_go_only_to_their_issuer_and_versions_grow(day):
    fleet = day["fleet"]
    last: dict[str, int] = {}
    for owner, s in day["observer"].get("schedule"):
        assert fleet[s.offer_id].offer.issuer == owner
        assert s.version >= last.get(s.offer_id, 0)
        last[s.offer_id] = s.version


def test_planning_moves_the_portfolio_towards_the_target(day):
    out = subprocess.run(
        [ATP, "portfolio", "--db", str(day["db"]), "--json", "--plot", str(day["tmp"] / "p.png")],
        capture_output=True,
        text=True,
        check=True,
    )
    p = json.loads(out.stdout)
    assert p["imbalance_scheduled_kwh"] < 0.8 * p["imbalance_baseline_kwh"]
    assert p["imbalance_metered_kwh"] == pytest.approx(p["imbalance_scheduled_kwh"], rel=0.05)
    assert p["shifted_kwh"] > 0
    assert (day["tmp"] / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_worker_counted_no_failures(day):
    s = stats(day["db"])["day-w1"]
    assert s.get("failed", 0) == 0 and s.get("cycle.errors", 0) == 0
    assert s["offer.accepted"] == sum(1 for tr in day["fleet"].values() if tr.answer == "ack")


def _atp(*args: str) -> str:
    return subprocess.run([ATP, *args], capture_output=True, text=True, check=True).stdout


def test_cli_lists_offers_schedules_and_agents(day):
    db = str(day["db"])
    fleet = day["fleet"]
    agent = next(iter(fleet.values())).offer.issuer
    mine = json.loads(_atp("offers", "list", "--db", db, "--agent", agent, "--json"))
    assert {r["id"] for r in mine} == {oid for oid, tr in fleet.items() if tr.offer.issuer == agent}
    executed = json.loads(_atp("offers", "list", "--db", db, "--state", "executed", "--json"))
    assert len(executed) == sum(1 for tr in fleet.values() if tr.answer == "ack")
    late = json.loads(_atp("offers", "list", "--db", db, "--from", "2026-01-01T20:00", "--json"))
    assert all(r["start_before"] >= T0 + 20 * 3600 for r in late)
    oid = mine[0]["id"]
    detail = json.loads(_atp("offers", "show", oid, "--db", db, "--json"))
    assert detail["offer"]["id"] == oid and detail["schedules"] and detail["execution"]
    assert "schedules:" in _atp("offers", "show", oid, "--db", db)
    sched = json.loads(_atp("schedules", "show", oid, "--db", db, "--json"))
    assert len(sched) == 1 and sched[0]["in_force"]
    agents = json.loads(_atp("agents", "list", "--db", db, "--json"))
    assert len(agents) == AGENTS and all(a["state"] == "online" for a in agents)
    assert "online" in _atp("agents", "list", "--db", db)
