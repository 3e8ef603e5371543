"""A simulated PV array: clear sky times clouds, curtailed on command.

Each local day draws its weather (a mean clear-sky index between 0.2 and 1) and each hour a
variation around it (standard deviation 0.15); the index is interpolated between hours.
"""

from __future__ import annotations

from datetime import date

from agent.drivers.base import Limits
from agent.drivers.sim.model import DailyEvents, SimModel, day_rng
from agent.params import Params
from agent.physics.solar import PvSpec


class PvModel(SimModel):
    kind = "pv"

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        super().__init__(params, seed=seed, start=start)
        self.spec = PvSpec.from_params(params)
        self.weather = DailyEvents(self._weather)

    def _weather(self, day: date) -> list[float]:
        rng = day_rng(self.seed, self.kind, day)
        mean = rng.uniform(0.2, 1.0)
        return [min(1.0, max(0.0, rng.gauss(mean, 0.15))) for _ in range(25)]

    def index(self, t: float) -> float:
        hours = (t % 86_400) / 3600.0  # UTC hours: the weather needs no time zone
        day = date.fromordinal(date(1970, 1, 1).toordinal() + int(t // 86_400))
        h = int(hours)
        values = self.weather(day)
        return values[h] + (values[h + 1] - values[h]) * (hours - h)

    def available_w(self, t: float) -> float:
        return self.spec.clear_sky_kw(t) * self.index(t) * 1000.0

    @property
    def limits(self) -> Limits:
        return Limits(max_power_w=0.0, min_power_w=-self.spec.peak_kw * 1000.0)

    def power_w(self, t: float) -> float:
        available = self.available_w(t)
        if self.command_w is not None:  # a production cap: set_power(-3000) produces <= 3 kW
            return -min(available, -min(0.0, max(self.limits.min_power_w, self.command_w)))
        if self.command_on is False:
            return 0.0
        return -available

    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        return power_w * dt_s / 3.6e6

    def state(self, t: float) -> dict[str, float]:
        return {"available_w": self.available_w(t)}
