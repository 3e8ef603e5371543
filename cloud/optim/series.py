"""``time,value`` series (targets, prices) read from CSV text.

Times are epoch seconds or ISO 8601 (``2026-01-01T00:15:00Z``; UTC unless the text names an
offset); blank rows and rows starting with ``#`` are skipped, and so is a header: the first
other row, when its first field is not a time. Errors name the source and
the row. :func:`parse_instant` is the one reader of such times for the cloud side (FMAN's
series, the ``atp`` options).
"""

from __future__ import annotations

import csv
import io
import math
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
