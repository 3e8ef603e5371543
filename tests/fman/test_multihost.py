"""Two FMAN workers on one PostgreSQL database, as on two hosts: they share ingest, exactly one
plans at a time (the planner lease is in the database), and a SIGKILL of the planning worker
loses nothing: the other takes the lease over, and the killed one, restarted under its id,
gets the share the broker kept for it."""

from __future__ import annotations

import itertools
import json
import subprocess
import time

import pytest

from cloud.broker import Mosquitto
from cloud.clock import SimClock
from cloud.fman import open_reader
from cloud.fman.store import ACTIVE_STATES

from .harness import ATP, T0, check_every_accepted_offer, stats, wait_for, wait_ready, write_config
from .minifleet import MiniFleet, sleep_until

SPEED = 900.0
HOUR = 3600
SECRET = "pw-never-logged"
#: Offers come in over SPAN, each to start LEAD to LEAD + WINDOW after it was made; the last
#: schedule (up to three hours) is over, and judged after GRACE, by T0 + END.
SPAN, LEAD, WINDOW, GRACE = 1800, 4500, 1800, 900
END = SPAN + LEAD + WINDOW + 3 * HOUR + GRACE


# half a minute of wall clock through a simulated half day: `make soak`, not `make test`
@pytest.mark.soak
def test_two_workers_on_postgresql_plan_one_at_a_time_and_a_sigkill_loses_nothing(
    tmp_path, spawn, pg_url
):
    # the test cluster trusts loopback and ignores it; the workers must not log it
    pg_url = pg_url.replace("://atp@", f"://atp:{SECRET}@")

    def read(fn):
        with open_reader(pg_url) as r:
            return fn(r)

    with Mosquitto(workdir=tmp_path / "broker") as broker:
        clock = SimClock(start=T0, speed=SPEED, anchor=time.time() + 4)
        cfg = write_config(
            tmp_path / "fman.toml",
            broker,
            pg_url,
            clock={"sim_start": str(T0), "speed": SPEED, "anchor": clock.anchor},
            # the lease passes on within two wall seconds (half an hour of this clock):
            # a schedule the killed worker published can still be resent in time
            planning={"planner": "greedy", "time_limit_s": 1.0, "lease_ttl_s": 2.0},
            execution={"grace_s": GRACE},
        )
        workers = {wid: spawn(cfg, wid) for wid in ("mh-w1", "mh-w2")}
        for wid in workers:
            wait_ready(pg_url, wid)
        fleet = MiniFleet(
            broker=broker,
            clock=clock,
            agents=30,
            offers_per_agent=3,
            span_s=SPAN,
            lead_s=LEAD,
            window_s=WINDOW,
            prefix="mh",
        )
        fleet.start()
        try:
            leader = wait_for(
                lambda: read(lambda r: r.counts().schedule_versions and r.lease_holder("planner")),
                30,
                "the first schedules",
            )
            successor = next(wid for wid in workers if wid != leader)
            workers[leader].kill()  # SIGKILL, in the middle of ingest and planning
            wait_for(
                lambda: read(lambda r: r.lease_holder("planner")) == successor,
                20,
                f"{successor} to take the planner lease over",
            )
            workers[leader].start()  # under its id: the broker hands it its queued share
            sleep_until(clock, T0 + END)
            wait_for(
                lambda: read(lambda r: not any(r.counts().offers.get(s) for s in ACTIVE_STATES)),
                30,
                "every offer executed",
            )
            sent = len(fleet.readings_sent)
            wait_for(lambda: read(lambda r: r.counts().readings) >= sent, 20, f"{sent} readings")
            snapshot = fleet.snapshot()
        finally:
            fleet.close()
            codes = [w.stop() for w in workers.values()]
        logs = "".join(w.log()[-2000:] for w in workers.values())
        assert codes == [0, 0], logs
        assert all(SECRET not in w.log() for w in workers.values())
        assert all("into postgresql://atp@" in w.log() for w in workers.values())

    # nothing lost, nothing doubled, at both ends: every published offer answered and stored
    # once; every reading the agents sent stored once
    published = {oid: tr for oid, tr in snapshot.items() if tr.published}
    assert published and all(tr.answer for tr in published.values()), [
        oid for oid, tr in published.items() if not tr.answer
    ][:5]
    with open_reader(pg_url) as r:
        stored = [o.id for o in r.list_offers(limit=100_000)]
        counts = r.counts()
        versions = r.schedules(all_versions=True, limit=100_000)
        log = r.ingest_log()
    assert sorted(stored) == sorted(published)
    assert sent > 0 and counts.readings == sent
    assert sum(w.get("meter.rejected", 0) for w in stats(pg_url).values()) == 0
    check_every_accepted_offer(pg_url, snapshot)
    # both ingested; one planned at a time: every schedule names its worker, the killed
    # leader's all come before the successor's first
    assert set(log.per_worker) == {"mh-w1", "mh-w2"}
    assert versions and all(v.worker for v in versions)
    order = [w for w, _ in itertools.groupby(v.worker for v in sorted(versions, key=_issued))]
    assert order == [leader, successor], order
    assert "holds the planner lease" in workers[successor].log()

    # the operator commands read the same database
    for args in (["offers", "list"], ["portfolio"], ["agents", "list"]):
        out = subprocess.run(
            [ATP, *args, "--store", pg_url, "--json"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        if args[0] == "offers":
            assert sorted(r["id"] for r in data) == sorted(published)
        elif args[0] == "portfolio":
            assert data["offers"] == len(check_every_accepted_offer(pg_url, snapshot))
        else:
            assert len(data) == 30 and all(a["offers"] == 3 for a in data)


def _issued(s) -> tuple[float, str, int]:
    return (s.created_at, s.offer_id, s.version)
