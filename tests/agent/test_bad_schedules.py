"""Bad schedules over the real broker: refused with reasons on the wire, the agent runs on and
the device is not touched by them."""

from __future__ import annotations

import asyncio
import json

import msgpack

from agent.clock import SimClock
from agent.config import load_config
from agent.runtime import AgentRuntime
from protocol import Ack, Reject, Schedule
from tests.agent.helpers import T0, Peer, write_config
from tests.waiting import until

SPEED = 1800  # a 15-minute slot in half a second


def test_malformed_and_infeasible_schedules_are_rejected_and_change_nothing(
    broker, topic_root, tmp_path
):
    agent = topic_root
    state = tmp_path / "d1.json"
    cfg = load_config(
        write_config(
            tmp_path / "foa.toml",
            agent_id=agent,
            broker_url=broker.url,
            devices={"d1": {"state_file": str(state), "cycle_s": 3600, "slots": 2}},
            agent={"control_interval_s": 300},
        )
    )
    peer = Peer(host=broker.host, port=broker.port, agent_id=agent)
    clock = SimClock(start=T0 + 60, speed=SPEED)
    runtime = AgentRuntime(config=cfg, clock=clock)
    answers: dict[str, list] = {}

    async def fman() -> None:
        """Answer the first offer with a malformed, then an infeasible, then a good schedule."""
        await until(lambda: peer.of("offer"), what="the agent's first offer")
        offer = peer.of("offer")[0].msg.body
        malformed = msgpack.packb(
            {
                "v": "1.0",
                "kind": "schedule",
                "id": "bad-types",
                "ts": T0,
                "body": {"offer_id": offer.id, "version": 1, "start": offer.start_after,
                         "energy_kwh": ["lots", 0.3]},
            }
        )  # fmt: skip
        peer.send_raw("schedule", malformed)
        too_much = Schedule(
            offer_id=offer.id, version=1, start=offer.start_after, energy_kwh=[0.9, 0.3]
        )
        peer.send("schedule", too_much, ts=T0, msg_id="too-much")
        await asyncio.to_thread(peer.wait_for, lambda p: len(p.of("schedule/ack")) == 2)
        answers["bad"] = [r.msg.body for r in peer.of("schedule/ack")]
        # the device was not touched by either of them
        answers["commands_after_bad"] = json.loads(state.read_text())["commands"]
        good = Schedule(
            offer_id=offer.id, version=1, start=offer.start_after, energy_kwh=[0.4, 0.2]
        )
        peer.send("schedule", good, ts=T0, msg_id="good")
        answers["offer"] = offer

    async def scenario() -> None:
        task = asyncio.create_task(runtime.run(until=T0 + 3600 + 1800 + 60))
        await fman()
        await task

    asyncio.run(scenario())
    offer = answers["offer"]
    malformed, infeasible = answers["bad"]
    assert isinstance(malformed, Reject) and malformed.ref_id == offer.id
    assert [(r.code, r.field) for r in malformed.reasons] == [("malformed", "energy_kwh[0]")]
    assert isinstance(infeasible, Reject) and infeasible.revision == 1
    assert [(r.code, r.field) for r in infeasible.reasons] == [("infeasible", "energy_kwh[0]")]
    assert answers["commands_after_bad"] == []
    # the agent ran on: the good schedule was taken and executed, readings kept coming
    (ack,) = [r.msg.body for r in peer.of("schedule/ack") if isinstance(r.msg.body, Ack)]
    assert (ack.ref_id, ack.revision) == (offer.id, 1)
    readings = [x for r in peer.of("meter") for x in r.msg.body.readings]
    by_start = {x.start: x for x in readings}
    assert abs(by_start[offer.start_after].energy_kwh - 0.4) < 0.02
    assert abs(by_start[offer.start_after + 900].energy_kwh - 0.2) < 0.02
    commands = json.loads(state.read_text())["commands"]
    powers = [c[2] for c in commands if c[1] == "power"]
    assert powers and max(powers) <= 2000.0  # never outside the device's limits
    assert all(c[0] >= offer.start_after for c in commands)
    peer.close()
