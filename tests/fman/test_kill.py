"""The worker is SIGKILLed while a fleet is sending, then restarted under the same id.

What the broker had handed over but the worker had not committed is redelivered (the
worker's session is persistent and it acknowledges only after the commit); what it had
committed but not acknowledged is recognised in the ingest log and answered again, never
stored twice; schedules stored but not yet published are sent after the restart.
"""

from __future__ import annotations

import time
from collections import defaultdict

from cloud.broker import Mosquitto
from cloud.clock import SimClock

from .harness import (
    T0,
    Observer,
    check_every_accepted_offer,
    query,
    wait_for,
    wait_ready,
    write_config,
)
from .minifleet import MiniFleet, sleep_until

SPEED = 3000.0


def test_sigkill_mid_run_loses_nothing_and_duplicates_nothing(tmp_path, spawn):
    with Mosquitto(workdir=tmp_path / "broker") as broker:
        clock = SimClock(start=T0, speed=SPEED, anchor=time.time() + 3)
        db = tmp_path / "fman.db"
        cfg = write_config(
            tmp_path / "fman.toml",
            broker,
            db,
            clock={"sim_start": str(T0), "speed": SPEED, "anchor": clock.anchor},
        )
        worker = spawn(cfg, "kill-w1")
        wait_ready(db, "kill-w1")
        observer = Observer(broker)
        fleet = MiniFleet(
            broker=broker,
            clock=clock,
            agents=40,
            offers_per_agent=3,
            span_s=3 * 3600,
            lead_s=3 * 3600,
            window_s=2 * 3600,
            prefix="k",
        )
        fleet.start()
        try:
            sleep_until(clock, T0 + 3600)
            wait_for(
                lambda: query(db, "SELECT count(*) AS n FROM schedules")[0]["n"] > 0,
                20,
                "the first schedules",
            )
            worker.kill()  # SIGKILL, in the middle of ingest and planning
            time.sleep(0.3)
            worker.start()
            sleep_until(clock, T0 + 11 * 3600)
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
            snapshot = fleet.snapshot()
        finally:
            fleet.close()
            observer.close()
            code = worker.stop()
        assert code == 0, worker.log()[-3000:]

    # nothing lost: every offer the fleet published got an answer
    published = {oid: tr for oid, tr in snapshot.items() if tr.published}
    assert published and all(tr.answer for tr in published.values()), [
        oid for oid, tr in published.items() if not tr.answer
    ][:5]
    # nothing doubled: one stored row per offer, and every answer about an offer the same
    answers = defaultdict(set)
    for _, body in observer.get("ack"):
        if body.ref_kind == "offer":
            answers[body.ref_id].add(type(body).__name__)
    assert all(len(kinds) == 1 for kinds in answers.values())
    rows = query(db, "SELECT id FROM offers WHERE revision >= 0")
    assert len(rows) == len({r["id"] for r in rows}) == len(published)
    accepted = check_every_accepted_offer(db, snapshot)
    # offers whose acceptance deadline passed during the outage are rightly refused
    assert len(accepted) >= 0.3 * len(published)
    assert "holds the planner lease" in worker.log()


def test_after_a_broker_restart_the_worker_subscribes_again(tmp_path, spawn):
    """Mosquitto 2.0.11 restores the worker's persistent session after a restart (from its
    persistence file) but not its shared subscriptions (the CONNACK says "session present"
    all the same): until the worker subscribes again, the broker acknowledges what agents
    send and drops it. The worker subscribes on every connection; an agent that sends its
    offer until it hears an answer (as the agent does) gets one, and the offer is stored
    once."""
    import protocol
    from protocol import topics
    from protocol.samples import two_slot_offer

    from .harness import client

    with Mosquitto(workdir=tmp_path / "broker") as broker:
        db = tmp_path / "fman.db"
        cfg = write_config(tmp_path / "fman.toml", broker, db, clock={"speed": 1.0})
        worker = spawn(cfg, "resub-w1")
        wait_ready(db, "resub-w1")
        broker.stop()  # a clean stop saves the sessions
        broker.start()
        observer = Observer(broker)
        agent = client(broker, "resub-agent")
        offer = two_slot_offer(agent="resub-a", now=int(time.time()) // 900 * 900 + 900)
        payload = protocol.encode(offer, ts=offer.created_at, msg_id="resub.r0")

        def answered() -> bool:
            if any(b.ref_id == offer.id for _, b in observer.get("ack")):
                return True
            agent.publish(topics.agent_topic("resub-a", "offer"), payload, qos=1)
            return False

        try:
            wait_for(answered, 30, "an answer to the offer after the restart", step=1.0)
        finally:
            agent.loop_stop()
            observer.close()
        log = worker.log()
        assert worker.stop() == 0, log[-2000:]
    assert "session present: True" in log  # the case Mosquitto gets wrong
    assert query(db, "SELECT count(*) AS n FROM offers")[0]["n"] == 1
    assert query(db, "SELECT count(*) AS n FROM messages")[0]["n"] == 1
