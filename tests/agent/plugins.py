"""Test-only devices: a real Driver and a real Generator, named in configs by import path.

``FileMeter`` is a load with an energy register that lives in a JSON file, outside the agent
process, as a real meter does: killing the agent does not reset it, and the file records every
command the agent sent (so a test can tell what was done, and how often). Touching the file
named by ``fail_file`` makes the device stop answering; writing the file's ``energy_kwh``
resets the register as a restarted meter would; ``wrap_kwh`` makes it wrap to zero at that
value, as a Modbus counter does, and says so in its measurements.

``CycleOffer`` offers, for each ``cycle_s`` period, a run of ``slots`` slots that may start
in the first two slots of the next period, to be assigned ``deadline_s`` before it;
``params["gone_file"]`` existing makes it say the device left.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.clock import Clock
from agent.drivers.base import Driver, Limits, Measurement
from agent.errors import ConfigError, DeviceFault
from agent.generators.base import Generator, OfferContext
from protocol import DefaultSchedule, FlexOffer, Profile

DRIVER = "tests.agent.plugins:FileMeter"
GENERATOR = "tests.agent.plugins:CycleOffer"


class FileMeter(Driver):
    name = "test-file-meter"

    def __init__(
        self,
        *,
        device_id: str,
        params: Mapping[str, Any],
        clock: Clock,
        key_prefix: str | None = None,
    ) -> None:
        super().__init__(device_id=device_id, params=params, clock=clock, key_prefix=key_prefix)
        self.path = Path(params["state_file"])
        self.fail_file = Path(params["fail_file"]) if "fail_file" in params else None
        self.register = bool(params.get("register", True))  # False: it reports power only
        self.wrap = float(params["wrap_kwh"]) if "wrap_kwh" in params else None
        self._limits = Limits(
            max_power_w=float(params.get("max_power_w", 2000.0)),
            min_power_w=float(params.get("min_power_w", 0.0)),
            modulating=bool(params.get("modulating", True)),
        )

    @property
    def limits(self) -> Limits:
        return self._limits

    def _load(self) -> dict[str, Any]:
        if self.path.exists():
            return json.loads(self.path.read_text())
        return {"power_w": 0.0, "energy_kwh": 0.0, "ts": self.clock.now(), "commands": []}

    def _advance(self) -> dict[str, Any]:
        if self.fail_file is not None and self.fail_file.exists():
            raise DeviceFault(self.device_id, "no answer (timeout)")
        s = self._load()
        now = self.clock.now()
        s["energy_kwh"] += s["power_w"] * max(0.0, now - s["ts"]) / 3.6e6
        if self.wrap is not None:
            s["energy_kwh"] %= self.wrap
        s["ts"] = now
        return s

    def _save(self, s: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(s))
        os.replace(tmp, self.path)

    async def read(self) -> Measurement:
        s = self._advance()
        self._save(s)
        energy = s["energy_kwh"] if self.register else None
        return Measurement(
            ts=s["ts"],
            power_w=s["power_w"],
            energy_kwh=energy,
            on=s["power_w"] != 0,
            energy_wrap_kwh=self.wrap,
        )

    async def set_power(self, power_w: float) -> None:
        lim = self._limits
        if not lim.min_power_w <= power_w <= lim.max_power_w:
            raise DeviceFault(self.device_id, f"set-point {power_w} W outside limits")
        s = self._advance()
        s["power_w"] = power_w
        s["commands"].append([round(s["ts"], 3), "power", power_w])
        self._save(s)

    async def set_on(self, on: bool) -> None:
        s = self._advance()
        s["power_w"] = self._limits.max_power_w if on else 0.0
        s["commands"].append([round(s["ts"], 3), "on", on])
        self._save(s)


class CycleOffer(Generator):
    name = "test-cycle"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        try:
            self.slots = int(params.get("slots", 2))
            self.cycle_s = int(params.get("cycle_s", 3600))
            self.lower = float(params.get("lower_kwh", 0.1))
            self.upper = float(params.get("upper_kwh", 0.4))
            self.default = float(params.get("default_kwh", 0.25))
            self.deadline_s = int(params.get("deadline_s", 300))
        except (TypeError, ValueError) as exc:
            raise ConfigError("slots", f"bad number: {exc}") from exc
        if self.slots < 1:
            raise ConfigError("slots", "must be at least 1")
        self.gone = Path(params["gone_file"]) if "gone_file" in params else None

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        if self.gone is not None and self.gone.exists():
            return None
        r = ctx.resolution_s
        start = (ctx.now // self.cycle_s + 1) * self.cycle_s
        return FlexOffer(
            id=f"{ctx.agent}.{ctx.device}.{start}",
            issuer=ctx.agent,
            device=ctx.device,
            load_type="test",
            created_at=ctx.now,
            acceptance_before=start - self.deadline_s,
            assignment_before=start - self.deadline_s,
            start_after=start,
            start_before=start + r,
            profiles=[
                Profile(lower_kwh=[self.lower] * self.slots, upper_kwh=[self.upper] * self.slots)
            ],
            default=DefaultSchedule(start=start, energy_kwh=[self.default] * self.slots),
        )
