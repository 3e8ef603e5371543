"""``atp fmar run``: the market service (gates, orders, clearing, results)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from cloud.clock import Clock, RealClock, SimClock

from ._fmandb import parse_time


@click.group()
def fmar() -> None:
    """The flexibility market service (FMAR)."""


def make_clock(sim_start: str, speed: float, anchor: float) -> Clock:
    if not sim_start:
        return RealClock()
    start = parse_time(sim_start)
    if anchor:
        return SimClock(start=start, speed=speed, anchor=anchor)
    return SimClock(start=start, speed=speed)


@fmar.command("run")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default="fmar.toml",
    show_default=True,
    help="Service configuration (TOML): the markets, broker, store and clock.",
)
@click.option(
    "--store",
    metavar="PATH|URL",
    help="The store (an SQLite file or a postgresql:// URL); overrides service.store.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Least severity of the log lines printed to standard error.",
)
def run(config_path: Path, store: str | None, log_level: str) -> None:
    """Run the markets of --config until SIGTERM or Ctrl-C: take orders on
    atp/v1/m/MARKET/bid, answer each on atp/v1/m/MARKET/ack/PARTY, keep the retained gate
    calendar on .../gate, clear every gate at its closure and publish the result on
    .../result."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from cloud.fman import FmanError
    from cloud.fmar import MarketError
    from cloud.fmar.config import config_from_dict, load_config

    try:
        cfg = load_config(config_path)
        if store is not None:
            import msgspec

            data = msgspec.to_builtins(cfg)
            data["service"]["store"] = store
            cfg = config_from_dict(data)
        from cloud.fmar.service import Service

        c = cfg.clock
        service = Service(
            config=cfg,
            clock=make_clock(c.sim_start, c.speed, c.anchor),
            config_path=config_path,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        service.run(stop)
    except (MarketError, FmanError) as exc:
        raise click.ClickException(f"{config_path}: {exc}") from exc
