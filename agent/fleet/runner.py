"""Run N complete agents in one process: each its own MQTT session and its own SQLite store.

An agent of the fleet is the same :class:`~agent.runtime.AgentRuntime` that ``foa run`` starts,
built from the same checked configuration (:func:`agent.config.parse_config`), with simulated
devices from :mod:`agent.fleet.mix`. They share one event loop, one simulated clock and one
TLS context; nothing else. Stores use ``durability = "normal"`` (no fsync per commit: a
killed process still loses nothing, an OS crash may lose the last commits), because a
thousand fsyncing databases would measure the disk, not the agents.

The simulated clock reads ``start`` at wall-clock time ``anchor``: another process (FMAN in
the demo) given the same ``start``, ``anchor`` and ``speed`` reads the same simulated time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import resource
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.clock import SimClock
from agent.config import AgentConfig, parse_config
from agent.fleet.mix import direct, grid_node, site
from agent.plugins import build_devices
from agent.runtime import AgentRuntime
from agent.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FleetSettings:
    agents: int
    broker_url: str
    directory: Path
    speed: float = 60.0
    seed: int = 1
    start: float
    #: Wall-clock time at which the simulated time is ``start``; ``None``: when the fleet
    #: has prepared its stores and starts its first agent.
    anchor: float | None = None
    duration: float | None = None
    prefix: str = "sim"
    control_interval_s: int = 300
    resolution_s: int = 900
    meter_batch_slots: int = 1
    ca_file: Path | None = None
    #: Wall seconds over which the agents start, so they do not all connect at once.
    ramp_s: float = 5.0
    #: Wall seconds a clean stop waits for FMAN to answer what the agents still hold.
    drain_s: float = 10.0
    #: The share of households trading in direct mode, at asks (:func:`agent.fleet.mix.site`).
    direct_share: float = 0.0
    #: Generator keys for every device of the agents at a grid node (node -> key -> value).
    node_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def until(self) -> float | None:
        return None if self.duration is None else self.start + self.duration

    def agent_id(self, index: int) -> str:
        return f"{self.prefix}-{index:04d}"


@dataclass
class FleetStats:
    """Totals over the fleet at one moment."""

    sim_time: float = 0.0
    agents: int = 0
    started: int = 0
    connected: int = 0
    #: The most agents connected at once (at the end they have all said goodbye).
    connected_peak: int = 0
    failed: int = 0
    devices: int = 0
    offers: int = 0
    updates: int = 0
    withdrawals: int = 0
    schedules_taken: int = 0
    schedules_rejected: int = 0
    readings: int = 0
    #: energy registers found reset (a restarted device) or wrapped, not taken for energy
    meter_resets: int = 0
    commands: int = 0
    sent: int = 0
    #: of ``sent``, messages sent again because FMAN had not answered them
    resent: int = 0
    acked: int = 0
    received: int = 0
    outbox: int = 0
    #: messages the broker acknowledged that FMAN has not answered yet
    unanswered: int = 0
    faults: int = 0
    errors: int = 0
    #: How late control steps started once all agents ran, in simulated seconds (worst, and
    #: mean per step).
    lag_max_s: float = 0.0
    lag_mean_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    offers_by_state: dict[str, int] = field(default_factory=dict)


class Fleet:
    """Builds and runs the agents of :class:`FleetSettings`."""

    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self.anchor = settings.anchor
        self.clock = self._clock()
        self.runtimes: list[AgentRuntime] = []
        self._failed = 0
        self._peak = 0
        self._tls: ssl.SSLContext | None = None
        self._wall0 = time.monotonic()
        self._cpu0 = _cpu_s()

    def _clock(self) -> SimClock:
        anchor = self.anchor if self.anchor is not None else time.time()
        s = self.settings
        return SimClock.anchored(start=s.start, speed=s.speed, anchor=anchor)

    def config(self, index: int) -> AgentConfig:
        """Agent ``index``'s configuration, checked exactly as ``foa run`` checks a file."""
        s = self.settings
        broker: dict[str, object] = {
            "url": s.broker_url,
            "allow_plaintext": True,  # a simulator, pointed at a test broker
            "backoff_initial_s": 0.5,
            "backoff_max_s": 30.0,
            "keepalive_s": 60,
        }
        if s.ca_file is not None:
            broker["ca_file"] = str(s.ca_file)
        data = {
            "agent": {
                "id": s.agent_id(index),
                "store": str(s.directory / f"{s.agent_id(index)}.db"),
                "resolution_s": s.resolution_s,
                "control_interval_s": s.control_interval_s,
                "meter_batch_slots": s.meter_batch_slots,
                "grid_node": grid_node(index),
                "durability": "normal",
                "health_interval_s": 3600,
                "drain_s": s.drain_s,
                "log_level": "warning",
            },
            "broker": broker,
            "devices": site(s.seed, index, direct_share=s.direct_share, node_params=s.node_params),
        }
        return parse_config(data, base=s.directory, source=f"fleet agent {index}")

    def check(self) -> None:
        """Check, as ``foa config check`` does (devices built too), the first agent and the
        first of each kind the settings make different: a direct-mode household, an agent at
        each node with generator keys. Raises :class:`~agent.errors.ConfigErrors`."""
        s = self.settings
        firsts = [
            *(lambda i, node=node: grid_node(i) == node for node in s.node_params),
            *([lambda i: direct(s.seed, i) < s.direct_share] if s.direct_share > 0 else []),
        ]
        picks = {0} | {next((i for i in range(s.agents) if f(i)), 0) for f in firsts}
        for i in sorted(picks):
            build_devices(self.config(i).devices, clock=self.clock)

    def _runtime(self, index: int) -> AgentRuntime:
        cfg = self.config(index)
        if self._tls is None and cfg.broker.tls:
            self._tls = cfg.broker.ssl_context()
        rng = random.Random(f"{self.settings.seed}:{index}:net")
        steps = cfg.resolution_s // cfg.control_interval_s
        return AgentRuntime(
            config=cfg,
            clock=self.clock,
            tls=self._tls,
            rng=rng,
            uplink_window=10,
            offer_phase_s=rng.randrange(steps) * cfg.control_interval_s,
        )

    async def run(
        self,
        *,
        stop: asyncio.Event,
        on_progress: Callable[[FleetStats], None] | None = None,
        every_s: float = 1.0,
    ) -> FleetStats:
        """Start the agents (spread over ``ramp_s``), run them until ``stop`` is set or the
        simulated ``duration`` has passed, stop them all cleanly; the final totals."""
        s = self.settings
        _raise_fd_limit(4 * s.agents + 256)
        await self.prepare()
        if self.anchor is None:  # the simulated time starts now, with the first agent
            self.anchor = time.time()
            self.clock = self._clock()
        self._wall0 = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        reporter = asyncio.create_task(self._report(on_progress, every_s)) if on_progress else None
        try:
            for i in range(s.agents):
                if stop.is_set() or (s.until is not None and self.clock.now() >= s.until):
                    break
                runtime = self._runtime(i)
                self.runtimes.append(runtime)
                tasks.append(asyncio.create_task(self._run_one(runtime, stop), name=f"agent-{i}"))
                delay = (i + 1) * s.ramp_s / s.agents - (time.monotonic() - self._wall0)
                await asyncio.sleep(max(0.0, delay))
            # lateness counts from here: starting agents blocks the loop now and then
            await self.clock.sleep(s.control_interval_s)
            _freeze_heap()
            for runtime in self.runtimes:
                runtime.reset_lag()
            await asyncio.gather(*tasks)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
        return self.stats()

    async def prepare(self) -> None:
        """Create the agents' databases before any agent runs, on worker threads.

        Creating a SQLite file in WAL mode costs tens of milliseconds of file-system work
        (reopening it, a few); done on the loop while other agents run, it would delay them."""
        s = self.settings
        s.directory.mkdir(parents=True, exist_ok=True)
        paths = [s.directory / f"{s.agent_id(i)}.db" for i in range(s.agents)]
        missing = [p for p in paths if not p.exists()]

        def create(path: Path) -> None:
            Store(path=path, durability="normal").close()

        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="fleet-store") as pool:
            await asyncio.gather(
                *(asyncio.get_running_loop().run_in_executor(pool, create, p) for p in missing)
            )

    async def _run_one(self, runtime: AgentRuntime, stop: asyncio.Event) -> None:
        try:
            await runtime.run(stop=stop, until=self.settings.until)
        except Exception:
            self._failed += 1
            log.exception("agent %s stopped", runtime.config.id)

    async def _report(self, on_progress: Callable[[FleetStats], None], every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            on_progress(self.stats())

    def stats(self) -> FleetStats:
        st = FleetStats(
            sim_time=self.clock.now(),
            agents=self.settings.agents,
            started=len(self.runtimes),
            failed=self._failed,
            wall_s=time.monotonic() - self._wall0,
            cpu_s=_cpu_s() - self._cpu0,
            rss_mb=_rss_mb(),
        )
        steps = 0
        for rt in self.runtimes:
            st.devices += len(rt.devices)
            st.errors += rt.errors
            st.lag_max_s = max(st.lag_max_s, rt.lag_max_s)
            st.lag_mean_s += rt.lag_total_s
            steps += rt.lag_steps
            if rt.uplink is not None:
                up = rt.uplink.stats
                st.connected += rt.uplink.connected.is_set()
                st.sent += up.sent
                st.resent += up.resent
                st.acked += up.acked
                st.received += up.received
            if rt.core is not None:
                c = rt.core.stats
                st.offers += c.offers
                st.updates += c.updates
                st.withdrawals += c.withdrawals
                st.schedules_taken += c.schedules_taken
                st.schedules_rejected += c.schedules_rejected
                for state, n in rt.core.counts().items():
                    st.offers_by_state[state] = st.offers_by_state.get(state, 0) + n
            if rt.ems is not None:
                st.readings += rt.ems.readings_made
                st.meter_resets += rt.ems.meter_resets + rt.ems.meter_wraps
                st.commands += rt.ems.commands_sent
                st.faults += len(rt.ems.faults())
            if rt.store is not None:
                with contextlib.suppress(Exception):
                    st.outbox += rt.store.outbox_size()
                    st.unanswered += rt.store.outbox_awaiting()
        st.lag_mean_s = st.lag_mean_s / steps if steps else 0.0
        self._peak = st.connected_peak = max(self._peak, st.connected)
        return st


def _freeze_heap() -> None:
    """Take what every agent built at start (configurations, devices, stores, sessions) out of
    the garbage collector's sight.

    A full collection walks every tracked object: with a few hundred agents in one process
    that took up to 185 ms, a stall of every agent at once (three simulated minutes at
    900x, measured with ``gc.callbacks``). Objects alive now live as long as the fleet, so the
    collector need not walk them again (``gc.freeze``)."""
    gc.collect()
    gc.freeze()


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _rss_mb() -> float:
    """Resident memory now (Linux ``VmRSS``), else the peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _raise_fd_limit(wanted: int) -> None:
    """Each agent holds a socket and three SQLite file handles."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            log.warning("open-file limit %d is below the %d the fleet may need", new, wanted)
