"""Figures for the agent's generators and drivers (prints them; asserts nothing).

    .venv/bin/python bench/devices.py [--quick]

* offer generation: microseconds per ``Generator.offer`` call and per ``validate_offer`` of
  its result, for each generator at 15-minute slots;
* simulated devices: CPU milliseconds to run one device through a simulated day, read every
  15 minutes (what the fleet simulator pays per device and day);
* Modbus: readings per second of an SDM630 template (four requests per reading) from
  pymodbus's server on loopback, over TCP and over RTU framing;
* smart plugs: milliseconds per polled reading (the driver asks, the plug answers) through a
  local Mosquitto, for Tasmota and Shelly;
* memory: resident set size of a Python that imported every driver and generator.

Each figure is the median of several runs; the machine is shared, so the figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.drivers.base import Measurement  # noqa: E402
from agent.drivers.sim import MODELS, SimDriver  # noqa: E402
from agent.generators.base import Generator, OfferContext  # noqa: E402
from agent.plugins import GENERATORS, load, names  # noqa: E402
from protocol import validate_offer  # noqa: E402
from tests.agent_devices.helpers import T0, ManualClock  # noqa: E402

STATES = {
    "ev": {"plugged": 1.0, "soc_kwh": 20.0, "plugin_ts": T0 - 60, "departure_ts": T0 + 12 * 3600},
    "heat_pump": {"temp_c": 21.2, "outdoor_c": 3.0},
    "boiler": {"temp_c": 48.0},
    "freezer": {"temp_c": -19.0},
    "battery": {"soc_kwh": 5.0},
    "wet_appliance": {"ready": 1.0, "ready_ts": float(T0), "deadline_ts": T0 + 10 * 3600},
    "pv": {"available_w": 2000.0},
    "doms": {},
}


def median_of(runs: int, fn) -> float:
    return statistics.median(fn() for _ in range(runs))


def bench_offers(runs: int, calls: int) -> None:
    print("offer generation (15-minute slots, 6 h blocks)")
    print(f"  {'generator':<14} {'offer µs':>9} {'validate µs':>12} {'slots':>6} {'rows':>5}")
    for name in names(GENERATORS):
        gen = load(GENERATORS, name, Generator, key="generator")({})
        state = STATES.get(name, {})
        ctxs = [
            OfferContext(
                agent="a1",
                device="d1",
                now=T0 + 60 * i,
                measurement=Measurement(ts=T0, state=state),
            )
            for i in range(calls)
        ]

        def one(gen: Generator = gen, ctxs: list[OfferContext] = ctxs) -> float:
            t = time.perf_counter()
            for ctx in ctxs:
                gen.offer(ctx)
            return (time.perf_counter() - t) / calls * 1e6

        offer = gen.offer(ctxs[0])
        assert offer is not None, name

        def check(offer=offer) -> float:
            t = time.perf_counter()
            for _ in range(calls):
                validate_offer(offer)
            return (time.perf_counter() - t) / calls * 1e6

        prof = offer.profiles[0]
        print(
            f"  {name:<14} {median_of(runs, one):>9.0f} {median_of(runs, check):>12.0f}"
            f" {prof.n_slots:>6} {len(prof.dependencies):>5}"
        )


def bench_sim(runs: int) -> None:
    print("simulated devices: CPU ms per device and simulated day (a reading every 15 min)")
    total = 0.0
    for kind in sorted(MODELS):

        def day(kind: str = kind) -> float:
            clock = ManualClock(T0)
            dev = SimDriver(device_id="d", params={"model": kind}, clock=clock)

            async def run() -> None:
                for _ in range(96):
                    clock.t += 900
                    await dev.read()

            t = time.process_time()
            asyncio.run(run())
            return (time.process_time() - t) * 1000

        ms = median_of(runs, day)
        total += ms
        print(f"  {kind:<14} {ms:>7.1f}")
    print(f"  {'all eight':<14} {total:>7.1f}")


async def _modbus(kind: str, seconds: float) -> float:
    from pymodbus.framer import FramerType

    from agent.drivers.modbus import ModbusRtuDriver, ModbusTcpDriver, load_template
    from agent.drivers.modbus.registers import parse_map
    from tests.agent_devices.modbus_peer import serve

    regmap = parse_map(load_template("sdm630"))
    framer = FramerType.SOCKET if kind == "tcp" else FramerType.RTU
    async with serve(regmap, {"power_w": 1.0}, framer=framer) as peer:
        params = {"template": "sdm630", "min_interval_s": 0}
        if kind == "tcp":
            dev = ModbusTcpDriver(
                device_id="m",
                params={**params, "host": "127.0.0.1", "port": peer.port},
                clock=ManualClock(),
            )
        else:
            dev = ModbusRtuDriver(
                device_id="m",
                params={**params, "port": f"socket://127.0.0.1:{peer.port}"},
                clock=ManualClock(),
            )
        await dev.read()
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            await dev.read()
            n += 1
        rate = n / (time.perf_counter() - t)
        await dev.close()
        return rate


def bench_modbus(runs: int, seconds: float) -> None:
    print("Modbus: SDM630 readings per second (4 requests each), loopback")
    for kind in ("tcp", "rtu"):
        rate = median_of(runs, lambda kind=kind: asyncio.run(_modbus(kind, seconds)))
        print(f"  {kind:<4} {rate:>7.0f} readings/s")


def bench_plugs(runs: int, reads: int) -> None:
    from agent.drivers.shelly import ShellyPlug
    from agent.drivers.tasmota import TasmotaPlug
    from cloud.broker import Mosquitto

    print("smart plugs: ms per polled reading through Mosquitto (driver asks, plug answers)")
    with Mosquitto(workdir=Path(tempfile.mkdtemp())) as broker:
        sim = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.agent_devices.plugsim"),
                *("--port", str(broker.port), "--period-s", "60"),
                *("--tasmota", "bench-t", "--shelly", "bench-s"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sim.stdout is not None and sim.stdout.readline().strip() == "ready"
            for cls, key, name in (
                (TasmotaPlug, "topic", "bench-t"),
                (ShellyPlug, "shelly_id", "bench-s"),
            ):

                async def run(cls=cls, key=key, name=name) -> float:
                    plug = cls(
                        device_id=name,
                        params={"broker": broker.url, key: name, "max_age_s": 0},
                        clock=ManualClock(),
                    )
                    await plug.open()
                    await plug.read()
                    t = time.perf_counter()
                    for _ in range(reads):
                        await plug.read()
                    ms = (time.perf_counter() - t) / reads * 1000
                    await plug.close()
                    return ms

                ms = median_of(runs, lambda run=run: asyncio.run(run()))
                print(f"  {cls.name:<8} {ms:>6.2f} ms")
        finally:
            sim.kill()
            sim.wait()


def bench_memory() -> None:
    rss = "int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    code = (
        "from agent import plugins\n"
        "for g in (plugins.DRIVERS, plugins.GENERATORS):\n"
        "    for n in plugins.names(g): plugins.load(g, n, object, key='k')\n"
        f"print({rss})\n"
    )
    kb = [
        int(
            subprocess.run(
                [sys.executable, "-c", c], capture_output=True, text=True, check=True
            ).stdout
        )
        for c in (f"print({rss})", code)
    ]
    print(
        f"memory: {kb[1] / 1024:.1f} MB resident with every driver and generator imported "
        f"({kb[0] / 1024:.1f} MB for a bare Python)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="Figures for the agent's generators and drivers.")
    ap.add_argument("--quick", action="store_true", help="fewer runs, shorter measurements")
    args = ap.parse_args()
    runs = 3 if args.quick else 5
    print(f"Python {sys.version.split()[0]}, median of {runs} runs\n")
    bench_offers(runs, 50 if args.quick else 200)
    print()
    bench_sim(runs)
    print()
    bench_modbus(runs, 0.5 if args.quick else 1.0)
    print()
    bench_plugs(runs, 20 if args.quick else 100)
    print()
    bench_memory()


if __name__ == "__main__":
    main()
