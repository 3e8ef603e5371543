"""The daemon (``foa run``) is killed with SIGKILL mid-run and started again: nothing is lost,
nothing is done twice. ``foa status`` reads the store while the daemon runs."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.store import Store
from protocol import Ack, Schedule
from tests.agent.helpers import T0, Peer, write_config

ROOT = Path(__file__).resolve().parents[2]
SPEED = 1800  # a slot in half a second
FOA = [sys.executable, "-c", "from agent.cli import main; main()"]


class Fman(threading.Thread):
    """Accepts every offer revision and schedules it at its upper bounds, once."""

    def __init__(self, peer: Peer) -> None:
        super().__init__(daemon=True)
        self.peer = peer
        self.done: set[tuple[str, int]] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            for r in self.peer.of("offer"):
                o = r.msg.body
                if (o.id, o.revision) in self.done:
                    continue
                self.done.add((o.id, o.revision))
                self.peer.send(
                    "ack", Ack(ref_kind="offer", ref_id=o.id, revision=o.revision), ts=o.created_at
                )
                energy = list(o.profiles[0].upper_kwh)
                sched = Schedule(offer_id=o.id, version=1, start=o.start_after, energy_kwh=energy)
                self.peer.send("schedule", sched, ts=o.created_at, msg_id=f"s-{o.id}")


def sim_now(anchor: float) -> float:
    return T0 + (time.time() - anchor) * SPEED


def test_sigkill_mid_run_loses_nothing_and_does_nothing_twice(own_broker, topic_root, tmp_path):
    broker, agent = own_broker, topic_root
    anchor = time.time()
    states = {d: tmp_path / f"{d}.json" for d in ("d1", "d2")}
    config = write_config(
        tmp_path / "foa.toml",
        agent_id=agent,
        broker_url=broker.url,
        devices={
            "d1": {"state_file": str(states["d1"]), "cycle_s": 1800, "slots": 1},
            "d2": {"state_file": str(states["d2"]), "cycle_s": 3600, "slots": 3},
        },
        agent={"control_interval_s": 300, "log_level": "warning"},
        clock={"speed": SPEED, "start": T0, "anchor": anchor},
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    peer = Peer(host=broker.host, port=broker.port, agent_id=agent, answer=("meter",))
    fman = Fman(peer)
    fman.start()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*FOA, "run", "--config", str(config)], env=env, cwd=tmp_path, stderr=subprocess.PIPE
        )

    first = start()
    peer.wait_for(lambda p: len(p.of("schedule/ack")) >= 3, timeout=30)
    time.sleep(0.3)  # somewhere in the middle of a slot
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = sim_now(anchor)
    time.sleep(0.6)  # the agent is gone for more than a slot; FMAN keeps sending
    second = start()
    restarted_at = sim_now(anchor)
    # foa status answers from the store while the daemon runs
    time.sleep(1.5)
    status = subprocess.run(
        [*FOA, "status", "--config", str(config), "--json"], env=env, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["agent"] == agent and report["offers"]
    assert report["daemon"] == {"pid": second.pid, "running": True}
    while sim_now(anchor) < killed_at + 8 * 900:
        time.sleep(0.1)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0, second.stderr.read().decode()
    fman.stop.set()

    store = Store.reader(tmp_path / f"{agent}.db")
    produced = store.readings()
    cursors = {d: store.cursor(d) for d in states}
    plans = store.plans(s.offer.id for s in store.offers())
    deadlines = {s.offer.id: s.offer.assignment_before for s in store.offers()}
    assert store.outbox_size() == 0
    store.close()
    peer.wait_for(lambda p: sum(len(r.msg.body.readings) for r in p.of("meter")) >= len(produced))

    # nothing lost: every reading produced arrived, and they tile time without gap or overlap
    arrived = [x for r in peer.of("meter") for x in r.msg.body.readings]
    assert sorted(arrived, key=lambda r: (r.device, r.start)) == sorted(
        produced, key=lambda r: (r.device, r.start)
    )
    for device, (_, register) in cursors.items():
        mine = sorted((r for r in arrived if r.device == device), key=lambda r: r.start)
        assert all(a.start + a.duration_s == b.start for a, b in itertools.pairwise(mine))
        assert any(r.start < killed_at < r.start + r.duration_s for r in mine)
        assert abs(sum(r.energy_kwh for r in mine) - register) < 1e-6  # all metered energy
    # nothing twice: one message per offer revision, one answer per schedule
    offers = [(r.msg.body.id, r.msg.body.revision) for r in peer.of("offer")]
    assert len(offers) == len(set(offers))
    answers = [(r.msg.body.ref_id, r.msg.body.revision) for r in peer.of("schedule/ack")]
    assert len(answers) == len(set(answers))
    # a schedule refused is one that waited at the broker past its deadline while we were dead
    for r in peer.of("schedule/ack"):
        if not isinstance(r.msg.body, Ack):
            (reason,) = r.msg.body.reasons  # past its deadline, or its default already running
            assert reason.code in ("too_late", "offer_state", "start_passed")
            deadline = deadlines[r.msg.body.ref_id]
            assert killed_at - 900 <= deadline <= restarted_at + 900
    # and the devices took what the schedules asked, slot by slot, outside the interrupted slot
    assert sum(1 for r in arrived if r.offer_id in plans) >= 6  # readings name their offer
    for r in arrived:
        plan = plans.get(r.offer_id)
        if plan is None or r.duration_s != 900 or r.start <= killed_at < r.start + 2 * 900:
            continue
        assert abs(r.energy_kwh - plan.slot_energy(r.start)) < 0.03, r
    peer.close()
