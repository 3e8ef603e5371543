"""``atp sim fleet``: a fleet of simulated agents in one process, for demos, tests and benchmarks.

Registered in the ``atp.commands`` entry-point group as ``sim`` (``cloud`` never imports the
agent; the ``atp`` group finds this command by name).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli import INSTANT

if TYPE_CHECKING:
    from agent.fleet.runner import FleetStats


@click.group()
def sim() -> None:
    """Simulations: a fleet of agents with simulated devices."""


@sim.command()
@click.option("--agents", "-n", default=100, show_default=True, help="How many agents.")
@click.option(
    "--broker",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    help="Broker URL (mqtt:// or mqtts://).",
)
@click.option(
    "--speed",
    default=60.0,
    show_default=True,
    help="Simulated seconds per wall-clock second (900: a 15-minute slot a second).",
)
@click.option("--seed", default=1, show_default=True, help="Seed of the fleet's mix and devices.")
@click.option(
    "--sim-start",
    "sim_start",
    type=INSTANT,
    default=None,
    help="Simulated time at --anchor: epoch seconds or ISO 8601, UTC (default: now, rounded "
    "down to the hour).",
)
@click.option(
    "--start",
    "start_deprecated",
    type=INSTANT,
    default=None,
    hidden=True,
    deprecated="use --sim-start",
    help="Deprecated spelling of --sim-start.",
)
@click.option(
    "--anchor",
    type=float,
    default=None,
    help="Wall-clock UNIX time at which the simulated time is --sim-start (default: when the "
    "agents start). Give FMAN the same --sim-start, --anchor and --speed and both read the "
    "same simulated time.",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Stop after this many simulated seconds (default: run until Ctrl-C or SIGTERM).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the agents' stores go (default: a temporary directory, removed at the end).",
)
@click.option("--prefix", default="sim", show_default=True, help="Agent ids are PREFIX-0000, ...")
@click.option(
    "--control-interval",
    default=300,
    show_default=True,
    help="Simulated seconds between control steps of each agent.",
)
@click.option(
    "--ramp",
    type=float,
    default=None,
    help="Wall seconds over which agents start (default: 1 per 200 agents, at most 10).",
)
@click.option(
    "--drain",
    type=float,
    default=10.0,
    show_default=True,
    help="Wall seconds a clean stop waits for FMAN to answer what the agents still hold.",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CA certificate(s), PEM, to verify an mqtts:// broker with (default: the system's).",
)
@click.option(
    "--direct-share",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of the households that trade in direct mode, at asks from a comfort "
    "priority (which ones, and their priorities, follow from --seed).",
)
@click.option(
    "--node-param",
    "node_param",
    multiple=True,
    metavar="NODE:KEY=VALUE",
    help="A generator key for every device of the agents at grid node NODE, e.g. "
    "node-01:horizon_h=1 (offers of one hour each there). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Least severity of the log lines printed to standard error.",
)
def fleet(
    agents: int,
    broker: str,
    speed: float,
    seed: int,
    sim_start: float | None,
    start_deprecated: float | None,
    anchor: float | None,
    duration: float | None,
    directory: Path | None,
    prefix: str,
    control_interval: int,
    ramp: float | None,
    drain: float,
    ca_file: Path | None,
    direct_share: float,
    node_param: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    log_level: str,
) -> None:
    """Run AGENTS simulated agents against a broker, each with its own MQTT session and store.

    The mix of devices is reproducible from --seed. Progress goes to stderr (a live line on a
    terminal, a line every 10 s otherwise); the summary to stdout at the end."""
    import asyncio
    import logging
    import shutil
    import signal
    import tempfile

    from agent.errors import ConfigErrors
    from agent.fleet.runner import Fleet, FleetSettings

    if agents < 1:
        raise click.BadParameter("at least one agent", param_hint="--agents")
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    now = time.time()
    start = sim_start if sim_start is not None else start_deprecated
    own_dir = directory is None
    work = Path(tempfile.mkdtemp(prefix="atp-fleet-")) if directory is None else directory
    settings = FleetSettings(
        agents=agents,
        broker_url=broker,
        directory=work,
        speed=speed,
        seed=seed,
        start=start if start is not None else now // 3600 * 3600,
        anchor=anchor,
        duration=duration,
        prefix=prefix,
        control_interval_s=control_interval,
        ca_file=ca_file,
        ramp_s=ramp if ramp is not None else min(10.0, agents / 200),
        drain_s=drain,
        direct_share=direct_share,
        node_params=_node_params(node_param),
    )
    runner = Fleet(settings)
    try:
        runner.check()
    except ConfigErrors as exc:
        raise click.ClickException(str(exc)) from exc
    progress = _Progress(settings, enabled=not quiet)

    async def main() -> FleetStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await runner.run(stop=stop, on_progress=progress.show)

    try:
        final = asyncio.run(main())
    finally:
        progress.done()
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    summary = _summary(settings, final, anchor=runner.anchor)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            click.echo(f"{key:24} {value}")
    if final.failed:
        sys.exit(1)


def _node_params(given: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``NODE:KEY=VALUE`` options as node -> key -> value (numbers as numbers); the agents'
    configuration check judges the keys and values."""
    out: dict[str, dict[str, Any]] = {}
    for item in given:
        node, sep, rest = item.partition(":")
        key, eq, text = rest.partition("=")
        if not (sep and eq and node.strip() and key.strip()):
            raise click.BadParameter(f"{item!r}: give NODE:KEY=VALUE", param_hint="--node-param")
        value: Any = text.strip()
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                continue
        out.setdefault(node.strip(), {})[key.strip()] = value
    return out


def _summary(settings: Any, st: FleetStats, *, anchor: float | None) -> dict[str, Any]:
    wall = max(st.wall_s, 1e-9)
    out = asdict(st)
    out.update(
        broker=settings.broker_url,
        speed=settings.speed,
        seed=settings.seed,
        start=settings.start,
        anchor=anchor,
        messages_per_s=round((st.sent + st.received) / wall, 1),
        cpu_ms_per_agent_s=round(1000 * st.cpu_s / wall / max(st.started, 1), 3),
        rss_mb_per_agent=round(st.rss_mb / max(st.started, 1), 3),
    )
    return out


class _Progress:
    """A live status line on a terminal; a plain line every 10 s when stderr is not one."""

    def __init__(self, settings: Any, *, enabled: bool) -> None:
        self.settings = settings
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0
        self.prev: tuple[float, int] | None = None

    def show(self, st: FleetStats) -> None:
        if not self.enabled:
            return
        rate = 0.0
        msgs = st.sent + st.received
        if self.prev is not None and st.wall_s > self.prev[0]:
            rate = (msgs - self.prev[1]) / (st.wall_s - self.prev[0])
        self.prev = (st.wall_s, msgs)
        s = self.settings
        bar = ""
        if s.duration:
            frac = min(1.0, max(0.0, (st.sim_time - s.start) / s.duration))
            bar = f"[{'#' * int(frac * 20):20}] {frac:4.0%} "
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(st.sim_time))
        line = (
            f"{bar}{when} | {st.connected}/{st.agents} online | offers {st.offers} "
            f"| schedules {st.schedules_taken} | readings {st.readings} | {rate:,.0f} msg/s "
            f"| outbox {st.outbox} | {st.rss_mb:.0f} MB"
        )
        if self.tty:
            click.echo(f"\r{line[:160]:160}", nl=False, err=True)
        elif st.wall_s - self.last_line >= 10:
            self.last_line = st.wall_s
            click.echo(line, err=True)

    def done(self) -> None:
        if self.enabled and self.tty:
            click.echo(err=True)
