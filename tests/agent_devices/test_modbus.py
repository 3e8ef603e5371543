"""The Modbus engine against pymodbus's real server, over TCP and over RTU framing: every
template instantiated and read, set-points written, a device that stops answering reported,
its old value never handed out again, the pause between requests kept."""

from __future__ import annotations

import asyncio
import itertools
import struct
from typing import Any

import pytest
from pymodbus.framer import FramerType

from agent.drivers.modbus import ModbusRtuDriver, ModbusTcpDriver, load_template, template_names
from agent.drivers.modbus.driver import ModbusDriver
from agent.drivers.modbus.registers import Register, RegisterMap, parse_map
from agent.errors import ConfigError, DeviceFault
from tests.waiting import until

from .helpers import ManualClock
from .modbus_peer import serve

RAW = {
    "int16": -1234,
    "uint16": 4321,
    "int32": -123_456,
    "uint32": 3_000_000_000,
    "int64": -(2**40),
    "uint64": 2**50,
    "float32": 230.25,
    "float64": 1234.125,
}


def sample_values(regmap: RegisterMap) -> dict[str, float | bool]:
    """A distinct, exactly representable value for every register of ``regmap``."""
    out: dict[str, float | bool] = {}
    for i, reg in enumerate(regmap.reads):
        if reg.table in ("coil", "discrete") or reg.type == "bool":
            out[reg.name] = True
        else:
            raw = RAW[reg.type] + (i if reg.type.startswith("float") else i * 3)
            out[reg.name] = raw * reg.scale + reg.offset
    return out


def driver(kind: str, port: int, params: dict[str, Any], **extra: Any) -> ModbusDriver:
    if kind == "tcp":
        conn = {"host": "127.0.0.1", "port": port}
        cls: type[ModbusDriver] = ModbusTcpDriver
    else:
        conn = {"port": f"socket://127.0.0.1:{port}", "baudrate": 19200}
        cls = ModbusRtuDriver
    return cls(device_id="dev", params={**conn, **params, **extra}, clock=ManualClock())


FRAMER = {"tcp": FramerType.SOCKET, "rtu": FramerType.RTU}


@pytest.mark.parametrize("name", template_names())
def test_every_template_instantiates_and_reads(name):
    """Each built-in template, served by a real Modbus server holding a known value at each of
    its registers, reads back those values; its set-points land in the right registers."""
    regmap = parse_map(load_template(name))
    values = sample_values(regmap)
    assert regmap.reads, "a template that reads nothing is no use"

    async def run() -> None:
        async with serve(regmap, values, unit=7) as peer:
            dev = driver("tcp", peer.port, {"template": name, "unit": 7, "min_interval_s": 0})
            m = await dev.read()
            got = {**m.state}
            for field in ("power_w", "energy_kwh", "on"):
                if getattr(m, field) is not None:
                    got[field] = getattr(m, field)
            assert got.keys() == values.keys()
            for key, want in values.items():
                assert got[key] == pytest.approx(want, rel=1e-6), key
            if "power_w" in regmap.writes:
                reg = regmap.writes["power_w"]
                target = regmap.limits.max_power_w / 2
                await dev.set_power(target)
                assert await peer.get(reg) == reg.encode(regmap.limits.clip(target))
            if "on" in regmap.writes:
                reg = regmap.writes["on"]
                await dev.set_on(False)
                assert await peer.get(reg) in ([False], [reg.off_value])
                await dev.set_on(True)
                assert await peer.get(reg) in ([True], [reg.on_value])
            await dev.close()

    asyncio.run(run())


def test_word_order_and_scale_match_the_manuals():
    """Independent of pymodbus's converters: an SDM630 float is IEEE 754 high word first, an
    EM24 int32 is low word first, weight W*10."""
    sdm = parse_map(load_template("sdm630"))
    power = next(r for r in sdm.reads if r.name == "power_w")
    hi, lo = struct.unpack(">HH", struct.pack(">f", 1500.5))
    assert power.decode([hi, lo]) == 1500.5
    em = parse_map(load_template("em24"))
    power = next(r for r in em.reads if r.name == "power_w")
    raw = 123_456  # 12345.6 W
    assert power.decode([raw & 0xFFFF, raw >> 16]) == pytest.approx(12_345.6)
    assert power.encode(12_345.6) == [raw & 0xFFFF, raw >> 16]


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
def test_inline_register_map_and_limits(kind):
    """A device without a template: the map in the device table, a modbus battery inverter
    with a signed set-point, refused outside its limits."""
    params = {
        "read": {
            "power_w": {"address": 10, "type": "int32"},
            "soc_kwh": {"address": 12, "type": "uint16", "scale": 0.01},
        },
        "write": {"power_w": {"address": 100, "type": "int16", "scale": 10}},
        "limits": {"max_power_w": 5000, "min_power_w": -5000},
        "min_interval_s": 0,
    }

    async def run() -> None:
        dev = driver(kind, 1, params)
        async with serve(dev.map, {"power_w": -2500, "soc_kwh": 4.56}, framer=FRAMER[kind]) as peer:
            dev = driver(kind, peer.port, params)
            m = await dev.read()
            assert m.power_w == -2500 and m.state == {"soc_kwh": pytest.approx(4.56)}
            await dev.set_power(-1230)
            assert await peer.get(dev.map.writes["power_w"]) == [(-123) & 0xFFFF]
            with pytest.raises(DeviceFault, match="outside"):
                await dev.set_power(6000)
            assert dev.limits.modulating
            await dev.close()

    asyncio.run(run())


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
def test_a_device_that_stops_answering(kind):
    """Timeouts are faults; the old value is not returned in the meantime, and a late answer to
    a timed-out request is not taken for a fresh one (RTU frames have no transaction id)."""
    regmap = parse_map(load_template("sdm120"))

    async def run() -> None:
        async with serve(
            regmap, {"power_w": 100.0, "energy_kwh": 5.0}, framer=FRAMER[kind]
        ) as peer:
            dev = driver(
                kind, peer.port, {"template": "sdm120", "timeout_s": 0.3, "min_interval_s": 0}
            )
            assert (await dev.read()).power_w == 100.0
            peer.delay_s = 0.6
            power = next(r for r in regmap.reads if r.name == "power_w")
            await peer.put(power, power.encode(250.0))
            for _ in range(2):
                with pytest.raises(DeviceFault, match="reading input"):
                    await dev.read()
            peer.delay_s = 0.0
            await until(
                lambda: peer.answered == len(peer.requests), what="the late answers to go out"
            )
            await peer.put(power, power.encode(300.0))
            m = await dev.read()
            assert m.power_w == 300.0, "a fresh value, not a late answer to an old request"
            await dev.close()

    asyncio.run(run())


def test_server_gone_and_back():
    regmap = parse_map(load_template("sdm630"))

    async def run() -> None:
        async with serve(regmap, {"power_w": 1.0}) as peer:
            port = peer.port
            dev = driver("tcp", port, {"template": "sdm630", "timeout_s": 0.3, "min_interval_s": 0})
            assert (await dev.read()).power_w == 1.0
        with pytest.raises(DeviceFault):
            await dev.read()
        with pytest.raises(DeviceFault, match="cannot connect"):
            await dev.read()
        async with serve(regmap, {"power_w": 2.0}, port=port):
            assert (await dev.read()).power_w == 2.0
        await dev.close()

    asyncio.run(run())


def test_modbus_exception_is_a_fault():
    """A register the device does not have answers with exception code 2 (illegal address)."""
    regmap = parse_map(load_template("sdm120"))

    async def run() -> None:
        async with serve(regmap, {}) as peer:
            dev = driver(
                "tcp",
                peer.port,
                {"template": "sdm120", "read": {"extra_v": {"address": 500}}, "min_interval_s": 0},
            )
            with pytest.raises(DeviceFault, match="exception code 2"):
                await dev.read()
            await dev.close()

    asyncio.run(run())


def test_minimum_pause_between_requests():
    """Requests reach the device at least ``min_interval_s`` apart (a lower bound only)."""
    regmap = parse_map(load_template("sdm630"))  # four requests per reading

    async def run() -> list[float]:
        async with serve(regmap, {}) as peer:
            dev = driver("tcp", peer.port, {"template": "sdm630", "min_interval_s": 0.05})
            await dev.read()
            await dev.read()
            await dev.close()
            return peer.requests

    times = asyncio.run(run())
    assert len(times) == 2 * len(regmap.blocks())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.05


def test_neighbouring_registers_share_a_request():
    table = load_template("sdm630")
    assert len(parse_map(table).blocks()) == 4  # 70..75 are adjacent already
    table["template"]["max_gap"] = 4
    blocks = parse_map(table).blocks()
    assert [(b.address, b.count) for b in blocks] == [(0, 8), (52, 2), (70, 6)]
    coalesced = blocks[-1].decode([0x4248, 0, 0x4120, 0, 0x4000, 0])
    assert coalesced == {"frequency_hz": 50.0, "energy_kwh": 10.0, "export_kwh": 2.0}


@pytest.mark.parametrize(
    ("params", "key", "text"),
    [
        ({"template": "sdm999", "host": "h"}, "devices.dev.template", "known: ddsu666"),
        ({"host": "h"}, "devices.dev.template", "give a template"),
        ({"template": "sdm630"}, "devices.dev.host", "required"),
        (
            {"host": "h", "read": {"p": {"address": 1, "type": "int24"}}},
            "devices.dev.read.p.type",
            "int24",
        ),
        (
            {"host": "h", "read": {"p": {"address": 65_535, "type": "float32"}}},
            "devices.dev.read.p.address",
            "past register",
        ),
        (
            {"host": "h", "write": {"power_w": {"address": 1, "table": "input"}}},
            "devices.dev.write.power_w.table",
            "read-only",
        ),
        (
            {"host": "h", "write": {"power_w": {"address": 1}}},
            "devices.dev.limits.max_power_w",
            "maximum power",
        ),
        (
            {"host": "h", "read": {"on": {"address": 1, "table": "coil", "type": "int16"}}},
            "devices.dev.read.on.type",
            "single bit",
        ),
        ({"template": "sdm630", "host": "h", "timeout_s": 0}, "devices.dev.timeout_s", "outside"),
    ],
)
def test_config_errors_name_their_key(params, key, text):
    with pytest.raises(ConfigError) as exc:
        ModbusTcpDriver(device_id="dev", params=params, clock=ManualClock())
    assert exc.value.key == key
    assert text in exc.value.message


def test_register_encode_refuses_what_does_not_fit():
    reg = Register(name="power_w", address=0, table="holding", type="int16", scale=1.0)
    assert reg.encode(-5) == [0xFFFB]
    with pytest.raises(ValueError, match="does not fit"):
        reg.encode(40_000)
