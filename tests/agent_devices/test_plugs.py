"""The Tasmota and Shelly drivers against plugs simulated in another process, over the real
Mosquitto of the fixtures: readings, switching, a plug that stops answering, a plug that
vanishes (its last will), a broker that goes away and comes back, garbage on the topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from agent.drivers.plug import MqttPlug
from agent.drivers.shelly import ShellyPlug
from agent.drivers.tasmota import TasmotaPlug
from agent.errors import ConfigError, DeviceFault

from .helpers import ManualClock

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def plugsim(broker, *, tasmota=(), shelly=(), load_w=1200.0) -> Iterator[subprocess.Popen]:
    args = [sys.executable, "-m", "tests.agent_devices.plugsim", "--host", broker.host]
    args += ["--port", str(broker.port), "--load-w", str(load_w), "--period-s", "0.5"]
    for name in tasmota:
        args += ["--tasmota", name]
    for name in shelly:
        args += ["--shelly", name]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def steer(broker, name: str, **ctl: object) -> None:
    publish.single(
        f"plugsim/{name}/set", json.dumps(ctl), qos=1, hostname=broker.host, port=broker.port
    )


def make(cls: type[MqttPlug], broker, name: str, **extra: object) -> MqttPlug:
    key = "topic" if cls is TasmotaPlug else "shelly_id"
    params = {"broker": broker.url, key: name, "timeout_s": 1.0, **extra}
    return cls(device_id=f"plug-{name}", params=params, clock=ManualClock())


KINDS = [pytest.param(TasmotaPlug, id="tasmota"), pytest.param(ShellyPlug, id="shelly")]


def sim_args(cls: type[MqttPlug], name: str) -> dict[str, tuple[str, ...]]:
    return {"tasmota": (name,)} if cls is TasmotaPlug else {"shelly": (name,)}


@pytest.mark.parametrize("cls", KINDS)
def test_read_and_switch(broker, topic_root, cls):
    name = f"{topic_root}-p"

    async def run() -> None:
        plug = make(cls, broker, name, max_age_s=0.0)  # every read asks the plug
        await plug.open()
        m = await plug.read()
        assert m.on is True and m.power_w == pytest.approx(1200, abs=1)
        assert m.energy_kwh is not None and m.energy_kwh >= 1.0
        assert m.state["voltage_v"] > 200
        await plug.set_on(False)
        m = await plug.read()
        assert m.on is False and m.power_w == 0
        await plug.set_power(800.0)  # an on/off device: any positive set-point switches on
        later = await plug.read()
        assert later.on is True and later.energy_kwh >= m.energy_kwh
        with pytest.raises(DeviceFault, match="outside"):
            await plug.set_power(99_999.0)
        assert plug.limits.modulating is False
        await plug.close()

    with plugsim(broker, **sim_args(cls, name)):
        asyncio.run(run())


@pytest.mark.parametrize("cls", KINDS)
def test_telemetry_serves_fresh_readings(broker, topic_root, cls):
    """With a generous max_age the periodic reports answer reads without asking the plug."""
    name = f"{topic_root}-p"

    async def run() -> None:
        plug = make(cls, broker, name, max_age_s=30.0)
        await plug.open()
        assert (await plug.read()).power_w == pytest.approx(1200, abs=1)
        steer(broker, name, load_w=500)
        await asyncio.sleep(1.2)  # two telemetry periods; max_age_s keeps the driver from asking
        assert (await plug.read()).power_w == pytest.approx(500, abs=1)
        await plug.close()

    with plugsim(broker, **sim_args(cls, name)):
        asyncio.run(run())


@pytest.mark.parametrize("cls", KINDS)
def test_plug_that_stops_answering(broker, topic_root, cls):
    """A silent plug is a fault once its last report is too old, never its old value."""
    name = f"{topic_root}-p"

    async def run() -> None:
        plug = make(cls, broker, name, max_age_s=0.8)
        await plug.open()
        assert (await plug.read()).power_w == pytest.approx(1200, abs=1)
        steer(broker, name, silent=True, load_w=300)
        await asyncio.sleep(1.0)
        with pytest.raises(DeviceFault, match="no answer"):
            await plug.read()
        with pytest.raises(DeviceFault, match="no answer"):
            await plug.set_on(False)
        steer(broker, name, silent=False)
        m = await plug.read()
        assert m.power_w == pytest.approx(300, abs=1), "fresh, after the plug came back"
        await plug.close()

    with plugsim(broker, **sim_args(cls, name)):
        asyncio.run(run())


@pytest.mark.parametrize("cls", KINDS)
def test_plug_that_vanishes_is_offline(broker, topic_root, cls):
    """Killing the plug process makes the broker publish its last will: the driver reports the
    plug offline at once; a new plug process brings it back."""
    name = f"{topic_root}-p"

    async def run() -> None:
        plug = make(cls, broker, name, max_age_s=30.0)
        with plugsim(broker, **sim_args(cls, name)):
            await plug.open()
            await plug.read()
        for _ in range(50):  # the will arrives within milliseconds
            if plug.online is False:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(DeviceFault, match="offline"):
            await plug.read()
        with plugsim(broker, **sim_args(cls, name)):
            for _ in range(50):
                if plug.online:
                    break
                await asyncio.sleep(0.05)
            assert (await plug.read()).on is True
        await plug.close()

    asyncio.run(run())


def test_broker_gone_and_back(own_broker, topic_root):
    name = f"{topic_root}-p"

    async def run() -> None:
        plug = make(TasmotaPlug, own_broker, name, max_age_s=0.0)
        with plugsim(own_broker, tasmota=(name,)) as sim:
            await plug.open()
            await plug.read()
            own_broker.stop()
            sim.kill()
            await asyncio.sleep(0.3)
            with pytest.raises(DeviceFault, match="not connected"):
                await plug.read()
            own_broker.start()
        with plugsim(own_broker, tasmota=(name,)):
            for _ in range(100):  # the driver reconnects by itself (backoff starts at 0.5 s)
                with contextlib.suppress(DeviceFault):
                    if (await plug.read()).on is True:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the driver did not reconnect")
        await plug.close()

    asyncio.run(run())


def test_garbage_on_the_topics_is_survived(broker, topic_root):
    name = f"{topic_root}-p"

    async def run() -> None:
        plug = make(TasmotaPlug, broker, name, max_age_s=0.0)
        shelly = make(ShellyPlug, broker, f"{name}-s", max_age_s=0.0)
        await plug.open()
        await shelly.open()
        for topic, payload in (
            (f"stat/{name}/RESULT", b"{not json"),
            (f"tele/{name}/SENSOR", b"[1, 2]"),
            (f"{name}-s/status/switch:0", b"\xff\xfe"),
            (f"{shelly.src}/rpc", b'{"id": "x"}'),
        ):
            publish.single(topic, payload, hostname=broker.host, port=broker.port)
        await asyncio.sleep(0.2)
        assert (await plug.read()).power_w == pytest.approx(1200, abs=1)
        assert (await shelly.read()).power_w == pytest.approx(1200, abs=1)
        await plug.close()
        await shelly.close()

    with plugsim(broker, tasmota=(name,), shelly=(f"{name}-s",)):
        asyncio.run(run())


def test_shelly_rpc_error_is_a_fault(broker, topic_root):
    name = f"{topic_root}-s"

    async def run() -> None:
        plug = make(ShellyPlug, broker, name, switch=1)
        await plug.open()
        with pytest.raises(DeviceFault, match="not found"):
            await plug.set_on(True)
        await plug.close()

    with plugsim(broker, shelly=(name,)):
        asyncio.run(run())


@pytest.mark.parametrize(
    ("cls", "params", "key"),
    [
        (TasmotaPlug, {"topic": "a/b"}, "devices.p.topic"),
        (TasmotaPlug, {"topic": "t", "broker": "http://x"}, "devices.p.broker"),
        (TasmotaPlug, {"topic": "t", "relay": 9}, "devices.p.relay"),
        (ShellyPlug, {}, "devices.p.shelly_id"),
        (ShellyPlug, {"shelly_id": "s", "broker": "mqtt://h:99999"}, "devices.p.broker"),
    ],
)
def test_config_errors(cls, params, key):
    with pytest.raises(ConfigError) as exc:
        cls(device_id="p", params=params, clock=ManualClock())
    assert exc.value.key == key


def test_credentials_stay_out_of_the_address():
    plug = TasmotaPlug(
        device_id="p",
        params={"topic": "t", "broker": "mqtts://user:s3cret@example.org"},
        clock=ManualClock(),
    )
    assert plug.broker.username == "user" and plug.broker.password == "s3cret"
    assert plug.broker.display == "mqtts://example.org:8883"
    assert "s3cret" not in repr(plug.broker.display)
