"""Photovoltaic production from the sun's position and a clear-sky model.

The solar zenith angle comes from the declination and the equation of time (Spencer's
series, about a minute of error); the clear-sky global horizontal irradiance from the
Haurwitz model, ``GHI = 1098 cos z exp(-0.059 / cos z)`` W/m²; the array's AC power from
``peak_kw * GHI / 1000 * performance_ratio``. Clouds multiply that by a clear-sky index in
[0, 1]. Tilt and orientation are folded into the performance ratio: good to about 15 % over
a day, which is as good as a day-ahead cloud forecast anyway.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from agent.params import Params


def cos_zenith(ts: float, *, latitude: float, longitude: float) -> float:
    """Cosine of the solar zenith angle at UTC epoch ``ts`` (negative: below the horizon)."""
    day = (ts / 86_400) % 365.2422  # days since 1 January, within a day for 1970-2100
    gamma = 2.0 * math.pi * day / 365.0
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    eot_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    solar_min = (ts % 86_400) / 60.0 + eot_min + 4.0 * longitude
    hour_angle = math.radians(solar_min / 4.0 - 180.0)
    lat = math.radians(latitude)
    return math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)


def clear_sky_ghi(ts: float, *, latitude: float, longitude: float) -> float:
    """Haurwitz clear-sky global horizontal irradiance, W/m²."""
    cz = cos_zenith(ts, latitude=latitude, longitude=longitude)
    if cz <= 0.01:
        return 0.0
    return 1098.0 * cz * math.exp(-0.059 / cz)


@functools.lru_cache(maxsize=16_384)
def mean_clear_sky_ghi(
    start: float, duration_s: float, steps: int, latitude: float, longitude: float
) -> float:
    """Clear-sky irradiance averaged over an interval (midpoint rule on ``steps`` points).

    Pure geometry, the same for every array at one place: a forecast asks for the same slots
    again every slot, and the arrays of a neighbourhood (or of a simulated fleet) share them,
    so the values are cached."""
    h = duration_s / steps
    return (
        sum(
            clear_sky_ghi(start + (i + 0.5) * h, latitude=latitude, longitude=longitude)
            for i in range(steps)
        )
        / steps
    )


@dataclass(frozen=True, slots=True)
class PvSpec:
    """A PV array of ``peak_kw`` at ``latitude``/``longitude`` (degrees, east positive)."""

    peak_kw: float
    latitude: float
    longitude: float
    performance_ratio: float
    clear_sky_index: float

    def clear_sky_kw(self, ts: float) -> float:
        ghi = clear_sky_ghi(ts, latitude=self.latitude, longitude=self.longitude)
        return self.peak_kw * ghi / 1000.0 * self.performance_ratio

    def mean_kw(self, start: float, duration_s: float, *, steps: int = 3) -> float:
        """Clear-sky power averaged over an interval (midpoint rule on ``steps`` points)."""
        ghi = mean_clear_sky_ghi(start, duration_s, steps, self.latitude, self.longitude)
        return self.peak_kw * ghi / 1000.0 * self.performance_ratio

    @classmethod
    def from_params(cls, p: Params) -> PvSpec:
        return cls(
            peak_kw=p.number("peak_kw", 6.0, min=0.05, max=100_000),
            latitude=p.number("latitude", 55.7, min=-66, max=66),
            longitude=p.number("longitude", 12.6, min=-180, max=180),
            performance_ratio=p.number("performance_ratio", 0.8, min=0.1, max=1.0),
            clear_sky_index=p.number("clear_sky_index", 0.7, min=0.0, max=1.0),
        )
