"""An FMAN worker process: ingest, and (while it holds the planner lease) the planning cycle.

Threads, and why each exists:

- paho's network thread receives messages and puts them on a queue, nothing else, so the
  socket is read while a batch is being committed;
- the ingest thread takes everything queued (up to ``batch_max``), decides and commits it in
  one transaction, then acknowledges each message to the broker and publishes the answers;
- the request thread answers agents' requests (:mod:`.responder`) on its own store
  connection, rate-limited per agent, so that no request waits behind a batch or delays one;
- the cycle thread runs the planning cycle, the execution check and schedule delivery, but
  only while this worker holds the ``planner`` lease in the store: every worker ingests, one
  plans. If the planning worker dies, another takes the lease when it expires.

Every worker of a group must open the same store: one SQLite file for the workers of one host,
or one PostgreSQL database for workers on several hosts (:mod:`.store` says why and how).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from protocol import topics

from ..clock import Clock
from . import refusals
from ._errors import StoreError
from .bus import Bus
from .config import Config
from .counters import Counters
from .ingest import Incoming, Ingest, series_topics
from .responder import Responder
from .store import Store, open_store
from .trader import MarketInbox, is_market_topic
from .trader import subscriptions as market_subscriptions

log = logging.getLogger(__name__)

#: Channels every worker of the group shares.
SHARED_CHANNELS = ("offer", "offer/delete", "meter", "status", "schedule/ack")
#: How long a fresh worker also listens to the retained statuses (not delivered to shared
#: subscriptions) to learn which agents are online.
STATUS_SWEEP_S = 2.0


def subscriptions(group: str) -> list[str]:
    return [topics.shared(group, topics.all_agents(ch)) for ch in (*SHARED_CHANNELS, "req/#")]


def _is_request(topic: str) -> bool:
    return topic.startswith(REQUEST_PREFIX) and "/req/" in topic[len(REQUEST_PREFIX) :]


REQUEST_PREFIX = topics.PREFIX + "/a/"


class Worker:
    """Runs until :meth:`stop`. ``cycle_factory`` builds the planning cycle (given the
    worker's own store connection and bus); ``None`` makes a pure ingest worker."""

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        cycle_factory: Callable[[Worker, Store], Any] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.id = config.worker.id
        self.stats = Counters()
        #: the counters as the last refusal summary left them
        self._refusals_said: dict[str, float] = {}
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self.store = self._open_store()
        self.ingest = Ingest(
            store=self.store, config=config, clock=clock, worker=self.id, stats=self.stats
        )
        self.bus = Bus(
            url=config.worker.broker,
            client_id=self.id,
            subscriptions=subscriptions(config.worker.group)
            + list(series_topics(config))
            + market_subscriptions(config),
            on_message=self._route,
            session_expiry_s=config.worker.session_expiry_s,
            credentials_file=config.worker.credentials_file,
            ca_file=config.worker.ca_file,
        )
        self.responder = Responder(
            config=config,
            clock=clock,
            open_store=self._open_store,
            publish=self._publish_response,
            ack=lambda m: self.bus.ack(m.mid, m.qos),
            stats=self.stats,
            worker=self.id,
        )
        #: market messages (gate calendars, answers to bids, results): see :mod:`.trader`
        self.market = (
            MarketInbox(
                config=config,
                open_store=self._open_store,
                ack=lambda m: self.bus.ack(m.mid, m.qos),
                stats=self.stats,
            )
            if config.market
            else None
        )
        self._cycle_factory = cycle_factory
        self._threads: list[threading.Thread] = []
        self.ready = threading.Event()

    def _open_store(self) -> Store:
        return open_store(self.config.worker.store, synchronous=self.config.worker.synchronous)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._ingest_loop, name="fman-ingest", daemon=True),
            threading.Thread(target=self._stats_loop, name="fman-stats", daemon=True),
            threading.Thread(
                target=self.responder.run, args=(self._stop,), name="fman-requests", daemon=True
            ),
        ]
        if self.market is not None:
            self._threads.append(
                threading.Thread(
                    target=self.market.run, args=(self._stop,), name="fman-market", daemon=True
                )
            )
        if self._cycle_factory is not None:
            self._threads.append(
                threading.Thread(target=self._cycle_loop, name="fman-cycle", daemon=True)
            )
        for t in self._threads:
            t.start()
        self.bus.start()
        self._sweep_statuses()
        self.ready.set()
        log.info("worker %s ingesting from %s into %s", self.id, self.bus.url, self.store.where)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self.bus.stop()
        self._flush_stats()
        self.store.close()

    def run(self, stop: threading.Event) -> None:
        """Start, wait for ``stop``, stop."""
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    @property
    def stopping(self) -> threading.Event:
        return self._stop

    def _sweep_statuses(self) -> None:
        filt = topics.all_agents("status")
        self.bus.subscribe_retained(filt)
        timer = threading.Timer(STATUS_SWEEP_S, self.bus.unsubscribe, args=(filt,))
        timer.daemon = True
        timer.start()

    # -- routing (paho's network thread) -------------------------------------------------------

    def _route(self, m: Incoming) -> None:
        if _is_request(m.topic):
            self.responder.put(m)
        elif self.market is not None and is_market_topic(m.topic):
            self.market.put(m)
        else:
            self._queue.put(m)

    def _publish_response(self, topic: str, payload: bytes, correlation: bytes | None) -> bool:
        return self.bus.publish(
            topic, payload, qos=self.config.worker.qos, correlation=correlation, stop=self._stop
        )

    # -- ingest --------------------------------------------------------------------------------

    def _ingest_loop(self) -> None:
        q, limit = self._queue, self.config.worker.batch_max
        while not self._stop.is_set():
            try:
                first = q.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < limit:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            self._handle(batch)

    def _handle(self, batch: list[Incoming]) -> None:
        """Commit, publish the answers, and acknowledge the batch to the broker only once the
        broker has every answer: a crash anywhere before that makes the broker redeliver the
        batch, and the ingest log gives the same answers again."""
        answers = self._process(batch)
        if answers is None:
            return  # stopping with the batch unacknowledged: the broker redelivers it
        self.stats.add("batches")
        self.stats.add("messages", len(batch))
        if not answers:
            self._ack(batch)
            return
        left = [len(answers)]
        lock = threading.Lock()

        def answered() -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self._ack(batch)

        qos = self.config.worker.qos
        for a in answers:
            if not self.bus.publish(a.topic, a.payload, qos=qos, done=answered, stop=self._stop):
                return  # stopping: left unacknowledged, redelivered after the restart

    def _ack(self, batch: list[Incoming]) -> None:
        for m in batch:
            self.bus.ack(m.mid, m.qos)

    def _process(self, batch: list[Incoming]) -> list | None:
        """Commit the batch; on a database error retry until it works or the worker stops.
        A message that breaks the code itself is dropped alone, logged and counted, so one
        poison message cannot block the rest."""
        delay = 0.1
        while not self._stop.is_set():
            try:
                return self.ingest.process(batch)
            except StoreError as exc:
                log.error("store error, retrying in %.1f s: %s", delay, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                if len(batch) == 1:
                    log.exception("message on %s could not be processed; dropped", batch[0].topic)
                    self.stats.add("failed")
                    return []
                out: list = []
                for m in batch:
                    answers = self._process([m])
                    if answers is None:
                        return None
                    out.extend(answers)
                return out
        return None

    # -- counters --------------------------------------------------------------------------------

    def _stats_loop(self) -> None:
        while not self._stop.wait(self.config.worker.stats_interval_s):
            self._flush_stats()

    def _flush_stats(self) -> None:
        try:
            store = getattr(self, "_stats_store", None)
            if store is None:
                store = self._stats_store = self._open_store()
            values = self.stats.snapshot()
            values["queue"] = self._queue.qsize()
            values["requests.queue"] = self.responder.queued
            values["ingest.lock_wait_s"] = round(self.store.lock_wait_s, 3)
            values["ingest.lock_held_s"] = round(self.store.lock_held_s, 3)
            values["alive_at"] = time.time()
            line = refusals.summary(self._refusals_said, values)
            if line:
                log.info(line)
            self._refusals_said = values
            store.put_stats(self.id, values, at=time.time())
        except StoreError as exc:
            log.warning("could not write counters: %s", exc)

    # -- planning ----------------------------------------------------------------------------------

    def _cycle_loop(self) -> None:
        store = self._open_store()
        try:
            assert self._cycle_factory is not None
            cycle = self._cycle_factory(self, store)
            cycle.run(self._stop)
        except Exception:
            log.exception("planning cycle crashed; this worker keeps ingesting")
            self.stats.add("cycle.crashed")
        finally:
            store.close()
