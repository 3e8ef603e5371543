"""What the FMAN operator commands share: the store option, times, tables, JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from cloud.fman import StoreError, StoreReader, open_reader
from cloud.fman.store import is_postgres
from cloud.optim.series import parse_instant

DEFAULT_DB = ".atp/fman.db"
F = TypeVar("F", bound=Callable[..., Any])


def db_option(f: F) -> F:
    return click.option(
        "--store",
        "--db",
        "db",
        default=DEFAULT_DB,
        envvar=["ATP_FMAN_STORE", "ATP_FMAN_DB"],
        show_default=True,
        metavar="PATH|URL",
        help="FMAN store: an SQLite file or a postgresql:// URL (env ATP_FMAN_STORE).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def open_db(location: str) -> StoreReader:
    """The store, read-only: a listing never takes the write lock or changes the database."""
    if not is_postgres(location) and not Path(location).exists():
        raise click.ClickException(
            f"no FMAN database at {location}: pass --store, or start a worker with "
            f"`atp fman run --store {location}`"
        )
    try:
        return open_reader(location)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def parse_time(value: str) -> float:
    """Epoch seconds or ISO 8601 (UTC unless it says otherwise)."""
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class TimeParam(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int | float):
            return int(value)
        return int(parse_time(str(value)))


TIME = TimeParam()


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    formats: dict[str, Callable[[Any], str]] | None = None,
) -> None:
    """Print ``rows`` as an aligned table of ``(key, header)`` columns."""
    formats = formats or {}
    cells = [[h for _, h in columns]]
    for r in rows:
        cells.append([formats.get(k, _plain)(r.get(k)) for k, _ in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def _plain(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
