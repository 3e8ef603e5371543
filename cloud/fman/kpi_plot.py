"""KPI 2.1.1.2.b as a PNG: per hour, the baseline against the optimised (scheduled) and the
realised (metered) energy of the settled offers, and the adaptations between them.

Drawn from the settlement's own figures (:class:`cloud.settle.Kpis`), so the plot and
``atp kpi --json`` never disagree. The energy axis is in kWh when the hours are small (a
demo's few agents), in MWh otherwise; the title says the totals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cloud.settle import HourAdaptation, Kpis

HOUR_S = 3600


def plot_adaptation(k: Kpis, path: Path, *, title: str = "KPI 2.1.1.2.b") -> Path:
    """Write the hourly adaptation of ``k`` to ``path`` (PNG); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    a = k.adaptation
    hours = _every_hour(a.hours)
    peak = max(
        (abs(v) for h in hours for v in (h.baseline_mwh, h.scheduled_mwh, h.metered_mwh or 0.0)),
        default=0.0,
    )
    scale, unit = (1000.0, "kWh") if peak < 1.0 else (1.0, "MWh")
    edges = [datetime.fromtimestamp(h.hour, UTC) for h in hours]
    if hours:
        edges.append(datetime.fromtimestamp(hours[-1].hour + HOUR_S, UTC))

    def closed(values: list[float | None]) -> list[float | None]:
        return [*values, values[-1]] if values else values

    fig, (top, low) = plt.subplots(
        2, 1, figsize=(11, 6.4), dpi=110, sharex=True, height_ratios=(3, 2)
    )
    top.step(
        edges,
        closed([h.baseline_mwh * scale for h in hours]),
        where="post",
        label="baseline",
        color="tab:gray",
    )
    top.step(
        edges,
        closed([h.scheduled_mwh * scale for h in hours]),
        where="post",
        label="optimised (scheduled)",
        color="tab:blue",
        linewidth=1.6,
    )
    top.step(
        edges,
        closed([None if h.metered_mwh is None else h.metered_mwh * scale for h in hours]),
        where="post",
        label="realised (metered)",
        color="tab:orange",
        alpha=0.85,
    )
    top.set_ylabel(f"{unit} per hour")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize="small")
    top.set_title(
        f"{title}: baseline {a.baseline_mwh * scale:.1f}, scheduled "
        f"{a.scheduled_mwh * scale:.1f}, metered {a.metered_mwh * scale:.1f} {unit}"
    )
    width = HOUR_S / 86_400 * 0.4
    x = mdates.date2num([datetime.fromtimestamp(h.hour, UTC) for h in hours])
    low.bar(
        x + width / 2,
        [h.planned_mwh * scale for h in hours],
        width=width,
        align="edge",
        label="scheduled - baseline",
        color="tab:blue",
    )
    low.bar(
        x + width * 1.5,
        [0.0 if h.realised_mwh is None else h.realised_mwh * scale for h in hours],
        width=width,
        align="edge",
        label="metered - baseline",
        color="tab:orange",
    )
    low.axhline(0, color="black", linewidth=0.6)
    low.set_ylabel(f"adaptation, {unit}")
    low.grid(alpha=0.3)
    low.legend(loc="upper left", fontsize="small")
    locator = mdates.AutoDateLocator(tz=UTC)
    low.xaxis.set_major_locator(locator)
    low.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    w = a.window
    low.set_xlabel(
        f"time (UTC), hours of {datetime.fromtimestamp(w.start, UTC):%Y-%m-%d %H:%M} to "
        f"{datetime.fromtimestamp(w.end, UTC):%Y-%m-%d %H:%M}"
        + (f"; {a.unmetered_slots} slot(s) without a reading" if a.unmetered_slots else "")
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _every_hour(rows: tuple[HourAdaptation, ...]) -> list[HourAdaptation]:
    """``rows`` with the hours between them that have no settled offer (nothing scheduled,
    nothing metered), so a step does not carry one hour's figure over the hours after it."""
    if not rows:
        return []
    have = {h.hour: h for h in rows}
    return [
        have.get(t)
        or HourAdaptation(
            hour=t,
            baseline_mwh=0.0,
            scheduled_mwh=0.0,
            metered_mwh=None,
            planned_mwh=0.0,
            realised_mwh=None,
        )
        for t in range(rows[0].hour, rows[-1].hour + HOUR_S, HOUR_S)
    ]
