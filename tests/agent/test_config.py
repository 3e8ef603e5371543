"""The configuration: every error with its key, secrets kept secret, ``foa config check``."""

from __future__ import annotations

import json
import logging
import os

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.clock import RealClock
from agent.config import DeviceConfig, load_config
from agent.drivers.sim.mix import grid_site, household
from agent.errors import ConfigErrors
from agent.plugins import build_devices
from tests.agent.plugins import DRIVER, GENERATOR

GOOD = f"""
[agent]
id = "house-17"
resolution_s = 900
control_interval_s = 60

[broker]
url = "mqtts://broker.example.net:8883"
username = "house-17"
password_file = "secret"

[devices.boiler]
driver = "{DRIVER}"
generator = "{GENERATOR}"
state_file = "boiler.json"
slots = 4
"""


def write(tmp_path, text, *, secret="s3cr3t-value", mode=0o600):
    (tmp_path / "secret").write_text(secret + "\n")
    os.chmod(tmp_path / "secret", mode)
    path = tmp_path / "foa.toml"
    path.write_text(text)
    return path


def keys(exc: ConfigErrors) -> set[str]:
    return {e.key for e in exc.errors}


def test_a_good_config_loads_with_paths_relative_to_it(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.id == "house-17" and cfg.broker.tls and cfg.broker.port == 8883
    assert cfg.store == tmp_path / "foa.db"
    assert cfg.broker.password.reveal() == "s3cr3t-value"
    (dev,) = cfg.devices
    assert dev.id == "boiler" and dev.params["slots"] == 4 and dev.trading_mode == "delegated"
    assert build_devices(cfg.devices, clock=RealClock())[0].generator.slots == 4


def test_every_error_is_reported_with_its_key(tmp_path):
    text = """
[agent]
id = "bad id!"
resolution_s = 1000
contro_interval_s = 60
trading_mode = "auction"

[broker]
url = "mqtt://broker.example.net"
password = "x"
session_expiry_s = 60

[devices.ev1]
generator = "ev"
"""
    with pytest.raises(ConfigErrors) as info:
        load_config(write(tmp_path, text))
    assert keys(info.value) == {
        "agent.id",
        "agent.resolution_s",
        "agent.contro_interval_s",
        "agent.trading_mode",
        "broker.url",  # plaintext to a host that is not loopback
        "broker.username",  # a password without a user
        "broker.session_expiry_s",
        "devices.ev1.driver",
    }
    assert "did you mean 'control_interval_s'" in str(info.value)


def test_plugin_problems_are_keyed_under_the_device(tmp_path):
    text = GOOD.replace("slots = 4", "slots = 0") + (
        '\n[devices.x]\ndriver = "no-such-driver"\ngenerator = "tests.agent.plugins:Nope"\n'
    )
    cfg = load_config(write(tmp_path, text))
    with pytest.raises(ConfigErrors) as info:
        build_devices(cfg.devices, clock=RealClock())
    assert keys(info.value) == {"devices.boiler.slots", "devices.x.driver", "devices.x.generator"}
    assert "unknown driver 'no-such-driver'; known: " in str(info.value)


def test_password_file_readable_by_others_is_refused(tmp_path):
    with pytest.raises(ConfigErrors) as info:
        load_config(write(tmp_path, GOOD, mode=0o644))
    assert keys(info.value) == {"broker.password_file"}
    assert "chmod 600" in str(info.value)


def test_the_secret_never_shows(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    cfg = load_config(write(tmp_path, GOOD))
    logging.getLogger("test").info("config: %r %s", cfg, cfg.broker)
    text = repr(cfg) + str(cfg.broker) + caplog.text
    assert "s3cr3t-value" not in text and "***" in text
    result = CliRunner().invoke(main, ["config", "check", str(tmp_path / "foa.toml")])
    assert "s3cr3t-value" not in result.output


def test_foa_config_check(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["config", "check", str(write(tmp_path, GOOD))])
    assert ok.exit_code == 0, ok.output
    assert "OK (agent house-17, 1 devices" in ok.output
    bad = write(tmp_path, GOOD.replace('"mqtts://', '"ftp://').replace("slots = 4", "slots = -1"))
    result = runner.invoke(main, ["config", "check", str(bad), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    # the device's plug-in is checked even though the broker section is wrong
    assert {e["key"] for e in report["errors"]} == {"broker.url", "devices.boiler.slots"}
    broken = tmp_path / "broken.toml"
    broken.write_text("[agent\n")
    result = runner.invoke(main, ["config", "check", str(broken)])
    assert result.exit_code == 1 and "not valid TOML" in result.output


def test_every_key_of_the_fleet_simulators_devices_is_read():
    """A key that neither the driver nor the generator reads is refused, so every device the
    fleet simulator makes must use all of its keys (all kinds appear in these sites)."""
    sites = [household(seed) for seed in range(60)] + [grid_site(seed) for seed in range(10)]
    devices = [
        DeviceConfig(
            id=dev_id,
            driver=table["driver"],
            generator=table.get("generator"),
            grid_node="",
            trading_mode="delegated",
            params=table,
        )
        for site in sites
        for dev_id, table in site.items()
    ]
    kinds = {d.generator for d in devices}
    assert kinds >= {"ev", "heat_pump", "boiler", "freezer", "battery", "pv", "doms"}, kinds
    assert len(build_devices(devices, clock=RealClock())) == len(devices)
