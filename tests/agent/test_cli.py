"""``foa status``, ``foa offers`` and ``foa devices`` read the store of an agent that ran."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.clock import SimClock
from agent.config import load_config
from agent.runtime import AgentRuntime
from cloud.broker import free_port
from tests.agent.helpers import T0, write_config


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """An agent that ran two simulated hours without a broker (it buffers everything)."""
    tmp = tmp_path_factory.mktemp("cli")
    config = write_config(
        tmp / "foa.toml",
        agent_id="cli-test",
        broker_url=f"mqtt://127.0.0.1:{free_port()}",
        devices={"d1": {"state_file": str(tmp / "d1.json"), "cycle_s": 1800, "slots": 1}},
        agent={"control_interval_s": 300},
    )
    runtime = AgentRuntime(config=load_config(config), clock=SimClock(start=T0, speed=7200))
    asyncio.run(runtime.run(until=T0 + 2 * 3600))
    return config


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_status(ran):
    report = json.loads(invoke("status", "--config", str(ran), "--json"))
    assert report["agent"] == "cli-test" and report["connection"]["connected"] is False
    assert report["outbox"]["waiting"] > 0 and report["outbox"]["by_kind"]["meter"] > 0
    assert sum(report["offers"].values()) >= 3
    assert report["last_readings"][0]["device"] == "d1"
    # no FMAN answered: what runs is the device's default, for the offer of the current slot
    (plan,) = report["in_force"]
    assert plan["device"] == "d1" and plan["source"] == "default" and plan["version"] == 0
    assert plan["offer_id"].startswith("cli-test.d1.") and plan["energy_kwh"] > 0
    text = invoke("status", "--config", str(ran))
    assert "connection   offline" in text and "outbox" in text and "reading      d1:" in text
    assert f"in force     d1: {plan['offer_id']}" in text and "default" in text


def test_offers_and_devices(ran):
    offers = json.loads(invoke("offers", "--config", str(ran), "--all", "--json"))
    assert {o["state"] for o in offers} >= {"executed"}
    assert all(o["device"] == "d1" for o in offers)
    assert "cli-test.d1." in invoke("offers", "--config", str(ran), "--all")
    (dev,) = json.loads(invoke("devices", "--config", str(ran), "--json"))
    assert dev["device"] == "d1" and dev["fault"] == "" and dev["energy_kwh"] > 0
    probed = json.loads(invoke("devices", "--config", str(ran), "--probe", "--json"))
    assert probed[0]["energy_kwh"] == pytest.approx(dev["energy_kwh"], abs=0.5)


def test_devices_table_has_a_header(ran):
    header, *rows = invoke("devices", "--config", str(ran)).splitlines()
    assert header.split()[:6] == ["device", "driver", "generator", "power", "energy", "setpoint"]
    assert rows and rows[0].startswith("d1 ")


def test_status_without_a_store_says_so(tmp_path):
    result = CliRunner().invoke(main, ["status", "--store", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "no such database" in result.output
