"""A grid asset a distribution operator can move: a baseline and room up and down.

Not physics in the strict sense: the asset (a substation's controllable load, a district
heating pump, an aggregate of customers) is described by its hourly baseline in local time and
how many kW it can add (``up_kw``) or shed (``down_kw``) during its delivery ``hours``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.params import Params


@dataclass(frozen=True, slots=True)
class GridAssetSpec:
    baseline_kw: tuple[float, ...]  # 24 values, one per local hour
    up_kw: float
    down_kw: float
    hours: frozenset[int]
    timezone: str

    def local_hour(self, ts: float) -> int:
        return datetime.fromtimestamp(ts, ZoneInfo(self.timezone)).hour

    def baseline_at(self, ts: float) -> float:
        return self.baseline_kw[self.local_hour(ts)]

    @classmethod
    def from_params(cls, p: Params) -> GridAssetSpec:
        if isinstance(p.table.get("baseline_kw"), list):
            baseline = tuple(p.numbers("baseline_kw", length=24, min=-1e6, max=1e6))
        else:
            baseline = (p.number("baseline_kw", 50.0, min=-1e6, max=1e6),) * 24
        hours = p.numbers("hours", list(range(24)), min=0, max=23)
        if any(h != int(h) for h in hours):
            raise p.error("hours", "hours of the day are whole numbers 0 to 23")
        return cls(
            baseline_kw=baseline,
            up_kw=p.number("up_kw", 10.0, min=0, max=1e6),
            down_kw=p.number("down_kw", 10.0, min=0, max=1e6),
            hours=frozenset(int(h) for h in hours),
            timezone=p.timezone().key,
        )
