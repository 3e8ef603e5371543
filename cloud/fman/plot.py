"""The portfolio as a PNG: target, baseline, scheduled and metered energy per slot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from .report import Portfolio


def plot_portfolio(p: Portfolio, path: Path, *, title: str = "FMAN portfolio") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    t = [datetime.fromtimestamp(s.start, UTC) for s in p.slots]
    fig, ax = plt.subplots(figsize=(11, 5), dpi=110)
    if any(s.target_kwh is not None for s in p.slots):
        ax.step(
            t,
            [s.target_kwh for s in p.slots],
            where="post",
            label="target",
            color="black",
            linestyle="--",
            linewidth=1.2,
        )
    ax.step(
        t,
        [s.baseline_kwh for s in p.slots],
        where="post",
        label="baseline (defaults)",
        color="tab:gray",
    )
    ax.step(
        t,
        [s.scheduled_kwh for s in p.slots],
        where="post",
        label="scheduled",
        color="tab:blue",
        linewidth=1.6,
    )
    if any(s.metered_kwh is not None for s in p.slots):
        ax.step(
            t,
            [s.metered_kwh for s in p.slots],
            where="post",
            label="metered",
            color="tab:orange",
            alpha=0.8,
        )
    ax.set_ylabel("kWh per slot")
    ax.set_title(
        f"{title}: {p.offers} offers, imbalance {p.imbalance_baseline_kwh:.0f} -> "
        f"{p.imbalance_scheduled_kwh:.0f} kWh, shifted {p.shifted_kwh:.0f} kWh"
    )
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
