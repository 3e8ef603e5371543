"""The IEC 62056-21 meter driver against a meter simulated on a pseudo-terminal pair (the
same code path as a USB optical head), and the readout codec on its own."""

from __future__ import annotations

import asyncio

import pytest

from agent.drivers.iec62056 import ReadoutError, acknowledge, frame, parse_data, request
from agent.drivers.serial_meter import SerialMeter
from agent.errors import ConfigError, DeviceFault

from .helpers import ManualClock
from .meter_peer import meter

LINES = [
    "0.0.0(12345678)",
    "1-0:1.8.0*255(001234.567*kWh)",
    "1-0:2.8.0*255(000012.500*kWh)",
    "1-0:16.7.0*255(001.250*kW)",
    "1-0:32.7.0*255(231.4*V)",
    "0.9.1(153012)",
]


def reader(path: str, **extra: object) -> SerialMeter:
    params = {
        "port": path,
        "timeout_s": 0.5,
        "obis": {"export_kwh": "2.8.0", "voltage_v": "32.7.0"},
    }
    return SerialMeter(device_id="m1", params={**params, **extra}, clock=ManualClock())


@pytest.mark.parametrize("mode", ["C", "A"])
def test_readout_over_a_pty(mode):
    with meter(LINES, mode=mode) as peer:
        m = asyncio.run(reader(peer.path, mode=mode).read())
    assert m.energy_kwh == pytest.approx(1234.567)
    assert m.power_w == pytest.approx(1250.0)
    assert m.state == {"export_kwh": pytest.approx(12.5), "voltage_v": pytest.approx(231.4)}
    assert peer.received[0] == request()[:-2]
    if mode == "C":
        assert peer.received[1] == acknowledge("5")[:-2]  # 9600 baud, as the meter offered


def test_meter_that_stops_answering_is_a_fault_and_nothing_stale_comes_back():
    with meter(LINES) as peer:
        dev = reader(peer.path)
        assert asyncio.run(dev.read()).energy_kwh == pytest.approx(1234.567)
        peer.silent = True
        with pytest.raises(DeviceFault, match="no identification"):
            asyncio.run(dev.read())
        peer.silent = False
        peer.lines = [line.replace("001234.567", "001240.000") for line in LINES]
        assert asyncio.run(dev.read()).energy_kwh == pytest.approx(1240.0)


def test_corrupted_block_and_missing_code_are_faults():
    with meter(LINES, corrupt=True) as peer, pytest.raises(DeviceFault, match="block check"):
        asyncio.run(reader(peer.path).read())
    with meter(LINES) as peer, pytest.raises(DeviceFault, match=r"no OBIS code 99\.9\.9"):
        asyncio.run(reader(peer.path, obis={"x": "99.9.9"}).read())


def test_missing_port_is_a_fault():
    with pytest.raises(DeviceFault, match="serial port"):
        asyncio.run(reader("/dev/nonexistent-meter").read())


def test_meter_refuses_commands_and_bad_config():
    dev = reader("loop://")
    with pytest.raises(DeviceFault):
        asyncio.run(dev.set_power(10.0))
    with pytest.raises(ConfigError) as exc:
        SerialMeter(device_id="m1", params={"port": "x", "parity": "Z"}, clock=ManualClock())
    assert exc.value.key == "devices.m1.parity"


def test_codec_units_and_checks():
    values = parse_data(frame(["1.8.0(12000*Wh)", "1.7.0(450*W)", "C.1.0(ABC)"]))
    assert values == {"1.8.0": (12.0, "kWh"), "1.7.0": (450.0, "W"), "C.1.0": ("ABC", "")}
    with pytest.raises(ReadoutError, match="incomplete"):
        parse_data(b"\x021.8.0(1*kWh)\r\n!\r\n")
