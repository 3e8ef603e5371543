"""First-order (1R1C) thermal models: a building heated by a heat pump, a freezer cooled by its
compressor, a hot-water tank heated by an element.

One resistance ``R`` (K/kW) to the surroundings and one capacity ``C`` (kWh/K) give

    C dT/dt = (T_amb - T) / R + Q

with ``Q`` the heat put in (kW; negative for cooling). With ``T_amb`` and ``Q`` constant over a
step of ``dt`` hours the exact solution is

    T(dt) = T_inf + (T(0) - T_inf) * a,   T_inf = T_amb + R * Q,   a = exp(-dt / (R * C))

which is what :meth:`RC.step` computes: no Euler error, so one step per slot is as good as
many. A heat pump puts in ``Q = COP * P_el`` (COP falling with the outdoor temperature), a
freezer takes out ``COP * P_el``, an element puts in ``P_el`` (a resistive element converts
all of it). Internal and solar gains enter as a constant ``Q`` added to every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.params import Params


@dataclass(frozen=True, slots=True)
class RC:
    """A 1R1C model: ``r_k_per_kw`` to the surroundings, ``c_kwh_per_k`` of thermal mass."""

    r_k_per_kw: float
    c_kwh_per_k: float

    @property
    def tau_h(self) -> float:
        """Time constant, hours."""
        return self.r_k_per_kw * self.c_kwh_per_k

    def decay(self, dt_h: float) -> float:
        """The fraction of a temperature difference that is left after ``dt_h`` hours."""
        return math.exp(-dt_h / self.tau_h)

    def step(self, temp_c: float, *, ambient_c: float, heat_kw: float, dt_h: float) -> float:
        """Temperature after ``dt_h`` hours of constant ``ambient_c`` and ``heat_kw``."""
        t_inf = ambient_c + self.r_k_per_kw * heat_kw
        return t_inf + (temp_c - t_inf) * self.decay(dt_h)

    def heat_to_reach(
        self, temp_c: float, target_c: float, *, ambient_c: float, dt_h: float
    ) -> float:
        """The constant heat (kW, negative: cooling) that brings ``temp_c`` to ``target_c`` in
        ``dt_h`` hours: :meth:`step` solved for ``heat_kw``."""
        a = self.decay(dt_h)
        t_inf = (target_c - temp_c * a) / (1.0 - a)
        return (t_inf - ambient_c) / self.r_k_per_kw

    def hours_to_reach(
        self, temp_c: float, target_c: float, *, ambient_c: float, heat_kw: float
    ) -> float:
        """How long constant ``ambient_c`` and ``heat_kw`` take to bring ``temp_c`` to
        ``target_c`` (``inf`` if never: the target lies beyond the equilibrium)."""
        t_inf = ambient_c + self.r_k_per_kw * heat_kw
        if temp_c == t_inf:
            return 0.0 if target_c == temp_c else math.inf
        ratio = (target_c - t_inf) / (temp_c - t_inf)
        if not 0.0 < ratio <= 1.0:
            return 0.0 if ratio > 1.0 else math.inf
        return -self.tau_h * math.log(ratio)

    def gain_k_per_kwh(self, dt_h: float) -> float:
        """How much one kWh of heat spread evenly over a step of ``dt_h`` hours raises the
        temperature at the end of the step: ``(1 - a) * R / dt``."""
        return (1.0 - self.decay(dt_h)) * self.r_k_per_kw / dt_h


# -- climate --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Climate:
    """Outdoor temperature as a daily cosine around a mean, warmest at ``peak_hour_utc``.

    A forecast keeps today's measured anomaly (measured minus the cosine) and lets it fade
    with a 12 h time constant: persistence first, climatology later, the simplest forecast
    that beats either alone."""

    mean_c: float = 5.0
    amplitude_k: float = 4.0
    peak_hour_utc: float = 14.0

    ANOMALY_TAU_S = 12 * 3600

    def normal(self, ts: float) -> float:
        hour = (ts % 86_400) / 3600.0
        return self.mean_c + self.amplitude_k * math.cos(
            2.0 * math.pi * (hour - self.peak_hour_utc) / 24.0
        )

    def forecast(self, ts: float, *, now: float, measured_c: float | None) -> float:
        base = self.normal(ts)
        if measured_c is None:
            return base
        anomaly = measured_c - self.normal(now)
        return base + anomaly * math.exp(-max(0.0, ts - now) / self.ANOMALY_TAU_S)

    @classmethod
    def from_params(cls, p: Params) -> Climate:
        return cls(
            mean_c=p.number("outdoor_mean_c", 5.0, min=-40, max=45),
            amplitude_k=p.number("outdoor_amplitude_k", 4.0, min=0, max=25),
            peak_hour_utc=p.number("outdoor_peak_hour_utc", 14.0, min=0, max=24),
        )


# -- devices --------------------------------------------------------------------------------


def _band(
    p: Params, lo: str, hi: str, set_: str, d_lo: float, d_hi: float, d_set: float
) -> tuple[float, float, float]:
    t_min = p.number(lo, d_lo, min=-60, max=100)
    t_max = p.number(hi, d_hi, min=-60, max=100)
    if t_max - t_min < 0.5:
        raise p.error(hi, f"{t_max:g} must be at least 0.5 K above {lo} ({t_min:g})")
    setpoint = p.number(set_, min(max(d_set, t_min), t_max), min=t_min, max=t_max)
    return t_min, t_max, setpoint


@dataclass(frozen=True, slots=True)
class HeatPumpSpec:
    """A building (1R1C) heated by an electric heat pump.

    The defaults describe a 150 m² house losing 200 W/K (``r_k_per_kw = 5``) with a heavy
    structure (``c_kwh_per_k = 10``, a time constant of 50 h) and a 3 kW (electric) heat pump
    with a COP of 3 at 7 °C outdoors, 0.08 per kelvin warmer or colder."""

    rc: RC
    max_power_kw: float
    cop: float
    cop_slope_per_k: float
    gains_kw: float
    t_min_c: float
    t_max_c: float
    setpoint_c: float
    climate: Climate

    def cop_at(self, outdoor_c: float) -> float:
        return min(8.0, max(1.0, self.cop + self.cop_slope_per_k * (outdoor_c - 7.0)))

    @classmethod
    def from_params(cls, p: Params) -> HeatPumpSpec:
        t_min, t_max, setpoint = _band(p, "t_min_c", "t_max_c", "setpoint_c", 20.0, 23.0, 21.0)
        return cls(
            rc=RC(
                r_k_per_kw=p.number("r_k_per_kw", 5.0, min=0.1, max=100),
                c_kwh_per_k=p.number("c_kwh_per_k", 10.0, min=0.1, max=500),
            ),
            max_power_kw=p.number("max_power_kw", 3.0, min=0.1, max=50),
            cop=p.number("cop", 3.0, min=1.0, max=8.0),
            cop_slope_per_k=p.number("cop_slope_per_k", 0.08, min=0.0, max=0.5),
            gains_kw=p.number("gains_kw", 0.3, min=0.0, max=20),
            t_min_c=t_min,
            t_max_c=t_max,
            setpoint_c=setpoint,
            climate=Climate.from_params(p),
        )


@dataclass(frozen=True, slots=True)
class FreezerSpec:
    """A freezer: a cold box losing ``loss_w_per_k`` to the room, cooled by a compressor.

    The defaults (0.9 W/K, 0.03 kWh/K of food and cabinet, a 100 W compressor with a COP of
    1.2) use about 0.8 kWh a day at 20 °C and warm by about 1 K an hour when switched off."""

    rc: RC
    compressor_kw: float
    cop: float
    ambient_c: float
    t_min_c: float
    t_max_c: float
    setpoint_c: float

    @classmethod
    def from_params(cls, p: Params) -> FreezerSpec:
        t_min, t_max, setpoint = _band(p, "t_min_c", "t_max_c", "setpoint_c", -25.0, -15.0, -18.0)
        loss = p.number("loss_w_per_k", 0.9, min=0.01, max=100)
        return cls(
            rc=RC(
                r_k_per_kw=1000.0 / loss,
                c_kwh_per_k=p.number("c_kwh_per_k", 0.03, min=0.001, max=10),
            ),
            compressor_kw=p.number("compressor_w", 100.0, min=10, max=5000) / 1000.0,
            cop=p.number("cop", 1.2, min=0.3, max=5.0),
            ambient_c=p.number("ambient_c", 20.0, min=-10, max=45),
            t_min_c=t_min,
            t_max_c=t_max,
            setpoint_c=setpoint,
        )


#: kWh to heat one litre of water by one kelvin.
WATER_KWH_PER_L_K = 4.186 / 3600.0


@dataclass(frozen=True, slots=True)
class BoilerSpec:
    """An electric water heater: a tank of ``volume_l`` litres, fully mixed (one temperature),
    losing ``loss_w_per_k`` to a room at ``ambient_c``, heated by a resistive element of
    ``power_kw`` that its own thermostat cuts out at ``t_max_c``.

    The defaults (200 l, 3 kW, 1.6 W/K) lose about 1.5 kWh a day at 60 °C. ``ready_by_h`` are
    the local hours (in ``timezone``) by which the tank must hold at least ``t_target_c``:
    before the morning and evening showers."""

    rc: RC
    power_kw: float
    ambient_c: float
    t_target_c: float
    t_max_c: float
    ready_by_h: tuple[float, ...]
    timezone: str

    @property
    def volume_l(self) -> float:
        return self.rc.c_kwh_per_k / WATER_KWH_PER_L_K

    @classmethod
    def from_params(cls, p: Params) -> BoilerSpec:
        volume = p.number("volume_l", 200.0, min=5, max=5000)
        loss = p.number("loss_w_per_k", 1.6, min=0.01, max=100)
        t_max = p.number("t_max_c", 65.0, min=30, max=95)
        t_target = p.number("t_target_c", 55.0, min=20, max=95)
        if t_target > t_max - 1.0:
            raise p.error("t_target_c", f"{t_target:g} must be at least 1 K below t_max_c")
        hours = p.numbers("ready_by_h", [6.0, 18.0], min=0, max=23.75)
        zone = p.timezone()
        return cls(
            rc=RC(r_k_per_kw=1000.0 / loss, c_kwh_per_k=volume * WATER_KWH_PER_L_K),
            power_kw=p.number("power_kw", 3.0, min=0.1, max=50),
            ambient_c=p.number("ambient_c", 18.0, min=-10, max=45),
            t_target_c=t_target,
            t_max_c=t_max,
            ready_by_h=tuple(sorted(set(hours))),
            timezone=zone.key,
        )
