"""The worker's request thread: agents' requests off the ingest path, answered one by one.

Requests have their own queue, thread and store connection, so a flood of them delays other
requests (and is cut by a per-agent token bucket) but never the offers, withdrawals and meter
batches the ingest thread commits. A request is acknowledged to the broker once its response
is handed over: an agent that hears nothing asks again, and every method but ``measurement``
only reads (``measurement`` carries a message id, so the ingest log makes a repeat a no-op).

What cannot be answered, because the request names no response topic of the requesting
agent, is logged and dropped with a counter: there is nobody to tell.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from protocol import DecodeError, Request, Response, decode, encode, to_builtins, topics
from protocol._request import MeasurementParams

from ..clock import Clock
from ._errors import StoreError
from .config import Config
from .counters import Counters
from .ingest import Incoming, Ingest
from .requests import RateLimit, answer, error, response_bytes
from .store import Store

log = logging.getLogger(__name__)

#: Requests waiting beyond this many are dropped (counted): a backlog nobody waits for.
MAX_QUEUED = 10_000

Publish = Callable[[str, bytes, bytes | None], bool]


def request_of(topic: str) -> tuple[str, str] | None:
    """``(agent, method)`` of a request topic, else ``None``."""
    try:
        t = topics.parse(topic)
    except ValueError:
        return None
    method = t.method
    return None if t.scope != "a" or method is None else (t.owner, method)


def reply_ok(agent: str, response_topic: str) -> bool:
    """Whether ``response_topic`` is one of ``agent``'s own ``resp/{tag}`` topics."""
    try:
        t = topics.parse(response_topic)
    except ValueError:
        return False
    return t.scope == "a" and t.owner == agent and t.channel.startswith("resp/")


class Responder:
    """Answers requests on its own thread; :meth:`put` is called from the network thread."""

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        open_store: Callable[[], Store],
        publish: Publish,
        ack: Callable[[Incoming], None],
        stats: Counters,
        worker: str,
    ) -> None:
        self.config = config
        self.clock = clock
        self._open_store = open_store
        self._publish = publish
        self._ack = ack
        self.stats = stats
        self.worker = worker
        w = config.worker
        self.limit = RateLimit(rate_per_s=w.requests_per_s, burst=float(w.requests_burst))
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._ingest: Ingest | None = None

    def put(self, m: Incoming) -> None:
        if self._queue.qsize() >= MAX_QUEUED:
            self.stats.add("requests.dropped.backlog")
            self._ack(m)
            return
        self._queue.put(m)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def run(self, stop: threading.Event) -> None:
        store = self._open_store()
        self._ingest = Ingest(
            store=store, config=self.config, clock=self.clock, worker=self.worker, stats=self.stats
        )
        try:
            while not stop.is_set():
                try:
                    m = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    self.handle(m, store)
                except Exception:
                    log.exception("request on %s could not be answered; dropped", m.topic[:200])
                    self.stats.add("requests.failed")
                self._ack(m)
        finally:
            store.close()

    def handle(self, m: Incoming, store: Store) -> None:
        where = request_of(m.topic)
        if where is None:
            self.stats.add("requests.malformed.topic")
            return
        agent, method = where
        if not m.response_topic or not reply_ok(agent, m.response_topic):
            self.stats.add("requests.dropped.no_response_topic")
            log.warning(
                "request %s of agent %s names no response topic of its own (%r); dropped",
                method,
                agent,
                m.response_topic[:200],
            )
            return
        now = self.clock.now()
        if not self.limit.allow(agent, time.monotonic()):
            self.stats.add("requests.rate_limited")
            retry = self.limit.retry_after(agent)
            self._reply(m, error(f"rate limited: retry in {retry:.1f} s"), now)
            return
        try:
            body = decode(m.payload, expect="request").body
        except DecodeError as exc:
            self.stats.add("requests.bad")
            self._reply(m, error(f"not a request: {exc}"), now)
            return
        assert isinstance(body, Request)
        if body.method != method:
            self.stats.add("requests.bad")
            self._reply(m, error(f"method: {body.method!r} is not the topic's {method!r}"), now)
            return
        try:
            response = answer(
                method, body.params, agent=agent, reader=store, now=int(now), submit=self._submit
            )
        except StoreError as exc:
            log.error("store error answering %s of %s: %s", method, agent, exc)
            response = error("the store is unavailable; ask again later")
        self.stats.add("requests.ok" if response.status == "ok" else "requests.bad")
        self._reply(m, response, now)

    def _reply(self, m: Incoming, response: Response, now: float) -> None:
        self._publish(m.response_topic, response_bytes(response, ts=int(now)), m.correlation)

    def _submit(self, agent: str, p: object) -> object:
        """A ``measurement`` through the same ingest as a meter batch; its ack or reject."""
        assert isinstance(p, MeasurementParams) and self._ingest is not None
        payload = encode(p.batch, ts=int(self.clock.now()), msg_id=p.msg_id)
        answers = self._ingest.process([Incoming(topics.agent_topic(agent, "meter"), payload)])
        for a in answers:
            return to_builtins(decode(a.payload, check=False).body)
        return None
