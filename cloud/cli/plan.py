"""``atp plan``: plan a file of offers offline against a target or prices."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

import protocol

_FILE = click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)


def _read(path: Path) -> bytes:
    return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()


def _fail(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(1)


@click.command()
@click.option(
    "--offers",
    "offers_file",
    type=_FILE,
    required=True,
    help="JSON list of offers (project JSON, GOFLEX JSON, the FlexOffer specification's), "
    "or what `atp export` or `atp offers list --json` print.",
)
@click.option(
    "--target",
    "target_file",
    type=_FILE,
    help="Target kWh per slot: CSV time,value, or JSON {start, resolution_s, values} (the "
    "form of FMAN's target file and the demo's target.json).",
)
@click.option(
    "--prices", "prices_file", type=_FILE, help="EUR per kWh: CSV time,value, or JSON as --target."
)
@click.option(
    "--peak", "peak_kw", type=click.FloatRange(min=0), help="Peak limit in kW, for every grid node."
)
@click.option(
    "--objective",
    type=click.Choice(["balance", "cost", "profit"]),
    default=None,
    help="Default: balance with --target, else cost. profit: deviation from the defaults "
    "valued at --prices, minus the asks of direct-mode offers (docs/optim.md).",
)
@click.option(
    "--time-limit",
    "time_limit_s",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds.",
)
@click.option(
    "--gap",
    "relative_gap",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="Relative gap to stop at.",
)
@click.option(
    "--aggregate/--no-aggregate",
    default=False,
    show_default=True,
    help="Aggregate before planning, disaggregate after.",
)
@click.option(
    "--resample",
    is_flag=True,
    help="Put a --target or --prices series of another step (hourly, say) on the offers' "
    "slots: a target is split or summed, prices repeated or averaged. Without it such a "
    "series is an error.",
)
@click.option(
    "--fill",
    is_flag=True,
    help="Count slots of the plan that a series has no value for as 0 (a target of 0, a "
    "price of 0). Without it such a series is an error.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    offers_file: Path,
    target_file: Path | None,
    prices_file: Path | None,
    peak_kw: float | None,
    objective: str | None,
    time_limit_s: float,
    relative_gap: float,
    aggregate: bool,
    resample: bool,
    fill: bool,
    as_json: bool,
) -> None:
    """Plan the offers in --offers: balance them to --target, minimise cost under --prices, or
    (--objective profit) earn most at --prices net of the offers' asks, within --peak per grid
    node. Prints every offer's start, profile and energy (per slot with
    --json), the objective and a proven lower bound on it; progress goes to standard error.

    A series must have a value for every slot the offers can reach (--resample, --fill
    otherwise). --time-limit bounds the whole run of the planner, model building and its
    fallback included, with an overshoot of a fraction of a second at most."""
    from cloud.fman.export import unwrap_listing
    from cloud.optim import AggregatingPlanner, OrToolsPlanner, Planner, PlanRequest
    from cloud.optim.aggregate import total_loss
    from cloud.optim.errors import OptimError, SeriesError
    from cloud.optim.series import fit_to_slots

    raw = _read(offers_file)
    try:
        offers = protocol.read_offers(unwrap_listing(raw) or raw)
    except protocol.DecodeError as exc:
        _fail([f"{offers_file}: {e}" for e in exc.errors])
    if not offers:
        _fail([f"{offers_file}: no offers"])
    resolution = offers[0].resolution_s
    slots = _slots(offers, resolution)
    series: dict[str, dict[int, float]] = {}
    notes: list[str] = []
    for name, path in (("target", target_file), ("prices", prices_file)):
        if path is None:
            continue
        try:
            fitted = fit_to_slots(
                _parse_series(_read(path).decode("utf-8"), source=str(path)),
                slots,
                source=str(path),
                per_slot=name == "target",
                resample=resample,
                fill=fill,
            )
        except (SeriesError, UnicodeDecodeError) as exc:
            _fail([str(exc)])
        series[name] = fitted.values
        notes.extend(fitted.notes)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    objective = objective or ("balance" if "target" in series else "cost")
    if objective in ("cost", "profit") and "prices" not in series:
        _fail([f"--objective {objective} needs --prices"])
    nodes = {o.grid_node for o in offers}
    progress = None if as_json else (lambda m: click.echo(f"  {m}", err=True))
    started = time.monotonic()
    loss = None
    request = PlanRequest(
        offers=list(offers),
        resolution_s=resolution,
        objective=objective,  # type: ignore[arg-type]  # click.Choice has checked the literal
        target_kwh=series.get("target", {}),
        prices_eur_per_kwh=series.get("prices", {}),
        peak_kw_by_node=dict.fromkeys(nodes, peak_kw) if peak_kw is not None else {},
        time_limit_s=time_limit_s,
        relative_gap=relative_gap,
    )
    # --aggregate plans through the same planner FMAN's cycle uses above its threshold
    exact = OrToolsPlanner(progress=progress)
    planner: Planner = AggregatingPlanner(inner=exact) if aggregate else exact
    try:
        result = planner.plan(request)
    except OptimError as exc:
        _fail([f"{offers_file}: {exc}" if aggregate else str(exc)])
    if isinstance(planner, AggregatingPlanner):
        loss = total_loss(planner.aggregates)
    schedules = result.schedules
    elapsed = time.monotonic() - started
    # under profit the objective is minus the profit: say it in EUR earned
    profit = objective == "profit"
    if as_json:
        doc: dict[str, object] = {
            "objective": result.objective,
            "bound": result.bound,
            "status": result.status,
            "status_detail": result.detail,
            "notes": notes,
            "schedules": [
                {
                    "offer_id": s.offer_id,
                    "start": s.start,
                    "profile": s.profile,
                    "energy": s.energy_kwh,
                }
                for s in schedules
            ],
            "infeasible": dict(result.infeasible),
        }
        if profit:
            doc["profit_eur"] = -result.objective
            doc["profit_bound_eur"] = -result.bound  # a proven upper bound on the profit
        if loss is not None:
            doc["aggregation_loss"] = {
                "time_flexibility_s": loss.time_flexibility_s,
                "energy_flexibility_kwh": loss.energy_flexibility_kwh,
                "profiles_dropped": loss.profiles_dropped,
            }
        click.echo(json.dumps(doc))
    else:
        click.echo(f"{'offer':<40} {'start (UTC)':<20} {'profile':>7} {'kWh':>10}")
        for s in schedules:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(s.start))
            click.echo(f"{s.offer_id:<40} {when:<20} {s.profile:>7} {sum(s.energy_kwh):>10.3f}")
        gap = (result.objective - result.bound) / max(abs(result.objective), 1e-9)
        click.echo(
            f"{len(schedules)} schedules, objective {result.objective:.6g} ({objective}), "
            f"bound {result.bound:.6g}, gap {100 * gap:.3g} %, {result.status}, {elapsed:.2f} s"
        )
        if profit:
            click.echo(
                f"profit {-result.objective:.6g} EUR (at most {-result.bound:.6g} EUR), the "
                "defaults earning 0"
            )
        if result.detail:
            click.echo(f"{result.status}: {result.detail}")
        if loss is not None:
            click.echo(
                f"aggregation lost {loss.time_flexibility_s / 3600:.1f} h of time flexibility, "
                f"{loss.energy_flexibility_kwh:.1f} kWh of energy flexibility, "
                f"{loss.profiles_dropped} alternative profiles"
            )
        for oid, reason in result.infeasible.items():
            click.echo(f"infeasible: {oid}: {reason}")
    if result.infeasible:
        sys.exit(2)


def _parse_series(text: str, *, source: str) -> dict[int, float]:
    """CSV ``time,value`` rows, or the JSON form FMAN reads (``{"start", "resolution_s",
    "values"}``), told apart by the first character."""
    from cloud.fman import series
    from cloud.optim.errors import SeriesError
    from cloud.optim.series import parse_series

    if not text.lstrip().startswith("{"):
        return parse_series(text, source=source, resolution_s=1)
    try:
        return series.parse_json(text)
    except SeriesError as exc:
        raise SeriesError(f"{source}: {exc.where}" if exc.where else source, exc.message) from None


def _slots(offers: list[protocol.FlexOffer], resolution: int) -> range:
    """The slots the offers of the plan's resolution can reach: the span a series must cover."""
    from cloud.optim.blocks import view

    spans = [
        (b.first_start, b.last_start + b.n * resolution)
        for o in offers
        if o.resolution_s == resolution
        for b in view(o).blocks
    ]
    if not spans:
        return range(0, 0, resolution)
    return range(min(a for a, _ in spans), max(b for _, b in spans), resolution)
