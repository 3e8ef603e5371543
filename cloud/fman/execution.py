"""The execution check: did each offer's device do what its schedule said?

Per offer and per slot, the metered energy is compared with the schedule in force and with the
offer's default (its baseline): a slot deviates when ``|metered - scheduled|`` exceeds
``tolerance_kwh + tolerance_rel * |scheduled|``. The baseline is kept next to both so that
settlement and the portfolio report can tell delivered flexibility (metered minus baseline)
from a device that simply ran as it would have anyway.

Pure: arrays in, rows out. Readings longer than a slot are spread over the slots they cover in
proportion to the overlap; readings are summed per slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlotCheck:
    slot: int
    scheduled_kwh: float
    baseline_kwh: float
    metered_kwh: float | None
    flagged: bool


def per_slot(
    start: int, energy_kwh: Sequence[float], resolution_s: int, grid_s: int | None = None
) -> dict[int, float]:
    """A schedule as ``{slot start: kWh}``; with ``grid_s``, on that grid instead of its own:
    an hourly offer's slot is spread evenly over the four quarter-hours it covers (what the
    portfolio and the target are counted in), quarter-hours are summed into an hour."""
    if grid_s is None or grid_s == resolution_s:
        return {start + i * resolution_s: e for i, e in enumerate(energy_kwh)}
    return metered_per_slot(
        ((start + i * resolution_s, resolution_s, e) for i, e in enumerate(energy_kwh)), grid_s
    )


def metered_per_slot(
    readings: Iterable[tuple[int, int, float]], resolution_s: int
) -> dict[int, float]:
    """``(start, duration_s, kWh)`` readings summed per slot."""
    out: dict[int, float] = {}
    for start, duration, energy in readings:
        end = start + duration
        slot = start // resolution_s * resolution_s
        while slot < end:
            overlap = min(end, slot + resolution_s) - max(start, slot)
            if overlap > 0:
                out[slot] = out.get(slot, 0.0) + energy * overlap / duration
            slot += resolution_s
    return out


def check(
    *,
    scheduled: dict[int, float],
    baseline: dict[int, float],
    metered: dict[int, float],
    tolerance_kwh: float,
    tolerance_rel: float,
) -> list[SlotCheck]:
    """One row per slot of the schedule or the baseline; a slot of the schedule without a
    reading has ``metered_kwh=None`` and is not flagged (it may still arrive)."""
    out = []
    for slot in sorted(scheduled.keys() | baseline.keys()):
        s = scheduled.get(slot, 0.0)
        b = baseline.get(slot, 0.0)
        m = metered.get(slot)
        flagged = m is not None and abs(m - s) > tolerance_kwh + tolerance_rel * abs(s)
        out.append(SlotCheck(slot, s, b, m, flagged))
    return out
