"""What the provisioning commands share: the ``--site`` option, errors, and their reports."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from cloud.provision import ProvisionError, Site, Written

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


def site_option(func: F) -> F:
    """``--site DIR`` (or ``$ATP_SITE``), passed to the command as ``site: Site``."""
    return click.option(
        "--site",
        "site",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(".atp/site"),
        show_default=True,
        envvar="ATP_SITE",
        show_envvar=True,
        callback=lambda ctx, param, value: Site(root=value),
        help="Site directory: the CA, the broker's files, every account's credentials.",
    )(func)


def admin_option(func: F) -> F:
    """``--broker-admin PATH`` (or ``$ATP_BROKER_ADMIN``): the running broker's admin socket."""
    return click.option(
        "--broker-admin",
        "admin_socket",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="ATP_BROKER_ADMIN",
        show_envvar=True,
        help="The running broker's admin socket, where the change is applied at once "
        "(default: site.toml's, /run/mosquitto/atp-admin.sock).",
    )(
        click.option(
            "--offline",
            is_flag=True,
            help="The broker has never run: write the change into the site's "
            "broker/dynamic-security.json, which the broker reads when it starts.",
        )(func)
    )


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(func)


def reported(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`ProvisionError` into one clear line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ProvisionError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def report(written: Written, *, as_json: bool, title: str, extra: dict[str, Any]) -> None:
    """List what was written (paths only: secrets never reach the terminal), and what the
    operator must still do (on stderr)."""
    for note in written.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(
            json.dumps(
                {
                    **extra,
                    "broker": written.broker[0] if written.broker else None,
                    "files": [str(p) for p in written.files],
                    "secret_files": [str(p) for p in written.secrets],
                }
            )
        )
        return
    click.echo(title)
    for path in written.files:
        click.echo(f"  {path}")
    for path in written.secrets:
        click.echo(f"  {path}  (secret, mode 0600)")
