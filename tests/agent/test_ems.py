"""The EMS on a real store and a device whose register lives outside the agent (FileMeter)."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.config import DeviceConfig
from agent.ems import Ems
from agent.plugins import build_devices
from agent.store import Plan, Store
from tests.agent.helpers import T0, StepClock
from tests.agent.plugins import DRIVER

SLOT = 900


@pytest.fixture
def rig(tmp_path):
    clock = StepClock(T0 - 30)
    store = Store(path=tmp_path / "ems.db", durability="normal")

    def make(**params):
        params = {"state_file": str(tmp_path / "dev.json"), "fail_file": str(tmp_path / "fail"),
                  **params}  # fmt: skip
        cfg = DeviceConfig(
            id="dev",
            driver=DRIVER,
            generator=None,
            grid_node="",
            trading_mode="delegated",
            params=params,
        )
        (device,) = build_devices([cfg], clock=clock)
        return Ems(agent_id="ems-test", store=store, devices=[device], resolution_s=SLOT)

    yield make, clock, store, tmp_path
    store.close()


def plan(*energy: float, start: int = T0) -> dict[str, Plan]:
    p = Plan(offer_id="o1", device="dev", version=1, start=start, resolution_s=SLOT, profile=0,
             energy_kwh=tuple(energy), source="fman")  # fmt: skip
    return {"dev": p}


async def drive(ems: Ems, clock: StepClock, plans, until: float, step: float = 60.0) -> None:
    """What the runtime's loop does: sample, control, sleep to the next step or switch-off."""
    while clock.now() < until:
        now = clock.now()
        await ems.sample(now)
        wake = await ems.control(now, plans)
        target = (now // step + 1) * step
        clock.t = min(target, wake) if wake else target


def commands(tmp_path) -> list:
    return json.loads((tmp_path / "dev.json").read_text())["commands"]


def test_modulating_load_follows_its_plan_within_limits(rig):
    make, clock, store, tmp = rig
    ems = make(max_power_w=2000.0)

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, plan(0.3, 0.9, 0.1), T0 + 3 * SLOT + 60)

    asyncio.run(run())
    powers = [c[2] for c in commands(tmp) if c[1] == "power"]
    assert max(powers) == 2000.0  # 0.9 kWh in 15 min needs 3.6 kW: clipped to the limit
    assert all(0.0 <= p <= 2000.0 for p in powers)
    got = {r.start: r.energy_kwh for r in store.readings()}
    assert got[T0] == pytest.approx(0.3, abs=1e-6)
    assert got[T0 + SLOT] == pytest.approx(0.5, abs=1e-6)  # the most the device can take
    assert got[T0 + 2 * SLOT] == pytest.approx(0.1, abs=1e-6)


def _reset_register(tmp, value: float = 0.0) -> None:
    state = json.loads((tmp / "dev.json").read_text())
    state["energy_kwh"] = value
    (tmp / "dev.json").write_text(json.dumps(state))


@pytest.mark.parametrize("production", [False, True])
def test_a_register_that_resets_never_reads_as_negative_consumption(rig, production):
    """A device restarts and its register begins again at zero (the fleet's simulated devices
    after a fleet restart, a meter after a power cut): the slot in which it happened reads the
    energy counted since the reset, never the register's fall. Also for a device that can
    produce: a register that falls further than the device can produce in that time reset."""
    make, clock, store, tmp = rig
    ems = make(max_power_w=2000.0, min_power_w=-1000.0 if production else 0.0)

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, plan(0.4, 0.4, 0.4, 0.4), T0 + 2 * SLOT + 60)
        _reset_register(tmp)  # mid-slot: the device restarted
        clock.t += 300
        await drive(ems, clock, plan(0.4, 0.4, 0.4, 0.4), T0 + 4 * SLOT + 60)

    asyncio.run(run())
    got = {r.start: r.energy_kwh for r in store.readings()}
    assert sorted(got) == [T0 + i * SLOT for i in range(4)]
    assert all(e >= 0 for e in got.values()), got
    assert got[T0] == pytest.approx(0.4) and got[T0 + 3 * SLOT] == pytest.approx(0.4)
    register = json.loads((tmp / "dev.json").read_text())["energy_kwh"]
    # the reset slot holds what the register counted since the reset (no more, no less)
    assert 0 < got[T0 + 2 * SLOT] <= 0.4 + 1e-6
    assert got[T0 + 2 * SLOT] + got[T0 + 3 * SLOT] == pytest.approx(register - 0.0, abs=0.05)
    assert ems.meter_resets == 1 and ems.meter_wraps == 0


def test_a_register_reset_that_falls_only_a_little_is_a_reset_too(rig):
    """A device that took little before it restarted: the register falls by less than the
    device could take in the interval, but a consumption register never falls at all."""
    make, clock, store, tmp = rig
    ems = make(max_power_w=2000.0)

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, plan(0.03, 0.03, 0.0, 0.0), T0 + 2 * SLOT + 60)
        _reset_register(tmp, 0.001)  # a restart just after the boundary
        await drive(ems, clock, plan(0.03, 0.03, 0.0, 0.0), T0 + 4 * SLOT + 60)

    asyncio.run(run())
    got = {r.start: r.energy_kwh for r in store.readings()}
    assert got[T0 + 2 * SLOT] == pytest.approx(0.001) and min(got.values()) >= 0, got
    assert ems.meter_resets == 1


def test_a_register_that_wraps_reads_the_energy_across_the_wrap(rig):
    make, clock, store, tmp = rig
    ems = make(max_power_w=2000.0, wrap_kwh=100.0)

    async def run():
        await ems.open(clock.now())
        _reset_register(tmp, 99.7)  # 0.3 kWh before the register wraps
        await drive(ems, clock, plan(0.4, 0.4, 0.4), T0 + 3 * SLOT + 60)

    asyncio.run(run())
    got = {r.start: r.energy_kwh for r in store.readings()}
    assert [got[T0 + i * SLOT] for i in range(3)] == pytest.approx([0.4] * 3)
    assert ems.meter_wraps == 1 and ems.meter_resets == 0


def test_an_hourly_plan_is_spread_over_the_quarter_hours(rig):
    # an hourly DOMS bid on a quarter-hour agent: a quarter of each hour's energy per quarter,
    # not the whole hour's energy crammed into the first quarter at the device's limit
    make, clock, store, _ = rig
    ems = make(max_power_w=4000.0)
    hourly = Plan(offer_id="o1", device="dev", version=1, start=T0, resolution_s=3600,
                  profile=0, energy_kwh=(2.0, 1.0), source="fman")  # fmt: skip

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, {"dev": hourly}, T0 + 8 * SLOT + 60)

    asyncio.run(run())
    got = {r.start: r.energy_kwh for r in store.readings()}
    assert [got[T0 + q * SLOT] for q in range(8)] == pytest.approx([0.5] * 4 + [0.25] * 4)


def test_on_off_load_runs_a_duty_cycle_switched_off_on_time(rig):
    make, clock, store, tmp = rig
    ems = make(max_power_w=2000.0, modulating=False)

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, plan(0.25, 0.5), T0 + 2 * SLOT + 60)

    asyncio.run(run())
    switched = [(round(c[0]) - T0, c[2]) for c in commands(tmp) if c[1] == "on"]
    # 0.25 kWh at 2 kW is 450 s on, then off; 0.5 kWh is the whole slot; then idle once
    assert switched == [(0, True), (450, False), (900, True), (1800, False)]
    got = {r.start: r.energy_kwh for r in store.readings()}
    assert got[T0] == pytest.approx(0.25, abs=1e-6) and got[T0 + SLOT] == pytest.approx(0.5)


def test_a_device_that_stops_answering_gets_no_fresh_reading_until_it_is_back(rig):
    make, clock, store, tmp = rig
    ems = make(max_power_w=1000.0)
    fail = tmp / "fail"

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, plan(0.2, 0.2, 0.2, 0.2), T0 + SLOT + 30)
        fail.touch()  # no answer across the next boundary
        await drive(ems, clock, plan(0.2, 0.2, 0.2, 0.2), T0 + 2 * SLOT + 30)
        assert ems.faults() == {"dev": "no answer (timeout)"}
        assert ems.measurements() == {"dev": None}
        fail.unlink()
        await drive(ems, clock, plan(0.2, 0.2, 0.2, 0.2), T0 + 3 * SLOT + 30)

    asyncio.run(run())
    readings = store.readings()
    assert [(r.start, r.duration_s) for r in readings] == [
        (T0, SLOT), (T0 + SLOT, 2 * SLOT)  # one reading spans the slot it could not close
    ]  # fmt: skip
    register = json.loads((tmp / "dev.json").read_text())["energy_kwh"]
    assert sum(r.energy_kwh for r in readings) == pytest.approx(register, abs=1e-6)


def test_shutdown_leaves_the_device_in_its_safe_state(rig):
    make, clock, _store, tmp = rig
    ems = make(max_power_w=1000.0)

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, plan(0.2), T0 + 300)
        await ems.shutdown()

    asyncio.run(run())
    assert commands(tmp)[-1][1:] == ["power", 0.0]


def test_a_device_without_a_plan_is_not_touched(rig):
    make, clock, _store, tmp = rig
    ems = make(max_power_w=1000.0)

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, {}, T0 + 2 * SLOT)

    asyncio.run(run())
    assert commands(tmp) == []


def test_a_device_without_an_energy_register_is_metered_from_its_power(rig):
    make, clock, store, tmp = rig
    ems = make(max_power_w=2000.0, register=False)

    async def run():
        await ems.open(clock.now())
        await drive(ems, clock, plan(0.3, 0.1, start=T0 + SLOT), T0 + 3 * SLOT + 30)

    asyncio.run(run())
    got = {r.start: r.energy_kwh for r in store.readings()}
    # the first slot is partial (no reading); then whole slots, integrated from power samples
    assert T0 - SLOT not in got and got[T0] == pytest.approx(0.0, abs=1e-9)
    assert got[T0 + SLOT] == pytest.approx(0.3, rel=0.02)
    assert got[T0 + 2 * SLOT] == pytest.approx(0.1, rel=0.02)
    register = json.loads((tmp / "dev.json").read_text())["energy_kwh"]
    assert sum(got.values()) == pytest.approx(register, rel=0.02)
