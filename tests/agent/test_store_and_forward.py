"""Store and forward: the broker goes away for a while during a run; the agent keeps executing
and buffering; when the broker returns every reading and offer arrives exactly as produced,
in order."""

from __future__ import annotations

import asyncio
import json
import time

from agent.clock import SimClock
from agent.config import load_config
from agent.runtime import AgentRuntime
from agent.store import Store
from protocol import MeterReading
from tests.agent.helpers import T0, Peer, write_config

SPEED = 1800  # a slot in half a second


def test_broker_outage_loses_nothing_and_keeps_order(own_broker, topic_root, tmp_path):
    broker, agent = own_broker, topic_root
    states = {d: tmp_path / f"{d}.json" for d in ("d1", "d2")}
    cfg = load_config(
        write_config(
            tmp_path / "foa.toml",
            agent_id=agent,
            broker_url=broker.url,
            devices={
                "d1": {"state_file": str(states["d1"]), "cycle_s": 1800, "slots": 1},
                "d2": {
                    "state_file": str(states["d2"]),
                    "cycle_s": 2700,
                    "slots": 2,
                    "modulating": False,
                },
            },
            agent={"control_interval_s": 300, "meter_batch_slots": 1},
        )
    )
    peer = Peer(host=broker.host, port=broker.port, agent_id=agent, answer=("offer", "meter"))
    clock = SimClock(start=T0 + 30, speed=SPEED)
    runtime = AgentRuntime(config=cfg, clock=clock)
    seen: dict[str, int] = {}

    def commands() -> int:
        return sum(len(json.loads(p.read_text())["commands"]) for p in states.values())

    async def outage() -> None:
        await asyncio.to_thread(peer.wait_for, lambda p: len(p.of("meter")) >= 3)
        broker.stop()
        t_stop, n_meter, n_commands = time.monotonic(), len(peer.of("meter")), commands()
        await asyncio.sleep(3.0)  # scenario: the outage lasts six slots (3 s at 1800x)
        reader = Store.reader(cfg.store)
        seen["outbox_during"] = reader.outbox_size()
        reader.close()
        seen["commands_during"] = commands() - n_commands
        seen["meter_during"] = len(peer.of("meter")) - n_meter
        seen["down_s"] = time.monotonic() - t_stop
        broker.start()

    async def scenario() -> None:
        run = asyncio.create_task(runtime.run(until=T0 + 30 + 14 * 900))
        await outage()
        await run

    asyncio.run(scenario())
    assert seen["down_s"] >= 3.0
    assert seen["meter_during"] == 0 and seen["outbox_during"] >= 5  # buffered, not sent
    assert seen["commands_during"] > 0  # the devices were driven all along

    reader = Store.reader(cfg.store)
    produced_readings = reader.readings()
    offers = reader.offers()
    assert reader.outbox_size() == 0
    reader.close()
    n = len(produced_readings)
    peer.wait_for(lambda p: len([x for r in p.of("meter") for x in r.msg.body.readings]) >= n)

    batches = [r.msg.body for r in peer.of("meter")]
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))  # in order, no gap
    arrived = [x for b in batches for x in b.readings]
    key = lambda r: (r.start, r.device)  # noqa: E731
    assert sorted(arrived, key=key) == sorted(produced_readings, key=key)  # exactly, once
    assert arrived == sorted(arrived, key=key)
    assert all(isinstance(x, MeterReading) for x in arrived)

    arrived_offers = [r.msg.body for r in peer.of("offer")]
    assert {(o.id, o.revision) for o in arrived_offers} == {
        (s.offer.id, s.offer.revision) for s in offers
    }
    for s in offers:  # the last revision of each, byte for byte as stored
        assert s.offer in arrived_offers
    # in the order produced: the first arrivals of offers and batches never go back in time
    first: dict[str, int] = {}
    for r in peer.received:
        if r.channel in ("offer", "meter"):
            first.setdefault(r.msg.id, r.msg.ts)
    assert list(first.values()) == sorted(first.values())
    peer.close()
