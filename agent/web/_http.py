"""A small HTTP/1.1 server on asyncio streams, for the agent's local page.

The page runs on the agent's own event loop, beside the uplink and the main loop: no thread,
no framework, nothing imported that the agent does not already load (asyncio, ``http`` for
status phrases, ``urllib.parse`` for forms). It serves a handful of pages to one person at a
time, so it is strict and simple: one request per connection (``Connection: close``), a
request line and headers of at most 16 KiB, a body of at most 64 KiB with a
``Content-Length`` (no chunked uploads), a deadline for reading a request, a cap on open
connections. Anything else gets a 4xx answer and the connection is closed; a handler's own
error is logged and answered 500, and the agent carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
READ_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 16


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request; header names are lower case."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""
    client: str = ""

    def form(self) -> dict[str, str]:
        """The urlencoded body, one value per name (the last one given)."""
        text = self.body.decode("utf-8", errors="replace")
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def cookies(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in self.headers.get("cookie", "").split(";"):
            name, eq, value = part.strip().partition("=")
            if eq and name:
                out.setdefault(name, value)
        return out


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    """A request the server refuses before any handler sees it."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{int(status)} {reason}")


class HttpServer:
    """``await start()`` to listen, ``await close()`` to stop; every request goes to
    ``handler``, and ``headers`` are added to every answer."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        handler: Handler,
        headers: Mapping[str, str] | None = None,
        read_timeout_s: float = READ_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.headers = dict(headers or {})
        self.read_timeout_s = read_timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        """Listen; returns the address actually bound (the port chosen when it was 0)."""
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=MAX_HEAD, reuse_address=True
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self.port = port
        return host, port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if self._slots.locked():
                await self._write(writer, _plain(HTTPStatus.SERVICE_UNAVAILABLE, "busy"))
                return
            async with self._slots:
                await self._serve(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        try:
            request = await asyncio.wait_for(_read(reader, client), self.read_timeout_s)
        except HttpError as exc:
            await self._write(writer, _plain(exc.status, exc.reason))
            return
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return  # too slow or gone: nothing to answer
        try:
            response = await self.handler(request)
        except Exception:
            log.exception("web: %s %s failed", request.method, request.path)
            response = _plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the log)")
        if request.method == "HEAD":
            response.headers.append(("Content-Length", str(len(response.body))))
            response.body = b""
        await self._write(writer, response)

    async def _write(self, writer: asyncio.StreamWriter, response: Response) -> None:
        status = HTTPStatus(response.status)
        lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
        names = {name.lower() for name, _ in response.headers}
        headers = [
            ("Content-Type", response.content_type),
            *response.headers,
            *((k, v) for k, v in self.headers.items() if k.lower() not in names),
            ("Connection", "close"),
        ]
        if "content-length" not in names:
            headers.append(("Content-Length", str(len(response.body))))
        lines += [f"{k}: {v}" for k, v in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()


async def _read(reader: asyncio.StreamReader, client: str) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers too large") from exc
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise HttpError(HTTPStatus.BAD_REQUEST, "incomplete request") from exc
        raise
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # latin-1 decodes every byte; kept for clarity
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad request") from exc
    request_line, *header_lines = text.rstrip("\r\n").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad header line")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not chunks")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"at most {MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    if target.startswith("//") or url.scheme or url.netloc:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad request target")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    return Request(
        method=method.upper(),
        path=unquote(url.path) or "/",
        query=query,
        headers=headers,
        body=body,
        client=client,
    )


def _plain(status: HTTPStatus, text: str) -> Response:
    return Response(
        status=status.value,
        body=f"{status.value} {status.phrase}: {text}\n".encode(),
        content_type="text/plain; charset=utf-8",
    )


def plain(status: int, text: str) -> Response:
    """A short text answer (errors a browser shows as they are)."""
    return _plain(HTTPStatus(status), text)
