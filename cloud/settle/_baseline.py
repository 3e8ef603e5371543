"""The characteristic consumption of a device, the baseline that catches a gamed default.

An agent states its default schedule itself; an agent paid for deviation could state a
default it would never run (a boiler "about to heat" at the hour it is paid to move away
from). As in the KIBERnet project, the contract can therefore take the baseline from the
device's own past meter readings instead. The rule:

    baseline(slot) = mean, over the last ``days`` comparable days before the delivery day on
                     which the device has a reading in the same slot of the day, of the
                     metered energy in that slot

Comparable days are days of the same type (Monday to Friday, or Saturday and Sunday) for
``comparable = "day_type"``, the same weekday for ``"weekday"``, any day for ``"any"``; they
are searched back at most ``lookback_days`` calendar days. The mean is rounded to whole Wh
(ties to even). If some slot of the offer has fewer than ``min_days`` such days, the offer's
default schedule is its baseline (the history is too thin to judge it), and the settlement
says so.

Days are calendar days of the settlement's time zone; a slot of the day is its offset from
that day's midnight, so the rule follows local time across daylight-saving changes (a slot
that does not exist on a comparable day is simply not found there).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from fractions import Fraction

from ._contract import Baseline
from ._meters import SlotWh
from ._period import zone


def characteristic(
    history: SlotWh, *, slots: Sequence[int], rule: Baseline, tz: str = "UTC"
) -> dict[int, int] | None:
    """The characteristic baseline (Wh) for each of ``slots`` from a device's metered
    ``history``, or ``None`` when some slot has fewer than ``rule.min_days`` comparable days."""
    z = zone(tz)
    out: dict[int, int] = {}
    days_cache: dict[str, list[int]] = {}
    for t in slots:
        local = datetime.fromtimestamp(t, z)
        day = local.date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=z)
        offset = t - int(midnight.timestamp())
        key = day.isoformat()
        candidates = days_cache.get(key)
        if candidates is None:
            candidates = []
            for back in range(1, rule.lookback_days + 1):
                d = day - timedelta(days=back)
                if _comparable(d.weekday(), day.weekday(), rule.comparable):
                    start = int(datetime(d.year, d.month, d.day, tzinfo=z).timestamp())
                    candidates.append(start)
            days_cache[key] = candidates
        found: list[int] = []
        for day_start in candidates:
            e = history.get(day_start + offset)
            if e is not None:
                found.append(e)
                if len(found) == rule.days:
                    break
        if len(found) < rule.min_days:
            return None
        out[t] = round(Fraction(sum(found), len(found)))  # exact, ties to even
    return out


def _comparable(weekday: int, target: int, how: str) -> bool:
    if how == "any":
        return True
    if how == "weekday":
        return weekday == target
    return (weekday >= 5) == (target >= 5)
