"""Charts of values per time slot as inline SVG, drawn on the server (pure: data in, text out).

The dashboard needs one kind of chart: energy per slot held over the slot, drawn as steps,
with what a reader needs to read it: dates and times on the time axis (UTC), the unit on the
value axis, the slot length, a legend, and colours that stay apart for colour-blind readers
(Okabe and Ito's palette; beyond eight series the lines are dashed as well). Drawn here, the
page ships no chart library and needs no network. It is the drawing of the agent's local
page; the dependency rule (``cloud`` never imports ``agent``) keeps a copy on each side.

Only presentation attributes are used (no ``style``), so the page's Content-Security-Policy
can forbid inline styles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

#: Okabe-Ito, without its yellow (too pale on white)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999999")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
TIME_STEPS = (900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Segment:
    """``value`` held from ``start`` to ``end`` (UNIX seconds)."""

    start: int
    end: int
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    segments: tuple[Segment, ...]


def colour(i: int) -> tuple[str, str]:
    """Stroke colour and dash pattern of the ``i``-th series."""
    return PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]


def step_chart(
    *,
    series: Sequence[Series],
    start: int,
    end: int,
    unit: str,
    label: str,
    now: float | None = None,
    width: int = 960,
    height: int = 280,
) -> str:
    """An ``<svg>`` of ``series`` over ``[start, end)``; ``label`` says what is drawn (it is
    the chart's accessible name), ``unit`` goes on the value axis."""
    left, right, top, bottom = 70, 16, 12, 52
    w, h = width - left - right, height - top - bottom
    end = max(end, start + 1)
    values = [s.value for ser in series for s in ser.segments]
    lo, hi, step = _value_range(values)

    def x(t: float) -> float:
        return left + (min(max(t, start), end) - start) * w / (end - start)

    def y(v: float) -> float:
        return top + (hi - v) * h / (hi - lo)

    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" '
        'font-family="sans-serif" font-size="12">',
        f"<title>{escape(label)}</title>",
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    # value axis: grid lines and labels
    v = math.ceil(lo / step) * step
    while v <= hi + step / 1e6:
        yy = y(v)
        grid = "#888" if abs(v) < step / 1e6 else "#e2e2e2"
        out.append(
            f'<line x1="{left}" x2="{left + w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{grid}"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{_number(v, step)}</text>'
        )
        v += step
    out.append(
        f'<text transform="translate(14 {top + h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">{escape(unit)}</text>'
    )
    # time axis: ticks on whole steps of UTC time, the date under the first and at midnight
    tstep = next((s for s in TIME_STEPS if (end - start) / s <= 8), TIME_STEPS[-1])
    t = math.ceil(start / tstep) * tstep
    first = True
    while t <= end:
        xx = x(t)
        g = time.gmtime(t)
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{top + h + 4}" stroke="#e2e2e2"/>'
        )
        out.append(
            f'<text x="{xx:.1f}" y="{top + h + 17}" text-anchor="middle">'
            f"{g.tm_hour:02d}:{g.tm_min:02d}</text>"
        )
        if first or (g.tm_hour == 0 and g.tm_min == 0):
            out.append(
                f'<text x="{xx:.1f}" y="{top + h + 31}" text-anchor="middle" fill="#555">'
                f"{g.tm_year}-{g.tm_mon:02d}-{g.tm_mday:02d}</text>"
            )
            first = False
        t += tstep
    out.append(
        f'<text x="{left + w}" y="{height - 4}" text-anchor="end" fill="#555">'
        "time (UTC, FMAN's clock)</text>"
    )
    if now is not None and start <= now <= end:
        xx = x(now)
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{top + h}" stroke="#D55E00" '
            'stroke-dasharray="3 3"/>'
        )
        out.append(f'<text x="{xx + 3:.1f}" y="{top + 12}" fill="#D55E00">now</text>')
    drawn = 0
    for i, ser in enumerate(series):
        path = _path(ser.segments, x, y)
        if not path:
            continue
        drawn += 1
        stroke, dash = colour(i)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<path d="{path}" fill="none" stroke="{stroke}" stroke-width="2"{dash_attr}>'
            f"<title>{escape(ser.name)}</title></path>"
        )
    if not drawn:
        out.append(
            f'<text x="{left + w / 2:.0f}" y="{top + h / 2:.0f}" text-anchor="middle" '
            'fill="#555">nothing to show yet</text>'
        )
    out.append("</svg>")
    return "".join(out)


def legend(names: Sequence[str]) -> str:
    """The chart's legend, as an HTML list (it wraps with the page's width)."""
    items = []
    for i, name in enumerate(names):
        stroke, dash = colour(i)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        items.append(
            '<li><svg width="28" height="10" aria-hidden="true">'
            f'<line x1="1" x2="27" y1="5" y2="5" stroke="{stroke}" stroke-width="3"{dash_attr}/>'
            f"</svg>{escape(name)}</li>"
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


def _path(
    segments: Sequence[Segment], fx: Callable[[float], float], fy: Callable[[float], float]
) -> str:
    parts: list[str] = []
    prev_end: int | None = None
    for s in sorted(segments, key=lambda s: s.start):
        if s.end <= s.start:
            continue
        yy = fy(s.value)
        if prev_end is not None and s.start == prev_end:
            parts.append(f"V{yy:.1f}H{fx(s.end):.1f}")
        else:
            parts.append(f"M{fx(s.start):.1f} {yy:.1f}H{fx(s.end):.1f}")
        prev_end = s.end
    return "".join(parts)


def _value_range(values: Sequence[float]) -> tuple[float, float, float]:
    """``(low, high, tick step)``: zero included, the ends on whole steps of 1, 2 or 5."""
    lo, hi = min([0.0, *values]), max([0.0, *values])
    if hi - lo < 1e-9:
        hi = lo + 1.0
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step, step


def _number(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    text = f"{v:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text
