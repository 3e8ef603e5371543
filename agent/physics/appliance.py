"""Wet appliances: a dishwasher or washing machine runs a fixed programme once started.

A programme is a sequence of phases, each a duration (minutes) at a power (W): heating the
water takes the element's full power, pumping and tumbling a little, drying almost none.
Once started a programme cannot be paused or shaped, so the only flexibility is when it
starts and which programme runs. The built-in profiles are typical of EU energy-label A
appliances (eco dishwasher about 0.9 kWh over 3.5 h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.params import Params

Phases = tuple[tuple[float, float], ...]

BUILTIN: dict[str, dict[str, Phases]] = {
    "dishwasher": {
        "eco": ((10, 50), (15, 2000), (70, 60), (10, 2000), (105, 10)),
        "normal": ((5, 50), (25, 2000), (40, 80), (20, 2000), (30, 10)),
        "quick": ((20, 2000), (10, 200)),
    },
    "washing_machine": {
        "eco_40_60": ((20, 1500), (130, 120), (30, 350)),
        "cotton_40": ((15, 2000), (60, 150), (15, 400)),
        "quick_30": ((10, 1800), (15, 150), (5, 500)),
    },
}


@dataclass(frozen=True, slots=True)
class Programme:
    name: str
    phases: Phases

    @property
    def duration_s(self) -> float:
        return sum(minutes for minutes, _ in self.phases) * 60.0

    @property
    def energy_kwh(self) -> float:
        return sum(minutes * watts for minutes, watts in self.phases) / 60_000.0

    def power_w_at(self, elapsed_s: float) -> float:
        """Power drawn ``elapsed_s`` seconds after the start (0 once finished)."""
        t = 0.0
        for minutes, watts in self.phases:
            t += minutes * 60.0
            if elapsed_s < t:
                return watts if elapsed_s >= 0 else 0.0
        return 0.0

    def energy_between(self, t0_s: float, t1_s: float) -> float:
        """Energy (kWh) drawn between ``t0_s`` and ``t1_s`` seconds after the start."""
        total, t = 0.0, 0.0
        for minutes, watts in self.phases:
            a, b = t, t + minutes * 60.0
            overlap = min(b, t1_s) - max(a, t0_s)
            if overlap > 0:
                total += watts * overlap / 3_600_000.0
            t = b
        return total

    def slots(self, resolution_s: int) -> list[float]:
        """Energy per slot (kWh) when started on a slot boundary."""
        n = max(1, math.ceil(self.duration_s / resolution_s - 1e-9))
        return [self.energy_between(i * resolution_s, (i + 1) * resolution_s) for i in range(n)]


@dataclass(frozen=True, slots=True)
class WetSpec:
    """An appliance with its programmes (in the order the offer lists them as profiles)."""

    appliance: str
    programmes: tuple[Programme, ...]
    max_delay_h: float

    @property
    def peak_w(self) -> float:
        return max(w for p in self.programmes for _, w in p.phases)

    @classmethod
    def from_params(cls, p: Params) -> WetSpec:
        appliance = p.string("appliance", "dishwasher", choices=[*BUILTIN, "custom"])
        table = p.sub("programmes")
        if appliance == "custom" and not table.table:
            raise p.error("programmes", "a custom appliance needs at least one programme")
        progs: list[Programme] = []
        if table.table:
            for name in table.table:
                rows = table.table[name]
                if not isinstance(rows, list) or not rows:
                    raise table.error(name, "expected a list of [minutes, watts] phases")
                phases = []
                for i, row in enumerate(rows):
                    ok = (
                        isinstance(row, list)
                        and len(row) == 2
                        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
                        and 0 < row[0] <= 24 * 60
                        and 0 <= row[1] <= 100_000
                    )
                    if not ok:
                        raise table.error(
                            f"{name}[{i}]",
                            f"expected [minutes, watts] with 0 < minutes <= 1440 and "
                            f"0 <= watts <= 100000, got {row!r}",
                        )
                    phases.append((float(row[0]), float(row[1])))
                prog = Programme(name=name, phases=tuple(phases))
                if prog.duration_s > 24 * 3600:
                    raise table.error(name, "a programme lasts at most 24 h")
                progs.append(prog)
        else:
            progs = [Programme(name=n, phases=ph) for n, ph in BUILTIN[appliance].items()]
        if len(progs) > 16:
            raise p.error("programmes", f"{len(progs)} programmes; at most 16 fit in one offer")
        return cls(
            appliance=appliance,
            programmes=tuple(progs),
            max_delay_h=p.number("max_delay_h", 10.0, min=0.25, max=7 * 24),
        )
