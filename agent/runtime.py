"""One running agent: store, devices, core, EMS and uplink wired together on one event loop.

The main loop runs one step per ``control_interval_s`` of the agent's clock, aligned to the
slot grid (so a step falls on every slot boundary), plus the exact moments a duty cycle ends:

1. the EMS reads every device and, at a boundary, closes the slot's readings;
2. the core applies the deadlines (the default into force, executing, executed, expired);
3. at a boundary, the generators are asked for offers (new, updated, withdrawn);
4. the EMS drives the devices along the plans in force.

The uplink runs beside it as its own task: everything the loop produces is in the store's
outbox first, so the loop never waits for the network and keeps working while the broker is
away. A clean stop gives FMAN up to ``drain_s`` wall seconds to answer what is still out.
``READY=1`` goes to systemd once the store is open and every device has been probed;
the watchdog is kicked from another task of the same loop.

Several agents can share one event loop (the fleet simulator runs a thousand).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import random
import ssl
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from agent.clock import Clock
from agent.config import AgentConfig
from agent.core import Core, MarketRoute, OfferSource
from agent.ems import Ems
from agent.errors import StoreError
from agent.generators._common import Pricing
from agent.plugins import Device, build_devices
from agent.store import Store
from agent.systemd import Notifier
from agent.uplink import BrokerSettings, Uplink
from protocol import topics

if TYPE_CHECKING:
    from agent.web import WebServer

log = logging.getLogger(__name__)


async def _settle(task: asyncio.Task[None]) -> None:
    """Wait for a cancelled task to finish; its own errors were reported where they arose."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


@functools.cache
def agent_version() -> str:
    try:
        return version("atp-flex")
    except PackageNotFoundError:
        return "0"


class AgentRuntime:
    """Build with a checked config and a clock; ``await run()`` until stopped."""

    def __init__(
        self,
        *,
        config: AgentConfig,
        clock: Clock,
        devices: list[Device] | None = None,
        tls: ssl.SSLContext | None = None,
        notifier: Notifier | None = None,
        rng: random.Random | None = None,
        uplink_window: int = 20,
        offer_phase_s: int = 0,
    ) -> None:
        self.config = config
        self.clock = clock
        self.devices = (
            devices if devices is not None else build_devices(config.devices, clock=clock)
        )
        self.tls = tls if tls is not None else config.broker.ssl_context()
        self.notifier = notifier or Notifier(environ={})
        self.rng = rng or random.Random()
        self.uplink_window = uplink_window
        #: Offers are refreshed this long after each slot begins (a multiple of the control
        #: interval). The fleet spreads its agents' generator work over the slot this way,
        #: as real agents are; one agent has no reason to wait.
        self.offer_phase_s = offer_phase_s
        self.version = agent_version()
        self.started_wall = time.monotonic()
        self.ticks = 0
        #: monotonic time the main loop's current step began; None while it sleeps
        self._step_began: float | None = None
        self.errors = 0
        self.lag_max_s: float
        self.lag_total_s: float
        self.lag_steps: int
        self.reset_lag()

        self.store: Store | None = None
        self.core: Core | None = None
        self.ems: Ems | None = None
        self.uplink: Uplink | None = None
        #: the local page ([web] of the config), when enabled and running
        self.web: WebServer | None = None

    # -- start and stop -------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        now = self.clock.now()
        self.store = store = Store(
            path=cfg.store,
            durability=cfg.durability,
            retention_s=int(cfg.retention_days * 86_400),
            cache_kib=2048 if cfg.durability == "full" else 256,
        )
        store.set_many(
            {
                "agent": cfg.id,
                "pid": os.getpid(),
                "started": int(now),
                "connected": 0,
                "disconnected_since": int(now),
            }
        )
        self.uplink = Uplink(
            agent_id=cfg.id,
            settings=BrokerSettings(
                host=cfg.broker.host,
                port=cfg.broker.port,
                tls=self.tls,
                username=cfg.broker.username,
                password=cfg.broker.password.reveal() if cfg.broker.password else None,
                keepalive_s=cfg.broker.keepalive_s,
                session_expiry_s=cfg.broker.session_expiry_s,
                backoff_initial_s=cfg.broker.backoff_initial_s,
                backoff_max_s=cfg.broker.backoff_max_s,
                answer_timeout_s=cfg.broker.answer_timeout_s,
                answer_backoff_max_s=cfg.broker.answer_backoff_max_s,
                max_unanswered=cfg.broker.max_unanswered,
            ),
            store=store,
            clock=self.clock,
            handler=self._inbound,
            health=self.health,
            devices=tuple(d.id for d in self.devices),
            subscriptions=(
                (topics.market_answer_topic(cfg.market.id, cfg.market.account),)
                if cfg.market is not None
                else ()
            ),
            version=self.version,
            window=self.uplink_window,
            rng=self.rng,
        )
        self.core = Core(
            agent_id=cfg.id,
            store=store,
            clock=self.clock,
            sources=[
                OfferSource(
                    device=d.id,
                    generator=d.generator,
                    grid_node=d.config.grid_node,
                    mode=d.config.trading_mode,
                    market=self._route(d),
                )
                for d in self.devices
                if d.generator is not None
            ],
            resolution_s=cfg.resolution_s,
            on_outbox=self.uplink.kick,
        )
        self.ems = Ems(
            agent_id=cfg.id,
            store=store,
            devices=self.devices,
            resolution_s=cfg.resolution_s,
            meter_batch_slots=cfg.meter_batch_slots,
            offer_at=self.core.offer_at,
            on_outbox=self.uplink.kick,
        )
        gone = {o.device for o, _, _ in self.core.tracked().values()} - {d.id for d in self.devices}
        if gone:
            self.core.withdraw_devices(gone, int(now), "device removed from the configuration")
        await self.ems.open(now)
        faults = self.ems.faults()
        self.notifier.ready(
            f"{len(self.devices)} devices, {len(faults)} not answering" if faults else "running"
        )
        log.info(
            "%s: started with %d devices (%s) against %s",
            cfg.id,
            len(self.devices),
            ", ".join(d.id for d in self.devices),
            cfg.broker.url,
        )

    def _route(self, d: Device) -> MarketRoute | None:
        """Where ``d``'s offers are sold: the ``[market]`` of the config for a device in
        direct mode, at the asks its generator priced (exactly, up and down)."""
        market = self.config.market
        if market is None or d.config.trading_mode != "direct":
            return None
        pricing = getattr(d.generator, "pricing", None)
        asks = None
        if isinstance(pricing, Pricing) and pricing.ask_up_eur_per_kwh is not None:
            assert pricing.ask_down_eur_per_kwh is not None
            asks = (pricing.ask_up_eur_per_kwh, pricing.ask_down_eur_per_kwh)
        return MarketRoute(market=market.id, account=market.account, asks=asks)

    def _inbound(self, topic: str, payload: bytes) -> None:
        assert self.core is not None
        self.core.handle(topic, payload)

    async def run(self, *, stop: asyncio.Event | None = None, until: float | None = None) -> None:
        """Start, run until ``stop`` is set or the clock reaches ``until``, then shut down:
        devices to their safe state, ``offline`` to the broker, the store closed."""
        await self.start()
        assert self.uplink is not None
        name = self.config.id
        main = asyncio.create_task(self._loop(until), name=f"{name}-loop")
        uplink = asyncio.create_task(self.uplink.run(), name=f"{name}-uplink")
        watchdog = asyncio.create_task(
            self.notifier.watchdog(self.stuck_for, self.config.step_timeout_s),
            name=f"{name}-watchdog",
        )
        waiting: set[asyncio.Task[object]] = {main, uplink}
        if stop is not None:
            waiting.add(asyncio.create_task(stop.wait(), name=f"{name}-stop"))
        helpers = [watchdog, *(waiting - {main, uplink})]
        try:
            await self._start_web()
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in done & {main, uplink}:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc
        finally:
            self.notifier.stopping()
            if self.web is not None:
                with contextlib.suppress(Exception):
                    await self.web.close()
                self.web = None
            for task in (main, *helpers):
                task.cancel()
            await _settle(main)
            if self.ems is not None:
                await self.ems.shutdown()
            if self.config.drain_s > 0 and not uplink.done():
                # nothing new is made any more: let FMAN answer what is out (what it does
                # not answer in time stays in the outbox and goes again after the next start)
                with contextlib.suppress(Exception):
                    await self.uplink.drain(self.config.drain_s)
            with contextlib.suppress(Exception):
                await self.uplink.close()  # "offline", then a clean DISCONNECT
            uplink.cancel()
            await _settle(uplink)
            if self.store is not None:
                # closing folds the WAL into the database (file-system work): off the loop,
                # which other agents of a fleet may share
                store, self.store = self.store, None
                await asyncio.to_thread(store.close)

    async def _start_web(self) -> None:
        """The local page, if the config enables it. It is imported only then (an agent
        without it loads none of its code), and a page that cannot listen (the port taken)
        is logged and left off: the agent's work does not depend on it."""
        if not self.config.web.enabled:
            return
        from agent.web import WebServer

        web = WebServer(runtime=self, config=self.config.web)
        try:
            await web.start()
        except OSError as exc:
            log.error(
                "%s: local page not started: cannot listen on %s port %d: %s",
                self.config.id,
                self.config.web.listen,
                self.config.web.port,
                exc.strerror or exc,
            )
            return
        self.web = web

    # -- the main loop --------------------------------------------------------------------------

    async def _loop(self, until: float | None) -> None:
        cfg = self.config
        assert self.core and self.ems and self.store and self.uplink
        interval = cfg.control_interval_s
        last_slot: int | None = None
        next_health = -math.inf
        next_purge = -math.inf
        while True:
            now = self.clock.now()
            if until is not None and now >= until:
                return
            wake: float | None = None
            self._step_began = time.monotonic()
            try:
                t = int(now)
                await self.ems.sample(now)
                self.core.advance(t)
                slot = t // cfg.resolution_s * cfg.resolution_s
                if slot != last_slot and t >= slot + self.offer_phase_s:
                    self.core.refresh(t, self.ems.measurements())
                    last_slot = slot
                if now >= next_purge:
                    self.store.purge(t)
                    next_purge = now + 3600 + self.offer_phase_s
                wake = await self.ems.control(now, self.core.plans(now))
                if now >= next_health:
                    self.uplink.publish_status()
                    next_health = now + cfg.health_interval_s
                self.ticks += 1
            except StoreError:
                raise  # nothing is safe without the store: stop, let systemd restart us
            except Exception:
                self.errors += 1
                log.exception("%s: step at %d failed", cfg.id, int(now))
            self._step_began = None
            target: float = (math.floor(now / interval) + 1) * interval
            if wake is not None:
                target = min(target, wake)
            await self.clock.sleep(target - self.clock.now())
            if until is not None and self.clock.now() >= until:
                return
            # how late the step starts, in the agent's time: a loaded event loop shows here
            lag = max(0.0, self.clock.now() - target)
            self.lag_max_s = max(self.lag_max_s, lag)
            self.lag_total_s += lag
            self.lag_steps += 1

    def stuck_for(self) -> float:
        """Wall seconds the main loop has spent in its current step (0 while it sleeps)."""
        began = self._step_began
        return 0.0 if began is None else time.monotonic() - began

    def reset_lag(self) -> None:
        """Start measuring how late steps start afresh (the fleet does, once all have started)."""
        self.lag_max_s = 0.0
        self.lag_total_s = 0.0
        self.lag_steps = 0

    def health(self) -> dict[str, int | float | str | bool]:
        """The summary in the retained ``online`` status."""
        out: dict[str, int | float | str | bool] = {"devices": len(self.devices)}
        if self.ems is not None:
            out["faults"] = len(self.ems.faults())
            out["readings"] = self.ems.readings_made
        if self.store is not None:
            out["outbox"] = self.store.outbox_size()
            out["unanswered"] = self.store.outbox_awaiting()
        if self.core is not None:
            for state, n in sorted(self.core.counts().items()):
                out[f"offers_{state}"] = n
        out["errors"] = self.errors
        out["uptime_s"] = int(time.monotonic() - self.started_wall)
        return out
