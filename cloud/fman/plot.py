"""The portfolio as a PNG: target, baseline, scheduled and metered energy per slot.

The axis says the dates and the slot length, so a plot read on its own says what it shows;
``parts`` shades a share of the scheduled energy (the demo: the grid-asset bids) and ``note``
explains under the plot what the curves cannot (why the schedule leaves the target where it
does); ``awards`` adds a panel under it with the market's awards per slot (kWh up above
the line, down below it).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .report import Portfolio

_PART_COLOURS = ("tab:green", "tab:purple", "tab:brown")


def slot_length_s(p: Portfolio, default: int = 900) -> int:
    """The portfolio's slot length: the smallest step between its slots."""
    starts = [s.start for s in p.slots]
    steps = [b - a for a, b in itertools.pairwise(starts) if b > a]
    return min(steps) if steps else default


def slot_edges(p: Portfolio, res: int) -> list[datetime]:
    """The start of every slot and the end of the last: a step drawn "post" ends at its last
    point, so without that edge the last slot (of a window, say) would not show."""
    if not p.slots:
        return []
    starts = [s.start for s in p.slots]
    return [datetime.fromtimestamp(t, UTC) for t in [*starts, starts[-1] + res]]


def _span(p: Portfolio, res: int) -> str:
    if not p.slots:
        return "no slots"
    first = datetime.fromtimestamp(p.slots[0].start, UTC)
    last = datetime.fromtimestamp(p.slots[-1].start + res, UTC)
    return f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"


def plot_portfolio(
    p: Portfolio,
    path: Path,
    *,
    title: str = "FMAN portfolio",
    parts: Mapping[str, Mapping[int, float]] | None = None,
    note: str = "",
    awards: Mapping[int, float] | None = None,
    awards_label: str = "market awards",
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    res = slot_length_s(p)
    t = slot_edges(p, res)
    height = (5.6 if note else 5) + (1.8 if awards is not None else 0)
    if awards is not None:
        fig, (ax, lower) = plt.subplots(
            2, 1, figsize=(11, height), dpi=110, sharex=True, height_ratios=(3, 1)
        )
        _awards_panel(lower, awards, res, awards_label)
    else:
        fig, ax = plt.subplots(figsize=(11, height), dpi=110)
    for colour, (label, values) in zip(_PART_COLOURS, (parts or {}).items(), strict=False):
        ax.fill_between(
            t,
            _closed([values.get(s.start, 0.0) for s in p.slots]),
            step="post",
            alpha=0.25,
            color=colour,
            linewidth=0,
            label=label,
        )
    if any(s.target_kwh is not None for s in p.slots):
        ax.step(
            t,
            _closed([s.target_kwh for s in p.slots]),
            where="post",
            label="target",
            color="black",
            linestyle="--",
            linewidth=1.2,
        )
    ax.step(
        t,
        _closed([s.baseline_kwh for s in p.slots]),
        where="post",
        label="baseline (defaults)",
        color="tab:gray",
    )
    ax.step(
        t,
        _closed([s.scheduled_kwh for s in p.slots]),
        where="post",
        label="scheduled",
        color="tab:blue",
        linewidth=1.6,
    )
    if any(s.metered_kwh is not None for s in p.slots):
        ax.step(
            t,
            _closed([s.metered_kwh for s in p.slots]),
            where="post",
            label="metered",
            color="tab:orange",
            alpha=0.8,
        )
    minutes = res // 60
    ax.set_ylabel(f"kWh per {minutes}-minute slot" if res % 60 == 0 else f"kWh per {res} s slot")
    ax.set_title(
        f"{title}: {p.offers} offers in the portfolio, imbalance "
        f"{p.imbalance_baseline_kwh:.0f} -> "
        f"{p.imbalance_scheduled_kwh:.0f} kWh, shifted {p.shifted_kwh:.0f} kWh"
    )
    locator = mdates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    (lower if awards is not None else ax).set_xlabel(
        f"time (UTC), {_span(p, res)}, slots of {minutes} minutes"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    if note:
        fig.text(0.01, 0.01, note, fontsize="small", wrap=True, va="bottom", ha="left")
    fig.tight_layout(rect=(0, 0.07 if note else 0, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _awards_panel(ax: Any, awards: Mapping[int, float], res: int, label: str) -> None:
    """Bars of the awarded kWh per slot: up (more consumption) above zero, down below."""
    slots = sorted(awards)
    width = res / 86_400  # matplotlib's dates are days
    for sign, colour, name in ((1, "tab:red", "up"), (-1, "tab:cyan", "down")):
        picked = [t for t in slots if sign * awards[t] > 0]
        ax.bar(
            [datetime.fromtimestamp(t, UTC) for t in picked],
            [awards[t] for t in picked],
            width=width,
            align="edge",
            color=colour,
            label=f"{name}, {sum(abs(awards[t]) for t in picked):.1f} kWh",
        )
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("kWh awarded")
    ax.set_title(label if slots else f"{label}: none", fontsize="small")
    ax.grid(alpha=0.3)
    if slots:
        ax.legend(loc="upper left", fontsize="small")


def _closed(values: list) -> list:
    """``values`` with the last repeated, for the edge at the end of the last slot."""
    return [*values, values[-1]] if values else values
