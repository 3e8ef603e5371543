"""``atp portfolio``: baseline, scheduled and metered energy of the accepted offers per slot."""

from __future__ import annotations

from pathlib import Path

import click

from cloud.fman import report

from ._fmandb import TIME, db_option, emit_json, json_option, open_db, table, when


@click.command()
@db_option
@click.option("--from", "start", type=TIME, help="First slot (epoch or ISO 8601).")
@click.option("--to", "end", type=TIME, help="End (exclusive).")
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), help="Also write a PNG plot here."
)
@click.option(
    "--resolution",
    "resolution_s",
    default=900,
    show_default=True,
    help="Slot length in seconds; offers, readings and the target of another resolution "
    "are spread over it or summed into it.",
)
@json_option
def portfolio(
    db: str,
    start: int | None,
    end: int | None,
    plot: Path | None,
    resolution_s: int,
    as_json: bool,
) -> None:
    """The portfolio per slot against the target, and how far planning moved it."""
    p = report.portfolio(open_db(db), start=start, end=end, resolution_s=resolution_s)
    if plot is not None:
        from cloud.fman.plot import plot_portfolio

        plot_portfolio(p, plot)
    if as_json:
        emit_json(p.to_dict())
        return
    table(
        [_row(s) for s in p.slots],
        [
            ("start", "SLOT"),
            ("target_kwh", "TARGET"),
            ("baseline_kwh", "BASELINE"),
            ("scheduled_kwh", "SCHEDULED"),
            ("metered_kwh", "METERED"),
        ],
        {"start": when},
    )
    window = (
        f"from {when(start) if start is not None else 'the first slot'} to "
        f"{when(end) if end is not None else 'the last'}: "
        if start is not None or end is not None
        else ""
    )
    click.echo(f"\nobjective: {p.objective}")
    if p.profit_scheduled_eur is not None:
        click.echo(
            f"{window}schedules earn {p.value_scheduled_eur:.2f} EUR for their deviation from "
            f"the defaults, minus asks {p.asks_scheduled_eur:.2f} EUR: profit "
            f"{p.profit_scheduled_eur:.2f} EUR (the defaults earn 0)"
        )
    against = "the target" if p.objective == report.BALANCE_TO_TARGET else "zero"
    click.echo(
        f"{window}{p.offers} accepted offers; imbalance against {against} "
        f"(sum |x - {'target' if against != 'zero' else '0'}|): "
        f"baseline {p.imbalance_baseline_kwh:.1f} kWh, scheduled "
        f"{p.imbalance_scheduled_kwh:.1f} kWh"
        + (
            f", metered {p.imbalance_metered_kwh:.1f} kWh"
            if p.imbalance_metered_kwh is not None
            else ""
        )
        + f"; energy shifted {p.shifted_kwh:.1f} kWh"
    )
    if plot is not None:
        click.echo(f"plot written to {plot}")


def _row(s: report.Slot) -> dict:
    return {
        "start": s.start,
        "target_kwh": s.target_kwh,
        "baseline_kwh": s.baseline_kwh,
        "scheduled_kwh": s.scheduled_kwh,
        "metered_kwh": s.metered_kwh,
    }
