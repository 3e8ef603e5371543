"""``atp broker``: run the development Mosquitto in the foreground."""

from __future__ import annotations

import os
import pwd
import signal
import threading
from pathlib import Path

import click

from cloud.broker import CONFIG_DIR, BrokerError, Mosquitto, PortInUse


@click.group()
def broker() -> None:
    """Run the MQTT broker (Mosquitto)."""


@broker.command("up")
@click.option("--port", type=int, default=1883, show_default=True, help="Loopback port.")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=CONFIG_DIR / "dev.conf",
    show_default=True,
    help="Configuration included after the generated listener lines.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".atp/broker"),
    show_default=True,
    help="Persistence directory and log (kept across restarts).",
)
@click.option(
    "--site",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="ATP_SITE",
    help="Site directory (`atp pki init`) whose broker/ stands in for /etc/mosquitto/atp: "
    "with --config mosquitto/prod.conf, a trial of the production broker on one machine.",
)
def up(port: int, config: Path, data_dir: Path, site: Path | None) -> None:
    """Start Mosquitto on 127.0.0.1:PORT and keep it running until Ctrl-C.

    Run by root, the broker runs as the mosquitto user (never as root), which then owns the
    data directory and the site's broker/ directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    files_dir = site / "broker" if site else None
    user = _unprivileged_user([data_dir, *([files_dir] if files_dir else [])])
    try:
        with Mosquitto(
            port=port, config=config, workdir=data_dir, files_dir=files_dir, user=user
        ) as m:
            click.echo(f"mosquitto listening on {m.url} (config {config}, log {m.log_path})")
            if m.admin_socket is not None:
                click.echo(
                    f"admin socket {m.admin_socket}: provision with "
                    f"ATP_BROKER_ADMIN={m.admin_socket} atp device add ..."
                )
            try:
                while not stop.wait(1.0):
                    if not m.running:
                        raise click.ClickException(f"mosquitto stopped:\n{m.log_tail()}")
            except KeyboardInterrupt:
                pass
    except PortInUse as exc:
        raise click.ClickException(f"{exc} (--port)") from None
    except BrokerError as exc:
        hint = (
            f"\n(the broker runs as {user}: it must be able to reach {data_dir.resolve()}"
            + (f" and {files_dir.resolve()}" if files_dir else "")
            + "; or run `atp broker up` as an ordinary user)"
            if user
            else ""
        )
        raise click.ClickException(f"{exc}{hint}") from exc
    click.echo("mosquitto stopped")


#: The unprivileged user a broker started by root runs as (Debian's mosquitto package).
BROKER_USER = "mosquitto"


def _unprivileged_user(dirs: list[Path]) -> str | None:
    """``None`` for an ordinary user (the broker runs as them); for root, the mosquitto
    user, given ownership of ``dirs`` so that it can write its data and read the site's
    broker files (0600), as the production install does (`chown -R mosquitto:`)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(BROKER_USER)
    except KeyError:
        raise click.ClickException(
            f"run by root, the broker runs as the {BROKER_USER} user, which does not exist "
            "here: install Debian's mosquitto package, or run as an ordinary user"
        ) from None
    for top in dirs:
        for path in [top, *top.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    return BROKER_USER
