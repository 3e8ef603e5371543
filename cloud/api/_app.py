"""The gateway as a Starlette application over one FMAN store.

Reads answer through :func:`cloud.fman.requests.answer`, the function that answers the same
requests over MQTT: one implementation of each resource, two transports, the same bodies
(``{status: "ok", body}`` or ``{status: "error", reason}``). Writes (offers, withdrawals,
meter batches) go through :class:`cloud.fman.ingest.Ingest` as the message of the MQTT
channel they stand for, so the acceptance, the store rows, the ingest log that makes a repeat
a no-op, and the counter the planning cycle watches are the ones of an MQTT message: a worker
of the same store plans and schedules an offer put here like any other.

Every request needs a bearer token (:mod:`._tokens`); an agent's token reads and writes only
that agent's data, an operator's names the agent in ``?agent=``. Each token has its own token
bucket; a token that is revoked in the file stops working at the next request (the file is
read again when it changes). Tokens never reach a log: the server logs no requests.

Store work runs on Starlette's worker threads, never on the event loop: readers come from a
small pool of read-only connections, writes share one store connection and one
:class:`Ingest`, one batch at a time (as a worker's ingest thread does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

import protocol
from cloud.clock import Clock, RealClock
from cloud.fman.config import Config
from cloud.fman.counters import Counters
from cloud.fman.ingest import Incoming, Ingest
from cloud.fman.requests import RateLimit, answer
from cloud.fman.store import StoreError, StoreReader, open_reader, open_store
from protocol import DecodeError, FlexOffer, Withdraw, topics
from protocol._request import MeasurementParams

from ._errors import ApiError
from ._openapi import openapi_document
from ._routes import ROUTES, Route, params_of, status_of
from ._tokens import Token, check_token, load_tokens

log = logging.getLogger(__name__)

HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}
#: at most this many open event streams per token
MAX_STREAMS = 4
_ID_KEY = "idempotency-key"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the gateway needs: the store, the tokens file, the worker configuration whose
    acceptance rules judge writes (``None``: a read-only gateway), the clock FMAN runs on,
    each token's rate (requests a second, sustained, and the burst), and how often the
    event stream looks at the store."""

    store: str
    tokens: Path
    config: Config | None = None
    clock: Clock = field(default_factory=RealClock)
    rate_per_s: float = 20.0
    burst: float = 40.0
    stream_poll_s: float = 1.0
    version: str = "0"


class _Tokens:
    """The tokens file, read again whenever it changes (a revocation applies at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def check(self, presented: str) -> Token | None:
        stamp = self._stamp()
        with self._lock:
            if stamp != self._seen:
                try:
                    self._tokens = load_tokens(self.path) if stamp is not None else {}
                except ApiError as exc:
                    log.error("%s; no token is accepted until it is fixed", exc)
                    self._tokens = {}
                self._seen = stamp
            tokens = self._tokens
        return check_token(tokens, presented)


class _Readers:
    """A pool of read-only store connections, one per concurrent request at most."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._free: queue.SimpleQueue[StoreReader] = queue.SimpleQueue()

    @contextlib.contextmanager
    def reader(self) -> Iterator[StoreReader]:
        try:
            r = self._free.get_nowait()
        except queue.Empty:
            r = open_reader(self.location)
        try:
            yield r
        except StoreError:
            r.close()  # a broken connection is not handed out again
            raise
        self._free.put(r)

    def close(self) -> None:
        while True:
            try:
                self._free.get_nowait().close()
            except queue.Empty:
                return


class Gateway:
    """The state behind the routes: tokens, buckets, readers and the one writer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = _Tokens(settings.tokens)
        self.limit = RateLimit(rate_per_s=settings.rate_per_s, burst=settings.burst)
        self.readers = _Readers(settings.store)
        self._write_lock = threading.Lock()
        self._ingest: Ingest | None = None
        self.streams: dict[str, int] = {}

    # -- the store, on worker threads ------------------------------------------------------

    def now(self) -> int:
        return int(self.settings.clock.now())

    def answer(self, method: str, params: dict[str, Any], agent: str) -> protocol.Response:
        with self.readers.reader() as reader:
            return answer(
                method, params, agent=agent, reader=reader, now=self.now(), submit=self._submit
            )

    def ingest(self, incoming: Incoming) -> list[protocol.Message]:
        """``incoming`` through the ingest, as a worker's ingest thread takes a message;
        the answers to its sender, decoded."""
        config = self.settings.config
        if config is None:
            raise ApiError("this gateway takes no writes: start it with the workers' --config")
        with self._write_lock:
            if self._ingest is None:
                self._ingest = Ingest(
                    store=open_store(self.settings.store, synchronous="full"),
                    config=config,
                    clock=self.settings.clock,
                    worker="api",
                    stats=Counters(),
                )
            out = self._ingest.process([incoming])
        return [protocol.decode(a.payload, check=False) for a in out]

    def _submit(self, agent: str, p: MeasurementParams) -> Any:
        payload = protocol.encode(p.batch, ts=self.now(), msg_id=p.msg_id)
        for m in self.ingest(Incoming(topics.agent_topic(agent, "meter"), payload)):
            return protocol.to_builtins(m.body)
        return None

    def offer_changes(self, agent: str, known: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
        """The agent's offers whose state, revision or schedule version differ from
        ``known`` (updated): the active ones as ``flexoffer`` lists them, and those that left
        the active states with their new state."""
        with self.readers.reader() as reader:
            response = answer("flexoffer", {}, agent=agent, reader=reader, now=self.now())
            rows: list[dict[str, Any]] = response.body if response.status == "ok" else []
            changed = []
            active = set()
            for row in rows:
                active.add(row["id"])
                key = (row["state"], row["revision"], row["schedule_version"])
                if known.get(row["id"]) != key:
                    known[row["id"]] = key
                    changed.append(row)
            for gone in [oid for oid in known if oid not in active]:
                stored = reader.offer(gone)
                del known[gone]
                if stored is not None:
                    changed.append(
                        {
                            "id": gone,
                            "state": stored.state,
                            "revision": stored.revision,
                            "schedule_version": stored.schedule_version,
                            "reason": stored.reason,
                        }
                    )
        return changed

    def close(self) -> None:
        self.readers.close()
        with self._write_lock:
            if self._ingest is not None:
                self._ingest.store.close()
                self._ingest = None


# -- HTTP -------------------------------------------------------------------------------------


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(obj),
        status_code=status,
        media_type="application/json",
        headers={**HEADERS, **(headers or {})},
    )


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"status": "error", "reason": reason[:1024]}, status, headers)


def _response(r: protocol.Response) -> Response:
    return _json(protocol.to_builtins(r), status_of(r))


def _reasons(exc: DecodeError) -> str:
    return "; ".join(f"{e.path}: {e.message}" for e in exc.errors)


Handler = Callable[[Request, Token, str], Awaitable[Response]]


def make_app(settings: Settings) -> Starlette:
    gw = Gateway(settings)
    document = msgspec.json.encode(openapi_document(version=settings.version))

    def authorised(request: Request) -> Token | Response:
        auth = request.headers.get("authorization", "")
        scheme, _, presented = auth.partition(" ")
        token = gw.tokens.check(presented.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            return _error(
                401,
                "a valid bearer token is needed (Authorization: Bearer atp_...)",
                {"www-authenticate": 'Bearer realm="atp"'},
            )
        if not gw.limit.allow(token.id, time.monotonic()):
            retry = gw.limit.retry_after(token.id)
            return _error(
                429,
                f"rate limited: retry in {max(retry, 0.1):.1f} s",
                {"retry-after": str(max(1, round(retry + 0.5)))},
            )
        return token

    def agent_of(request: Request, token: Token) -> str | Response:
        named = request.query_params.get("agent")
        if token.role == "agent":
            if named is not None and named != token.party:
                return _error(403, f"this token reads and writes only {token.party}'s data")
            return token.party
        if not named:
            return _error(400, "agent: an operator's token must name the agent (?agent=ID)")
        return named

    def guarded(route: Route, handle: Handler) -> Callable[[Request], Awaitable[Response]]:
        allowed = {*route.query, "agent"}

        async def endpoint(request: Request) -> Response:
            token = authorised(request)
            if isinstance(token, Response):
                return token
            unknown = sorted(set(request.query_params) - allowed)
            if unknown:
                return _error(400, f"{unknown[0]}: unknown query parameter")
            agent = agent_of(request, token)
            if isinstance(agent, Response):
                return agent
            try:
                return await handle(request, token, agent)
            except StoreError as exc:
                log.error("store error on %s: %s", route.name, exc)
                return _error(503, "the store is unavailable; ask again later")
            except ApiError as exc:
                return _error(405, str(exc))

        return endpoint

    def read(route: Route) -> Handler:
        async def handle(request: Request, token: Token, agent: str) -> Response:
            params = params_of(route, request.path_params, request.query_params)
            assert route.method is not None
            return _response(await run_in_threadpool(gw.answer, route.method, params, agent))

        return handle

    async def _body(request: Request) -> Any | Response:
        data = await request.body()
        if len(data) > protocol.MAX_PAYLOAD_BYTES:
            return _error(413, f"body: more than {protocol.MAX_PAYLOAD_BYTES} bytes")
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            return _error(400, f"body: not JSON ({exc})")

    async def measurement(request: Request, token: Token, agent: str) -> Response:
        params = await _body(request)
        if isinstance(params, Response):
            return params
        return _response(await run_in_threadpool(gw.answer, "measurement", params, agent))

    def _msg_id(request: Request) -> str | Response:
        key = request.headers.get(_ID_KEY)
        if key is None:
            return "http-" + uuid.uuid4().hex
        if not key or len(key) > 64 or not all(c.isalnum() or c in "_.:-" for c in key):
            return _error(400, "Idempotency-Key: 1 to 64 of letters, digits and _.:-")
        return key

    def _verdict(answers: list[protocol.Message]) -> Response:
        for m in answers:
            body = protocol.to_builtins(m.body)
            if isinstance(m.body, protocol.Ack):
                return _json({"status": "ok", "body": body})
            if isinstance(m.body, protocol.Reject):
                why = "; ".join(
                    f"{r.code}" + (f" ({r.field})" if r.field else "") + f": {r.message}"
                    for r in m.body.reasons
                )
                return _json({"status": "error", "reason": why[:1024], "body": body}, 422)
        return _error(500, "the ingest gave no answer")

    def offer_write(route: Route) -> Handler:
        async def handle(request: Request, token: Token, agent: str) -> Response:
            msg_id = _msg_id(request)
            if isinstance(msg_id, Response):
                return msg_id
            data = await request.body()
            if len(data) > protocol.MAX_PAYLOAD_BYTES:
                return _error(413, f"body: more than {protocol.MAX_PAYLOAD_BYTES} bytes")
            try:
                offer = protocol.from_json(data, FlexOffer)
            except DecodeError as exc:
                return _error(400, _reasons(exc))
            if route.http == "PUT" and offer.id != request.path_params["id"]:
                return _error(400, f"id: {offer.id!r} is not the path's offer id")
            payload = protocol.encode(offer, ts=gw.now(), msg_id=msg_id)
            incoming = Incoming(topics.agent_topic(agent, "offer"), payload)
            return _verdict(await run_in_threadpool(gw.ingest, incoming))

        return handle

    async def withdraw(request: Request, token: Token, agent: str) -> Response:
        msg_id = _msg_id(request)
        if isinstance(msg_id, Response):
            return msg_id
        body = Withdraw(
            offer_id=request.path_params["id"][:128],
            reason=request.query_params.get("reason", "withdrawn over HTTP")[:1024],
        )
        try:
            payload = protocol.encode(body, ts=gw.now(), msg_id=msg_id)
        except protocol.ProtocolError as exc:
            return _error(400, str(exc))
        incoming = Incoming(topics.agent_topic(agent, "offer/delete"), payload)
        return _verdict(await run_in_threadpool(gw.ingest, incoming))

    async def stream(request: Request, token: Token, agent: str) -> Response:
        if gw.streams.get(token.id, 0) >= MAX_STREAMS:
            return _error(429, f"at most {MAX_STREAMS} open streams per token")
        gw.streams[token.id] = gw.streams.get(token.id, 0) + 1

        async def events() -> AsyncIterator[bytes]:
            known: dict[str, tuple[Any, ...]] = {}
            quiet = 0.0
            try:
                yield b"retry: 2000\n\n"
                while True:
                    rows = await run_in_threadpool(gw.offer_changes, agent, known)
                    for row in rows:
                        data = msgspec.json.encode(row).decode()
                        yield f"event: offer\ndata: {data}\n\n".encode()
                    quiet = 0.0 if rows else quiet + settings.stream_poll_s
                    if quiet >= 15:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
                    await anyio.sleep(settings.stream_poll_s)
            finally:
                gw.streams[token.id] -= 1

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={**HEADERS, "x-accel-buffering": "no"},
        )

    routes = []
    for route in ROUTES:
        handle: Handler
        if route.stream:
            handle = stream
        elif route.write == "offer":
            handle = offer_write(route)
        elif route.write == "offer/delete":
            handle = withdraw
        elif route.method == "measurement":
            handle = measurement
        else:
            handle = read(route)
        routes.append(
            StarletteRoute(
                route.full_path, guarded(route, handle), methods=[route.http], name=route.name
            )
        )

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json", headers=HEADERS)

    routes.append(StarletteRoute("/api/v1/openapi.json", openapi, methods=["GET"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(gw.close)

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gw
    return app
