"""``time,value`` series (targets, prices) read from CSV text.

Times are epoch seconds or ISO 8601 (``2026-01-01T00:15:00Z``; UTC unless the text names an
offset); blank rows and rows starting with ``#`` are skipped, and so is a header: the first
other row, when its first field is not a time. Errors name the source and
the row. :func:`parse_instant` is the one reader of such times for the cloud side (FMAN's
series, the ``atp`` options). :func:`fit_to_slots` puts a series on a plan's slots, or says
why it cannot: a series that leaves slots of a plan without a value is an error unless the
caller asks to resample or fill it.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import SeriesError


def parse_instant(text: str) -> float:
    """Epoch seconds or ISO 8601 (UTC unless it names an offset); ``ValueError`` otherwise."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch seconds nor ISO 8601") from None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def _time(text: str) -> int | None:
    """A whole second, or ``None`` (a header, or not a time)."""
    try:
        ts = parse_instant(text)
    except ValueError:
        return None
    return int(ts) if math.isfinite(ts) and ts.is_integer() else None


def parse_series(text: str, *, source: str = "", resolution_s: int = 900) -> dict[int, float]:
    """The series in ``text`` keyed by slot start; times must be on the slot grid."""
    out: dict[int, float] = {}
    first = True  # the first row that is not blank or a comment may be a header
    for row_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        header_allowed, first = first, False
        where = f"{source}:{row_no}" if source else f"row {row_no}"
        if len(row) != 2:
            raise SeriesError(where, f"expected 2 fields time,value, got {len(row)}")
        ts = _time(row[0])
        if ts is None:
            if header_allowed:
                continue  # a header
            raise SeriesError(where, f"time {row[0]!r} is neither epoch seconds nor ISO 8601")
        try:
            value = float(row[1])
        except ValueError:
            raise SeriesError(where, f"value {row[1]!r} is not a number") from None
        if not math.isfinite(value):
            raise SeriesError(where, f"value {row[1]!r} is not finite")
        if ts % resolution_s:
            raise SeriesError(
                where, f"time {row[0].strip()} is not on the {resolution_s} s slot grid"
            )
        if ts in out:
            raise SeriesError(where, f"time {row[0].strip()} appears twice")
        out[ts] = value
    if not out:
        raise SeriesError(source, "no time,value rows")
    return out


def step_of(series: Mapping[int, float]) -> int | None:
    """The smallest time between two values (``None`` for fewer than two)."""
    times = sorted(series)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return min(gaps) if gaps else None


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class Fitted:
    """A series on a plan's slots, and what was done to put it there (empty: nothing)."""

    values: dict[int, float]
    notes: tuple[str, ...] = ()


def fit_to_slots(
    series: Mapping[int, float],
    slots: range,
    *,
    source: str,
    per_slot: bool,
    resample: bool = False,
    fill: bool = False,
) -> Fitted:
    """``series`` with a value for every slot start in ``slots`` (a range with the slot
    length as its step), or :class:`SeriesError` saying which slots have none and why.

    A series that does not cover the plan is never used silently: a slot without a price
    would cost nothing, one without a target would be balanced to zero. ``resample`` puts a
    series of another regular step on the slots: a quantity per slot (``per_slot``, kWh) is
    split evenly over finer slots and summed over coarser ones, a rate (EUR/kWh) repeated
    and averaged. ``fill`` counts slots still without a value as 0. Each is said in
    ``notes``."""
    res = slots.step
    values = dict(series)
    notes: list[str] = []
    step = step_of(values)
    what = "a quantity per slot" if per_slot else "a rate"
    if resample and step is not None and step != res:
        values = _resample(values, step=step, res=res, per_slot=per_slot, source=source)
        how = (
            ("split evenly over" if per_slot else "repeated over")
            if step > res
            else ("summed over" if per_slot else "averaged over")
        )
        notes.append(
            f"{source}: one value every {step} s resampled onto the offers' {res} s slots "
            f"(--resample; {what}, so each value {how} the slots it covers)"
        )
    off_grid = sorted(t for t in values if t % res)
    if off_grid:
        raise SeriesError(
            source,
            f"time {_when(off_grid[0])} is not on the offers' {res} s slot grid"
            + (
                f" (the series has a value every {step} s: --resample puts it on the slots)"
                if step and res % step == 0
                else ""
            ),
        )
    wanted = list(slots)
    missing = [t for t in wanted if t not in values]
    if missing and not fill:
        first, end = (min(values), max(values) + (step or res)) if values else (0, 0)
        if len(missing) == len(wanted):
            why = (
                f"it covers {_when(first)} to {_when(end)}, the offers' slots are "
                f"{_when(slots.start)} to {_when(slots.stop)}: not one of the plan's "
                f"{len(wanted)} slots has a value (a series for another day?)"
            )
        else:
            why = (
                f"no value for {len(missing)} of the plan's {len(wanted)} slots of {res} s "
                f"(the first at {_when(missing[0])})"
            )
        hints = []
        if step is not None and step > res and step % res == 0:
            hints.append(f"the series has one value every {step} s: --resample")
        hints.append("--fill counts the slots without a value as 0")
        raise SeriesError(source, f"{why}; {'; '.join(hints)}")
    if missing:
        for t in missing:
            values[t] = 0.0
        notes.append(
            f"{source}: {len(missing)} of the plan's {len(wanted)} slots had no value and "
            f"count as 0 (--fill), the first at {_when(missing[0])}"
        )
    return Fitted(values=values, notes=tuple(notes))


def _resample(
    values: dict[int, float], *, step: int, res: int, per_slot: bool, source: str
) -> dict[int, float]:
    off = sorted(t for t in values if t % step)
    if off:
        raise SeriesError(source, f"time {_when(off[0])} is not on the series' own {step} s grid")
    out: dict[int, float] = {}
    if step > res and step % res == 0:
        k = step // res
        for t, v in values.items():
            for i in range(k):
                out[t + i * res] = v / k if per_slot else v
        return out
    if step < res and res % step == 0:
        k = res // step
        parts: dict[int, list[float]] = {}
        for t, v in values.items():
            parts.setdefault(t - t % res, []).append(v)
        for t, vs in parts.items():
            if len(vs) == k:  # a slot only partly covered stays without a value
                out[t] = sum(vs) if per_slot else sum(vs) / k
        return out
    raise SeriesError(source, f"one value every {step} s cannot be resampled onto {res} s slots")
