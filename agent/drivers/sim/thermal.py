"""Simulated thermal devices: a heated house, a freezer, a hot-water tank.

They integrate the same 1R1C equations the generators predict with
(:mod:`agent.physics.thermal`), plus what a prediction cannot know: the day's weather
anomaly, freezer door openings, showers.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from agent.drivers.base import Limits
from agent.drivers.sim.model import DailyEvents, SimModel, day_rng
from agent.params import Params
from agent.physics.thermal import BoilerSpec, FreezerSpec, HeatPumpSpec


class HeatPumpModel(SimModel):
    """A house heated by a heat pump; without commands its own thermostat holds the set-point.

    The outdoor temperature is the climate's daily cosine plus a random anomaly per day
    (standard deviation 2.5 K), interpolated between middays."""

    kind = "heat_pump"

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        super().__init__(params, seed=seed, start=start)
        self.spec = HeatPumpSpec.from_params(params)
        self.modulating = params.boolean("modulating", True)
        self.anomaly = DailyEvents(lambda d: day_rng(seed, "outdoor", d).gauss(0.0, 2.5))
        self.temp_c = self.spec.setpoint_c + day_rng(
            seed, self.kind, self.local_day(start)
        ).uniform(-0.5, 0.5)

    @property
    def limits(self) -> Limits:
        return Limits(max_power_w=self.spec.max_power_kw * 1000.0, modulating=self.modulating)

    def outdoor_c(self, t: float) -> float:
        day = self.local_day(t)
        noon = self.local(day, 12.0)
        if t < noon:
            day, noon = day - timedelta(days=1), self.local(day - timedelta(days=1), 12.0)
        nxt = self.local(day + timedelta(days=1), 12.0)
        w = (t - noon) / (nxt - noon)
        anomaly = (1 - w) * self.anomaly(day) + w * self.anomaly(day + timedelta(days=1))
        return self.spec.climate.normal(t) + anomaly

    def _ambient(self, t: float) -> tuple[float, float]:
        out = self.outdoor_c(t)
        return out + self.spec.rc.r_k_per_kw * self.spec.gains_kw, self.spec.cop_at(out)

    def power_w(self, t: float) -> float:
        max_w = self.spec.max_power_kw * 1000.0
        cmd = self.commanded_w(max_w)
        if cmd is not None:
            return cmd
        ambient, cop = self._ambient(t)
        heat_kw = self.spec.rc.heat_to_reach(
            self.temp_c, self.spec.setpoint_c, ambient_c=ambient, dt_h=0.25
        )
        return min(max_w, max(0.0, heat_kw / cop * 1000.0))

    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        ambient, cop = self._ambient(t + dt_s / 2)
        self.temp_c = self.spec.rc.step(
            self.temp_c, ambient_c=ambient, heat_kw=cop * power_w / 1000.0, dt_h=dt_s / 3600.0
        )
        return power_w * dt_s / 3.6e6

    def state(self, t: float) -> dict[str, float]:
        return {"temp_c": self.temp_c, "outdoor_c": self.outdoor_c(t)}


class FreezerModel(SimModel):
    """A freezer on a switched supply; its compressor follows its own thermostat (dial at
    ``thermostat_c``, 1 K hysteresis) while the supply is on. Doors open three times a day,
    letting in 5 to 20 Wh of heat each."""

    kind = "freezer"
    HYSTERESIS_K = 1.0

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        super().__init__(params, seed=seed, start=start)
        self.spec = FreezerSpec.from_params(params)
        self.thermostat_c = params.number(
            "thermostat_c", self.spec.t_min_c + 1.0, min=self.spec.t_min_c, max=self.spec.t_max_c
        )
        self.temp_c = self.thermostat_c
        self.cooling = False
        self.doors = DailyEvents(self._doors)
        self.done_until = start

    def _doors(self, day: date) -> list[tuple[float, float]]:
        rng = day_rng(self.seed, self.kind, day)
        return sorted(
            (self.local(day, rng.uniform(7, 22)), rng.uniform(0.005, 0.02)) for _ in range(3)
        )

    @property
    def limits(self) -> Limits:
        return Limits(max_power_w=self.spec.compressor_kw * 1000.0, modulating=False)

    def at(self, t: float) -> None:
        day = self.local_day(t)
        for d in (day - timedelta(days=1), day):
            for ts, kwh in self.doors(d):
                if self.done_until < ts <= t:
                    self.temp_c += kwh / self.spec.rc.c_kwh_per_k
        self.done_until = max(self.done_until, t)

    def next_event(self, t: float) -> float:
        day = self.local_day(t)
        times = [ts for d in (day, day + timedelta(days=1)) for ts, _ in self.doors(d) if ts > t]
        return min(times, default=math.inf)

    def power_w(self, t: float) -> float:
        return self.spec.compressor_kw * 1000.0 if self.relay() and self.cooling else 0.0

    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        half = self.HYSTERESIS_K / 2
        self.cooling, kwh = _thermostat_run(
            self,
            self.cooling,
            heat_per_kw=-self.spec.cop,
            power_kw=self.spec.compressor_kw,
            dt_s=dt_s,
            ambient_c=self.spec.ambient_c,
            cut_out_c=self.thermostat_c - half,
            cut_in_c=self.thermostat_c + half,
        )
        return kwh

    def state(self, t: float) -> dict[str, float]:
        return {"temp_c": self.temp_c}


class BoilerModel(SimModel):
    """A hot-water tank on a switched supply; its element follows its own thermostat (cut out
    at ``t_max_c``, back in 5 K below) while the supply is on.

    Hot water is drawn as showers (one to three around 07:00, one or two in the evening,
    50 l at 40 °C each) and kitchen draws (10 l at 45 °C), mixed down from the tank with
    cold water at ``cold_c``; each draw replaces its volume with cold water."""

    kind = "boiler"
    HYSTERESIS_K = 5.0

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        super().__init__(params, seed=seed, start=start)
        self.spec = BoilerSpec.from_params(params)
        self.cold_c = params.number("cold_c", 10.0, min=0, max=30)
        self.temp_c = day_rng(seed, self.kind, self.local_day(start)).uniform(
            self.spec.t_target_c - 10, self.spec.t_max_c
        )
        self.heating = True
        self.draws = DailyEvents(self._draws)
        self.done_until = start

    def _draws(self, day: date) -> list[tuple[float, float, float]]:
        rng = day_rng(self.seed, self.kind, day)
        out = []
        for _ in range(rng.randint(1, 3)):
            out.append((self.local(day, rng.uniform(6.5, 8.0)), rng.uniform(35, 60), 40.0))
        for _ in range(rng.randint(1, 2)):
            out.append((self.local(day, rng.uniform(18.0, 22.0)), rng.uniform(35, 60), 40.0))
        for h in (8.0, 13.0, 19.5):
            out.append((self.local(day, h + rng.uniform(-0.5, 0.5)), 10.0, 45.0))
        return sorted(out)

    @property
    def limits(self) -> Limits:
        return Limits(max_power_w=self.spec.power_kw * 1000.0, modulating=False)

    def at(self, t: float) -> None:
        day = self.local_day(t)
        volume = self.spec.volume_l
        for d in (day - timedelta(days=1), day):
            for ts, litres, use_c in self.draws(d):
                if self.done_until < ts <= t:
                    share = (use_c - self.cold_c) / max(self.temp_c - self.cold_c, 1e-6)
                    hot = min(volume, litres * min(1.0, share))
                    self.temp_c = (self.temp_c * (volume - hot) + self.cold_c * hot) / volume
        self.done_until = max(self.done_until, t)

    def next_event(self, t: float) -> float:
        day = self.local_day(t)
        times = [ts for d in (day, day + timedelta(days=1)) for ts, _, _ in self.draws(d) if ts > t]
        return min(times, default=math.inf)

    def power_w(self, t: float) -> float:
        return self.spec.power_kw * 1000.0 if self.relay() and self.heating else 0.0

    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        self.heating, kwh = _thermostat_run(
            self,
            self.heating,
            heat_per_kw=1.0,
            power_kw=self.spec.power_kw,
            dt_s=dt_s,
            ambient_c=self.spec.ambient_c,
            cut_out_c=self.spec.t_max_c,
            cut_in_c=self.spec.t_max_c - self.HYSTERESIS_K,
        )
        return kwh

    def state(self, t: float) -> dict[str, float]:
        return {"temp_c": self.temp_c}


def _thermostat_run(
    model: FreezerModel | BoilerModel,
    calling: bool,
    *,
    heat_per_kw: float,
    power_kw: float,
    dt_s: float,
    ambient_c: float,
    cut_out_c: float,
    cut_in_c: float,
) -> tuple[bool, float]:
    """Run a thermostat for ``dt_s``, switching exactly where the temperature crosses its
    cut-out (while it calls for heat or cold) or its cut-in (while it rests), so the result
    does not depend on how the time was cut into steps. ``calling`` is the thermostat's state
    on entry; returns its state on exit and the energy drawn (kWh)."""
    rc = model.spec.rc
    left_h = dt_s / 3600.0
    kwh = 0.0
    while left_h > 1e-12:
        on = calling and model.relay()
        if calling and not on:
            # held off while it calls (the EMS switched the supply off): it keeps calling and
            # drifts until the relay returns; no crossing changes that, and treating one as
            # reached would flip the state back and forth without time passing
            model.temp_c = rc.step(model.temp_c, ambient_c=ambient_c, heat_kw=0.0, dt_h=left_h)
            break
        heat_kw = heat_per_kw * power_kw if on else 0.0
        target = cut_out_c if calling else cut_in_c
        reach_h = rc.hours_to_reach(model.temp_c, target, ambient_c=ambient_c, heat_kw=heat_kw)
        step_h = min(left_h, reach_h)
        if reach_h <= left_h:
            if reach_h > 0.0:
                model.temp_c = target  # exactly, so the next comparison sees the crossing
            calling = not calling
        else:
            model.temp_c = rc.step(model.temp_c, ambient_c=ambient_c, heat_kw=heat_kw, dt_h=step_h)
        if on:
            kwh += power_kw * step_h
        left_h -= step_h
    return calling, kwh
