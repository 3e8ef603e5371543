"""Two workers on one broker and one database share the load: nothing is processed twice,
nothing is lost, and an offer's update wins over its insert whichever worker sees which first.
"""

from __future__ import annotations

import time
from collections import defaultdict

from msgspec.structs import replace

import protocol
from cloud.broker import Mosquitto
from cloud.clock import SimClock
from protocol import Withdraw, topics

from .harness import (
    T0,
    Observer,
    client,
    query,
    stats,
    wait_for,
    wait_ready,
    write_config,
)
from .minifleet import MiniFleet

AGENTS, PER_AGENT = 30, 20


def test_two_workers_share_the_load_without_duplicates_or_loss(tmp_path, spawn):
    with Mosquitto(workdir=tmp_path / "broker") as broker:
        clock = SimClock(start=T0, speed=1.0)
        db = tmp_path / "fman.db"
        cfg = write_config(
            tmp_path / "fman.toml",
            broker,
            db,
            clock={"sim_start": str(T0), "speed": 1.0, "anchor": clock.anchor},
        )
        workers = [spawn(cfg, f"so-w{i}") for i in (1, 2)]
        for w in workers:
            wait_ready(db, w.id)
        observer = Observer(broker)
        fleet = MiniFleet(
            broker=broker,
            clock=clock,
            agents=AGENTS,
            offers_per_agent=PER_AGENT,
            span_s=900,
            meter=False,
            prefix="so",
        )
        updater = client(broker, "so-updater")
        offers = list(fleet.offers.values())
        withdrawn = {tr.offer.id for tr in offers[::10]}

        def update(tr) -> None:
            new = replace(tr.offer, revision=1, start_before=tr.offer.start_before - 900)
            updater.publish(
                topics.agent_topic(new.issuer, "offer"), protocol.encode(new, ts=T0), qos=1
            ).wait_for_publish(5)
            if new.id in withdrawn:
                updater.publish(
                    topics.agent_topic(new.issuer, "offer/delete"),
                    protocol.encode(Withdraw(offer_id=new.id), ts=T0),
                    qos=1,
                )

        # half the updates overtake their inserts, the others follow them
        for tr in offers[::2]:
            update(tr)
        fleet.start()
        wait_for(lambda: all(tr.published for tr in offers), 10, "the fleet's inserts")
        for tr in offers[1::2]:
            update(tr)
        with fleet.lock:  # from now on the agents hold revision 1
            for tr in offers:
                tr.offer = replace(tr.offer, revision=1, start_before=tr.offer.start_before - 900)
        total = 2 * len(offers) + len(withdrawn)
        try:
            wait_for(
                lambda: query(db, "SELECT count(*) AS n FROM messages")[0]["n"] >= total,
                120,  # generous: a loaded machine slows the broker and both workers
                f"{total} messages",
            )
            live = {tr.offer.id for tr in offers} - withdrawn
            try:
                wait_for(
                    lambda: (
                        query(
                            db,
                            "SELECT count(*) AS n FROM schedules s JOIN offers o ON "
                            "o.id = s.offer_id AND s.version = o.schedule_version "
                            "WHERE s.status = 'acked'",
                        )[0]["n"]
                        >= len(live)
                    ),
                    120,
                    "every live offer's schedule acknowledged",
                )
            except AssertionError as exc:
                # say which offers lack one, and what happened to their schedules
                waiting = query(
                    db,
                    "SELECT o.id, o.state, o.revision, o.schedule_version, s.version, "
                    "s.status, s.kind, s.reason FROM offers o LEFT JOIN schedules s "
                    "ON s.offer_id = o.id WHERE o.state != 'withdrawn' AND o.id NOT IN "
                    "(SELECT offer_id FROM schedules WHERE status = 'acked' AND "
                    "version = o.schedule_version) ORDER BY o.id, s.version",
                )
                refused = {tr.offer.id: tr.refused for tr in offers if tr.refused}
                raise AssertionError(f"{exc}: {waiting[:20]}; refused {refused}") from None
            time.sleep(1.0)  # let anything that would be extra arrive
        finally:
            fleet.close()
            updater.loop_stop()
            observer.close()
            codes = [w.stop() for w in workers]
        assert codes == [0, 0], workers[0].log()[-2000:] + workers[1].log()[-2000:]

    # each message processed once, by one of the two, and both took a share
    per_worker = {
        r["worker"]: r["n"]
        for r in query(db, "SELECT worker, count(*) AS n FROM messages GROUP BY worker")
    }
    assert sum(per_worker.values()) == total
    assert set(per_worker) == {"so-w1", "so-w2"} and min(per_worker.values()) > total * 0.1
    s = stats(db)
    assert sum(w.get("duplicate", 0) + w.get("offer.repeated", 0) for w in s.values()) == 0
    assert sum(w.get("offer.rejected", 0) for w in s.values()) >= len(offers) // 2  # superseded
    # one answer per offer revision and withdrawal, never two
    answers = defaultdict(list)
    for _, b in observer.get("ack"):
        answers[(b.ref_kind, b.ref_id, b.revision)].append(type(b).__name__)
    assert all(len(v) == 1 for v in answers.values()), [
        k for k, v in answers.items() if len(v) > 1
    ][:5]
    assert len(answers) == total
    # the update won wherever it was seen first; withdrawals held even if they came first
    rows = {r["id"]: r for r in query(db, "SELECT id, revision, state FROM offers")}
    for oid in withdrawn:
        assert rows[oid]["state"] == "withdrawn"
    for oid in live:
        assert rows[oid]["revision"] == 1 and rows[oid]["state"] == "assigned", rows[oid]
    # one planner; one schedule in force per live offer, on the wire exactly once per version
    assert sum(1 for w in s.values() if w.get("schedules.issued", 0) > 0) == 1
    sent = defaultdict(int)
    for _, sch in observer.get("schedule"):
        sent[(sch.offer_id, sch.version)] += 1
    assert all(n == 1 for n in sent.values())
    in_force = query(
        db,
        "SELECT s.offer_id, s.version, s.status FROM schedules s JOIN offers o "
        "ON o.id = s.offer_id AND s.version = o.schedule_version",
    )
    # (a withdrawn offer may have had its schedule taken before its withdrawal arrived)
    assert live <= {r["offer_id"] for r in in_force if r["status"] == "acked"}
    for r in in_force:
        if r["offer_id"] in live:
            assert fleet.offers[r["offer_id"]].schedule.version == r["version"]
