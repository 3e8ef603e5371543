"""Time series for the objectives (a balancing target, prices): parse files and payloads.

A series maps slot start (epoch seconds) to a value. Two forms are read:

- CSV ``time,value`` rows (epoch seconds or ISO 8601 UTC; a header row is optional), one
  slot a row, as ``atp plan`` reads them;
- JSON ``{"start": <epoch or ISO>, "resolution_s": 900, "values": [...]}`` (the form an
  operator or a forecasting service publishes on the target topic), or
  ``{"values": {"<epoch>": value, ...}}``.

Pure: bytes or text in, a dict out, :class:`SeriesError` naming the line or key otherwise.
It is :class:`cloud.optim.errors.SeriesError`, the one error for a series whoever reads it
(``atp plan`` reads the same CSV with the same function).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cloud.optim.errors import SeriesError
from cloud.optim.series import parse_instant, parse_series

__all__ = ["SeriesError", "load_file", "parse_csv", "parse_json", "to_json"]


def _epoch(value: Any, where: str) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(parse_instant(value))
        except (ValueError, OverflowError):
            raise SeriesError(where, f"{value!r} is not a time") from None
    raise SeriesError(where, f"{value!r} is not a time")


def _number(value: Any, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SeriesError(where, f"{value!r} is not a number") from None
    if not math.isfinite(x):
        raise SeriesError(where, f"{value!r} is not finite")
    return x


def parse_json(data: bytes | str) -> dict[int, float]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SeriesError("", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or "values" not in doc:
        raise SeriesError("", 'expected an object with "values"')
    values = doc["values"]
    if isinstance(values, dict):
        return {
            _epoch(k, f"values[{k!r}]"): _number(v, f"values[{k!r}]") for k, v in values.items()
        }
    if not isinstance(values, list):
        raise SeriesError("values", "must be a list or an object")
    start = _epoch(doc.get("start"), "start")
    res = doc.get("resolution_s", 900)
    if not isinstance(res, int) or res <= 0:
        raise SeriesError("resolution_s", f"{res!r} is not a positive integer")
    return {start + i * res: _number(v, f"values[{i}]") for i, v in enumerate(values)}


def parse_csv(text: str) -> dict[int, float]:
    """CSV ``time,value`` rows: the form ``atp plan`` reads, parsed by the same function so
    that an operator's file means the same to both."""
    return parse_series(text, resolution_s=1)


def load_file(path: str | Path) -> dict[int, float]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SeriesError(str(p), f"cannot read: {exc.strerror}") from None
    try:
        return parse_json(text) if p.suffix.lower() == ".json" else parse_csv(text)
    except SeriesError as exc:
        raise SeriesError(f"{p}: {exc.where}" if exc.where else str(p), exc.message) from None


def to_json(series: dict[int, float], resolution_s: int = 900) -> bytes:
    """The JSON form of a series on a regular grid (gaps filled with 0)."""
    if not series:
        return json.dumps({"start": 0, "resolution_s": resolution_s, "values": []}).encode()
    start, end = min(series), max(series)
    values = [series.get(t, 0.0) for t in range(start, end + 1, resolution_s)]
    return json.dumps({"start": start, "resolution_s": resolution_s, "values": values}).encode()
