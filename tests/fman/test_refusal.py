"""A schedule the agent refuses is re-planned at once, not at the next planning interval.

At real time a planning interval is a slot (15 minutes); an offer whose schedule was refused
must not wait that long for another, as its deadline may come first. Both tests run the clock
at real time, so the next planning interval is 15 minutes of wall time away.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from cloud.broker import Mosquitto
from cloud.cli import main as cli_main
from cloud.clock import SimClock

from .harness import T0, query, stats, wait_for, wait_ready, write_config
from .minifleet import MiniFleet, Tracked


def _run(tmp_path: Path, spawn, wait: Callable[[list[Tracked]], None], **fleet) -> list[Tracked]:
    """One worker and a refusing mini fleet at real-time speed until ``wait`` returns."""
    with Mosquitto(workdir=tmp_path / "broker") as broker:
        clock = SimClock(start=T0, speed=1.0)
        db = tmp_path / "fman.db"
        cfg = write_config(
            tmp_path / "fman.toml",
            broker,
            db,
            clock={"sim_start": str(T0), "speed": 1.0, "anchor": clock.anchor},
        )
        worker = spawn(cfg, f"{fleet['prefix']}-w1")
        wait_ready(db, worker.id)
        agents = MiniFleet(broker=broker, clock=clock, span_s=900, meter=False, **fleet)
        offers = list(agents.offers.values())
        agents.start()
        try:
            wait(offers)
        finally:
            agents.close()
            assert worker.stop() == 0, worker.log()[-2000:]
    return offers


def test_a_refused_schedule_is_replanned_at_once(tmp_path, spawn):
    def in_force() -> dict[str, tuple[int, str]]:
        rows = query(
            tmp_path / "fman.db",
            "SELECT s.offer_id, s.version, s.status, s.kind FROM schedules s JOIN offers o "
            "ON o.id = s.offer_id AND s.version = o.schedule_version",
        )
        return {r["offer_id"]: (r["version"], r["status"]) for r in rows}

    def settled(offers: list[Tracked]) -> bool:
        # re-planned (version 3, acknowledged), or re-planned to exactly the default the
        # agent already runs (version 2, FMAN's record of it): nothing new to send
        now = in_force()
        return len(now) == len(offers) and all(
            (now.get(tr.offer.id) == (3, "acked") and tr.schedule is not None)
            or now.get(tr.offer.id) == (2, "implicit")
            for tr in offers
        )

    def wait(offers: list[Tracked]) -> None:
        # the first plan follows the offers' arrival; every first version is refused; the
        # agents' answers reach FMAN a moment later: wait for them, the agents still up
        wait_for(lambda: settled(offers), 30, "every refused offer planned again")

    offers = _run(
        tmp_path,
        spawn,
        wait,
        agents=3,
        offers_per_agent=2,
        prefix="rf",
        refuse_first=True,
    )
    # (version 2 is FMAN's record that the agent fell back to its default)
    assert offers and all(tr.refused == [1] for tr in offers)
    final = in_force()
    assert any(v == (3, "acked") for v in final.values()), final
    for tr in offers:
        if final[tr.offer.id] == (3, "acked"):
            assert tr.schedule is not None and tr.schedule.version == 3
    # the operator's view: one log line per plan, the refusals summed per reason, and the
    # counters behind both (FMAN logged nothing about either at INFO)
    log = (tmp_path / "rf-w1.log").read_text()
    plans = [line for line in log.splitlines() if " INFO cloud.fman.cycle: plan (" in line]
    counters = stats(tmp_path / "fman.db")["rf-w1"]
    assert plans and len(plans) == counters["plan.runs"], log[-3000:]
    assert "balance to zero: no target series" in plans[0]
    summaries = [line.split("refused: ")[1] for line in log.splitlines() if "refused: " in line]
    assert summaries and all(s.endswith(")") for s in summaries), log[-3000:]
    refused = sum(int(s.split()[0]) for s in summaries if s.split()[1] == "schedule")
    assert refused == counters["refused.schedule.infeasible"] == len(offers)
    out = CliRunner().invoke(
        cli_main, ["fman", "stats", "--store", str(tmp_path / "fman.db"), "--json"]
    )
    assert json.loads(out.stdout)["rf-w1"]["refused.schedule.infeasible"] == len(offers)
    out = CliRunner().invoke(cli_main, ["fman", "stats", "--store", str(tmp_path / "fman.db")])
    assert out.exit_code == 0, out.output
    row = next(line for line in out.stdout.splitlines() if line.startswith("plan.runs "))
    assert row.split() == ["plan.runs", str(int(counters["plan.runs"]))]


def test_an_agent_that_refuses_everything_does_not_make_fmans_planner_spin(tmp_path, spawn):
    # "unknown_offer" (the agent lost its store) is no refusal a new plan can cure: the offer
    # waits for the next planning interval
    def wait(offers: list[Tracked]) -> None:
        wait_for(lambda: all(tr.refused for tr in offers), 30, "every first schedule refused")
        time.sleep(5.0)  # time for many re-plans, were they made

    offers = _run(
        tmp_path, spawn, wait, agents=2, offers_per_agent=2, prefix="rg", refuse_all="unknown_offer"
    )
    assert all(tr.refused == [1] for tr in offers), [(tr.offer.id, tr.refused) for tr in offers]
    versions = query(
        tmp_path / "fman.db", "SELECT offer_id, max(version) AS v FROM schedules GROUP BY offer_id"
    )
    # the refused plan and FMAN's record that the agent fell back to its default
    assert {r["v"] for r in versions} == {2}, versions
