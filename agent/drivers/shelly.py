"""Shelly Gen2 plugs (Plus Plug S and friends) over MQTT, with the JSON-RPC API.

Topics: requests go to ``<id>/rpc`` as ``{"id": n, "src": <ours>, "method": "Switch.Set",
"params": {"id": 0, "on": true}}``; the answer comes on ``<src>/rpc`` with the same ``id`` and
a ``result`` or an ``error``. With status notifications enabled the plug also publishes
``<id>/status/switch:0`` (``output``, ``apower`` W, ``voltage``, ``current``, ``aenergy.total``
Wh) and ``NotifyStatus`` events on ``<id>/events/rpc``; ``<id>/online`` (``true``/``false``,
retained) is its last will. A reading older than ``max_age_s`` is replaced by asking
``Switch.GetStatus``.

Config keys: ``shelly_id`` (the plug's MQTT prefix, ``shellyplusplugs-<mac>``), ``switch``
(0: the switch component), and those of :mod:`agent.drivers.plug`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
from typing import Any

from agent.drivers.base import Measurement
from agent.drivers.plug import MqttPlug
from agent.errors import DeviceFault
from agent.params import Params

_PREFIX = re.compile(r"^[^#+\s]+$")


class ShellyPlug(MqttPlug):
    name = "shelly"
    version = "1"

    def _configure(self, p: Params) -> None:
        self.shelly_id = p.string("shelly_id")
        if not _PREFIX.match(self.shelly_id) or self.shelly_id.startswith("/"):
            raise p.error("shelly_id", "an MQTT topic prefix: no '+', '#' or blanks")
        self.switch = p.integer("switch", 0, min=0, max=15)
        self.component = f"switch:{self.switch}"
        self.src = f"foa-{re.sub(r'[^A-Za-z0-9_-]', '-', self.device_id)}-{secrets.token_hex(3)}"
        self.status: dict[str, Any] | None = None
        self.status_at = -math.inf
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def subscriptions(self) -> list[str]:
        s = self.shelly_id
        return [f"{s}/online", f"{s}/status/{self.component}", f"{s}/events/rpc", f"{self.src}/rpc"]

    def handle(self, topic: str, payload: bytes) -> None:
        s = self.shelly_id
        if topic == f"{s}/online":
            self.online = payload.strip() == b"true"
        elif topic == f"{self.src}/rpc":
            reply = json.loads(payload)
            future = self._pending.get(reply.get("id"))
            if future is not None and not future.done():
                future.set_result(reply)
        elif topic == f"{s}/status/{self.component}":
            self._update(json.loads(payload), replace=True)
        elif topic == f"{s}/events/rpc":
            event = json.loads(payload)
            if event.get("method") == "NotifyStatus":
                part = (event.get("params") or {}).get(self.component)
                if isinstance(part, dict) and self.status is not None:
                    self._update(part, replace=False)

    def _update(self, status: Any, *, replace: bool) -> None:
        if not isinstance(status, dict):
            raise ValueError("expected a JSON object")
        self.status = dict(status) if replace or self.status is None else {**self.status, **status}
        self.status_at = self.monotonic()

    async def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Call ``method`` on the plug and return its result (an error is a DeviceFault)."""
        self.check_online()
        self._next_id += 1
        rid = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        request = {"id": rid, "src": self.src, "method": method, "params": params}
        try:
            await self.publish(f"{self.shelly_id}/rpc", json.dumps(request))
            reply = await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            self.check_online()
            raise DeviceFault(
                self.device_id, f"{method}: no answer in {self.timeout_s:g} s"
            ) from None
        finally:
            self._pending.pop(rid, None)
        if "error" in reply:
            err = reply["error"] or {}
            raise DeviceFault(
                self.device_id, f"{method}: {err.get('message', err)} ({err.get('code')})"
            )
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    async def read(self) -> Measurement:
        self.check_online()
        if self.status is None or self.monotonic() - self.status_at > self.max_age_s:
            self._update(await self.rpc("Switch.GetStatus", {"id": self.switch}), replace=True)
        status = self.status
        assert status is not None
        try:
            energy_kwh = float(status["aenergy"]["total"]) / 1000.0
            power_w = float(status["apower"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DeviceFault(self.device_id, f"status without power metering: {exc!r}") from exc
        state = {
            name: float(status[key])
            for key, name in (("voltage", "voltage_v"), ("current", "current_a"))
            if isinstance(status.get(key), int | float)
        }
        temp = (status.get("temperature") or {}).get("tC")
        if isinstance(temp, int | float):
            state["temperature_c"] = float(temp)
        return Measurement(
            ts=self.clock.now(),
            power_w=power_w,
            energy_kwh=energy_kwh,
            on=bool(status.get("output")),
            state=state,
        )

    async def set_on(self, on: bool) -> None:
        await self.rpc("Switch.Set", {"id": self.switch, "on": on})
        self.status_at = -math.inf  # power follows the relay: ask again on the next read
