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
from datetime import date, datetime, timedelta
from fractions import Fraction

from ._contract import Baseline
from ._meters import SlotWh
from ._period import zone


class DayCalendar:
    """Local midnights and comparable days in one time zone, cached for one run."""

    def __init__(self, tz: str = "UTC") -> None:
        self._zone = zone(tz)
        self._midnights: dict[int, tuple[date, int]] = {}
        self._days: dict[tuple[date, str, int], list[int]] = {}

    def midnight(self, t: int) -> tuple[date, int]:
        """The local day of ``t`` and the epoch of its midnight (zones' offsets are whole
        quarter hours, so one look-up per quarter hour serves every second in it)."""
        key = t // 900
        found = self._midnights.get(key)
        if found is None:
            day = datetime.fromtimestamp(t, self._zone).date()
            found = (day, self._start(day))
            self._midnights[key] = found
        return found

    def comparable(self, day: date, rule: Baseline) -> list[int]:
        """Midnights of the days comparable to ``day`` before it, nearest first."""
        key = (day, rule.comparable, rule.lookback_days)
        found = self._days.get(key)
        if found is None:
            found = []
            for back in range(1, rule.lookback_days + 1):
                d = day - timedelta(days=back)
                if _comparable(d.weekday(), day.weekday(), rule.comparable):
                    found.append(self._start(d))
            self._days[key] = found
        return found

    def _start(self, d: date) -> int:
        return int(datetime(d.year, d.month, d.day, tzinfo=self._zone).timestamp())


def characteristic(
    history: SlotWh,
    *,
    slots: Sequence[int],
    rule: Baseline,
    calendar: DayCalendar | None = None,
) -> dict[int, int] | None:
    """The characteristic baseline (Wh) for each of ``slots`` from a device's metered
    ``history``, or ``None`` when some slot has fewer than ``rule.min_days`` comparable days.
    ``calendar`` gives the time zone (UTC without one)."""
    cal = calendar or DayCalendar()
    out: dict[int, int] = {}
    for t in slots:
        day, midnight = cal.midnight(t)
        offset = t - midnight
        found: list[int] = []
        for day_start in cal.comparable(day, rule):
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
