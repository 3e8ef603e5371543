"""Simulated storage: a home battery and an electric car at its charger.

Both use the state-of-charge arithmetic of :mod:`agent.physics.storage`; their battery
management cuts the power at the exact moment the charge reaches its limit.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from agent.drivers.base import Limits
from agent.drivers.sim.model import DailyEvents, SimModel, day_rng
from agent.params import Params
from agent.physics.storage import BatterySpec, EvSpec


def _bms_step(
    soc: float,
    power_w: float,
    dt_s: float,
    *,
    floor: float,
    ceiling: float,
    eta_c: float,
    eta_d: float,
) -> tuple[float, float]:
    """``(new soc, grid kWh)`` for ``dt_s`` at ``power_w``, stopping at ``floor``/``ceiling``."""
    grid = power_w * dt_s / 3.6e6
    if grid > 0.0:
        grid = min(grid, max(0.0, ceiling - soc) / eta_c)
        return soc + eta_c * grid, grid
    if grid < 0.0:
        grid = max(grid, -max(0.0, soc - floor) * eta_d)
        return soc + grid / eta_d, grid
    return soc, 0.0


class BatteryModel(SimModel):
    """A home battery idling until commanded; its BMS stops at 2 % and 100 % of capacity
    (outside the band the agent keeps to)."""

    kind = "battery"

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        super().__init__(params, seed=seed, start=start)
        self.spec = BatterySpec.from_params(params)
        rng = day_rng(seed, self.kind, self.local_day(start))
        self.soc_kwh = rng.uniform(0.3, 0.7) * self.spec.capacity_kwh

    @property
    def limits(self) -> Limits:
        return Limits(
            max_power_w=self.spec.max_charge_kw * 1000.0,
            min_power_w=-self.spec.max_discharge_kw * 1000.0,
        )

    def power_w(self, t: float) -> float:
        cmd = self.commanded_w(self.limits.max_power_w, self.limits.min_power_w)
        return 0.0 if cmd is None else cmd

    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        spec = self.spec
        self.soc_kwh, grid = _bms_step(
            self.soc_kwh,
            power_w,
            dt_s,
            floor=0.02 * spec.capacity_kwh,
            ceiling=spec.capacity_kwh,
            eta_c=spec.eta_charge,
            eta_d=spec.eta_discharge,
        )
        return grid

    def state(self, t: float) -> dict[str, float]:
        return {"soc_kwh": self.soc_kwh}


class EvModel(SimModel):
    """A car that comes home every evening (around 18:00 local, 1.5 h standard deviation)
    with 15 to 60 % charge and leaves the next morning (around 07:30) at the departure time
    its driver entered. Without commands the charger charges at full power until the
    target; the car's BMS stops at a full battery."""

    kind = "ev"

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        super().__init__(params, seed=seed, start=start)
        self.spec = EvSpec.from_params(params)
        self.sessions = DailyEvents(self._session)
        self.soc_kwh = 0.0
        self.current: tuple[float, float, float] | None = None
        self.at(start)

    def _session(self, day: date) -> tuple[float, float, float]:
        """``(arrival, departure, soc at arrival)`` of the evening of ``day``."""
        rng = day_rng(self.seed, self.kind, day)
        arrive = self.local(day, min(23.5, max(14.0, rng.gauss(18.0, 1.5))))
        leave = self.local(day + timedelta(days=1), min(10.0, max(5.0, rng.gauss(7.5, 1.0))))
        return arrive, leave, rng.uniform(0.15, 0.6) * self.spec.battery_kwh

    def at(self, t: float) -> None:
        day = self.local_day(t)
        for d in (day - timedelta(days=1), day):
            arrive, leave, soc = self.sessions(d)
            if arrive <= t < leave:
                if self.current is None or self.current[0] != arrive:
                    self.current = (arrive, leave, soc)
                    self.soc_kwh = soc
                return
        self.current = None

    def next_event(self, t: float) -> float:
        day = self.local_day(t)
        times = [
            ts
            for d in (day - timedelta(days=1), day, day + timedelta(days=1))
            for ts in self.sessions(d)[:2]
            if ts > t
        ]
        return min(times, default=math.inf)

    @property
    def limits(self) -> Limits:
        return Limits(max_power_w=self.spec.max_power_kw * 1000.0)

    def power_w(self, t: float) -> float:
        if self.current is None:
            return 0.0
        cmd = self.commanded_w(self.limits.max_power_w)
        if cmd is not None:
            return cmd
        target = self.spec.target_soc * self.spec.battery_kwh
        return self.limits.max_power_w if self.soc_kwh < target - 1e-9 else 0.0

    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        if self.current is None:
            return 0.0
        spec = self.spec
        ceiling = spec.battery_kwh
        if self.command_w is None and self.command_on is None:
            ceiling = spec.target_soc * spec.battery_kwh  # the charger's own target
        self.soc_kwh, grid = _bms_step(
            self.soc_kwh,
            power_w,
            dt_s,
            floor=0.0,
            ceiling=ceiling,
            eta_c=spec.efficiency,
            eta_d=1.0,
        )
        return grid

    def state(self, t: float) -> dict[str, float]:
        if self.current is None:
            return {"plugged": 0.0}
        arrive, leave, _ = self.current
        return {"plugged": 1.0, "soc_kwh": self.soc_kwh, "plugin_ts": arrive, "departure_ts": leave}
