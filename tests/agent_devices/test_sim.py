"""The simulated devices: deterministic from their seed, physically sensible, driven by the
clock, refusing what a real device would refuse, and a source of valid offers."""

from __future__ import annotations

import asyncio

import pytest

from agent.drivers.base import Measurement
from agent.drivers.sim import MODELS, SimDriver
from agent.errors import DeviceFault
from agent.generators.base import OfferContext
from agent.generators.battery import Battery
from agent.generators.boiler import Boiler
from agent.generators.doms import DomsBid
from agent.generators.ev import EvCharger
from agent.generators.freezer import Freezer
from agent.generators.heat_pump import HeatPump
from agent.generators.pv import Pv
from agent.generators.wet_appliance import WetAppliance
from protocol import validate_offer

from .helpers import T0, ManualClock

GENERATOR_OF = {
    "ev": EvCharger,
    "heat_pump": HeatPump,
    "boiler": Boiler,
    "freezer": Freezer,
    "battery": Battery,
    "wet_appliance": WetAppliance,
    "pv": Pv,
    "grid_asset": DomsBid,
}


async def trace(kind: str, *, seed: int, steps: int, dt: float = 900.0) -> list[Measurement]:
    clock = ManualClock(T0 + 7 * 3600)
    driver = SimDriver(device_id=f"d-{kind}", params={"model": kind, "seed": seed}, clock=clock)
    out = []
    for _ in range(steps):
        await clock.sleep(dt)
        out.append(await driver.read())
    return out


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_same_seed_same_device(kind):
    a = asyncio.run(trace(kind, seed=11, steps=2 * 96))
    b = asyncio.run(trace(kind, seed=11, steps=2 * 96))
    assert a == b
    c = asyncio.run(trace(kind, seed=12, steps=2 * 96))
    assert c != a, "another seed, another day"


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_reading_often_or_rarely_gives_the_same_physics(kind):
    """A model's state at a time does not depend on how often it was read in between
    (events and thermostat cut-outs are stepped exactly)."""
    often = asyncio.run(trace(kind, seed=5, steps=4 * 96, dt=225.0))[3::4]
    rare = asyncio.run(trace(kind, seed=5, steps=96, dt=900.0))
    for x, y in zip(often, rare, strict=True):
        assert x.ts == y.ts
        assert x.energy_kwh == pytest.approx(y.energy_kwh, rel=0.02, abs=0.05)
        for key, value in y.state.items():
            assert x.state[key] == pytest.approx(value, rel=0.02, abs=0.3), key


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_a_day_of_offers_from_the_simulated_device(kind):
    """Every quarter hour of two days: read the device, make an offer, check it."""

    async def run() -> int:
        clock = ManualClock(T0)
        driver = SimDriver(device_id="dev", params={"model": kind, "seed": 3}, clock=clock)
        gen = GENERATOR_OF[kind]({})
        offers = 0
        for _ in range(2 * 96):
            await clock.sleep(900)
            m = await driver.read()
            assert m.ts == clock.now()
            offer = gen.offer(
                OfferContext(agent="a", device="dev", now=int(clock.now()), measurement=m)
            )
            if offer is not None:
                assert validate_offer(offer) == [], offer.id
                offers += 1
        return offers

    assert asyncio.run(run()) > 0


def test_heat_pump_default_keeps_the_house_comfortable():
    """The generator's default schedule, executed on the simulated house, keeps it inside the
    comfort band although the simulated weather differs from the forecast."""

    async def run() -> list[float]:
        clock = ManualClock(T0)
        driver = SimDriver(device_id="hp", params={"model": "heat_pump", "seed": 9}, clock=clock)
        gen = HeatPump({})
        temps = []
        for _block in range(4):
            m = await driver.read()
            offer = gen.offer(
                OfferContext(agent="a", device="hp", now=int(clock.now()), measurement=m)
            )
            assert offer is not None
            await clock.sleep(offer.default.start - clock.now())
            for e in offer.default.energy_kwh:
                await driver.set_power(e / 0.25 * 1000.0)
                await clock.sleep(900)
                temps.append((await driver.read()).state["temp_c"])
        return temps

    temps = asyncio.run(run())
    assert min(temps) >= 20.0 - 0.3 and max(temps) <= 23.0 + 0.3


def test_limits_and_faults():
    async def run() -> None:
        clock = ManualClock()
        battery = SimDriver(device_id="b", params={"model": "battery"}, clock=clock)
        with pytest.raises(DeviceFault, match="outside"):
            await battery.set_power(6000.0)
        await battery.set_power(-5000.0)
        battery.fail()
        with pytest.raises(DeviceFault, match="does not answer"):
            await battery.read()
        battery.fail(False)
        await clock.sleep(24 * 3600)  # a day at full discharge: the BMS stops it
        m = await battery.read()
        assert m.state["soc_kwh"] == pytest.approx(0.2)
        assert m.energy_kwh < 0

    asyncio.run(run())


def test_dishwasher_runs_the_selected_programme():
    async def run() -> None:
        clock = ManualClock(T0 + 12 * 3600)
        driver = SimDriver(
            device_id="dw",
            params={"model": "wet_appliance", "use_probability": 1.0, "seed": 1},
            clock=clock,
        )
        while not (await driver.read()).state["ready"]:
            await clock.sleep(300)
        before = (await driver.read()).energy_kwh
        await driver.set_programme(2)
        await driver.set_on(True)
        assert (await driver.read()).state["running"] == 1.0
        await clock.sleep(6 * 3600)
        m = await driver.read()
        assert m.state["running"] == 0.0
        quick = driver.model.spec.programmes[2]
        assert m.energy_kwh - before == pytest.approx(quick.energy_kwh)

    asyncio.run(run())


def test_pv_curtailment():
    async def run() -> None:
        clock = ManualClock(T0 + 172 * 86400 + 11 * 3600)  # a June midday
        pv = SimDriver(device_id="pv", params={"model": "pv", "seed": 2}, clock=clock)
        m = await pv.read()
        available = m.state["available_w"]
        assert m.power_w == pytest.approx(-available) and available > 50
        await pv.set_power(-available / 2)
        assert (await pv.read()).power_w == pytest.approx(-available / 2)
        await pv.set_on(False)
        assert (await pv.read()).power_w == 0.0

    asyncio.run(run())


def test_household_mixes_build_and_offer():
    """Every device of many simulated households builds through the plug-in registry, reads,
    and makes valid offers over a day; the same seed gives the same household."""
    from agent import plugins
    from agent.drivers.sim.mix import grid_site, household

    assert household(4) == household(4) and household(4) != household(5)
    kinds: set[str] = set()

    async def run(tables) -> None:
        clock = ManualClock(T0)
        built = []
        for device, table in tables.items():
            prefix = f"devices.{device}."
            drv = plugins.build_driver(
                table["driver"], device_id=device, params=table, clock=clock, key_prefix=prefix
            )
            gen = plugins.build_generator(table["generator"], params=table, key_prefix=prefix)
            built.append((device, drv, gen))
        for _ in range(24):
            await clock.sleep(3600)
            for device, drv, gen in built:
                m = await drv.read()
                ctx = OfferContext(agent="h", device=device, now=int(clock.now()), measurement=m)
                offer = gen.offer(ctx)
                if offer is not None:
                    assert validate_offer(offer) == [], (device, offer.id)

    for seed in range(12):
        tables = household(seed)
        kinds |= {t["model"] for t in tables.values()}
        asyncio.run(run(tables))
    asyncio.run(run(grid_site(1)))
    assert kinds == set(MODELS) - {"grid_asset"}
