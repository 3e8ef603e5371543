"""The daemon (``foa run``) is killed with SIGKILL mid-run and started again: nothing is lost,
nothing is done twice. ``foa status`` reads the store while the daemon runs.

The agent runs on a simulated clock at 1800 times real time, so a wall-clock hiccup of a
loaded machine is minutes of simulated time. The test therefore waits for events (schedules
answered, slots executed) rather than for wall-clock instants, and the timing it judges the
agent on is the agent's own, as recorded in what it did (the simulated time of each command
it sent its devices and of each answer it sent FMAN)."""

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
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SPEED = 1800  # a slot in half a second
SLOT_S = 900
MAX_POWER_W = 2000.0  # the test meter's default
FOA = [sys.executable, "-c", "from agent.cli import main; main()"]


class Fman(threading.Thread):
    """Accepts every offer revision and schedules it at its upper bounds, once."""

    def __init__(self, peer: Peer) -> None:
        super().__init__(daemon=True)
        self.peer = peer
        self.done: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self.offer_ids: set[str] = set()
        self.stop = threading.Event()

    def scheduled(self) -> set[str]:
        """The offers it has sent a schedule for."""
        with self.lock:
            return set(self.offer_ids)

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
                with self.lock:
                    self.offer_ids.add(o.id)


def sim_now(anchor: float) -> float:
    return T0 + (time.time() - anchor) * SPEED


def lateness(commands: list[list]) -> dict[int, float]:
    """For each slot in which the agent commanded the device: how long after the slot's
    start its first command came (the control step that opened the slot, right after the
    sample that closed the slot before)."""
    out: dict[int, float] = {}
    for ts, _kind, _value in commands:
        slot = int(ts) // SLOT_S * SLOT_S
        out[slot] = min(out.get(slot, SLOT_S), ts - slot)
    return out


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

    def executed(since: float = 0.0) -> int:
        """Readings FMAN received for slots (from ``since``) run under its schedules."""
        ours = fman.scheduled()
        readings = [x for r in peer.of("meter") for x in r.msg.body.readings]
        return sum(1 for x in readings if x.offer_id in ours and x.start >= since)

    first = start()
    peer.wait_for(lambda p: len(p.of("schedule/ack")) >= 3, timeout=30)
    time.sleep(0.3)  # scenario: the kill lands somewhere in the middle of a slot
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = sim_now(anchor)
    time.sleep(0.6)  # scenario: gone for more than a slot (1080 s) while FMAN keeps sending
    second = start()
    restarted_at = sim_now(anchor)

    # foa status answers from the store while the daemon runs
    def status() -> dict | None:
        proc = subprocess.run(
            [*FOA, "status", "--config", str(config), "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        return report if report["daemon"] == {"pid": second.pid, "running": True} else None

    report = wait_for(status, timeout=60, what="foa status to see the restarted daemon", step=0.2)
    assert report["agent"] == agent and report["offers"]
    # the restarted daemon runs FMAN's schedules: some slots in all, two of them its own
    wait_for(
        lambda: executed() >= 6 and executed(since=restarted_at + SLOT_S) >= 2,
        timeout=90,
        what="slots run under FMAN's schedules, before and after the restart",
    )
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
    assert produced and sorted(arrived, key=lambda r: (r.device, r.start)) == sorted(
        produced, key=lambda r: (r.device, r.start)
    )
    for device, (_, register) in cursors.items():
        mine = sorted((r for r in arrived if r.device == device), key=lambda r: r.start)
        assert len(mine) >= 2
        assert all(a.start + a.duration_s == b.start for a, b in itertools.pairwise(mine))
        assert any(r.start < killed_at < r.start + r.duration_s for r in mine)
        assert abs(sum(r.energy_kwh for r in mine) - register) < 1e-6  # all metered energy
    # nothing twice: one message per offer revision, one answer per schedule
    offers = [(r.msg.body.id, r.msg.body.revision) for r in peer.of("offer")]
    assert len(offers) == len(set(offers))
    answers = [(r.msg.body.ref_id, r.msg.body.revision) for r in peer.of("schedule/ack")]
    assert len(answers) == len(set(answers))
    # a schedule refused is one that waited at the broker past its deadline while we were
    # dead: its deadline had passed when the daemon took it (its answer carries its simulated
    # time), and fell no earlier than a slot, or the first daemon's slowest turn from making
    # an offer to answering its schedule, before the kill (the offer or its schedule was in
    # flight when it died; on a loaded machine a turn lasts longer in simulated time)
    created = {r.msg.body.id: r.msg.body.created_at for r in reversed(peer.of("offer"))}
    answers_first = [r for r in peer.of("schedule/ack") if r.msg.ts < killed_at]
    assert answers_first  # the first daemon answered schedules (three, before the kill)
    turn = max(r.msg.ts - created[r.msg.body.ref_id] for r in answers_first)
    for r in peer.of("schedule/ack"):
        if not isinstance(r.msg.body, Ack):
            (reason,) = r.msg.body.reasons  # past its deadline, or its default already running
            assert reason.code in ("too_late", "offer_state", "start_passed")
            deadline = deadlines[r.msg.body.ref_id]
            assert killed_at - max(SLOT_S, turn) <= deadline <= r.msg.ts, (killed_at, turn, r)
    # and the devices took what the schedules asked, slot by slot, outside the interrupted
    # slot: as closely as the moment the agent closed each slot allows (a slot closed late
    # goes on at the slot's last set-point until then, at most the meter's full power)
    late = {d: lateness(json.loads(p.read_text())["commands"]) for d, p in states.items()}
    assert sum(1 for r in arrived if r.offer_id in plans) >= 6  # readings name their offer
    compared = [
        r
        for r in arrived
        if r.offer_id in plans
        and r.duration_s == SLOT_S
        and not r.start <= killed_at < r.start + 2 * SLOT_S
    ]
    assert len(compared) >= 2
    for r in compared:
        closed = late[r.device].get(r.start + SLOT_S)
        assert closed is not None, f"no control step in the slot after {r}"
        slack_kwh = 0.03 + closed * MAX_POWER_W / 3.6e6
        assert abs(r.energy_kwh - plans[r.offer_id].slot_energy(r.start)) < slack_kwh, (r, closed)
    peer.close()
