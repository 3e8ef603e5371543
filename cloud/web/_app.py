"""The dashboard as a Starlette application over one FMAN store, opened read-only per request.

Every page is a plain ``def`` endpoint, which Starlette runs on its worker threads: a store
read or a password check never blocks the event loop. Every response carries the security
headers (a Content-Security-Policy that allows only the page's own files, no framing, no
sniffing, no referrer); every form carries the session's CSRF token, checked on POST.

With accounts configured, every page but the login and the static files needs a logged-in
session; without, the server only listens on loopback (:func:`check_bind`) and visitors
are anonymous viewers: the development configuration.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import protocol
from cloud.fman.store import StoreReader, describe, open_reader

from . import _data, _pages
from ._accounts import COOKIE, SESSION_S, Account, Session, Sessions
from ._errors import WebError

STATIC = Path(__file__).parent / "static"

#: Who changed what, and failed logins: an operator's trail (``atp web`` writes it to stderr).
audit = logging.getLogger("cloud.web.audit")
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
STATES = list(typing.get_args(protocol.OfferState))
MAX_FORM = 4096
#: the longest portfolio window the page draws (``?days=``)
MAX_DAYS = 366


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the server needs to know: where the store is, the accounts, the slot length of
    the portfolio, how often pages update, and a clock."""

    store: str
    accounts: dict[str, Account]
    resolution_s: int = 900
    refresh_s: int = 5
    #: FMAR's store (its service.store), for the markets page; ``None``: not shown
    market_store: str | None = None
    #: FMAR's fmar.toml, whose markets' parameters the operator changes on the markets page
    market_config: Path | None = None
    clock: Callable[[], float] = time.time


def check_bind(host: str, accounts: dict[str, Account]) -> None:
    """Refuse to listen beyond loopback without accounts: that would be anonymous access."""
    if accounts:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise WebError(
            f"listening on {host} needs accounts (anyone who reaches it could read FMAN's "
            "data): add one with `atp web user add NAME --role operator`, or listen on "
            "127.0.0.1"
        )


def make_app(settings: Settings) -> Starlette:
    sessions = Sessions(accounts=settings.accounts)

    def session_of(request: Request) -> tuple[Session, bool]:
        s = sessions.get(request.cookies.get(COOKIE))
        return (s, False) if s is not None else (sessions.new(), True)

    def finish(response: Response, s: Session, fresh: bool) -> Response:
        response.headers.update(HEADERS)
        if fresh:
            response.set_cookie(
                COOKIE, s.id, max_age=SESSION_S, httponly=True, samesite="strict", path="/"
            )
        return response

    def frame(s: Session, request: Request) -> _pages.Frame:
        notice = None
        if s.notice is not None and "x-live" not in request.headers:
            # shown once, by the page the action returned to (not by a live update)
            notice, s.notice = _pages.Notice(*s.notice), None
        return _pages.Frame(
            store=describe(settings.store),
            now=settings.clock(),
            csrf=s.csrf,
            user=s.user,
            role=s.role if sessions.required else "viewer",
            refresh_s=settings.refresh_s,
            notice=notice,
        )

    def guarded(
        name: str, draw: Callable[[Request, _pages.Frame, StoreReader], str], *, operator: bool
    ) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            s, fresh = session_of(request)
            if sessions.required and s.user is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return finish(
                    RedirectResponse(f"/login?{_q(next=target)}", status_code=303), s, fresh
                )
            f = frame(s, request)
            if operator and f.role != "operator":
                html = _pages.forbidden_page(f, f"The {name} page")
                return finish(HTMLResponse(html, status_code=403), s, fresh)
            with open_reader(settings.store) as store:
                html = draw(request, f, store)
            return finish(HTMLResponse(html), s, fresh)

        return endpoint

    def portfolio(request: Request, f: _pages.Frame, store: StoreReader) -> str:
        try:
            days = max(1, min(int(request.query_params.get("days", "2")), MAX_DAYS))
        except ValueError:
            days = 2
        v = _data.portfolio(store, resolution_s=settings.resolution_s, now=f.now, days=days)
        body = _pages.portfolio_page(f, v, resolution_s=settings.resolution_s)
        return _pages.page(f, "portfolio", "Portfolio", body)

    def agents(request: Request, f: _pages.Frame, store: StoreReader) -> str:
        return _pages.page(f, "agents", "Agents", _pages.agents_page(f, _data.agents(store)))

    def offers(request: Request, f: _pages.Frame, store: StoreReader) -> str:
        q = request.query_params
        state = q.get("state", "")
        states = [state] if state in STATES else []
        agent = q.get("agent", "").strip()
        search = q.get("q", "").strip()
        try:
            limit = max(1, min(int(q.get("limit", "1000")), 100_000))
        except ValueError:
            limit = 1000
        rows, total = _data.offers(
            store, agent=agent or None, states=states, search=search, limit=limit
        )
        body = _pages.offers_page(
            f,
            rows,
            total=total,
            states=states,
            all_states=STATES,
            agent=agent,
            search=search,
            limit=limit,
        )
        return _pages.page(f, "offers", "Offers", body)

    def counters(request: Request, f: _pages.Frame, store: StoreReader) -> str:
        return _pages.page(
            f, "counters", "Counters", _pages.counters_page(f, _data.counters(store))
        )

    def settlement(request: Request, f: _pages.Frame, store: StoreReader) -> str:
        s = _data.settlement(store, request.query_params.get("period"))
        return _pages.page(f, "settlement", "Bills and KPIs", _pages.settlement_page(f, s))

    def markets(request: Request, f: _pages.Frame, store: StoreReader) -> str:
        m = None
        if settings.market_store:
            m = _data.markets(settings.market_store, now=f.now, config=settings.market_config)
        fixed = _pages.market_actions(f, m) if m is not None else ""
        return _pages.page(f, "markets", "Markets", _pages.markets_page(f, m), fixed=fixed)

    def act(market: str, what: str, form: dict[str, str]) -> tuple[bool, str]:
        """Close, open or change the parameters of ``market`` through the functions
        ``atp market close|open|set`` call; the outcome as the page says it."""
        from cloud.fmar import MarketError
        from cloud.fmar.control import EDITABLE, change_params, parse_value, set_state
        from cloud.fmar.store import MarketState

        assert settings.market_store is not None
        try:
            if what == "state":
                states: dict[str, MarketState] = {"open": "open", "closed": "closed"}
                state = states.get(form.get("state", ""))
                if state is None:
                    return False, f"no such state {form.get('state', '')!r}: open or closed"
                note = form.get("note", "").strip()[:200]
                return True, set_state(settings.market_store, market, state, note=note).text()
            if settings.market_config is None:
                return False, "no fmar.toml: start the dashboard with --market-config"
            # only the fields the operator changed: another change of the file made since
            # the page was drawn stays
            values = {
                k: parse_value(market, k, form[k])
                for k in EDITABLE
                if k in form and form[k].strip() != form.get(f"was.{k}", "").strip()
            }
            change = change_params(settings.market_config, market, values)
            return True, change.text(settings.market_config)
        except MarketError as exc:
            return False, f"refused, nothing changed: {exc}"

    async def market_action(request: Request) -> Response:
        s, fresh = session_of(request)
        form = await _form(request)
        if sessions.required and s.user is None:
            return finish(HTMLResponse("log in first", status_code=403), s, fresh)
        if form is None or not _csrf_ok(s, form):
            return finish(HTMLResponse("bad or missing form token", status_code=403), s, fresh)
        f = frame(s, request)
        if f.role != "operator":
            html = _pages.forbidden_page(f, "Changing a market")
            return finish(HTMLResponse(html, status_code=403), s, fresh)
        if not settings.market_store:
            return finish(HTMLResponse("no market store", status_code=404), s, fresh)
        what = request.path_params["what"]
        if what not in ("state", "params"):
            return finish(HTMLResponse("no such action", status_code=404), s, fresh)
        market = request.path_params["market"]
        s.notice = await run_in_threadpool(act, market, what, form)
        done, text = s.notice
        audit.info(
            "%s changed market %s (%s) from %s: %s%s",
            s.user or "anonymous operator",
            market,
            what,
            request.client.host if request.client else "?",
            "" if done else "refused: ",
            " ".join(text.split()),
        )
        return finish(RedirectResponse("/markets", status_code=303), s, fresh)

    def accounts(request: Request, f: _pages.Frame, store: StoreReader) -> str:
        rows = sorted((a.name, a.role) for a in settings.accounts.values())
        return _pages.page(f, "accounts", "Accounts", _pages.accounts_page(f, rows))

    def login_form(request: Request) -> Response:
        s, fresh = session_of(request)
        if not sessions.required:
            return finish(RedirectResponse("/", status_code=303), s, fresh)
        html = _pages.login_page(
            csrf=s.csrf,
            failed=request.query_params.get("failed") == "1",
            next_path=_safe_next(request.query_params.get("next", "/")),
        )
        return finish(HTMLResponse(html), s, fresh)

    async def login(request: Request) -> Response:
        s, fresh = session_of(request)
        form = await _form(request)
        if form is None or not _csrf_ok(s, form):
            return finish(HTMLResponse("bad or missing form token", status_code=403), s, fresh)
        nxt = _safe_next(form.get("next", "/"))
        new = await run_in_threadpool(
            sessions.login, s, form.get("name", ""), form.get("password", "")
        )
        if new is None:
            # the name tried, never the password
            audit.warning(
                "failed login as %r from %s",
                form.get("name", "")[:64],
                request.client.host if request.client else "?",
            )
            return finish(
                RedirectResponse(f"/login?{_q(failed='1', next=nxt)}", status_code=303), s, fresh
            )
        return finish(RedirectResponse(nxt, status_code=303), new, True)

    async def logout(request: Request) -> Response:
        s, fresh = session_of(request)
        form = await _form(request)
        if form is None or not _csrf_ok(s, form):
            return finish(HTMLResponse("bad or missing form token", status_code=403), s, fresh)
        sessions.drop(s.id)
        return finish(RedirectResponse("/login", status_code=303), sessions.new(), True)

    routes = [
        Route("/", guarded("portfolio", portfolio, operator=False)),
        Route("/agents", guarded("agents", agents, operator=False)),
        Route("/offers", guarded("offers", offers, operator=False)),
        Route("/counters", guarded("counters", counters, operator=False)),
        Route("/settlement", guarded("settlement", settlement, operator=False)),
        Route("/markets", guarded("markets", markets, operator=False)),
        Route("/markets/{market}/{what}", market_action, methods=["POST"]),
        Route("/accounts", guarded("accounts", accounts, operator=True)),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]

    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    return Starlette(
        routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=security_headers)]
    )


async def _form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body (no multipart: the pages post only small forms)."""
    if request.headers.get("content-type", "").split(";")[0] != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = await request.body()
    if len(body) > MAX_FORM:
        return None
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _csrf_ok(s: Session, form: dict[str, str]) -> bool:
    return hmac.compare_digest(form.get("csrf", ""), s.csrf)


def _safe_next(path: str) -> str:
    """Only a path of this site (not ``//elsewhere`` or ``https://...``) to go back to."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


def _q(**kw: str) -> str:
    from urllib.parse import urlencode

    return urlencode(kw)
