"""``atp broker``: run the development Mosquitto in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from cloud.broker import CONFIG_DIR, BrokerError, Mosquitto


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
    """Start Mosquitto on 127.0.0.1:PORT and keep it running until Ctrl-C."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        files_dir = site / "broker" if site else None
        with Mosquitto(port=port, config=config, workdir=data_dir, files_dir=files_dir) as m:
            click.echo(f"mosquitto listening on {m.url} (config {config}, log {m.log_path})")
            try:
                while not stop.wait(1.0):
                    if not m.running:
                        raise click.ClickException(f"mosquitto stopped:\n{m.log_tail()}")
            except KeyboardInterrupt:
                pass
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("mosquitto stopped")
