"""The agent's command line, ``foa``.

Commands import what they need when they run, so ``foa --help`` loads click and nothing else.
``status``, ``offers`` and ``devices`` read the agent's store (read-only, while the daemon
runs), so they answer even when the daemon or the broker is down.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from agent.errors import ConfigErrors, StoreError

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.store import Store

CONFIG_HELP = "The agent's TOML file (default: $FOA_CONFIG, else ./foa.toml)."


def _config_option(f: Any) -> Any:
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="FOA_CONFIG",
        default="foa.toml",
        show_default=True,
        help=CONFIG_HELP,
    )(f)


def _store_option(f: Any) -> Any:
    return click.option(
        "--store",
        "store_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Read this store file instead of the one named in the config.",
    )(f)


def _json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


class InstantParam(click.ParamType):
    """A time given as epoch seconds or ISO 8601 (``2026-01-01``, ``2026-01-01T06:00Z``)."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        from agent.clock import parse_instant

        try:
            return parse_instant(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


INSTANT = InstantParam()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="atp-flex", prog_name="foa")
def main() -> None:
    """FOA, the Flex-Offer Agent: turns devices into Flex-Offers and executes schedules."""


# -- foa run ------------------------------------------------------------------------------------


@main.command()
@_config_option
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Override agent.log_level of the config.",
)
@click.option(
    "--sim-start",
    type=INSTANT,
    default=None,
    help="Run on simulated time from this instant (epoch seconds or ISO 8601, UTC); "
    "overrides clock.start of the config.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Simulated seconds per wall second; overrides clock.speed.",
)
@click.option(
    "--anchor",
    type=float,
    default=None,
    help="Wall-clock UNIX time at which the simulated clock reads its start; overrides "
    "clock.anchor (default: when the agent starts). Give FMAN the same one.",
)
def run(
    config_path: Path,
    log_level: str | None,
    sim_start: float | None,
    speed: float | None,
    anchor: float | None,
) -> None:
    """Run the agent daemon until SIGTERM or Ctrl-C.

    Under systemd (Type=notify) it reports READY=1 once the store is open and the devices
    are probed, and kicks the watchdog if WatchdogSec= is set. --sim-start, --speed and
    --anchor run it on simulated time, as `atp fman run` takes them (demos, a local trial)."""
    import asyncio
    import logging
    import signal

    from agent.clock import RealClock, SimClock
    from agent.errors import AgentError
    from agent.runtime import AgentRuntime
    from agent.systemd import Notifier

    cfg = _load(config_path)
    logging.basicConfig(
        level=(log_level or cfg.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    start = sim_start if sim_start is not None else (cfg.clock.start if cfg.clock else None)
    if start is None:
        if speed is not None or anchor is not None:
            raise click.UsageError("--speed and --anchor need --sim-start or [clock] in the config")
        clock: RealClock | SimClock = RealClock()
    else:
        if speed is None:
            speed = cfg.clock.speed if cfg.clock else 1.0
        if anchor is None:
            anchor = cfg.clock.anchor if cfg.clock and cfg.clock.anchor is not None else None
        clock = SimClock.anchored(
            start=start, speed=speed, anchor=anchor if anchor is not None else time.time()
        )

    async def main_task() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runtime = AgentRuntime(config=cfg, clock=clock, notifier=Notifier())
        await runtime.run(stop=stop)

    try:
        asyncio.run(main_task())
    except AgentError as exc:
        raise click.ClickException(str(exc)) from exc


# -- foa config check ---------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Check the configuration."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_json_option
def config_check(file: Path, as_json: bool) -> None:
    """Check FILE: every value, every device's driver and generator and their parameters.

    Prints every error with its key and exits with status 1 if there is any."""
    from agent.plugins import check_config_file
    from protocol import error_lines, error_report

    cfg, errors = check_config_file(file)
    pairs = [(e.key, e.message) for e in errors]
    if as_json:
        click.echo(json.dumps(error_report(str(file), pairs), indent=2))
    elif errors:
        click.echo("\n".join(error_lines(str(file), pairs)), err=True)
    else:
        assert cfg is not None
        click.echo(
            f"{file}: OK (agent {cfg.id}, {len(cfg.devices)} devices, broker {cfg.broker.url}, "
            f"store {cfg.store})"
        )
    if errors:
        sys.exit(1)


# -- foa web password ---------------------------------------------------------------------------


@main.group()
def web() -> None:
    """The agent's local page ([web] in foa.toml)."""


@web.command("password")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read the password from standard input (its first line) instead of asking for it.",
)
def web_password(file: Path, from_stdin: bool) -> None:
    """Write the page's password to FILE, hashed (PBKDF2-SHA256), readable by its owner only.

    Name the file as password_file in the [web] table of foa.toml; the page then asks for
    the password. The file may also hold the password itself (mode 0600), but a hash does
    not give it away to whoever reads a backup."""
    import os

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("the password needs at least 8 characters")
    from agent.web import hash_password

    text = hash_password(password).encode() + "\n"
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {file}: {exc.strerror}") from exc
    click.echo(f'{file}: written (mode 0600); in foa.toml: [web] password_file = "{file}"')


# -- foa status / offers / devices --------------------------------------------------------------


@main.command()
@_config_option
@_store_option
@_json_option
def status(config_path: Path, store_path: Path | None, as_json: bool) -> None:
    """Connection, offers by state, schedules in force and last readings, from the store."""
    store = _open_store(config_path, store_path)
    try:
        report = _status(store)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    c = report["connection"]
    d = report["daemon"]
    click.echo(f"agent        {report['agent']}   (store {report['store']})")
    if d["running"]:
        click.echo(f"daemon       running (pid {d['pid']})")
    else:
        click.echo("daemon       not running" + (f" (last pid {d['pid']})" if d["pid"] else ""))
    if c["connected"]:
        click.echo(f"connection   online to {c['broker']} since {_when(c['since'])}")
    else:
        click.echo(f"connection   offline since {_when(c['since'])}")
    click.echo(f"heartbeat    {_when(report['heartbeat'])} (agent clock)")
    if report["web"]:
        click.echo(f"web page     {report['web']}")
    out = report["outbox"]
    kinds = ", ".join(f"{k} {n}" for k, n in out["by_kind"].items())
    sent = f", {out['unanswered']} sent and not yet answered" if out["unanswered"] else ""
    click.echo(f"outbox       {out['waiting']} waiting{f' ({kinds})' if kinds else ''}{sent}")
    if out["dead_letters"]:
        click.echo(f"dead letters {out['dead_letters']} (refused by the broker or by FMAN)")
    if out["quarantined"]:
        click.echo(f"quarantined  {out['quarantined']} reading(s) set aside by FMAN")
    states = ", ".join(f"{k} {n}" for k, n in sorted(report["offers"].items())) or "none"
    click.echo(f"offers       {states}")
    if not report["in_force"]:
        click.echo("in force     nothing")
    for p in report["in_force"]:
        what = "default" if p["source"] == "default" else f"schedule v{p['version']}"
        click.echo(
            f"in force     {p['device']}: {p['offer_id']} ({p['state']}) {what}, "
            f"{_when(p['start'])} to {_when(p['end'])}, {p['energy_kwh']:.3f} kWh"
        )
    for r in report["last_readings"]:
        click.echo(
            f"reading      {r['device']}: {r['energy_kwh']:.3f} kWh over "
            f"{r['duration_s'] // 60} min from {_when(r['start'])}"
        )
    for d in report["faults"]:
        click.echo(f"fault        {d['device']}: {d['fault']} (since {_when(d['since'])})")


def _status(store: Store) -> dict[str, Any]:
    from agent.report import status_report

    pid = store.get("pid") or ""
    return status_report(store, running=pid.isdigit() and _alive(int(pid)))


@main.command()
@_config_option
@_store_option
@_json_option
@click.option("--all", "show_all", is_flag=True, help="Include finished offers.")
@click.option("--remote", is_flag=True, help="Ask FMAN for the offers it holds active.")
def offers(
    config_path: Path, store_path: Path | None, as_json: bool, show_all: bool, remote: bool
) -> None:
    """The agent's offers with their state and the plan in force (--remote: FMAN's view)."""
    from agent.report import offers_report

    if remote:
        items = _ask(config_path, "flexoffer", {})
        if as_json:
            click.echo(json.dumps(items, indent=2))
            return
        if not items:
            click.echo("FMAN holds no active offer of this agent")
            return
        click.echo(f"{'offer':40} {'device':10} {'rev':>3} {'state':10} schedule")
        for i in items:
            version = f"v{i['schedule_version']}" if i["schedule_version"] else "-"
            click.echo(
                f"{i['id'][:40]:40} {(i['device'] or '')[:10]:10} {i['revision']:>3} "
                f"{i['state']:10} {version}"
            )
        return

    store = _open_store(config_path, store_path)
    try:
        items = offers_report(store, show_all=show_all)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("no offers" if show_all else "no live offers (--all shows finished ones)")
        return
    click.echo(f"{'offer':40} {'device':10} {'rev':>3} {'state':10} {'plan':18} start")
    for i in items:
        p = i["plan"]
        plan = "-" if p is None else ("default" if p["source"] == "default" else f"v{p['version']}")
        start = _when(p["start"]) if p else f"{_when(i['start_after'])}.."
        click.echo(
            f"{i['id'][:40]:40} {i['device'][:10]:10} {i['revision']:>3} {i['state']:10} "
            f"{plan:18} {start}"
        )


@main.command()
@_config_option
@_store_option
@_json_option
@click.option("--probe", is_flag=True, help="Open each configured device and read it now.")
def devices(config_path: Path, store_path: Path | None, as_json: bool, probe: bool) -> None:
    """Configured devices with their last measurement and fault (or a fresh one, --probe)."""
    if probe:
        rows = _probe(_load(config_path))
    else:
        from agent.report import devices_report

        store = _open_store(config_path, store_path)
        try:
            rows = devices_report(store)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no devices recorded yet (has the agent run?)")
        return
    click.echo(
        f"{'device':12} {'driver':24} {'generator':16} {'power':>9} {'energy':>13} "
        f"{'setpoint':>8}  state  (measured)"
    )
    for r in rows:
        power = "-" if r["power_w"] is None else f"{r['power_w']:.0f} W"
        energy = "-" if r["energy_kwh"] is None else f"{r['energy_kwh']:.3f} kWh"
        state = f"FAULT {r['fault']}" if r["fault"] else "ok"
        click.echo(
            f"{r['device']:12} {r['driver'][:24]:24} {(r['generator'] or '-')[:16]:16} "
            f"{power:>9} {energy:>13} {r.get('setpoint') or '':>8}  {state}  ({_when(r['ts'])})"
        )


def _probe(cfg: AgentConfig) -> list[dict[str, Any]]:
    import asyncio

    from agent.clock import RealClock
    from agent.plugins import build_devices

    try:
        built = build_devices(cfg.devices, clock=RealClock())
    except ConfigErrors as exc:
        _fail_config(exc)

    async def read_all() -> list[dict[str, Any]]:
        out = []
        for dev in built:
            row: dict[str, Any] = {
                "device": dev.id,
                "driver": dev.config.driver,
                "generator": dev.config.generator or "",
                "ts": None,
                "power_w": None,
                "energy_kwh": None,
                "setpoint": "",
                "fault": "",
            }
            try:
                await dev.driver.open()
                m = await dev.driver.read()
                row.update(ts=int(m.ts), power_w=m.power_w, energy_kwh=m.energy_kwh)
            except Exception as exc:
                row["fault"] = str(exc)
            finally:
                try:
                    await dev.driver.close()
                except Exception as exc:
                    row["fault"] = row["fault"] or f"close: {exc}"
            out.append(row)
        return out

    return asyncio.run(read_all())


# -- helpers ------------------------------------------------------------------------------------


def _load(config_path: Path) -> AgentConfig:
    from agent.config import load_config

    try:
        return load_config(config_path)
    except ConfigErrors as exc:
        _fail_config(exc)


def _fail_config(exc: ConfigErrors) -> NoReturn:
    from protocol import error_lines

    click.echo("\n".join(error_lines(exc.source or "config", exc.pairs())), err=True)
    sys.exit(2)


def _open_store(config_path: Path, store_path: Path | None) -> Store:
    from agent.errors import StoreError
    from agent.store import Store

    path = store_path if store_path is not None else _load(config_path).store
    try:
        return Store.reader(path)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine; the store may come from another)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _when(ts: int | float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


# -- resources FMAN answers (protocol 1.4 requests) ------------------------------------------


def _ask(config_path: Path, method: str, params: dict[str, Any]) -> Any:
    from agent.requests import RequestClient, RequestError

    cfg = _load(config_path)
    try:
        with RequestClient(cfg.broker, cfg.id) as client:
            return client.ask(method, params)
    except RequestError as exc:
        raise click.ClickException(str(exc)) from exc


def _period_option(f: Any) -> Any:
    return click.option(
        "--period",
        default=lambda: time.strftime("%Y-%m", time.gmtime()),
        show_default="this month (UTC)",
        help="YYYY-MM (a month) or YYYY-MM-DD (a day).",
    )(f)


@main.command()
@_config_option
@_json_option
def contract(config_path: Path, as_json: bool) -> None:
    """The agent's contracts with the aggregator, as FMAN holds them."""
    items = _ask(config_path, "contract", {})
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("FMAN holds no contract for this agent")
    for c in items:
        doc = c["contract"]
        click.echo(
            f"{c['id']} v{c['version']}: {doc.get('mode', '?')}, from "
            f"{_when(doc.get('valid_from'))} to {_when(doc.get('valid_until'))}"
        )


@main.command()
@_config_option
@_json_option
@_period_option
def bill(config_path: Path, as_json: bool, period: str) -> None:
    """The agent's bill for a period, from FMAN's ledger."""
    doc = _ask(config_path, "bill", {"period": period})
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"bill {doc.get('period', period)} for {doc.get('party', '?')}")
    for line in doc.get("lines", []):
        cents = line.get("amount_cents", 0)
        click.echo(f"  {line.get('day', '')} {line.get('text', '')[:56]:56} {cents / 100:10.2f}")
    click.echo(f"total {doc.get('total_cents', 0) / 100:.2f} EUR")


@main.command()
@_config_option
@_json_option
@_period_option
def kpi(config_path: Path, as_json: bool, period: str) -> None:
    """The four KPIs of the agent's own settled offers for a period."""
    doc = _ask(config_path, "kpi", {"period": period})
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for key, value in doc.items():
        click.echo(f"{key}: {json.dumps(value)}")
