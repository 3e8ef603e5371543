"""Settlement periods and the calendar they are counted in.

A period is a half-open interval of epoch seconds ``[start, end)`` with a label and the time
zone whose calendar defines its days and months (UTC unless a deployment says otherwise).
``Period.parse("2026-11")`` is a calendar month, ``"2026-11-05"`` a day. Deliveries belong to
the period that contains their first slot; a bill's days are days of the same zone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (``ValueError`` if unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _epoch(d: date, tz: str) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=zone(tz)).timestamp())


def day_of(t: float, tz: str = "UTC") -> str:
    """The calendar day (``YYYY-MM-DD``) of instant ``t`` in zone ``tz``."""
    z = UTC if tz == "UTC" else zone(tz)
    return datetime.fromtimestamp(t, z).date().isoformat()


def month_of(t: float, tz: str = "UTC") -> str:
    """The calendar month (``YYYY-MM``) of instant ``t`` in zone ``tz``."""
    return day_of(t, tz)[:7]


class Period(msgspec.Struct, frozen=True, kw_only=True):
    """``[start, end)`` in epoch seconds, named ``label``, counted in zone ``tz``."""

    label: str
    start: int
    end: int
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"period {self.label!r} ends ({self.end}) before it starts")
        zone(self.tz)

    @classmethod
    def parse(cls, text: str, *, tz: str = "UTC") -> Period:
        """``YYYY-MM`` (a calendar month) or ``YYYY-MM-DD`` (a day); ``ValueError`` otherwise."""
        text = text.strip()
        try:
            if m := _MONTH.match(text):
                first = date(int(m[1]), int(m[2]), 1)
                nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            elif m := _DAY.match(text):
                first = date(int(m[1]), int(m[2]), int(m[3]))
                nxt = first + timedelta(days=1)
            else:
                raise ValueError("use YYYY-MM (a month) or YYYY-MM-DD (a day)")
        except ValueError as exc:
            raise ValueError(f"period {text!r}: {exc}") from None
        return cls(label=text, start=_epoch(first, tz), end=_epoch(nxt, tz), tz=tz)

    @classmethod
    def month_of(cls, t: float, *, tz: str = "UTC") -> Period:
        """The calendar month containing instant ``t``."""
        return cls.parse(month_of(t, tz), tz=tz)

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end

    def day_of(self, t: float) -> str:
        return day_of(t, self.tz)

    def months(self) -> list[Period]:
        """The calendar months that lie wholly inside this period."""
        out = []
        m = Period.month_of(self.start, tz=self.tz)
        while m.start < self.end:
            if m.start >= self.start and m.end <= self.end:
                out.append(m)
            m = Period.month_of(m.end, tz=self.tz)
        return out

    def days(self) -> list[str]:
        """Every calendar day that overlaps the period, in order."""
        out = []
        d = datetime.fromtimestamp(self.start, zone(self.tz)).date()
        while _epoch(d, self.tz) < self.end:
            out.append(d.isoformat())
            d += timedelta(days=1)
        return out
