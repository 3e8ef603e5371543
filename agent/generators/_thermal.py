"""Comfort bands of 1R1C thermal loads as cumulative-energy corridors.

Over slots of ``dt`` with decay ``a = exp(-dt / RC)``, slot ``k`` of electric energy ``e_k`` ends at

    T[k+1] = a T[k] + (1 - a) A[k] + s g[k] e[k]

(``A[k]`` the effective ambient, outdoor temperature plus ``R`` times the gains; ``g[k]`` the
kelvin one kWh raises the end-of-slot temperature, COP included; ``s`` +1 heating, -1
cooling). Unrolled, ``T[k+1] = D[k] + s * sum_j a^(k-j) g[j] e[j]`` with ``D`` the free
(unheated) temperature. The weights ``a^(k-j) g[j]`` lie between ``Glo[k] = min_j a^(k-j) g[j]``
and ``Ghi[k] = max_j g[j]``, and energies are non-negative, so

    D[k] + s Glo[k] S[k+1]  and  D[k] + s Ghi[k] S[k+1]

bound the temperature from both sides in terms of the cumulative energy ``S[k+1]`` alone:
exactly what a Flex-Offer dependency row can say. Requiring the *pessimistic* bound to stay in
``[t_min, t_max]`` gives a corridor that is safe for every schedule inside it (an inner
approximation of the true comfort set). It is tight for short horizons: a house with a 50 h
time constant loses 11 % of the band over a 6 h block, a freezer with 33 h about 17 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from agent.generators._corridor import corridor_profile
from agent.physics.thermal import RC
from protocol import Profile


@dataclass(frozen=True, slots=True)
class ThermalSlots:
    """One thermal load over the slots of a block."""

    rc: RC
    dt_h: float
    sign: int  # +1 heating, -1 cooling
    ambient_c: Sequence[float]  # effective ambient per slot, gains included
    gain: Sequence[float]  # K per kWh of electricity at the end of each slot
    e_max: Sequence[float]  # per-slot energy limit, kWh
    t_min_c: float
    t_max_c: float
    setpoint_c: float

    def corridor(self, t0_c: float) -> tuple[list[float], list[float]]:
        """``(lower, upper)`` cumulative energy at the end of each slot that keeps the
        temperature in the band for every schedule between them."""
        a = self.rc.decay(self.dt_h)
        free = t0_c
        g_hi, g_lo = 0.0, float("inf")
        lower, upper = [], []
        for amb, g in zip(self.ambient_c, self.gain, strict=True):
            free = a * free + (1.0 - a) * amb
            g_hi = max(g_hi, g)
            g_lo = min(a * g_lo, g)
            if self.sign > 0:
                upper.append((self.t_max_c - free) / g_hi)
                lower.append((self.t_min_c - free) / g_lo)
            else:
                upper.append((free - self.t_min_c) / g_hi)
                lower.append((free - self.t_max_c) / g_lo)
        return lower, upper

    def profile(self, t0_c: float) -> tuple[Profile, list[float]]:
        """The block's profile (0 to ``e_max`` per slot, comfort rows) and its default: the
        thermostat, kept inside the corridor."""
        lower, upper = self.corridor(t0_c)
        target = list(accumulate(self.thermostat(t0_c)))
        return corridor_profile(lower, upper, [0.0] * len(target), self.e_max, target)

    def thermostat(self, t0_c: float) -> list[float]:
        """What the device's own controller would take per slot: as much as brings the
        temperature back to the set-point by the end of the slot, within its power."""
        a = self.rc.decay(self.dt_h)
        t = t0_c
        out = []
        for amb, g, e_max in zip(self.ambient_c, self.gain, self.e_max, strict=True):
            free = a * t + (1.0 - a) * amb
            e = min(max(self.sign * (self.setpoint_c - free) / g, 0.0), e_max)
            out.append(e)
            t = free + self.sign * g * e
        return out

    def temperatures(self, t0_c: float, energy_kwh: Sequence[float]) -> list[float]:
        """The exact end-of-slot temperatures under ``energy_kwh``."""
        a = self.rc.decay(self.dt_h)
        t = t0_c
        out = []
        for amb, g, e in zip(self.ambient_c, self.gain, energy_kwh, strict=True):
            t = a * t + (1.0 - a) * amb + self.sign * g * e
            out.append(t)
        return out


def predict(
    rc: RC,
    t0_c: float,
    *,
    sign: int,
    setpoint_c: float,
    max_kw: float,
    span_s: float,
    ambient_c: Sequence[float],
    cop: Sequence[float],
) -> float:
    """The temperature after ``span_s`` seconds under the device's own thermostat, stepping
    through ``len(ambient_c)`` equal steps (one ambient and COP value each)."""
    steps = len(ambient_c)
    if steps == 0 or span_s <= 0:
        return t0_c
    dt_h = span_s / steps / 3600.0
    t = t0_c
    for amb, c in zip(ambient_c, cop, strict=True):
        heat_kw = rc.heat_to_reach(t, setpoint_c, ambient_c=amb, dt_h=dt_h)
        heat_kw = max(0.0, min(sign * heat_kw, max_kw * c)) * sign
        t = rc.step(t, ambient_c=amb, heat_kw=heat_kw, dt_h=dt_h)
    return t
