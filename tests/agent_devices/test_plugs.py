"""The Tasmota and Shelly drivers against plugs simulated in another process, over the real
Mosquitto of the fixtures: readings, switching, a plug that stops answering, a plug that
vanishes (its last will), a broker that goes away and comes back, garbage on the topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.drivers.plug import MqttPlug
from agent.drivers.shelly import ShellyPlug
from agent.drivers.tasmota import TasmotaPlug
from agent.errors import ConfigError, DeviceFault
from tests.waiting import DEFAULT_TIMEOUT_S, until

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
    """Change a simulated plug and wait until it confirms that the change holds (blocking:
    call it with ``asyncio.to_thread`` while a driver runs)."""
    token = uuid.uuid4().hex
    subscribed, applied = threading.Event(), threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_subscribe = lambda *_a: subscribed.set()
    c.on_message = lambda _c, _u, m: json.loads(m.payload)["token"] == token and applied.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        c.subscribe(f"plugsim/{name}/applied", qos=1)
        assert subscribed.wait(DEFAULT_TIMEOUT_S), "no SUBACK"
        c.publish(f"plugsim/{name}/set", json.dumps({**ctl, "token": token}), qos=1)
        assert applied.wait(DEFAULT_TIMEOUT_S), f"plug {name} did not confirm {ctl}"
    finally:
        c.disconnect()
        c.loop_stop()


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
        await asyncio.to_thread(steer, broker, name, load_w=500)

        async def reported() -> bool:  # max_age_s keeps the driver from asking the plug
            return (await plug.read()).power_w == pytest.approx(500, abs=1)

        await until(reported, what="a telemetry report with the new load")
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
        await asyncio.to_thread(steer, broker, name, silent=True, load_w=300)

        async def fault() -> DeviceFault | None:
            # the last report gets older: a read answers from it until it is too old, and
            # then asks the plug, which no longer answers
            try:
                m = await plug.read()
            except DeviceFault as exc:
                return exc
            assert m.power_w == pytest.approx(1200, abs=1), "only what the plug reported"
            return None

        assert "no answer" in str(await until(fault, what="the silent plug's fault"))
        with pytest.raises(DeviceFault, match="no answer"):
            await plug.read()
        with pytest.raises(DeviceFault, match="no answer"):
            await plug.set_on(False)
        await asyncio.to_thread(steer, broker, name, silent=False)
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
        await until(lambda: plug.online is False, what="the plug's last will")
        with pytest.raises(DeviceFault, match="offline"):
            await plug.read()
        with plugsim(broker, **sim_args(cls, name)):
            await until(lambda: plug.online, what="the new plug process to say it is online")
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

            async def noticed() -> bool:
                # until the driver has seen the connection go, a read fails for want of an
                # answer; never is an old value handed out
                with pytest.raises(DeviceFault) as exc:
                    await plug.read()
                return "not connected" in str(exc.value)

            await until(noticed, what="the driver to see the broker gone")
            own_broker.start()
        with plugsim(own_broker, tasmota=(name,)):

            async def back() -> bool:  # the driver reconnects by itself (backoff from 0.5 s)
                with contextlib.suppress(DeviceFault):
                    return (await plug.read()).on is True
                return False

            await until(back, what="the driver to reconnect", step=0.1)
        await plug.close()

    asyncio.run(run())


def test_garbage_on_the_topics_is_survived(broker, topic_root, caplog):
    name = f"{topic_root}-p"

    def dropped() -> list[str]:
        return [r.getMessage() for r in caplog.records if "dropped a bad message" in r.getMessage()]

    async def run() -> None:
        plug = make(TasmotaPlug, broker, name, max_age_s=0.0)
        shelly = make(ShellyPlug, broker, f"{name}-s", max_age_s=0.0)
        await plug.open()
        await shelly.open()
        garbage = [
            (f"stat/{name}/RESULT", b"{not json"),
            (f"tele/{name}/SENSOR", b"[1, 2]"),
            (f"{name}-s/status/switch:0", b"\xff\xfe"),
            (f"{shelly.src}/rpc", b'{"id": "x"}'),  # well-formed, an answer nobody asked for
        ]
        publish.multiple(
            [{"topic": t, "payload": p, "qos": 1} for t, p in garbage],
            hostname=broker.host,
            port=broker.port,
        )
        # the drivers took the garbage in (each bad message is logged as it is dropped) ...
        bad = [f"on {t}:" for t, _ in garbage[:3]]
        await until(
            lambda: all(any(b in m for m in dropped()) for b in bad),
            what="the bad messages to reach the drivers",
        )
        # ... and answer afterwards as before
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
