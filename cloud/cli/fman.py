"""``atp fman run``: one FMAN worker (ingest, acceptance, store, planning cycle)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

import click

from cloud.clock import Clock, RealClock, SimClock
from cloud.fman import FmanError
from cloud.fman.config import Config, load_config, with_overrides
from cloud.fman.store import describe

from ._fmandb import db_option, emit_json, json_option, open_db, parse_time, table


def make_clock(config: Config) -> Clock:
    c = config.clock
    if not c.sim_start:
        return RealClock()
    start = parse_time(c.sim_start)
    if c.anchor:
        return SimClock(start=start, speed=c.speed, anchor=c.anchor)
    return SimClock(start=start, speed=c.speed)


@click.group()
def fman() -> None:
    """The aggregator service (Flex-Offer Manager)."""


@fman.command("run")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Worker configuration (TOML); defaults otherwise.",
)
@click.option("--broker", help="Broker URL, e.g. mqtt://127.0.0.1:1883.")
@click.option("--ca-file", help="CA certificate(s), PEM, to verify an mqtts:// broker with.")
@click.option(
    "--store",
    "--db",
    "db",
    metavar="PATH|URL",
    help="Store shared by the workers of one group: an SQLite file (one host) or a "
    "postgresql:// URL (several hosts).",
)
@click.option("--id", "worker_id", help="Worker id: MQTT client id, keep it stable.")
@click.option("--group", help="Shared-subscription group.")
@click.option("--planner", help="default, greedy, ortools or package.module:Class.")
@click.option(
    "--sim-start",
    help="Run on simulated time from this instant (epoch seconds or ISO 8601, UTC); "
    "overrides clock.sim_start.",
)
@click.option("--speed", type=float, help="Simulated seconds per wall second.")
@click.option("--anchor", type=float, help="Wall epoch at which simulated time is --sim-start.")
@click.option("--ingest-only", is_flag=True, help="Never plan (take no planner lease).")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Least severity of the log lines printed to standard error.",
)
def run(
    config_path: Path | None,
    broker: str | None,
    ca_file: str | None,
    db: str | None,
    worker_id: str | None,
    group: str | None,
    planner: str | None,
    sim_start: str | None,
    speed: float | None,
    anchor: float | None,
    ingest_only: bool,
    log_level: str,
) -> None:
    """Run one FMAN worker until SIGTERM or Ctrl-C.

    Start several with different --id on the same --store and broker to share the load."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = with_overrides(
            load_config(config_path),
            worker={
                "broker": broker,
                "ca_file": ca_file,
                "store": db,
                "id": worker_id,
                "group": group,
            },
            planning={"planner": planner},
            clock={"sim_start": sim_start, "speed": speed, "anchor": anchor},
        )
        from cloud.fman.worker import Worker

        factory = None
        if not ingest_only:
            from cloud.fman.cycle import Cycle

            factory = Cycle.factory
        worker = Worker(config=cfg, clock=make_clock(cfg), cycle_factory=factory)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        worker.run(stop)
    except FmanError as exc:
        raise click.ClickException(str(exc)) from exc


@fman.command("migrate")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Worker configuration (TOML) naming the store.",
)
@click.option("--store", "--db", "db", metavar="PATH|URL", help="The store (overrides -c).")
def migrate(config_path: Path | None, db: str | None) -> None:
    """Create the store, or bring its schema to this version of atp.

    A worker does the same when it starts; run this first where the read-only commands
    (`atp offers`, ...) should work on a store no worker has opened since an upgrade."""
    from cloud.fman.store import SCHEMA_VERSION, describe, open_store

    try:
        cfg = with_overrides(load_config(config_path), worker={"store": db})
        store = open_store(cfg.worker.store)
        version = store.schema_version()
        store.close()
    except FmanError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{describe(cfg.worker.store)}: schema version {version} (this atp: {SCHEMA_VERSION})"
    )


@fman.group("config")
def config() -> None:
    """Check a worker's configuration."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def config_check(file: Path, as_json: bool) -> None:
    """Check FILE: every key's value and the rules that span keys, without starting anything.

    Prints every error with its key and exits with status 1 if there is any."""
    from cloud.fman.config import check_config_file
    from protocol import error_lines, error_report

    cfg, errors = check_config_file(file)
    pairs = [(e.key, e.message) for e in errors]
    if as_json:
        click.echo(json.dumps(error_report(str(file), pairs), indent=2))
    elif errors:
        click.echo("\n".join(error_lines(str(file), pairs)), err=True)
    else:
        assert cfg is not None
        target = cfg.objective.target.file or cfg.objective.target.topic
        click.echo(
            f"{file}: OK (worker {cfg.worker.id}, store {cfg.worker.store}, broker "
            f"{cfg.worker.broker}, planner {cfg.planning.planner}, objective "
            f"{cfg.objective.kind}"
            + (f" to {target}" if cfg.objective.kind == "balance" and target else "")
            + (
                f" at {cfg.objective.prices.file or cfg.objective.prices.topic}"
                if cfg.objective.kind in ("cost", "profit")
                else ""
            )
            + ")"
        )
    if errors:
        sys.exit(1)


@fman.command("stats")
@db_option
@click.option("--worker", help="Only this worker's counters.")
@json_option
def stats(db: str, worker: str | None, as_json: bool) -> None:
    """Each worker's counters as it last wrote them (every second while it runs): messages
    received and refused per reason, offers, plans, schedules issued, sent and refused.

    A counter counts since its worker started; ``refused.<what>.<code>`` are the refusals
    per reason that the worker's log summarises."""
    with open_db(db) as store:
        counters = store.stats()
    if worker is not None:
        if worker not in counters:
            raise click.ClickException(
                f"no counters of worker {worker!r} in {describe(db)} "
                f"(workers: {', '.join(sorted(counters)) or 'none'})"
            )
        counters = {worker: counters[worker]}
    if as_json:
        emit_json(counters)
        return
    if not counters:
        click.echo(f"no worker has written counters to {describe(db)} yet")
        return
    workers = sorted(counters)
    keys = sorted({k for c in counters.values() for k in c})
    rows = [{"key": k, **{w: counters[w].get(k) for w in workers}} for k in keys]
    table(rows, [("key", "COUNTER"), *((w, w.upper()) for w in workers)], _formats(workers))


def _formats(workers: list[str]) -> dict:
    def value(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{int(v)}" if float(v).is_integer() else f"{v:.3f}"

    return dict.fromkeys(workers, value)
