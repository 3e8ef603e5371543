"""Tasmota smart plugs over MQTT.

Topics (Tasmota's default full topic ``%prefix%/%topic%/``): the driver switches with
``cmnd/<topic>/POWER`` (``ON``/``OFF``; ``POWER<n>`` for relay ``n``) and takes the answer on
``stat/<topic>/RESULT`` (``{"POWER": "ON"}``); energy comes on ``tele/<topic>/SENSOR`` every
telemetry period (``{"ENERGY": {"Total": kWh, "Today": kWh, "Power": W, "Voltage": V,
"Current": A}}``) and, when that is too old, on demand: ``cmnd/<topic>/STATUS 8`` answered on
``stat/<topic>/STATUS8`` (``STATUS10`` on newer firmware) with the same block under
``StatusSNS``. ``tele/<topic>/LWT`` (``Online``/``Offline``, retained) says whether the plug is
there at all.

Config keys: ``topic`` (the plug's Tasmota topic), ``relay`` (0: the only relay; 1 to 8 on
multi-relay devices), ``tele_period_s`` (if given, set on the plug at connect), and those of
:mod:`agent.drivers.plug`.
"""

from __future__ import annotations

import json
import math
import re

from agent.drivers.base import Measurement
from agent.drivers.plug import MqttPlug
from agent.errors import DeviceFault
from agent.params import Params

_TOPIC = re.compile(r"^[^/#+\s]+$")


class TasmotaPlug(MqttPlug):
    name = "tasmota"
    version = "1"

    def _configure(self, p: Params) -> None:
        self.topic = p.string("topic")
        if not _TOPIC.match(self.topic):
            raise p.error("topic", "one MQTT topic level: no '/', '+', '#' or blanks")
        relay = p.integer("relay", 0, min=0, max=8)
        self.power_key = "POWER" if relay == 0 else f"POWER{relay}"
        self.tele_period_s = p.integer("tele_period_s", 0, min=0, max=3600) or None
        self.energy: dict[str, float] | None = None
        self.energy_at = -math.inf
        self.energy_seq = 0
        self.on: bool | None = None
        self.on_seq = 0

    def subscriptions(self) -> list[str]:
        t = self.topic
        return [f"stat/{t}/+", f"tele/{t}/+"]

    async def on_connect(self) -> None:
        await self.publish(f"cmnd/{self.topic}/{self.power_key}", "")
        if self.tele_period_s:
            await self.publish(f"cmnd/{self.topic}/TelePeriod", str(self.tele_period_s))

    def handle(self, topic: str, payload: bytes) -> None:
        prefix, _, leaf = topic.split("/", 2)
        if prefix == "tele" and leaf == "LWT":
            self.online = payload.strip() == b"Online"
            return
        if prefix == "stat" and leaf == self.power_key:
            self._set_on(payload.strip().upper() == b"ON")
            return
        if leaf not in ("SENSOR", "STATUS8", "STATUS10", "RESULT", "STATE"):
            return
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        if self.power_key in data:
            self._set_on(str(data[self.power_key]).upper() == "ON")
        energy = data.get("ENERGY") or (data.get("StatusSNS") or {}).get("ENERGY")
        if isinstance(energy, dict):
            self.energy = {k: float(v) for k, v in energy.items() if isinstance(v, int | float)}
            self.energy_at = self.monotonic()
            self.energy_seq += 1

    def _set_on(self, on: bool) -> None:
        self.on = on
        self.on_seq += 1

    async def read(self) -> Measurement:
        self.check_online()
        if self.energy is None or self.monotonic() - self.energy_at > self.max_age_s:
            seq = self.energy_seq
            await self.publish(f"cmnd/{self.topic}/STATUS", "8")
            await self.wait_for(lambda: self.energy_seq > seq, "energy status")
        if self.on is None:
            seq = self.on_seq
            await self.publish(f"cmnd/{self.topic}/{self.power_key}", "")
            await self.wait_for(lambda: self.on_seq > seq, "relay state")
        energy = self.energy
        assert energy is not None
        if "Total" not in energy or "Power" not in energy:
            raise DeviceFault(self.device_id, "the plug reports no energy metering (ENERGY.Total)")
        state = {
            name: energy[key]
            for key, name in (
                ("Voltage", "voltage_v"),
                ("Current", "current_a"),
                ("Today", "today_kwh"),
            )
            if key in energy
        }
        return Measurement(
            ts=self.clock.now(),
            power_w=energy["Power"],
            energy_kwh=energy["Total"],
            on=self.on,
            state=state,
        )

    async def set_on(self, on: bool) -> None:
        self.check_online()
        seq = self.on_seq
        await self.publish(f"cmnd/{self.topic}/{self.power_key}", "ON" if on else "OFF")
        await self.wait_for(
            lambda: self.on_seq > seq and self.on == on, f"switching {'on' if on else 'off'}"
        )
        self.energy_at = -math.inf  # the power reading changes with the relay: ask again
