"""What the FMAN operator commands share: the store option, times, tables, JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from cloud.fman import StoreError, StoreReader, open_reader
from cloud.fman.store import Store, is_postgres, open_store
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


def more_note(shown: int, total: int, what: str) -> None:
    """Say on standard error that a listing stopped at its ``--limit`` (stdout stays the rows
    alone, for scripts and ``--json``)."""
    if total > shown:
        click.echo(
            f"showing {shown} of {total} {what}; pass --limit {total} to list them all",
            err=True,
        )


def _plain(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


# -- commands that write the store (settlement, contracts) -------------------------------------


def store_options(f: F) -> F:
    """``--store/--db`` and ``--config`` (a worker's fman.toml, whose ``worker.store`` names
    the store); ``--store`` wins, then the environment, then the configuration."""
    f = click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Worker configuration (TOML) naming the store.",
    )(f)
    return click.option(
        "--store",
        "--db",
        "db",
        envvar=["ATP_FMAN_STORE", "ATP_FMAN_DB"],
        metavar="PATH|URL",
        help=f"FMAN store: an SQLite file or a postgresql:// URL (env ATP_FMAN_STORE; "
        f"default: worker.store of --config, else {DEFAULT_DB}).",
    )(f)


def store_location(db: str | None, config_path: Path | None) -> str:
    if db:
        return db
    if config_path is not None:
        from cloud.fman import ConfigError, load_config

        try:
            return str(load_config(config_path).worker.store)
        except ConfigError as exc:
            raise click.ClickException(f"{config_path}: {exc}") from None
    return DEFAULT_DB


def open_writer(location: str) -> Store:
    """The store for a command that writes (contracts, settlement): it must exist already
    (a worker, or ``atp fman migrate``, makes it), so a mistyped ``--store`` is refused
    rather than answered from a new empty store; one of an older schema is migrated."""
    missing = (
        f"no FMAN database at {location}: pass --store, or make it with "
        f"`atp fman migrate --store {location}` (a worker makes it when it starts)"
    )
    if not is_postgres(location) and not Path(location).exists():
        raise click.ClickException(missing)
    if is_postgres(location):
        try:
            open_reader(location).close()
        except StoreError as exc:
            if "no schema version" in str(exc):  # an empty database, or another's
                raise click.ClickException(f"{missing}; {exc}") from None
            # an older schema: the writer migrates it; anything else it says itself
    try:
        return open_store(location)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def now_option(f: F) -> F:
    return click.option(
        "--now",
        type=TIME,
        help="Act as of this time (epoch or ISO 8601, UTC); default: the clock.",
    )(f)
