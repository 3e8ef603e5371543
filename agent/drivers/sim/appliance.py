"""A simulated dishwasher or washing machine with a "finish by" timer.

Most evenings (``use_probability``, default 0.8) the user loads it around 20:30 local, picks a
programme (the first in three cases out of five) and sets it to finish within
``max_delay_h``. It then waits, ``ready``, for the agent to switch it on; if nobody does, its
own timer starts it just in time to finish by the deadline. Once started it runs its
programme to the end, whatever it is told.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from agent.drivers.base import Limits
from agent.drivers.sim.model import DailyEvents, SimModel, day_rng
from agent.params import Params
from agent.physics.appliance import Programme, WetSpec


class WetModel(SimModel):
    kind = "wet_appliance"

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        super().__init__(params, seed=seed, start=start)
        self.spec = WetSpec.from_params(params)
        self.use_probability = params.number("use_probability", 0.8, min=0, max=1)
        self.loads = DailyEvents(self._load)
        self.load: tuple[float, float, int] | None = None  # (ready, deadline, programme)
        self.selected: int | None = None
        self.started: float | None = None
        self.programme: Programme | None = None
        self.done: set[float] = set()
        self.at(start)

    def _load(self, day: date) -> tuple[float, float, int] | None:
        rng = day_rng(self.seed, self.kind, day)
        if rng.random() >= self.use_probability:
            return None
        ready = self.local(day, min(23.5, max(17.0, rng.gauss(20.5, 1.0))))
        n = len(self.spec.programmes)
        weights = [0.6] + [0.4 / (n - 1)] * (n - 1) if n > 1 else [1.0]
        programme = rng.choices(range(n), weights=weights)[0]
        return ready, ready + self.spec.max_delay_h * 3600.0, programme

    @property
    def limits(self) -> Limits:
        return Limits(max_power_w=self.spec.peak_w, modulating=False)

    def _start(self, t: float) -> None:
        assert self.load is not None
        index = self.selected if self.selected is not None else self.load[2]
        self.programme = self.spec.programmes[index]
        self.started = t
        self.done.add(self.load[0])
        self.load = None
        self.selected = None

    def at(self, t: float) -> None:
        programme, started = self.programme, self.started
        if started is not None and programme is not None and t - started >= programme.duration_s:
            self.started, self.programme = None, None
        if self.started is None and self.load is None:
            day = self.local_day(t)
            for d in (day - timedelta(days=1), day):
                load = self.loads(d)
                if load is not None and load[0] <= t and load[0] not in self.done:
                    self.load = load
        if self.load is not None and self.started is None:
            duration = self.spec.programmes[self.load[2]].duration_s
            if t >= self.load[1] - duration:  # the appliance's own timer
                self._start(t)

    def commanded(self, t: float) -> None:
        if self.load is not None and self.started is None and self.relay():
            self._start(t)

    def set_programme(self, index: int) -> None:
        if 0 <= index < len(self.spec.programmes):
            self.selected = index

    def next_event(self, t: float) -> float:
        if self.started is not None and self.programme is not None:
            # phase boundaries, so each step draws one phase's constant power
            edge = self.started
            for minutes, _ in self.programme.phases:
                edge += minutes * 60.0
                if edge > t:
                    return edge
            return math.inf
        if self.load is not None:
            return self.load[1] - self.spec.programmes[self.load[2]].duration_s
        day = self.local_day(t)
        times = [
            load[0]
            for d in (day, day + timedelta(days=1))
            if (load := self.loads(d)) is not None and load[0] > t
        ]
        return min(times, default=math.inf)

    def power_w(self, t: float) -> float:
        if self.started is None or self.programme is None:
            return 0.0
        return self.programme.power_w_at(t - self.started)

    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        if self.started is None or self.programme is None:
            return 0.0
        return self.programme.energy_between(t - self.started, t - self.started + dt_s)

    def state(self, t: float) -> dict[str, float]:
        if self.started is not None:
            return {"ready": 0.0, "running": 1.0}
        if self.load is None:
            return {"ready": 0.0, "running": 0.0}
        ready, deadline, programme = self.load
        return {
            "ready": 1.0,
            "running": 0.0,
            "ready_ts": ready,
            "deadline_ts": deadline,
            "programme": float(programme),
        }
