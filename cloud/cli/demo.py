"""``atp demo``: the platform end to end, one simulated day in a couple of minutes.

Separate processes, as in a deployment: Mosquitto with the development configuration, one FMAN
worker (``atp fman run``) and a simulated fleet of agents (``atp sim fleet``, from the agent
side; ``cloud`` never imports ``agent``). All share one simulated timeline: the same start,
speed and wall-clock anchor. The demo follows the day with a progress bar, then prints what
happened and writes a plot of the portfolio against the target.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from cloud.broker import BrokerError, Mosquitto
from cloud.fman import StoreError, open_reader, report, series
from cloud.fman.config import dump_toml
from cloud.fman.store import ACTIVE_STATES

DAY_S = 86_400
RES = 900
#: Seconds between starting the processes and simulated midnight: time to start up (the
#: worker first, so that it is subscribed before the first agent speaks).
LEAD_WALL_S = 8.0


def _atp() -> str:
    found = Path(sys.executable).with_name("atp")
    return str(found) if found.exists() else (shutil.which("atp") or "atp")


def target_series(start: int, agents: int, kwh_per_agent_slot: float) -> dict[int, float]:
    """A renewable surplus to follow: low at night, high around midday, scaled to the fleet."""
    level = agents * kwh_per_agent_slot
    out = {}
    for i in range(DAY_S // RES):
        hour = i * RES / 3600
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0
        out[start + i * RES] = round(level * (0.4 + 1.6 * sun), 3)
    return out


def fleet_command(
    *, agents: int, broker: str, speed: float, seed: int, start: int, duration: int, anchor: float
) -> list[str]:
    """The fleet simulator's command line (``atp sim fleet``, provided by the agent side)."""
    return [
        _atp(),
        "sim",
        "fleet",
        "--agents",
        str(agents),
        "--broker",
        broker,
        "--speed",
        str(speed),
        "--seed",
        str(seed),
        "--start",
        str(start),
        "--duration",
        str(duration),
        "--anchor",
        f"{anchor:.3f}",
    ]


def _fleet_available() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "sim" for ep in entry_points(group="atp.commands"))


@click.command()
@click.option("--agents", default=200, show_default=True, help="Agents in the simulated fleet.")
@click.option(
    "--speed",
    default=900.0,
    show_default=True,
    help="Simulated seconds per wall second (900: a day in 96 s).",
)
@click.option("--seed", default=1, show_default=True, help="Seed of the fleet's randomness.")
@click.option(
    "--start", "start_day", default=None, help="Simulated day (YYYY-MM-DD, UTC); default today."
)
@click.option(
    "--planner",
    default="greedy",
    show_default=True,
    help=(
        "FMAN planner: greedy, ortools, default or package.module:Class. Greedy answers in "
        "milliseconds, which a clock at 900x needs; the worker's own default is ortools."
    ),
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".atp/demo"),
    show_default=True,
    help="Directory for the database, logs and the plot (emptied first).",
)
@click.option(
    "--target-kwh",
    default=0.35,
    show_default=True,
    help="Level of the balancing target, kWh per agent and slot.",
)
def demo(
    agents: int,
    speed: float,
    seed: int,
    start_day: str | None,
    planner: str,
    out: Path,
    target_kwh: float,
) -> None:
    """Run Mosquitto, an FMAN worker and a simulated fleet through one simulated day."""
    if not _fleet_available():
        raise click.ClickException(
            "the fleet simulator `atp sim fleet` is not installed (it comes with the agent "
            "package): run `make setup` from a checkout that has it"
        )
    day = datetime.fromisoformat(start_day) if start_day else datetime.now(UTC)
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db = out / "fman.db"
    (out / "target.json").write_bytes(series.to_json(target_series(start, agents, target_kwh)))
    try:
        broker = Mosquitto(workdir=out / "broker").start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    procs: list[subprocess.Popen[bytes]] = []
    try:
        anchor = time.time() + LEAD_WALL_S
        cfg = out / "fman.toml"
        cfg.write_text(
            dump_toml(
                {
                    "worker": {"id": "demo-fman-1", "broker": broker.url, "store": str(db)},
                    "clock": {"sim_start": str(start), "speed": speed, "anchor": anchor},
                    "planning": {
                        "planner": planner,
                        # at 900x a wall second is a quarter of an hour: a solve must be
                        # short, and re-planning every offer hourly is plenty
                        "time_limit_s": 1.0,
                        "full_interval_s": 3600.0,
                    },
                    "objective": {"target": {"file": str(out / "target.json")}},
                    # the simulated fleet has grid sites besides households; and its 200
                    # agents share this machine with everything else, so at this speed an
                    # offer may reach FMAN a simulated half hour after the agent made it
                    "acceptance": {"default": {"max_power_kw": 1000.0}, "transit_wall_s": 2.5},
                }
            )
        )
        click.echo(f"Mosquitto (development configuration) on {broker.url}")
        procs.append(_spawn([_atp(), "fman", "run", "-c", str(cfg)], out / "fman.log"))
        _wait_ready(db, procs[0])
        click.echo(f"FMAN worker running (log {out / 'fman.log'})")
        procs.append(
            _spawn(
                fleet_command(
                    agents=agents,
                    broker=broker.url,
                    speed=speed,
                    seed=seed,
                    start=start,
                    duration=DAY_S,
                    anchor=anchor,
                ),
                out / "fleet.log",
            )
        )
        click.echo(f"fleet of {agents} simulated agents started (log {out / 'fleet.log'})")
        _follow(db, procs, start=start, anchor=anchor, speed=speed)
        online = _online(db)
        grace_until = time.time() + 3 * 1800 / speed + 2
        while time.time() < grace_until and _open_offers(db):
            time.sleep(0.3)  # the worker judges the last offers' execution
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.close()
    _summary(db, out, online)


def _wait_ready(db: Path, worker: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until the worker has written its counters (it is subscribed by then)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if worker.poll() is not None:
            raise click.ClickException(f"the FMAN worker stopped with code {worker.returncode}")
        try:
            with open_reader(db) as s:
                if s.stats():
                    return
        except StoreError:
            pass  # not created, or not migrated yet
        time.sleep(0.1)
    raise click.ClickException(f"the FMAN worker did not start within {timeout:g} s")


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)


def _follow(
    db: Path, procs: list[subprocess.Popen[bytes]], *, start: int, anchor: float, speed: float
) -> None:
    slots = DAY_S // RES
    done = 0
    with click.progressbar(
        length=slots, label="simulated day", show_eta=True, item_show_func=lambda _: _status(db)
    ) as bar:
        while done < slots:
            for p in procs:
                if p.poll() is not None:
                    raise click.ClickException(
                        f"{' '.join(p.args[:3])} stopped with code {p.returncode}; "  # type: ignore[index]
                        "see its log"
                    )
            sim = start + (time.time() - anchor) * speed
            now_slot = min(slots, max(0, int((sim - start) // RES)))
            if now_slot > done:
                bar.update(now_slot - done, None)
                done = now_slot
            time.sleep(0.2)


def _status(db: Path) -> str:
    try:
        with open_reader(db) as s:
            o = s.counts().offers
    except StoreError:
        return ""
    accepted = sum(o.get(k, 0) for k in ("accepted", "assigned", "executing", "executed"))
    return f"offers {accepted} accepted, {o.get('rejected', 0)} rejected"


def _online(db: Path) -> int:
    with open_reader(db) as s:
        return s.counts().online


def _open_offers(db: Path) -> int:
    with open_reader(db) as s:
        offers = s.counts().offers
    return sum(offers.get(state, 0) for state in ACTIVE_STATES)


def _summary(db: Path, out: Path, online: int) -> None:
    from cloud.fman.plot import plot_portfolio

    with open_reader(db) as s:
        p = report.portfolio(s)
        counts = s.counts()
    c = p.summary
    o = c["offers"]
    sched = c["schedules_in_force"]
    versions = counts.schedule_versions_by_status
    delivered = sum(versions.get(k, 0) for k in ("acked", "superseded", "sent"))
    refused = versions.get("rejected", 0)
    metered = counts.executed_metered
    accepted = sum(o.get(k, 0) for k in ("accepted", "assigned", "executing", "executed"))
    plot = plot_portfolio(p, out / "portfolio.png", title="atp demo")
    before, after = p.imbalance_baseline_kwh, p.imbalance_scheduled_kwh
    click.echo("")
    click.echo(f"agents: {c['agents']} ({online} online at the end of the day)")
    click.echo(
        f"offers: {accepted} accepted, {o.get('rejected', 0)} rejected, "
        f"{o.get('withdrawn', 0)} withdrawn"
    )
    click.echo(
        f"schedules: {delivered} delivered and taken by agents, {refused} refused; "
        f"in force: {sched.get('acked', 0)} planned or default, "
        f"{sched.get('implicit', 0)} implicit defaults"
    )
    click.echo(
        f"executed: {o.get('executed', 0)} offers, {metered} with meter readings "
        f"({c['readings']} readings)"
    )
    change = f" ({(after - before) / before:+.0%})" if before else ""
    click.echo(
        f"imbalance against the target (sum |x - target|): {before:.0f} kWh before "
        f"planning, {after:.0f} kWh after{change}"
        + (
            f", {p.imbalance_metered_kwh:.0f} kWh metered"
            if p.imbalance_metered_kwh is not None
            else ""
        )
    )
    click.echo(f"energy shifted in time: {p.shifted_kwh:.0f} kWh")
    click.echo(f"plot: {plot}   database: {db} (try `atp offers list --db {db}`)")
