"""``atp demo``: the platform end to end, one simulated day in a couple of minutes.

Separate processes, as in a deployment: Mosquitto with the development configuration, the
market service (``atp fmar run``, unless ``--no-market``), one FMAN worker (``atp fman run``)
and a simulated fleet of agents (``atp sim fleet``, from the agent side; ``cloud`` never
imports ``agent``), a tenth of its households in direct mode. All share one simulated
timeline: the same start, speed and wall-clock anchor. The market, its buyers and its figures
are :mod:`._demo_market`. The demo follows the day with a progress bar, then prints what
happened (``summary.json`` and ``--json`` the same as figures) and writes a plot of the
portfolio against the target, the market's awards under it; then it settles the day
(contracts for its agents, the ledger, bills), prints the four KPIs and the aggregator's margin
and plots KPI 2.1.1.2.b (:mod:`._demo_settle`).

What a seed fixes and what it cannot: the seed fixes the fleet (which devices each agent has,
their sizes and their random use) and the target. The processes run on a clock anchored to the
wall clock, where at 900 times real speed a wall second is 15 simulated minutes; how late each
agent's control step runs on a busy event loop, and when FMAN's planning runs come, decide what
is offered and scheduled next, so the counts of two runs of one seed differ by a few percent
and the energy figures by more.
The demo prints that, with the fleet's own measure of lateness, rather than claim otherwise.

The output directory is the demo's own: it marks it (``.atp-demo``) and replaces only its own
files there on the next run; a directory with other files and no mark is refused.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

import protocol
from cloud.broker import BrokerError, Mosquitto
from cloud.fman import StoreError, StoreReader, execution, open_reader, report, series
from cloud.fman.config import dump_toml
from cloud.fman.store import ACCEPTED_STATES, ACTIVE_STATES

from . import _demo_market as mk
from ._demo_settle import settle_day
from ._fmandb import TIME

DAY_S = 86_400
RES = 900
#: Seconds between starting the processes and simulated midnight: time to start up (the
#: worker first, so that it is subscribed before the first agent speaks).
LEAD_WALL_S = 8.0
#: Marks a directory the demo made; the demo replaces its own files only in such a directory.
MARK = ".atp-demo"
#: What the demo writes into its directory (and removes there before a new run).
OWN_FILES = (
    "fman.db",
    "fman.db-wal",
    "fman.db-shm",
    "fman.db.lock",
    "fman.log",
    "fman.toml",
    "fleet.log",
    "fleet.json",
    "target.json",
    "portfolio.png",
    "adaptation.png",
    "fmar.db",
    "fmar.db-wal",
    "fmar.db-shm",
    "fmar.log",
    "fmar.toml",
    "market.json",
    "summary.json",
)
OWN_DIRS = ("broker",)
#: How long (wall seconds) the fleet may take to stop its agents after the day before the
#: demo stops it.
FLEET_STOP_WALL_S = 30.0


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
    *,
    agents: int,
    broker: str,
    speed: float,
    seed: int,
    start: int,
    duration: int,
    anchor: float,
    extra: Sequence[str] = (),
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
        "--sim-start",
        str(start),
        "--duration",
        str(duration),
        "--anchor",
        f"{anchor:.3f}",
        "--json",
        *extra,
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
@click.option(
    "--seed",
    default=1,
    show_default=True,
    help="Seed of the fleet (its devices and their use) and of the target; see the summary "
    "for what varies between runs of one seed.",
)
@click.option(
    "--sim-start",
    "sim_start",
    type=TIME,
    default=None,
    help="The simulated day: a date (2026-01-01) or its midnight as epoch seconds or ISO "
    "8601, UTC; default today.",
)
@click.option(
    "--start",
    "start_deprecated",
    type=TIME,
    default=None,
    hidden=True,
    deprecated="use --sim-start",
    help="Deprecated spelling of --sim-start.",
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
    help="Directory for the database, logs and the plot. Made and marked by the demo; a "
    "later run replaces only the demo's own files there. A non-empty directory the demo did "
    "not make is refused.",
)
@click.option(
    "--target-kwh",
    default=0.35,
    show_default=True,
    help="Level of the balancing target, kWh per agent and slot.",
)
@click.option(
    "--market/--no-market",
    default=True,
    show_default=True,
    help="Run FMAR next to FMAN: a market at one feeder in hourly gates, a DSO's congestion "
    "and a BRP's request there, FMAN bidding for the feeder's offers.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as JSON on standard output (the text goes to standard error); "
    "summary.json in --out has it either way.",
)
def demo(
    agents: int,
    speed: float,
    seed: int,
    sim_start: int | None,
    start_deprecated: int | None,
    planner: str,
    out: Path,
    target_kwh: float,
    market: bool,
    as_json: bool,
) -> None:
    """Run Mosquitto, FMAR (unless --no-market), an FMAN worker and a simulated fleet
    through one simulated day."""
    if not _fleet_available():
        raise click.ClickException(
            "the fleet simulator `atp sim fleet` is not installed (it comes with the agent "
            "package): run `make setup` from a checkout that has it"
        )
    start = _day_start(sim_start if sim_start is not None else start_deprecated)
    echo: Callable[[str], None] = (lambda t: click.echo(t, err=True)) if as_json else click.echo
    prepare_out(out)
    db = out / "fman.db"
    (out / "target.json").write_bytes(series.to_json(target_series(start, agents, target_kwh)))
    try:
        broker = Mosquitto(workdir=out / "broker").start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    plan = mk.MarketPlan(start=start, speed=speed) if market else None
    procs: list[subprocess.Popen[bytes]] = []
    buyers: mk.Buyers | None = None
    try:
        anchor = time.time() + LEAD_WALL_S
        fman_cfg: dict[str, Any] = {
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
        if plan is not None:
            fman_cfg["market"] = [plan.fman_market()]
            (out / "fmar.toml").write_text(
                dump_toml(plan.fmar_config(broker=broker.url, store=out / "fmar.db", anchor=anchor))
            )
        cfg = out / "fman.toml"
        cfg.write_text(dump_toml(fman_cfg))
        echo(f"Mosquitto (development configuration) on {broker.url}")
        if plan is not None:
            procs.append(
                _spawn([_atp(), "fmar", "run", "-c", str(out / "fmar.toml")], out / "fmar.log")
            )
        procs.append(_spawn([_atp(), "fman", "run", "-c", str(cfg)], out / "fman.log"))
        _wait_ready(db, procs[-1])
        echo(f"FMAN worker running (log {out / 'fman.log'})")
        if plan is not None:
            echo(
                f"FMAR running market {mk.MARKET} at {mk.FEEDER}, hourly gates closing "
                f"{plan.gate_lead_s // 60} simulated minutes ahead (log {out / 'fmar.log'})"
            )
            buyers = mk.Buyers(
                plan,
                db=db,
                broker=broker.url,
                record=out / "market.json",
                now=lambda: start + (time.time() - anchor) * speed,
            )
            buyers.start()
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
                    extra=[
                        "--direct-share",
                        str(mk.DIRECT_SHARE),
                        *(plan.fleet_args() if plan is not None else ()),
                    ],
                ),
                out / "fleet.log",
                stdout=out / "fleet.json",
            )
        )
        echo(f"fleet of {agents} simulated agents started (log {out / 'fleet.log'})")
        online, when = follow(
            db,
            worker=procs[-2],
            fleet=procs[-1],
            logs=(out / "fman.log", out / "fleet.log"),
            start=start,
            anchor=anchor,
            speed=speed,
            market=(procs[0], out / "fmar.log") if plan is not None else None,
            bar_file=sys.stderr if as_json else None,
        )
    finally:
        if buyers is not None:
            buyers.stop.set()
            buyers.join(timeout=30)
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.close()
    doc = _summary(
        db,
        out,
        online,
        when,
        start=start,
        fleet=_fleet_summary(out / "fleet.json"),
        market=plan is not None,
        buyers_error=buyers.error if buyers is not None else "",
        echo=echo,
    )
    doc["settlement"] = settle_day(db, out, start=start, echo=echo)
    (out / "summary.json").write_text(json.dumps(doc, indent=2))
    if as_json:
        click.echo(json.dumps(doc, indent=2))


def _day_start(given: int | None) -> int:
    """Midnight (UTC) of the simulated day: the one given (a date, or a midnight) or today's."""
    if given is None:
        now = datetime.now(UTC)
        return int(datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp())
    if given % DAY_S:
        raise click.BadParameter(
            f"{datetime.fromtimestamp(given, UTC):%Y-%m-%d %H:%M} UTC is not a midnight: the "
            "demo runs one whole day, give its date (2026-01-01)",
            param_hint="--sim-start",
        )
    return given


def _legacy(out: Path) -> bool:
    """A directory an earlier version of the demo made, before it marked its directories:
    nothing but the demo's own files, among them those only the demo writes."""
    names = {p.name for p in out.iterdir()}
    return names <= set(OWN_FILES + OWN_DIRS) and {"fman.toml", "target.json", "fleet.log"} <= names


def prepare_out(out: Path) -> None:
    """Make ``out`` the demo's directory, or refuse: a non-empty directory without the demo's
    mark is someone else's, and the demo writes nothing there. In its own directory, only the
    files a run writes are removed; anything else the user put there stays."""
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARK).exists() and not _legacy(out):
        raise click.ClickException(
            f"--out {out} is not empty and was not made by `atp demo`: give a new or empty "
            "directory (the demo writes its database, logs and plot there)"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in OWN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in OWN_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    (out / MARK).write_text(
        "Made by `atp demo`. A later run replaces the demo's own files here "
        f"({', '.join(OWN_FILES + OWN_DIRS)}) and leaves everything else.\n"
    )


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


def _spawn(cmd: list[str], log: Path, *, stdout: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with its output in ``log`` (its standard output in ``stdout`` if given)."""
    with log.open("wb") as err:
        if stdout is None:
            return subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT)
        with stdout.open("wb") as out:
            return subprocess.Popen(cmd, stdout=out, stderr=err)


def follow(
    db: Path,
    *,
    worker: subprocess.Popen[bytes],
    fleet: subprocess.Popen[bytes],
    logs: tuple[Path, Path],
    start: int,
    anchor: float,
    speed: float,
    market: tuple[subprocess.Popen[bytes], Path] | None = None,
    bar_file: Any = None,
) -> tuple[int, int]:
    """Follow the simulated day with a progress bar until the fleet has finished it and the
    worker has judged the last offers' execution (or a grace period passed).

    The fleet stops by itself when its day is over (``--duration``): its exit with code 0 then
    is the day's end, not a failure. The worker stopping, the fleet failing, or the fleet
    stopping long before the end is an error naming the log. Returns the agents online at
    the last look before the day's end, and that simulated time."""
    slots = DAY_S // RES
    end = start + DAY_S
    done = 0
    online, when = 0, start
    # a range rather than length=: the bar's item type is then known (int), and the bar is
    # still moved by update() as the simulated day passes, never iterated
    with click.progressbar(
        range(slots),
        label="simulated day",
        show_eta=True,
        item_show_func=lambda _: _status(db),
        file=bar_file,
    ) as bar:
        while True:
            sim = start + (time.time() - anchor) * speed
            if worker.poll() is not None:
                raise click.ClickException(
                    f"the FMAN worker stopped with code {worker.returncode}; see {logs[0]}"
                )
            if market is not None and market[0].poll() is not None:
                raise click.ClickException(
                    f"FMAR stopped with code {market[0].returncode}; see {market[1]}"
                )
            code = fleet.poll()
            if code is not None and code != 0:
                raise click.ClickException(f"the fleet stopped with code {code}; see {logs[1]}")
            if code == 0 and sim < end - 2 * RES:
                raise click.ClickException(
                    f"the fleet stopped at {datetime.fromtimestamp(sim, UTC):%H:%M} of the "
                    f"simulated day, before its end; see {logs[1]}"
                )
            if code is None and sim < end:
                online, when = _online(db), int(sim)
            now_slot = slots if code == 0 else min(slots, max(0, int((sim - start) // RES)))
            if now_slot > done:
                bar.update(now_slot - done, None)
                done = now_slot
            if code == 0:
                fleet_done = time.time()
                break
            if sim >= end and time.time() > anchor + DAY_S / speed + FLEET_STOP_WALL_S:
                fleet.terminate()  # its agents should have stopped by now; the summary says
            time.sleep(0.2)
        # the worker judges the last offers' execution once their readings are in, and its
        # counters are written after the last offers arrived (the last line then shows the
        # figure the summary prints)
        grace_until = time.time() + 3 * 1800 / speed + 2
        while time.time() < grace_until and worker.poll() is None:
            if not _open_offers(db) and _counted_since(db, fleet_done):
                break
            bar.render_progress()
            time.sleep(0.3)
        bar.render_progress()
    return online, when


def _counted_since(db: Path, t: float) -> bool:
    """Whether every worker wrote its counters after wall time ``t``."""
    with open_reader(db) as s:
        stats = s.stats()
    return bool(stats) and all(w.get("alive_at", 0.0) > t for w in stats.values())


def _accepted(s: StoreReader) -> int:
    """Offers FMAN accepted so far (the workers' counter: it only grows, while offers that
    were accepted move on to other states, withdrawn among them)."""
    return int(sum(w.get("offer.accepted", 0) for w in s.stats().values()))


def _status(db: Path) -> str:
    try:
        with open_reader(db) as s:
            c = report.counts(s)
            accepted = _accepted(s)
    except StoreError:
        return ""
    o = c["offers"]
    return f"offers {accepted} accepted, {o.get('rejected', 0)} rejected"


def _online(db: Path) -> int:
    with open_reader(db) as s:
        return s.counts().online


def _open_offers(db: Path) -> int:
    with open_reader(db) as s:
        offers = s.counts().offers
    return sum(offers.get(state, 0) for state in ACTIVE_STATES)


def _fleet_summary(path: Path) -> dict[str, Any]:
    """The fleet's own summary (``atp sim fleet --json``), or nothing if it wrote none."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def grid_assets(
    s: StoreReader, *, start: int, end: int, grid_s: int = RES
) -> tuple[int, dict[int, float], dict[int, float]]:
    """The grid-asset bids (DOMS) among the accepted offers: how many, their energy per slot
    as scheduled (or their default where nothing was scheduled), and the least energy their
    profiles allow in each slot at the scheduled start: what no plan can go below."""
    rows = [r for r in s.offers_in(ACCEPTED_STATES) if r.load_type == "doms" and r.payload]
    in_force = s.current_schedules([r.id for r in rows])
    scheduled: dict[int, float] = {}
    floor: dict[int, float] = {}
    for r in rows:
        o = protocol.decode(r.payload, expect="offer", check=False).body  # type: ignore[arg-type]  # rows without payload filtered above
        sched = in_force.get(o.id)
        if sched is not None and sched.status != "implicit":
            at, profile, energy = sched.start, sched.profile, sched.energy_kwh
        else:
            at, profile, energy = o.default.start, o.default.profile, o.default.energy_kwh
        lower = protocol.effective_profiles(o)[profile].lower_kwh
        for out, values in ((scheduled, energy), (floor, lower)):
            for t, e in execution.per_slot(at, values, o.resolution_s, grid_s).items():
                if start <= t < end:
                    out[t] = out.get(t, 0.0) + e
    return len(rows), scheduled, floor


def _above(floor: Mapping[int, float], p: report.Portfolio) -> int:
    """Slots where the grid-asset bids' least energy alone is above the target."""
    return sum(
        1 for x in p.slots if x.target_kwh is not None and floor.get(x.start, 0.0) > x.target_kwh
    )


def _summary(
    db: Path,
    out: Path,
    online: int,
    when: int,
    *,
    start: int,
    fleet: Mapping[str, Any],
    market: bool = False,
    buyers_error: str = "",
    echo: Callable[[str], None] = click.echo,
) -> dict[str, Any]:
    """Print what happened and draw the portfolio; the same figures as a JSON-ready dict."""
    from cloud.fman.plot import plot_portfolio

    with open_reader(db) as s:
        p = report.portfolio(s, start=start, end=start + DAY_S)
        counts = s.counts()
        accepted = _accepted(s)
        sites, grid_kwh, floor = grid_assets(s, start=start, end=start + DAY_S)
    trade = mk.market_summary(db, start=start, record=out / "market.json") if market else None
    c = p.summary
    o = c["offers"]
    sched = c["schedules_in_force"]
    versions = counts.schedule_versions_by_status
    delivered = sum(versions.get(k, 0) for k in ("acked", "superseded", "sent"))
    refused = versions.get("rejected", 0)
    metered = counts.executed_metered
    above = _above(floor, p)
    slots_with_target = sum(1 for x in p.slots if x.target_kwh is not None)
    day = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
    why = (
        f"grid-asset bids (DOMS, {sites} offers): {sum(grid_kwh.values()):.0f} kWh of the "
        f"schedule; they can move only in their delivery hours, and in {above} of the "
        f"{slots_with_target} slots their least energy alone is above the target, so no plan "
        "reaches the target there"
        if sites
        else ""
    )
    plot = plot_portfolio(
        p,
        out / "portfolio.png",
        title=f"atp demo, {day} (UTC)",
        parts={"of which grid-asset bids (DOMS), scheduled": grid_kwh} if sites else None,
        note=why[0].upper() + why[1:] + "." if why else "",
        awards=mk.award_series(trade) if trade is not None else None,
        awards_label=f"market awards at {mk.FEEDER} ({mk.MARKET})",
    )
    before, after = p.imbalance_baseline_kwh, p.imbalance_scheduled_kwh
    lag = fleet.get("lag_max_s")
    doc: dict[str, Any] = {
        "day": day,
        "agents": c["agents"],
        "online": online,
        "online_at": when,
        "offers_accepted": accepted,
        "offers_rejected": o.get("rejected", 0),
        "offers_withdrawn": o.get("withdrawn", 0),
        "schedules_delivered": delivered,
        "schedules_refused": refused,
        "schedules_in_force": {
            "planned_or_default": sched.get("acked", 0),
            "implicit": sched.get("implicit", 0),
        },
        "offers_executed": o.get("executed", 0),
        "offers_metered": metered,
        "readings": c["readings"],
        "imbalance_before_kwh": round(before, 3),
        "imbalance_after_kwh": round(after, 3),
        "imbalance_metered_kwh": (
            round(p.imbalance_metered_kwh, 3) if p.imbalance_metered_kwh is not None else None
        ),
        "shifted_kwh": round(p.shifted_kwh, 3),
        "lag_max_s": lag,
        "lag_mean_s": fleet.get("lag_mean_s"),
        "plot": str(plot),
        "store": str(db),
        "market": trade,
    }
    echo("")
    echo(
        f"agents: {c['agents']} ({online} online at "
        f"{datetime.fromtimestamp(when, UTC):%H:%M}, the last look before the day's end)"
    )
    echo(
        f"offers: {accepted} accepted, {o.get('rejected', 0)} rejected; "
        f"{o.get('withdrawn', 0)} withdrawn by their agents"
    )
    echo(
        f"schedules: {delivered} delivered and taken by agents, {refused} refused; "
        f"in force: {sched.get('acked', 0)} planned or default, "
        f"{sched.get('implicit', 0)} implicit defaults"
    )
    echo(
        f"executed: {o.get('executed', 0)} offers, {metered} with meter readings "
        f"({c['readings']} readings)"
    )
    change = f" ({(after - before) / before:+.0%})" if before else ""
    echo(
        f"imbalance against the target (sum |x - target|): {before:.0f} kWh before "
        f"planning, {after:.0f} kWh after{change}"
        + (
            f", {p.imbalance_metered_kwh:.0f} kWh metered"
            if p.imbalance_metered_kwh is not None
            else ""
        )
    )
    if why:
        echo(why)
    echo(f"energy shifted in time: {p.shifted_kwh:.0f} kWh")
    if trade is not None:
        for line in _market_lines(trade, buyers_error):
            echo(line)
    echo(
        "what varies between runs of one seed: the seed fixes the fleet and the target, but "
        "agents and FMAN are separate processes on a clock tied to the wall clock"
        + (
            f" (here agents' control steps ran up to {lag:.0f} simulated s late, "
            f"{fleet.get('lag_mean_s', 0.0):.1f} s on average)"
            if isinstance(lag, int | float)
            else ""
        )
        + ": what is offered and planned differs from run to run, the counts above by a few "
        "percent, the energy figures by more"
    )
    echo(f"plot: {plot}   store: {db} (try `atp offers list --store {db}`)")
    return doc


def _market_lines(t: Mapping[str, Any], error: str) -> list[str]:
    asked = t.get("asked") or {}
    cong = asked.get("congestion")
    brp = asked.get("brp") or []
    lines = [
        f"market {t['market']} at {t['node']}: {t['gates_cleared']} gates cleared with "
        f"FMAN's bids in them ({t['gates_bid']} bid, {t['gates_awarded']} with awards); "
        f"won {t['up_kwh']:.1f} kWh up and {t['down_kwh']:.1f} kWh down"
        + (
            f" at {t['avg_price_eur_per_kwh']:.3f} EUR/kWh on average"
            if t["avg_price_eur_per_kwh"] is not None
            else ""
        )
        + f", revenue {t['revenue_eur']:.2f} EUR"
    ]
    if error:
        lines.append(f"the demo's DSO and BRP could not place their orders: {error}")
    elif not asked:
        lines.append("the demo's DSO and BRP placed no orders (the day ended first)")
    else:
        buyers = []
        if cong:
            buyers.append(
                f"the DSO registered {-sum(cong['kwh']):.1f} kWh of congestion "
                f"({cong['status']}{': ' + cong['reason'] if cong.get('reason') else ''})"
            )
        if brp:
            ok = sum(1 for b in brp if b["accepted"])
            buyers.append(
                f"the BRP asked {sum(sum(b['kwh']) for b in brp):.1f} kWh up in "
                f"{len(brp)} gates ({ok} accepted)"
            )
        if buyers:
            lines.append("; ".join(buyers))
    if t.get("limit_kwh") is not None:
        lines.append(
            f"congestion at {t['node']} (its offers, {t['congested_slots']} evening slots): "
            f"limit {t['limit_kwh']:.2f} kWh per slot; above it {t['above_before_kwh']:.1f} kWh "
            f"in the default schedules, {t['above_scheduled_kwh']:.1f} kWh as scheduled, "
            f"{t['above_after_kwh']:.1f} kWh metered ({t['metered_slots']} slots metered)"
        )
    return lines
