"""``atp market``: flexibility markets. ``clear`` clears an order book offline."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from cloud.fmar import Book, Clearing

_FILE = click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)


@click.group()
def market() -> None:
    """Flexibility markets (FMAR): clear order books of sell orders and requests."""


def _fail(lines: list[str]) -> NoReturn:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(1)


@market.command()
@click.option(
    "--book",
    "book_file",
    type=_FILE,
    required=True,
    help="The order book (JSON, docs/market.md); - reads standard input.",
)
@click.option(
    "--pricing",
    type=click.Choice(["uniform", "pay-as-bid"]),
    default="uniform",
    show_default=True,
    help="Uniform prices per node and slot, or each party its own bid.",
)
@click.option(
    "--time-limit",
    "time_limit_s",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds the search may take (the prices are computed after it).",
)
@click.option(
    "--voll",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Value of lost load, EUR/kWh: what a request without a limit is worth.",
)
@click.option(
    "--gap",
    "relative_gap",
    type=click.FloatRange(min=0),
    default=1e-4,
    show_default=True,
    help="Relative gap to the proven bound at which to stop.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def clear(
    book_file: Path,
    pricing: str,
    time_limit_s: float,
    voll: float,
    relative_gap: float,
    as_json: bool,
) -> None:
    """Clear the order book in --book: choose every sell order's schedule and every
    request's accepted kWh for the most welfare, and price the outcome. Prints awards,
    accepted requests, flows, prices, the welfare and a proven bound on it (everything with
    --json); progress goes to standard error. Exit 1 means the book is refused (one line per
    error, with its field path)."""
    from cloud.fmar import BookError, MarketError, clear, read_book, to_builtins

    try:
        data = sys.stdin.buffer.read() if str(book_file) == "-" else book_file.read_bytes()
    except OSError as exc:
        _fail([f"{book_file}: {exc.strerror or exc}"])
    try:
        book = read_book(data)
    except BookError as exc:
        _fail([f"{book_file}: {e}" for e in exc.errors])
    progress = None if as_json else (lambda m: click.echo(f"  {m}", err=True))
    started = time.monotonic()
    try:
        result = clear(
            book,
            pricing=pricing,  # type: ignore[arg-type]
            time_limit_s=time_limit_s,
            voll=voll,
            relative_gap=relative_gap,
            check=False,
            progress=progress,
        )
    except MarketError as exc:
        _fail([f"{book_file}: {exc}"])
    elapsed = time.monotonic() - started
    if as_json:
        click.echo(json.dumps(to_builtins(result)))
        return
    _print(result, book, elapsed)


def _print(result: Clearing, book: Book, elapsed: float) -> None:
    res = book.market.resolution_s

    def when(ts: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))

    if result.awards:
        click.echo(
            f"{'sell order':<32} {'node':<10} {'start (UTC)':<17} {'prof':>4} "
            f"{'up kWh':>9} {'down kWh':>9} {'ask EUR':>9} {'paid EUR':>9}"
        )
        for a in result.awards:
            up = sum(v for v in a.deviation_kwh if v > 0)
            down = -sum(v for v in a.deviation_kwh if v < 0)
            click.echo(
                f"{a.offer_id:<32} {a.node:<10} {when(a.start):<17} {a.profile:>4} "
                f"{up:>9.3f} {down:>9.3f} {a.ask_eur:>9.3f} {a.paid_eur:>9.3f}"
            )
    click.echo(
        f"{'request':<32} {'node':<10} {'asked kWh':>10} {'accepted':>10} {'value EUR':>10} "
        f"{'paid EUR':>9}"
    )
    asked = {r.id: r for r in book.requests}
    for r in result.requests:
        want = sum(abs(v) for v in asked[r.id].kwh)
        got = sum(abs(v) for v in r.accepted_kwh)
        click.echo(
            f"{r.id:<32} {r.node:<10} {want:>10.3f} {got:>10.3f} {r.value_eur:>10.3f} "
            f"{r.paid_eur:>9.3f}"
        )
    for f in result.flows:
        total = sum(f.kwh)
        if total > 0:
            click.echo(f"flow {f.source} -> {f.target}: {total:.3f} kWh")
    for node, prices in result.prices.items():
        traded = [p for p in prices if p]
        if traded:
            click.echo(
                f"prices at {node}: {min(prices):.4f} to {max(prices):.4f} EUR/kWh "
                f"over {len(prices)} slots of {res // 60} min"
            )
    bound = "none" if result.bound_eur is None else f"{result.bound_eur:.6g}"
    gap = "" if result.bound_eur is None else f", gap {100 * result.gap:.3g} %"
    click.echo(
        f"{len(result.awards)} awards, welfare {result.welfare_eur:.6g} EUR, bound {bound}"
        f"{gap}, {result.status} ({result.method}, {result.pricing}), {elapsed:.2f} s"
    )
    if result.make_whole_eur or result.uplift_eur or result.transport_eur:
        click.echo(
            f"transport {result.transport_eur:.4g} EUR, make-whole {result.make_whole_eur:.4g} "
            f"EUR, surplus {result.surplus_eur:.4g} EUR, uplift {result.uplift_eur:.4g} EUR"
        )
