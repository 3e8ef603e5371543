"""Smart plugs simulated in a process of their own, speaking Tasmota's and Shelly Gen2's MQTT
topics to a real broker: the peer the plug drivers are tested against.

Each plug has its own MQTT connection with its last will (``tele/<topic>/LWT`` ``Offline``;
``<id>/online`` ``false``), so killing this process makes the broker announce them offline,
as it would for a plug pulled from the wall. It is written on paho-mqtt, not on the aiomqtt
stack the drivers use, so the two sides share no code.

    python -m tests.agent_devices.plugsim --port 1883 --tasmota t1 --shelly s1 --load-w 1200

prints ``ready`` once every plug is connected. A test steers a plug through
``plugsim/<name>/set`` with JSON ``{"silent": true}`` (keeps its connection but stops
answering and reporting) or ``{"load_w": 500}``; the plug confirms on
``plugsim/<name>/applied``, echoing the message's ``token``, once the change holds: no report
with the old state is sent after the confirmation.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class SimPlug:
    """A relay with a load behind it and an energy meter."""

    def __init__(
        self, *, name: str, host: str, port: int, load_w: float, will: tuple[str, str]
    ) -> None:
        self.name = name
        self.load_w = load_w
        self.on = True
        self.silent = False
        self.total_wh = 1000.0
        self.last = time.monotonic()
        self.lock = threading.Lock()
        #: held while reporting and while applying a control message, so a report is either
        #: sent before a change is confirmed or made with the change
        self.control = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"plugsim-{name}", protocol=mqtt.MQTTv5
        )
        self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.connected = threading.Event()
        self.client.connect(host, port, keepalive=5)
        self.client.loop_start()

    # -- physics ---------------------------------------------------------------------------

    def power_w(self) -> float:
        return self.load_w if self.on else 0.0

    def meter(self) -> None:
        with self.lock:
            now = time.monotonic()
            self.total_wh += self.power_w() * (now - self.last) / 3600.0
            self.last = now

    def switch(self, on: bool) -> None:
        self.meter()
        self.on = on

    # -- MQTT --------------------------------------------------------------------------------

    def _connected(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        # ready only once the broker confirmed the subscriptions: a request sent before that
        # would be lost, which is not what the tests are about
        client.on_subscribe = lambda *a: self.connected.set()
        client.subscribe([(f"plugsim/{self.name}/set", 1), (self.command_filter(), 0)])
        self.announce()

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == f"plugsim/{self.name}/set":
            ctl = json.loads(msg.payload)
            with self.control:
                self.silent = bool(ctl.get("silent", self.silent))
                if "load_w" in ctl:
                    self.meter()
                    self.load_w = float(ctl["load_w"])
                applied = json.dumps({"token": ctl.get("token")})
                client.publish(f"plugsim/{self.name}/applied", applied, qos=1)
            return
        if not self.silent:
            self.command(msg.topic, msg.payload)

    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.client.publish(topic, data, qos=0, retain=retain)

    def command_filter(self) -> str:
        raise NotImplementedError

    def announce(self) -> None:
        raise NotImplementedError

    def command(self, topic: str, payload: bytes) -> None:
        raise NotImplementedError

    def report(self) -> None:
        raise NotImplementedError


class TasmotaSim(SimPlug):
    def __init__(self, *, name: str, host: str, port: int, load_w: float) -> None:
        super().__init__(
            name=name, host=host, port=port, load_w=load_w, will=(f"tele/{name}/LWT", "Offline")
        )

    def command_filter(self) -> str:
        return f"cmnd/{self.name}/#"

    def announce(self) -> None:
        self.publish(f"tele/{self.name}/LWT", "Online", retain=True)

    def energy(self) -> dict[str, Any]:
        self.meter()
        p = self.power_w()
        return {
            "TotalStartTime": "2024-01-01T00:00:00",
            "Total": round(self.total_wh / 1000.0, 3),
            "Yesterday": 0.5,
            "Today": round((self.total_wh - 1000.0) / 1000.0, 3),
            "Power": round(p),
            "ApparentPower": round(p),
            "ReactivePower": 0,
            "Factor": 1.0 if p else 0.0,
            "Voltage": 231,
            "Current": round(p / 231.0, 3),
        }

    def command(self, topic: str, payload: bytes) -> None:
        t = self.name
        cmd = topic.rsplit("/", 1)[1].upper()
        arg = payload.decode().strip().upper()
        if cmd == "POWER":
            if arg in ("ON", "1"):
                self.switch(True)
            elif arg in ("OFF", "0"):
                self.switch(False)
            elif arg == "TOGGLE":
                self.switch(not self.on)
            state = "ON" if self.on else "OFF"
            self.publish(f"stat/{t}/RESULT", {"POWER": state})
            self.publish(f"stat/{t}/POWER", state)
        elif cmd == "STATUS" and arg in ("8", "10"):
            self.publish(
                f"stat/{t}/STATUS{arg}", {"StatusSNS": {"Time": _now(), "ENERGY": self.energy()}}
            )
        elif cmd == "TELEPERIOD":
            self.publish(f"stat/{t}/RESULT", {"TelePeriod": int(arg or 300)})

    def report(self) -> None:
        t = self.name
        self.publish(f"tele/{t}/STATE", {"Time": _now(), "POWER": "ON" if self.on else "OFF"})
        self.publish(f"tele/{t}/SENSOR", {"Time": _now(), "ENERGY": self.energy()})


class ShellySim(SimPlug):
    def __init__(self, *, name: str, host: str, port: int, load_w: float) -> None:
        super().__init__(
            name=name, host=host, port=port, load_w=load_w, will=(f"{name}/online", "false")
        )

    def command_filter(self) -> str:
        return f"{self.name}/rpc"

    def announce(self) -> None:
        self.publish(f"{self.name}/online", "true", retain=True)

    def status(self) -> dict[str, Any]:
        self.meter()
        p = self.power_w()
        return {
            "id": 0,
            "source": "MQTT",
            "output": self.on,
            "apower": round(p, 1),
            "voltage": 230.4,
            "current": round(p / 230.4, 3),
            "aenergy": {
                "total": round(self.total_wh, 3),
                "by_minute": [0.0, 0.0, 0.0],
                "minute_ts": int(time.time()),
            },
            "temperature": {"tC": 35.2, "tF": 95.4},
        }

    def command(self, topic: str, payload: bytes) -> None:
        req = json.loads(payload)
        method, params = req.get("method"), req.get("params") or {}
        reply: dict[str, Any] = {"id": req.get("id"), "src": self.name, "dst": req.get("src")}
        if params.get("id", 0) != 0:
            reply["error"] = {
                "code": -105,
                "message": f"Argument 'id', value {params.get('id')} not found!",
            }
        elif method == "Switch.Set":
            reply["result"] = {"was_on": self.on}
            self.switch(bool(params.get("on")))
            self.publish(f"{self.name}/status/switch:0", self.status())
        elif method == "Switch.GetStatus":
            reply["result"] = self.status()
        else:
            reply["error"] = {"code": 404, "message": f"No handler for {method}"}
        self.publish(f"{req.get('src')}/rpc", reply)

    def report(self) -> None:
        status = self.status()
        self.publish(f"{self.name}/status/switch:0", status)
        event = {
            "ts": time.time(),
            "switch:0": {"id": 0, "apower": status["apower"], "aenergy": status["aenergy"]},
        }
        self.publish(
            f"{self.name}/events/rpc",
            {
                "src": self.name,
                "dst": f"{self.name}/events",
                "method": "NotifyStatus",
                "params": event,
            },
        )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--tasmota", action="append", default=[], help="a Tasmota topic (repeatable)")
    ap.add_argument("--shelly", action="append", default=[], help="a Shelly id (repeatable)")
    ap.add_argument("--load-w", type=float, default=1200.0)
    ap.add_argument("--period-s", type=float, default=1.0, help="telemetry period")
    args = ap.parse_args(argv)
    plugs: list[SimPlug] = [
        TasmotaSim(name=n, host=args.host, port=args.port, load_w=args.load_w) for n in args.tasmota
    ]
    plugs += [
        ShellySim(name=n, host=args.host, port=args.port, load_w=args.load_w) for n in args.shelly
    ]
    for plug in plugs:
        if not plug.connected.wait(10):
            sys.exit(f"plug {plug.name} could not connect")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(args.period_s):
        for plug in plugs:
            with plug.control:
                if not plug.silent:
                    plug.report()
    for plug in plugs:
        plug.client.disconnect()
        plug.client.loop_stop()


if __name__ == "__main__":
    main()
