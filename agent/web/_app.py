"""The agent's local page: routes, login and the checks every request passes.

It runs on the agent's event loop and reads the agent's own store there (the store belongs to
that loop; a page is a few small queries). What takes time (hashing a password, checking and
writing the configuration) runs on a worker thread, so the control loop never waits for a
browser.

Every request, before its route:

* without a password (loopback only, :mod:`agent.config` refuses anything else) the ``Host``
  header must name a loopback address, so that a web site cannot reach the page through a
  name it points at 127.0.0.1 (DNS rebinding);
* with one, every page but the login page needs a logged-in session;
* a ``POST`` must carry the session's CSRF token, and an ``Origin`` header, when the browser
  sends one, must be the page's own.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import ipaddress
import json
import logging
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from agent.clock import SimClock
from agent.config import WebConfig
from agent.report import LIVE, devices_report, offers_report, status_report
from agent.web import _auth, _edit, _pages
from agent.web._http import HttpServer, Request, Response, plain

if TYPE_CHECKING:
    from agent.runtime import AgentRuntime
    from agent.store import Store

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = {"app.css": "text/css; charset=utf-8", "sort.js": "text/javascript; charset=utf-8"}


class WebServer:
    """The page of one running agent: ``await start()`` once the runtime has started,
    ``await close()`` before it stops."""

    def __init__(self, *, runtime: AgentRuntime, config: WebConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.sessions = _auth.Sessions()
        self._hash: _auth.PasswordHash | None = None
        self._login_lock = asyncio.Lock()
        self._static = {
            name: importlib.resources.files("agent.web").joinpath("static", name).read_bytes()
            for name in STATIC
        }
        self._http = HttpServer(
            host=config.listen, port=config.port, handler=self.handle, headers=SECURITY_HEADERS
        )
        self._started_version = self._file_version()
        self.url = ""

    @property
    def login_required(self) -> bool:
        return self.config.password is not None

    async def start(self) -> str:
        """Listen; returns the page's address (also kept in the store for ``foa status``)."""
        if self.config.password is not None:
            self._hash = await _auth.password_hash(self.config.password)
        host, port = await self._http.start()
        shown = host if ":" not in host else f"[{host}]"
        self.url = f"http://{shown}:{port}/"
        self._store().set("web_url", self.url)
        log.info(
            "%s: local page on %s (%s)",
            self.runtime.config.id,
            self.url,
            "password required" if self.login_required else "loopback, no password",
        )
        return self.url

    async def close(self) -> None:
        await self._http.close()
        if self.runtime.store is not None:
            self.runtime.store.set("web_url", "")

    def _store(self) -> Store:
        store = self.runtime.store
        assert store is not None, "the page starts after the store is open"
        return store

    # -- every request ------------------------------------------------------------------------

    async def handle(self, req: Request) -> Response:
        if not self.login_required and not _loopback_host(req.headers.get("host", "")):
            return plain(403, "this page answers only to a loopback address (127.0.0.1)")
        session = self.sessions.get(req.cookies().get(_auth.COOKIE))
        fresh = session is None
        if session is None:
            session = self.sessions.new(authenticated=not self.login_required)
        response = await self._route(req, session)
        if fresh and not any(k == "Set-Cookie" for k, _ in response.headers):
            response.headers.append(("Set-Cookie", _auth.cookie(session)))
        return response

    async def _route(self, req: Request, session: _auth.Session) -> Response:
        path, method = req.path, req.method
        if path.startswith("/static/") and method in ("GET", "HEAD"):
            return self._static_file(path.removeprefix("/static/"))
        if method == "POST":
            origin = req.headers.get("origin")
            if origin is not None and origin != f"http://{req.headers.get('host', '')}":
                return plain(403, "a form of another site")
            if not _auth.csrf_ok(session, req.form().get("csrf", "")):
                return plain(403, "the form has expired: load the page again")
        if path == "/login":
            return await self._login(req, session)
        if not session.authenticated:
            if method in ("GET", "HEAD"):
                return _redirect(f"/login?next={quote(path)}")
            return plain(403, "log in first")
        match (method, path):
            case ("GET" | "HEAD", "/"):
                return _html(self._overview(session))
            case ("GET" | "HEAD", "/offers"):
                return _html(self._offers(session, show_all=req.query.get("all") == "1"))
            case ("GET" | "HEAD", "/config"):
                return _html(self._config(session, None))
            case ("POST", "/config"):
                return await self._edit(req, session)
            case ("GET" | "HEAD", "/status.json"):
                body = json.dumps(status_report(self._store(), running=True), indent=2)
                return Response(body=body.encode(), content_type="application/json")
            case ("POST", "/logout"):
                self.sessions.drop(session)
                response = _redirect("/login" if self.login_required else "/")
                response.headers.append(("Set-Cookie", _auth.cookie(None)))
                return response
        return plain(404, f"no page {path}")

    def _static_file(self, name: str) -> Response:
        if name not in STATIC:
            return plain(404, "no such file")
        return Response(body=self._static[name], content_type=STATIC[name])

    # -- login --------------------------------------------------------------------------------

    async def _login(self, req: Request, session: _auth.Session) -> Response:
        next_path = _safe_next(req.query.get("next") or req.form().get("next", "/"))
        if not self.login_required or session.authenticated:
            return _redirect(next_path)
        if req.method in ("GET", "HEAD"):
            error, session.notice = session.notice, ""
            return _html(
                _pages.login_page(
                    agent=self.runtime.config.id, csrf=session.csrf, next_path=next_path,
                    error=error,
                )
            )  # fmt: skip
        if req.method != "POST":
            return plain(405, "GET or POST")
        assert self._hash is not None
        candidate = req.form().get("password", "")
        async with self._login_lock:  # one guess at a time, each failure costs a second
            ok = bool(candidate) and await asyncio.to_thread(self._hash.matches, candidate)
            if not ok:
                await asyncio.sleep(_auth.FAILURE_PAUSE_S)
        if not ok:
            log.warning("%s: local page: failed login from %s", self.runtime.config.id, req.client)
            session.notice = "Wrong password."
            return _redirect(f"/login?next={quote(next_path)}")
        self.sessions.drop(session)
        new = self.sessions.new(authenticated=True)
        log.info("%s: local page: login from %s", self.runtime.config.id, req.client)
        response = _redirect(next_path)
        response.headers.append(("Set-Cookie", _auth.cookie(new)))
        return response

    # -- pages --------------------------------------------------------------------------------

    def _frame(self, session: _auth.Session) -> _pages.Frame:
        rt = self.runtime
        return _pages.Frame(
            agent=rt.config.id,
            version=rt.version,
            now=rt.clock.now(),
            simulated=isinstance(rt.clock, SimClock),
            csrf=session.csrf,
            logged_in=self.login_required and session.authenticated,
            listen=self.url,
        )

    def _overview(self, session: _auth.Session) -> str:
        store, rt = self._store(), self.runtime
        now = rt.clock.now()
        frame = self._frame(session)
        content = _pages.overview(
            frame,
            status=status_report(store, running=True),
            health=rt.health(),
            devices=devices_report(store),
            readings=store.readings(since=int(now) - 86_400 - rt.config.resolution_s),
            resolution_s=rt.config.resolution_s,
        )
        return _pages.layout(frame, title="Overview", active="/", content=content, refresh=60)

    def _offers(self, session: _auth.Session, *, show_all: bool) -> str:
        store = self._store()
        offers = offers_report(store, show_all=show_all)
        stored = store.offers(states=None if show_all else LIVE)
        frame = self._frame(session)
        content = _pages.offers_page(
            frame,
            offers=offers,
            plans=store.plans(o["id"] for o in offers),
            reasons={s.offer.id: s.fman_reason for s in stored if s.fman_reason},
            show_all=show_all,
            resolution_s=self.runtime.config.resolution_s,
        )
        return _pages.layout(
            frame, title="Offers and schedules", active="/offers", content=content, refresh=60
        )

    def _config(self, session: _auth.Session, result: _edit.EditResult | None) -> str:
        cfg = self.runtime.config
        path = self._path()
        frame = self._frame(session)
        try:
            text = path.read_text() if path is not None else ""
            data = tomllib.loads(text)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            content = f'<p class="notice bad">Cannot read {path}: {exc}</p>'
            return _pages.layout(frame, title="Configuration", active="/config", content=content)
        web = f"{self.url} ({'password' if self.login_required else 'loopback, no password'})"
        summary = [
            ("file", str(path)),
            ("agent", cfg.id),
            ("broker", cfg.broker.url),
            ("slot length", f"{cfg.resolution_s // 60} min"),
            ("trading mode", cfg.trading_mode),
            ("grid node", cfg.grid_node or "-"),
            ("this page", web),
        ]
        running = {d.id: dict(d.params) for d in cfg.devices}
        content = _pages.config_page(
            frame,
            summary=summary,
            forms=_edit.forms(data),
            running=running,
            version=_edit.version(text),
            result=result,
            restart_needed=_edit.version(text) != self._started_version,
            path=str(path),
        )
        return _pages.layout(frame, title="Configuration", active="/config", content=content)

    async def _edit(self, req: Request, session: _auth.Session) -> Response:
        path = self._path()
        if path is None:
            return plain(409, "the agent was not started from a file")
        form = req.form()
        result = await asyncio.to_thread(_edit.apply, path, form)
        if result.saved:
            log.info(
                "%s: local page: saved %s to %s (restart to apply)",
                self.runtime.config.id,
                ", ".join(result.changed),
                path,
            )
        return _html(self._config(session, result))

    def _path(self) -> Path | None:
        return self.runtime.config.source

    def _file_version(self) -> str:
        path = self._path()
        try:
            return _edit.version(path.read_text()) if path is not None else ""
        except OSError:
            return ""


def _html(text: str) -> Response:
    return Response(body=text.encode())


def _redirect(location: str) -> Response:
    return Response(status=303, headers=[("Location", location)], content_type="text/plain")


def _safe_next(path: str) -> str:
    """Where to go after logging in: a path of this page only."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (``127.0.0.1:8765``,
    ``[::1]:8765``, ``localhost``)."""
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
