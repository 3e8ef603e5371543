"""The web sites the project serves, each with its pages, for the browser tests and
``make screens``.

A :class:`Site` knows how to start its server on data made by a short real run and which
pages it has. The page tests and the screenshot command take both from here, so a new site
(FMAN's and FMAR's operator pages) plugs in by adding one entry to :data:`SITES`: a function
that starts it and yields a :class:`Running`, and its :class:`PageSpec` list.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from cloud.broker import Mosquitto
from protocol import Ack, Schedule, topics
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
FOA = [sys.executable, "-c", "from agent.cli import main; main()"]
#: 2026-01-01 00:00 UTC
T0 = 1_767_225_600


@dataclass(frozen=True, slots=True)
class PageSpec:
    """One page of a site: its name (the screenshot's file name), its path, and a CSS
    selector that is there once the page is drawn."""

    name: str
    path: str
    ready: str


@dataclass
class Running:
    """A started site: where it answers, how a browser page logs in (``None``: no login),
    and whatever its tests need to know about it (``info``)."""

    base_url: str
    login: Callable[[Any], None] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    pages: tuple[PageSpec, ...]
    #: ``start(workdir)`` -> a context manager yielding the running site
    start: Callable[[Path], AbstractContextManager[Running]]


# -- the agent's local page ---------------------------------------------------------------------

#: Devices of the agent the pages show: one of each kind the page has settings for.
AGENT_DEVICES: dict[str, dict[str, Any]] = {
    "heat_pump": {"model": "heat_pump", "generator": "heat_pump", "seed": 1},
    "boiler": {"model": "boiler", "generator": "boiler", "seed": 2},
    "ev": {"model": "ev", "generator": "ev", "battery_kwh": 58, "max_power_kw": 7.4, "seed": 3},
    "battery": {"model": "battery", "generator": "battery", "seed": 4},
    "pv": {"model": "pv", "generator": "pv", "peak_kw": 6.0, "seed": 5},
    "freezer": {"model": "freezer", "generator": "freezer", "seed": 6},
}

AGENT_PAGES = (
    PageSpec("overview", "/", "#devices"),
    PageSpec("offers", "/offers", "#offers"),
    PageSpec("config", "/config", "#config-form"),
)


class FmanPeer:
    """The FMAN side of one agent on the real broker: acknowledges every offer revision,
    withdrawal and meter batch, and sends each offer revision its default as the schedule."""

    def __init__(self, broker: Mosquitto, agent: str) -> None:
        self.agent = agent
        self.offers: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_connect = lambda c, *a: c.subscribe(
            [(topics.agent_topic(agent, ch), 1) for ch in ("offer", "offer/delete", "meter")]
        )
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("the FMAN peer could not subscribe")

    def _send(self, channel: str, body: Any, ts: int) -> None:
        self.client.publish(
            topics.agent_topic(self.agent, channel), protocol.encode(body, ts=ts), qos=1
        )

    def _message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        channel = topics.parse(m.topic).channel
        msg = protocol.decode(m.payload)
        if channel == "meter":
            self._send("ack", Ack(ref_kind="meter", ref_id=msg.id, revision=msg.body.seq), msg.ts)
        elif channel == "offer/delete":
            self._send("ack", Ack(ref_kind="offer.delete", ref_id=msg.body.offer_id), msg.ts)
        else:
            o = msg.body
            with self.lock:
                if (o.id, o.revision) in self.offers:
                    return
                self.offers.add((o.id, o.revision))
            self._send("ack", Ack(ref_kind="offer", ref_id=o.id, revision=o.revision), msg.ts)
            d = o.default
            sched = Schedule(
                offer_id=o.id,
                version=o.revision + 1,
                start=d.start,
                profile=d.profile,
                energy_kwh=d.energy_kwh,
            )
            self._send("schedule", sched, msg.ts)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_agent_config(
    path: Path,
    *,
    agent: str,
    broker_url: str,
    web: dict[str, Any],
    devices: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A foa.toml with comments (the page must keep them), simulated devices and ``[web]``."""
    lines = [
        "# The agent of the page tests: simulated devices, the page on.",
        "[agent]",
        f'id = "{agent}"               # in every topic',
        'store = "foa.db"',
        "resolution_s = 900",
        "control_interval_s = 900      # one control step a slot: the figures hold still",
        'log_level = "warning"',
        "",
        "[broker]",
        f'url = "{broker_url}"',
        "backoff_initial_s = 0.2",
        "backoff_max_s = 1",
        "",
        "[web]",
        *(f"{k} = {json.dumps(v)}" for k, v in web.items()),
    ]
    for dev, table in (devices or AGENT_DEVICES).items():
        lines += ["", f"[devices.{dev}]", 'driver = "sim"             # simulated']
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def foa(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``foa ARGS`` as a user runs it."""
    return subprocess.run(
        [*FOA, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env()
    )


def foa_json(*args: str, cwd: Path) -> Any:
    out = foa(*args, "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _heartbeat(db: Path) -> float:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'heartbeat'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0.0
    return float(row[0]) if row else 0.0


def _wait(
    what: str, check: Callable[[], Any], timeout: float, proc: subprocess.Popen[bytes]
) -> Any:
    """:func:`tests.waiting.wait_for`, failing at once if the daemon exits meanwhile."""

    def alive_and_checked() -> Any:
        if proc.poll() is not None:
            raise RuntimeError(f"foa run exited ({proc.returncode}) while waiting for {what}")
        return check()

    return wait_for(alive_and_checked, timeout, what, step=0.1)


@contextmanager
def _daemon(work: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    with (work / "foa.log").open("ab") as log:
        proc = subprocess.Popen(
            [*FOA, "run", "-c", "foa.toml", *args],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def run_agent(
    work: Path,
    *,
    broker: Mosquitto | None = None,
    agent: str = "house-7",
    web: dict[str, Any] | None = None,
    warm_up_s: float = 4.0,
    password: str | None = None,
) -> Iterator[Running]:
    """An agent with simulated devices serving its page, on data made by a real run.

    First ``foa run`` races through ``warm_up_s`` wall seconds at 3600 times real speed
    (hours of readings, offers and schedules, answered by :class:`FmanPeer`), then stops;
    then it runs on at real speed from just after a slot boundary, so that nothing but the
    outbox changes for the next 15 minutes while the pages are looked at. The page listens on
    a free port, found in ``foa status --json``."""
    work.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if broker is None:
            broker = stack.enter_context(Mosquitto(workdir=work / "broker"))
        web_table: dict[str, Any] = {"enabled": True, "port": 0, **(web or {})}
        if password is not None:
            secret = work / "web-password"
            secret.write_text(password + "\n")
            secret.chmod(0o600)
            web_table["password_file"] = "web-password"
        write_agent_config(work / "foa.toml", agent=agent, broker_url=broker.url, web=web_table)
        peer = FmanPeer(broker, agent)
        stack.callback(peer.close)
        start = T0
        if warm_up_s > 0:
            with _daemon(work, "--sim-start", str(T0), "--speed", "3600") as proc:
                target = T0 + warm_up_s * 3600
                _wait("the warm-up", lambda: _heartbeat(work / "foa.db") >= target, 60, proc)
            start = int(_heartbeat(work / "foa.db")) // 900 * 900 + 900
        proc = stack.enter_context(
            _daemon(
                work, "--sim-start", str(start + 5), "--speed", "1", "--anchor", str(time.time())
            )
        )

        def address() -> str:
            out = foa("status", "-c", "foa.toml", "--json", cwd=work)
            return json.loads(out.stdout)["web"] if out.returncode == 0 else ""  # no store yet

        base = _wait("the page's address", address, 60, proc)
        if password is not None:
            base = base.replace("0.0.0.0", "127.0.0.1")

        def login(page: Any) -> None:
            page.goto(base + "login")
            page.fill("#password", password)
            page.click("#login")
            page.wait_for_url(base)

        yield Running(
            base_url=base,
            login=login if password is not None else None,
            info={"work": work, "config": work / "foa.toml", "agent": agent, "proc": proc},
        )


def _agent_site(work: Path) -> AbstractContextManager[Running]:
    return run_agent(work, warm_up_s=8.0)


# -- FMAN's operator dashboard ------------------------------------------------------------------

ATP = [sys.executable, "-c", "from cloud.cli import main; main()"]
#: the accounts of the dashboard's tests: name -> (role, password)
FMAN_USERS = {"olga": ("operator", "operator secret 1"), "vic": ("viewer", "viewer secret 1")}
#: the settled month of the short run
FMAN_PERIOD = "2026-01"

FMAN_PAGES = (
    PageSpec("portfolio", "/", "#portfolio-chart svg"),
    PageSpec("agents", "/agents", "#agents"),
    PageSpec("offers", "/offers", "#offers"),
    PageSpec("counters", "/counters", "#counters"),
    PageSpec("settlement", "/settlement", "#kpis"),
    PageSpec("markets", "/markets", "#markets-none"),
    PageSpec("accounts", "/accounts", "#accounts"),
)


def atp(*args: str, cwd: Path, stdin: str | None = None, timeout: float = 60) -> Any:
    """``atp ARGS`` as a user runs it."""
    return subprocess.run(
        [*ATP, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env(),
        input=stdin,
    )  # fmt: skip


def atp_json(*args: str, cwd: Path) -> Any:
    out = atp(*args, "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def fman_store(work: Path) -> Path:
    """A store made by a short real run: ``atp demo`` (Mosquitto, an FMAN worker and a fleet
    of two simulated agents through a day at 14,400 times real speed), then ``atp settle`` of
    its month. The path of the store."""
    work.mkdir(parents=True, exist_ok=True)
    demo = atp(
        "demo", "--agents", "2", "--speed", "14400", "--sim-start", "2026-01-01",
        "--out", str(work / "demo"), cwd=work, timeout=240,
    )  # fmt: skip
    db = work / "demo" / "fman.db"
    if demo.returncode != 0:
        raise RuntimeError(f"atp demo failed: {demo.stdout}{demo.stderr}")
    settle = atp(
        "settle", "--period", FMAN_PERIOD, "--store", str(db), "--now", "2026-02-05", cwd=work
    )
    if settle.returncode != 0:
        raise RuntimeError(f"atp settle failed: {settle.stderr}")
    return db


@contextmanager
def run_fman_web(
    work: Path,
    *,
    db: Path,
    refresh_s: int = 1,
    users: dict[str, tuple[str, str]] | None = None,
    extra: tuple[str, ...] = (),
) -> Iterator[Running]:
    """``atp web`` on ``db`` with the accounts of ``users`` (added by ``atp web user add``),
    on a free loopback port; logs in as the first account."""
    users = FMAN_USERS if users is None else users
    accounts = work / "web-users"
    for name, (role, password) in users.items():
        out = atp(
            "web", "user", "add", name, "--role", role, "--users", str(accounts),
            "--password-stdin", cwd=work, stdin=password + "\n",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
    log = (work / "web.log").open("w+")
    proc = subprocess.Popen(
        [*ATP, "web", "--store", str(db), "--users", str(accounts), "--port", "0",
         "--refresh", str(refresh_s), *extra],
        cwd=work, stdout=subprocess.PIPE, stderr=log, text=True, env=_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("atp web: http://"):
            log.seek(0)
            raise RuntimeError(f"atp web did not start: {line}{log.read()}")
        base = line.split()[2]
        first = next(iter(users), None)

        def login(page: Any, name: str | None = first) -> None:
            assert name is not None
            page.goto(base + "login")
            page.fill("#name", name)
            page.fill("#password", users[name][1])
            page.click("#login")
            page.wait_for_url(base)

        yield Running(
            base_url=base,
            login=login if users else None,
            info={"work": work, "db": db, "accounts": accounts, "proc": proc},
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def _fman_site(work: Path) -> Iterator[Running]:
    with run_fman_web(work, db=fman_store(work)) as running:
        yield running


#: Every site with pages: the page tests and ``make screens`` take them from here.
SITES: dict[str, Site] = {
    "agent": Site(name="agent", pages=AGENT_PAGES, start=_agent_site),
    "fman": Site(name="fman", pages=FMAN_PAGES, start=_fman_site),
}
