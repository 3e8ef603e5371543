"""A simulated grid asset: its baseline with hourly noise, or the set-point it is given."""

from __future__ import annotations

from datetime import date

from agent.drivers.base import Limits
from agent.drivers.sim.model import DailyEvents, SimModel, day_rng
from agent.params import Params
from agent.physics.grid import GridAssetSpec


class GridAssetModel(SimModel):
    kind = "grid_asset"

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        super().__init__(params, seed=seed, start=start)
        self.spec = GridAssetSpec.from_params(params)
        self.noise = DailyEvents(
            lambda d: [day_rng(seed, self.kind, d).gauss(0.0, 0.05) for _ in range(24)]
        )

    def baseline_w(self, t: float) -> float:
        day: date = self.local_day(t)
        return self.spec.baseline_at(t) * (1.0 + self.noise(day)[self.spec.local_hour(t)]) * 1000.0

    @property
    def limits(self) -> Limits:
        lo, hi = min(self.spec.baseline_kw), max(self.spec.baseline_kw)
        return Limits(
            max_power_w=(hi + 0.2 * abs(hi) + self.spec.up_kw) * 1000.0,
            min_power_w=(lo - 0.2 * abs(lo) - self.spec.down_kw) * 1000.0,
        )

    def power_w(self, t: float) -> float:
        cmd = self.commanded_w(self.limits.max_power_w, self.limits.min_power_w)
        return self.baseline_w(t) if cmd is None else cmd

    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        return power_w * dt_s / 3.6e6

    def state(self, t: float) -> dict[str, float]:
        return {"baseline_w": self.baseline_w(t)}
