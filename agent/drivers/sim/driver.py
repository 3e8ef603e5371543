"""The ``sim`` driver: a :class:`~agent.drivers.base.Driver` in front of one physical model.

Config (``[devices.<id>]``): ``driver = "sim"``, ``model`` (``ev``, ``heat_pump``,
``boiler``, ``freezer``, ``battery``, ``wet_appliance``, ``pv``, ``grid_asset``), ``seed``
(default: derived from the device id), ``max_step_s`` (integration step, default 300 s; the
thermal and battery models cut power at exact crossing times, so larger steps lose little),
and the model's physical parameters under the same names the matching generator reads, so
that one table describes the device for both.

Every call first brings the model up to ``clock.now()``. Measurements are always fresh
(there is no stale value to hand out); :meth:`SimDriver.fail` makes the device stop
answering, for fault tests.
"""

from __future__ import annotations

import math
import zlib

from agent.drivers.base import Driver, Limits, Measurement
from agent.drivers.sim.appliance import WetModel
from agent.drivers.sim.grid import GridAssetModel
from agent.drivers.sim.model import SimModel
from agent.drivers.sim.solar import PvModel
from agent.drivers.sim.storage import BatteryModel, EvModel
from agent.drivers.sim.thermal import BoilerModel, FreezerModel, HeatPumpModel
from agent.errors import DeviceFault
from agent.params import Params

MODELS: dict[str, type[SimModel]] = {
    m.kind: m
    for m in (
        EvModel,
        HeatPumpModel,
        BoilerModel,
        FreezerModel,
        BatteryModel,
        WetModel,
        PvModel,
        GridAssetModel,
    )
}


class SimDriver(Driver):
    name = "sim"
    version = "1"

    def setup(self, p: Params) -> None:
        kind = p.string("model", choices=sorted(MODELS))
        self.seed = p.integer("seed", zlib.crc32(self.device_id.encode()), min=0)
        self.max_step_s = p.number("max_step_s", 300.0, min=1.0, max=3600.0)
        self._t = self.clock.now()
        self.model = MODELS[kind](p, seed=self.seed, start=self._t)
        self._energy_kwh = 0.0
        self._failed = False

    @property
    def limits(self) -> Limits:
        return self.model.limits

    def fail(self, failed: bool = True) -> None:
        """Make the device stop answering (``True``) or come back (``False``)."""
        self._failed = failed

    def _advance(self) -> float:
        now = self.clock.now()
        t, model = self._t, self.model
        while t < now:
            model.at(t)
            step = min(self.max_step_s, now - t)
            nxt = model.next_event(t)
            if math.isfinite(nxt) and t < nxt < t + step:
                step = nxt - t
            self._energy_kwh += model.integrate(t, step, model.power_w(t))
            t += step
        model.at(now)
        self._t = max(self._t, now)
        return now

    def _check(self) -> None:
        if self._failed:
            raise DeviceFault(self.device_id, "simulated device does not answer")

    async def read(self) -> Measurement:
        self._check()
        now = self._advance()
        power = self.model.power_w(now)
        return Measurement(
            ts=now,
            power_w=power,
            energy_kwh=self._energy_kwh,
            on=power != 0.0,
            state=self.model.state(now),
        )

    async def set_power(self, power_w: float) -> None:
        self._check()
        power_w = self.check_set_point(power_w)
        now = self._advance()
        self.model.command_w, self.model.command_on = power_w, None
        self.model.commanded(now)

    async def set_on(self, on: bool) -> None:
        self._check()
        now = self._advance()
        self.model.command_w, self.model.command_on = None, on
        self.model.commanded(now)

    async def set_programme(self, index: int) -> None:
        self._check()
        self._advance()
        self.model.set_programme(index)
