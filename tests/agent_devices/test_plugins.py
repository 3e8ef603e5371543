"""The entry-point registry: every built-in plug-in loads under its name, an unknown name is a
config error that lists the known ones, and none of them drags numpy or OR-Tools in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent import plugins
from agent.drivers.base import Driver
from agent.errors import ConfigError
from agent.generators.base import Generator

from .helpers import ManualClock

GENERATORS = ["battery", "boiler", "doms", "ev", "freezer", "heat_pump", "pv", "wet_appliance"]
DRIVERS = ["modbus_rtu", "modbus_tcp", "serial_meter", "shelly", "sim", "tasmota"]


def test_builtin_names_are_registered():
    assert set(GENERATORS) <= set(plugins.names(plugins.GENERATORS))
    assert set(DRIVERS) <= set(plugins.names(plugins.DRIVERS))


@pytest.mark.parametrize("name", GENERATORS)
def test_every_generator_loads_under_its_name(name):
    cls = plugins.load_generator(name)
    assert issubclass(cls, Generator) and cls.name == name and cls.version


@pytest.mark.parametrize("name", DRIVERS)
def test_every_driver_loads_under_its_name(name):
    cls = plugins.load_driver(name)
    assert issubclass(cls, Driver) and cls.name == name and cls.version


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as exc:
        plugins.load_generator("sauna", key="devices.s1.generator")
    assert exc.value.key == "devices.s1.generator"
    assert "sauna" in str(exc.value)
    for name in GENERATORS:
        assert name in exc.value.message
    with pytest.raises(ConfigError) as exc:
        plugins.load_driver("knx", key="devices.s1.driver")
    assert "modbus_tcp" in exc.value.message and "tasmota" in exc.value.message


def test_build_prefixes_keys():
    with pytest.raises(ConfigError) as exc:
        plugins.build_generator("ev", params={"battery_kwh": 0}, key_prefix="devices.car.")
    assert exc.value.key == "devices.car.battery_kwh"
    with pytest.raises(ConfigError) as exc:
        plugins.build_driver(
            "sim", device_id="car", params={"model": "tractor"}, clock=ManualClock()
        )
    assert exc.value.key == "devices.car.model"
    driver = plugins.build_driver(
        "sim", device_id="car", params={"model": "ev"}, clock=ManualClock()
    )
    assert driver.limits.max_power_w == 11_000


def test_plugins_do_not_import_numpy_or_ortools():
    code = (
        "import sys\n"
        "from agent import plugins\n"
        "for group in (plugins.DRIVERS, plugins.GENERATORS):\n"
        "    for name in plugins.names(group):\n"
        "        plugins.load(group, name, object, key='k')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('numpy', 'ortools', 'cloud')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
