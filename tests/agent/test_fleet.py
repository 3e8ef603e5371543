"""The fleet simulator: ``atp sim fleet`` as another process would start it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from agent.drivers.sim import SimDriver
from agent.fleet.mix import GRID_EVERY, census, site
from agent.store import Store
from protocol import topics
from tests.agent.helpers import T0, StepClock
from tests.waiting import wait_for

ATP = Path(sys.executable).parent / "atp"


def test_the_mix_is_reproducible_and_realistic():
    fleet = [site(7, i) for i in range(400)]
    assert fleet == [site(7, i) for i in range(400)]
    assert fleet[:10] != [site(8, i) for i in range(10)]
    counts = census(fleet)
    assert counts["doms"] == 400 // GRID_EVERY
    # every load type of the platform appears, households have several devices
    assert set(counts) == {
        "heat_pump", "boiler", "freezer", "ev", "battery", "pv", "wet_appliance", "doms"
    }  # fmt: skip
    assert 2.5 < sum(counts.values()) / len(fleet) < 6


def test_a_share_of_households_trades_directly_and_nodes_take_generator_keys(tmp_path):
    """The direct share picks households by the agent's seed (grid sites stay as they are),
    their devices carry a comfort priority that the agents' own check accepts; a node's
    generator keys reach every device there and no other; a bad key is the check's error."""
    from agent.errors import ConfigErrors
    from agent.fleet.mix import grid_node
    from agent.fleet.runner import Fleet, FleetSettings

    plain = [site(7, i) for i in range(400)]
    assert plain == [site(7, i, direct_share=0.0) for i in range(400)]
    mixed = [site(7, i, direct_share=0.1) for i in range(400)]

    def direct(devices: dict) -> bool:
        return all(d.get("trading_mode") == "direct" for d in devices.values())

    chosen = [i for i, devices in enumerate(mixed) if direct(devices)]
    assert 20 <= len(chosen) <= 60  # about a tenth of 392 households
    assert all(i % GRID_EVERY != GRID_EVERY - 1 for i in chosen)
    assert all(not direct(plain[i]) for i in chosen)
    wider = [i for i in range(400) if direct(site(7, i, direct_share=0.3))]
    assert set(chosen) < set(wider)  # a larger share keeps the smaller one's
    for i in chosen:
        assert {d["comfort_priority"] for d in mixed[i].values()} <= {1, 2, 3, 4}
    params = {"node-03": {"horizon_h": 1, "lead_s": 7200}}
    at_node = [site(7, i, node_params=params) for i in range(40)]
    for i, devices in enumerate(at_node):
        for d in devices.values():
            there = grid_node(i) == "node-03"
            assert (d.get("horizon_h"), d.get("lead_s")) == ((1, 7200) if there else (None, None))

    def settings(**kw) -> FleetSettings:
        return FleetSettings(
            agents=40, broker_url="mqtt://127.0.0.1:1883", directory=tmp_path, start=T0, **kw
        )

    Fleet(settings(seed=7, direct_share=0.1, node_params=params)).check()
    bad = Fleet(settings(node_params={"node-03": {"horizon_h": 5}}))
    with pytest.raises(ConfigErrors, match=r"devices\.\w+\.horizon_h"):
        bad.check()


def test_fleet_runs_agents_against_the_broker_and_stops_after_its_duration(broker, tmp_path):
    """Six agents, two simulated hours at 3600x from a shared start and anchor; everything
    they produced was acknowledged by the broker and, with no FMAN to answer it, is still held
    in their stores; every agent came online and went offline."""
    seen: dict[str, list[str]] = {}
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, m: seen.setdefault(m.topic.split("/")[3], []).append(
        protocol.decode(m.payload, expect="status").body.state
    )
    watcher.connect(broker.host, broker.port)
    watcher.subscribe(topics.all_agents("status"), qos=1)
    watcher.loop_start()
    # the two simulated hours last 2 wall seconds from the anchor: a fleet process that is
    # still importing when they are over starts no agent at all (seen on a loaded machine)
    anchor = time.time() + 3.0
    proc = subprocess.run(
        [str(ATP), "sim", "fleet", "--agents", "6", "--broker", broker.url, "--speed", "3600",
         "--seed", "5", "--sim-start", str(T0), "--anchor", str(anchor), "--duration", "7200",
         "--prefix", "fleettest", "--dir", str(tmp_path), "--json", "--quiet",
         "--drain", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["started"] == 6 and summary["failed"] == 0 and summary["connected_peak"] == 6
    assert summary["offers"] > 0 and summary["readings"] > 0
    assert summary["sent"] == summary["acked"] > 0
    assert T0 + 7200 <= summary["sim_time"] < T0 + 7200 + 3600
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        f"fleettest-{i:04d}.db" for i in range(6)
    ]
    for path in tmp_path.glob("*.db"):  # a PUBACK is not delivery: nobody answered
        with Store.reader(path) as store:
            held = store.outbox_kinds()
            assert held.get("meter", 0) > 0 and store.outbox_awaiting() > 0

    def fleet() -> dict[str, list[str]]:
        got = list(seen.items())  # one step: the watcher's thread may add to it meanwhile
        return {a: list(states) for a, states in got if a.startswith("fleettest-")}

    # the last statuses may still be on their way to the watcher
    wait_for(
        lambda: len(fleet()) == 6 and all(s[-1] == "offline" for s in fleet().values()),
        what="every agent's offline status",
        explain=fleet,
    )
    watcher.disconnect()
    watcher.loop_stop()
    assert all("online" in s for s in fleet().values())


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("model", "warmer"), [("freezer", True), ("boiler", False)])
def test_thermostat_devices_held_off_by_the_ems_keep_time(model, warmer):
    """The EMS may hold a thermostat device off while its thermostat calls; the simulated
    device then drifts towards ambient (it used to spin without time passing, which froze
    the whole fleet), and works again once switched back on."""
    clock = StepClock(T0)
    driver = SimDriver(device_id="d", params={"model": model, "seed": 1}, clock=clock)

    async def run() -> tuple[float, float, float]:
        first = (await driver.read()).state["temp_c"]
        await driver.set_on(False)
        for _ in range(96):
            clock.t += 900
            held = await driver.read()
        assert held.power_w == 0.0
        await driver.set_on(True)
        clock.t += 6 * 3600
        return first, held.state["temp_c"], (await driver.read()).state["temp_c"]

    first, held, after = asyncio.run(run())
    assert (held > first) if warmer else (held < first)  # drifted towards ambient
    assert (after < held) if warmer else (after > held)  # and recovered once allowed
