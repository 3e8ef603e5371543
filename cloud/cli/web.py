"""``atp web``: the operator dashboard over FMAN's store, and its accounts."""

from __future__ import annotations

import getpass
import logging
import sys
from pathlib import Path

import click

from ._fmandb import DEFAULT_DB, store_location
from ._listen import listen

DEFAULT_USERS = Path(".atp/web-users")


def _users_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--users",
        "users_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_USERS,
        show_default=True,
        envvar="ATP_WEB_USERS",
        help="Accounts file (mode 0600; env ATP_WEB_USERS).",
    )(f)


@click.group(invoke_without_command=True)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A worker's fman.toml: its worker.store is the store shown.",
)
@click.option(
    "--store",
    "--db",
    "db",
    envvar=["ATP_FMAN_STORE", "ATP_FMAN_DB"],
    metavar="PATH|URL",
    help=f"FMAN store: an SQLite file or a postgresql:// URL (default: worker.store of "
    f"--config, else {DEFAULT_DB}).",
)
@click.option(
    "--market-store",
    envvar="ATP_FMAR_STORE",
    metavar="PATH|URL",
    help="FMAR's store (service.store of fmar.toml) for the markets page.",
)
@click.option(
    "--market-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="ATP_FMAR_CONFIG",
    help="FMAR's fmar.toml: its service.store is the market store, and operators change its "
    "markets' parameters on the markets page.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, help="Port (0: any free one).")
@_users_option
@click.option(
    "--resolution",
    "resolution_s",
    default=900,
    show_default=True,
    help="Slot length of the portfolio chart in seconds.",
)
@click.option(
    "--refresh",
    "refresh_s",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seconds between live updates of an open page (0: off).",
)
@click.pass_context
def web(
    ctx: click.Context,
    config_path: Path | None,
    db: str | None,
    market_store: str | None,
    market_config: Path | None,
    host: str,
    port: int,
    users_path: Path,
    resolution_s: int,
    refresh_s: int,
) -> None:
    """Serve the operator dashboard: portfolio, agents, offers, counters, bills and KPIs.

    With accounts in the --users file every page needs a login; without, it listens on
    loopback only. It reads FMAN's store and never writes it, so it runs beside the workers.
    On the markets page (--market-store or --market-config) an account of the operator role
    closes and opens markets and changes their parameters, as `atp market close|open|set`."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from cloud.fman.store import describe, is_postgres, open_reader
    from cloud.web import Settings, WebError, check_bind, load_accounts, make_app

    location = store_location(db, config_path)
    if not is_postgres(location) and not Path(location).exists():
        raise click.ClickException(
            f"no FMAN database at {location}: pass --store or --config, or start a worker"
        )
    if market_config is not None or market_store:
        from cloud.fmar import MarketError
        from cloud.fmar.config import load_config
        from cloud.fmar.store import open_market_store

        try:
            if market_config is not None:
                market_store = market_store or load_config(market_config).service.store
            assert market_store is not None
            open_market_store(market_store, readonly=True).close()
        except MarketError as exc:
            raise click.ClickException(f"{market_config or market_store}: {exc}") from None
    try:
        open_reader(location).close()
        accounts = load_accounts(users_path)
        check_bind(host, accounts)
    except WebError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # the store's errors, said in a line
        raise click.ClickException(f"{describe(location)}: {exc}") from None
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    app = make_app(
        Settings(
            store=location,
            accounts=accounts,
            resolution_s=resolution_s,
            refresh_s=refresh_s,
            market_store=market_store,
            market_config=market_config,
        )
    )
    who = f"{len(accounts)} account(s) from {users_path}" if accounts else "no accounts"
    click.echo(f"atp web: http://{shown}:{bound}/ ({who}; store {describe(location)})")
    sys.stdout.flush()
    # the operators' trail (market changes, failed logins) on stderr, beside uvicorn's own
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("cloud.web.audit").setLevel(logging.INFO)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


@web.group()
def user() -> None:
    """Accounts of the dashboard."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "operator"]),
    default="viewer",
    show_default=True,
    help="viewer: reads every page; operator: also the operator-only pages.",
)
@_users_option
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (one line) instead of asking.",
)
def user_add(name: str, role: str, users_path: Path, password_stdin: bool) -> None:
    """Add an account NAME, or set its role and password anew."""
    from cloud.web import WebError, save_account

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise click.ClickException("the passwords differ")
    try:
        new = save_account(users_path, name=name, role=role, password=password)  # type: ignore[arg-type]  # click.Choice checked role
    except WebError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'added' if new else 'updated'} {name} ({role}) in {users_path} (mode 0600)")


@user.command("list")
@_users_option
def user_list(users_path: Path) -> None:
    """The accounts, with their roles (never their hashes)."""
    from cloud.web import WebError, load_accounts

    try:
        accounts = load_accounts(users_path)
    except WebError as exc:
        raise click.ClickException(str(exc)) from None
    for a in accounts.values():
        click.echo(f"{a.name}  {a.role}")
    if not accounts:
        click.echo(f"no accounts in {users_path}")
