"""``atp settle``, ``atp bill`` and ``atp kpi``: settlement of a period on FMAN's store, the
bills it issues and the four KPIs (docs/settlement.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ._fmandb import (
    TIME,
    emit_json,
    json_option,
    now_option,
    open_db,
    open_writer,
    store_location,
    store_options,
    table,
)


class PeriodParam(click.ParamType):
    name = "PERIOD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from cloud.settle import Period

        tz = (ctx.params.get("tz") if ctx else None) or "UTC"
        try:
            return Period.parse(str(value), tz=tz)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


PERIOD = PeriodParam()


def _period_option(f: Any) -> Any:
    f = click.option(
        "--period",
        type=PERIOD,
        required=True,
        help="A calendar month (2026-11) or a day (2026-11-05).",
    )(f)
    return click.option(
        "--tz",
        default="UTC",
        show_default=True,
        is_eager=True,
        help="The time zone whose calendar defines the period's days and months.",
    )(f)


@click.command()
@_period_option
@store_options
@now_option
@click.option("--dry-run", is_flag=True, help="Compute and report; write nothing.")
@click.option(
    "--release",
    multiple=True,
    metavar="OFFER",
    help="Settle this held offer despite its hold (after review); repeatable.",
)
@json_option
def settle(
    period: Any,
    tz: str,
    db: str | None,
    config_path: Path | None,
    now: int | None,
    dry_run: bool,
    release: tuple[str, ...],
    as_json: bool,
) -> None:
    """Settle a period: pay delivered flexibility by each offer's contract, write the ledger,
    move settled offers to `settled`, hold doubtful ones for review, issue bills. Running it
    again changes nothing unless readings or reviews changed something."""
    from cloud.fman.settlement import run_settlement
    from cloud.settle import SettleError

    t = int(time.time()) if now is None else now
    margins = _settlement_config(config_path)
    with open_writer(store_location(db, config_path)) as store:
        try:
            result = run_settlement(
                store, period, now=t, dry_run=dry_run, release=release, margins=margins
            )
        except SettleError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(_builtins(result), indent=2))
        return
    from cloud.settle import eur_text

    verb = "would write" if dry_run else "wrote"
    if result.unchanged:
        click.echo(f"{period.label}: nothing to do ({result.skipped} offer(s) already settled)")
        return
    click.echo(
        f"{period.label}: {result.evaluated} offer(s) evaluated, {result.settled} settled, "
        f"{len(result.held)} held, {result.skipped} skipped; {verb} "
        f"{result.transactions} transaction(s)"
    )
    for account, cents in result.moved_cents.items():
        click.echo(f"  {account:<32} {eur_text(cents):>12} EUR")
    for oid in result.held:
        click.echo(f"  held for review: {oid}")
    if result.bills and not dry_run:
        click.echo(f"bills issued: {', '.join(result.bills)}")


def _settlement_config(config_path: Path | None) -> Any:
    """The ``[settlement]`` section of ``--config`` (the markets' delivery margins)."""
    from cloud.fman import ConfigError, load_config

    try:
        return load_config(config_path).settlement
    except ConfigError as exc:
        raise click.ClickException(f"{config_path}: {exc}") from None


@click.group()
def bill() -> None:
    """Bills per party and period, from the ledger."""


@bill.command()
@click.argument("party")
@_period_option
@store_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "csv", "html"]),
    default="text",
    show_default=True,
    help="text for a person, json (cents and Wh), csv (EUR), html (a page that prints on A4).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE.")
@now_option
def show(
    party: str,
    period: Any,
    tz: str,
    db: str | None,
    config_path: Path | None,
    fmt: str,
    out: Path | None,
    now: int | None,
) -> None:
    """The bill of PARTY (a prosumer or DSO id, market:ID, or aggregator) for a period."""
    from cloud.fman.settlement import bill as make
    from cloud.settle import bill_csv, bill_html, bill_json, eur_text

    t = int(time.time()) if now is None else now
    with open_db(store_location(db, config_path)) as store:
        b = make(store, party, period, now=t)
    if not b.lines and not b.days and not b.held:
        raise click.ClickException(f"{party} has nothing in {period.label}")
    if fmt == "json":
        text = bill_json(b).decode() + "\n"
    elif fmt == "csv":
        text = bill_csv(b)
    elif fmt == "html":
        text = bill_html(b)
    else:
        lines = [f"bill of {b.party} for {b.period} ({b.currency})"]
        for line in b.lines:
            flag = " (corrected)" if line.corrections else ""
            lines.append(f"  {line.day}  {line.text:<42} {eur_text(line.amount_cents):>10}{flag}")
        for oid in b.held:
            lines.append(f"  held for review, not billed: {oid}")
        lines.append(f"  {'total':<54} {eur_text(b.total_cents):>10}")
        text = "\n".join(lines) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"{out}: the bill of {b.party} for {b.period}")


@bill.command("list")
@_period_option
@store_options
@json_option
def list_(period: Any, tz: str, db: str | None, config_path: Path | None, as_json: bool) -> None:
    """The bills settlement runs issued for a period (the latest of each party)."""
    from cloud.settle import eur_text

    with open_db(store_location(db, config_path)) as store:
        rows = [
            {
                "party": b.party,
                "run": b.run_id,
                "issued_at": b.issued_at,
                "total_cents": b.total_cents,
            }
            for b in store.bills(period=period.label)
        ]
    if as_json:
        emit_json(rows)
        return
    table(
        rows,
        [("party", "PARTY"), ("total_cents", "EUR"), ("run", "RUN")],
        {"total_cents": eur_text},
    )


@click.command()
@click.option(
    "--period",
    type=PERIOD,
    help="A calendar month (2026-11) or a day (2026-11-05); or give --from and --to.",
)
@click.option("--from", "from_", type=TIME, help="Start of the window (epoch or ISO 8601, UTC).")
@click.option("--to", "to", type=TIME, help="End of the window (exclusive).")
@click.option(
    "--tz",
    default="UTC",
    show_default=True,
    is_eager=True,
    help="The time zone whose calendar defines the period's days and months.",
)
@store_options
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw KPI 2.1.1.2.b (hourly baseline, scheduled, metered) to FILE (PNG).",
)
@json_option
def kpi(
    period: Any,
    from_: int | None,
    to: int | None,
    tz: str,
    db: str | None,
    config_path: Path | None,
    plot: Path | None,
    as_json: bool,
) -> None:
    """The four KPIs of the requirements (F2.5) for a settled period or window; --json has
    one key per KPI id (2.1.1.1.a, 2.1.1.1.c, 2.1.1.2.a, 2.1.1.2.b)."""
    from cloud.fman.settlement import period_kpis
    from cloud.settle import kpi_json

    window = _window(period, from_, to, tz)
    with open_db(store_location(db, config_path)) as store:
        k = period_kpis(store, window)
    if plot is not None:
        from cloud.fman.kpi_plot import plot_adaptation

        plot_adaptation(k, plot, title=f"KPI 2.1.1.2.b, {window.label}")
    if as_json:
        click.echo(kpi_json(k).decode())
        return
    for line in kpi_lines(k):
        click.echo(line)
    if plot is not None:
        click.echo(f"plot: {plot}")


def _window(period: Any, start: int | None, end: int | None, tz: str) -> Any:
    """``--period``, or ``--from``/``--to`` as a period of their own."""
    from cloud.settle import Period

    if period is not None:
        if start is not None or end is not None:
            raise click.UsageError("give --period, or --from and --to, not both")
        return period
    if start is None or end is None:
        raise click.UsageError("give --period, or --from and --to")
    if end <= start:
        raise click.BadParameter(f"{end} is not after --from {start}", param_hint="--to")
    label = (
        f"{datetime.fromtimestamp(start, UTC):%Y-%m-%dT%H:%MZ}.."
        f"{datetime.fromtimestamp(end, UTC):%Y-%m-%dT%H:%MZ}"
    )
    return Period(label=label, start=start, end=end, tz=tz)


def kpi_lines(k: Any) -> list[str]:
    """The KPIs in a few lines for a person (the demo prints the same)."""
    la, pr, rv, ad = k.load_adaptability, k.projections, k.revenues, k.adaptation
    avg = "-" if la.average is None else f"{la.average:.2%}"
    peak = "-" if la.peak_demand_mw is None else f"{la.peak_demand_mw:.6f} MW"
    f = rv.factual
    return [
        f"2.1.1.1.a load adaptability: average {avg} of the peak demand {peak} "
        f"over {la.window.hours} h",
        f"2.1.1.1.c flexibility {pr.flexibility_mwh_per_h:.6f} MWh/h, deal value "
        f"{pr.deal_value_eur_per_h} EUR/h; x1000: "
        f"{pr.projections[-1].flexibility_mwh_per_h:.3f} MWh/h, "
        f"{pr.projections[-1].deal_value_eur_per_h} EUR/h",
        f"2.1.1.2.a market revenue {f.market_revenue_eur} EUR, paid to parties "
        f"{f.paid_to_parties_eur} EUR, aggregator net {f.aggregator_net_eur} EUR",
        f"2.1.1.2.b baseline {ad.baseline_mwh} MWh, scheduled {ad.scheduled_mwh} MWh, "
        f"metered {ad.metered_mwh} MWh; |scheduled - baseline| {ad.planned_abs_mwh} MWh, "
        f"|metered - baseline| {ad.realised_abs_mwh} MWh",
    ]


def _builtins(result: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(result)
