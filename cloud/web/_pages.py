"""The dashboard's HTML, built from plain data (pure: no store, no clock read, no request).

Every value is escaped where it is put in. Table cells carry their raw value in ``data-v`` so
that ``sort.js`` sorts numbers and times as numbers; ids on the figures let a test (or a
person's tool) find them. No inline script or style: the Content-Security-Policy allows only
the page's own files. What changes while FMAN runs is inside ``#live``, which ``live.js``
replaces every :attr:`Frame.refresh_s` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from cloud.fman import report
from cloud.settle import eur_text

from ._data import CALENDAR_GATES, Counters, Markets, PortfolioView, Settlement
from ._svg import Segment, Series, legend, step_chart

NAV = (
    ("portfolio", "/", "Portfolio"),
    ("agents", "/agents", "Agents"),
    ("offers", "/offers", "Offers"),
    ("counters", "/counters", "Counters"),
    ("settlement", "/settlement", "Bills and KPIs"),
    ("markets", "/markets", "Markets"),
)


@dataclass(frozen=True, slots=True)
class Notice:
    """The outcome of the operator's last action, shown once on the page it returns to."""

    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class Frame:
    """What every page shows around its content."""

    store: str
    now: float
    csrf: str
    user: str | None
    role: str | None
    refresh_s: int
    #: the outcome of the operator's last action, shown once
    notice: Notice | None = None


def stamp(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def page(frame: Frame, current: str, title: str, body: str, *, fixed: str = "") -> str:
    """The whole page: ``body`` inside ``#live`` (replaced by the live updates), ``fixed``
    before it (forms an operator is filling in, and the outcome of the last action)."""
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if key == current else ""}>{escape(label)}</a>'
        for key, href, label in NAV
    )
    if frame.role == "operator":
        mark = " aria-current=page" if current == "accounts" else ""
        nav += f'<a href="/accounts"{mark}>Accounts</a>'
    who = ""
    if frame.user is not None:
        who = (
            f'<form class="logout" method="post" action="/logout">'
            f'<input type="hidden" name="csrf" value="{escape(frame.csrf)}">'
            f'<span id="user">{escape(frame.user)}</span> '
            f'(<span id="role">{escape(frame.role or "")}</span>) '
            '<button type="submit" id="logout">Log out</button></form>'
        )
    else:
        who = '<span class="logout" id="user-none">no accounts: loopback only</span>'
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · FMAN</title>"
        '<link rel="stylesheet" href="/static/app.css">'
        '<link rel="icon" href="data:,">'
        '<script src="/static/sort.js" defer></script>'
        '<script src="/static/live.js" defer></script>'
        f'</head><body data-refresh="{frame.refresh_s}">'
        f"<header><h1>FMAN <span>{escape(title)}</span></h1><nav>{nav}</nav>{who}</header>"
        f'<main>{fixed}<div id="live">{body}</div></main>'
        f'<footer>store {escape(frame.store)} · page drawn <span id="drawn" '
        f'data-v="{frame.now:.0f}">{stamp(frame.now)} UTC</span> · updates every '
        f"{frame.refresh_s} s</footer></body></html>"
    )


def login_page(*, csrf: str, failed: bool, next_path: str) -> str:
    note = '<p class="notice bad" id="login-failed">Wrong name or password.</p>' if failed else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Log in · FMAN</title><link rel="stylesheet" href="/static/app.css">'
        '<link rel="icon" href="data:,"></head>'
        '<body class="login"><main><h2>FMAN operator dashboard</h2>'
        f'{note}<form method="post" action="/login">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<p><label for="name">Name</label><br><input id="name" name="name" '
        'autocomplete="username" required></p>'
        '<p><label for="password">Password</label><br><input id="password" name="password" '
        'type="password" autocomplete="current-password" required></p>'
        '<p><button type="submit" id="login">Log in</button></p></form></main></body></html>'
    )


def forbidden_page(frame: Frame, what: str) -> str:
    return page(
        frame,
        "",
        "not allowed",
        f'<p class="notice bad" id="forbidden">{escape(what)} needs the operator role; '
        f"you are logged in as {escape(frame.role or '')}.</p>",
    )


def table(
    table_id: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str, str]],
    *,
    empty: str,
) -> str:
    """A sortable table; ``columns`` are ``(key, title, kind)`` with kind ``text``,
    ``number``, ``time`` (UNIX seconds) or ``kwh``."""
    head = "".join(
        f'<th scope="col"{" data-type=number" if kind != "text" else ""}>{escape(title)}</th>'
        for _, title, kind in columns
    )
    body = []
    for r in rows:
        cells = []
        for key, _, kind in columns:
            v = r.get(key)
            if kind == "time":
                cells.append(
                    f'<td class="time" data-v="{v if v is not None else ""}">{stamp(v)}</td>'
                )
            elif kind in ("number", "kwh"):
                text = _num(v) if kind == "kwh" else ("-" if v is None else str(v))
                cells.append(f'<td class="num" data-v="{"" if v is None else v}">{text}</td>')
            else:
                cells.append(f"<td>{escape('-' if v is None else str(v))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        body.append(f'<tr><td class="empty" colspan="{len(columns)}">{escape(empty)}</td></tr>')
    return (
        f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _dl(dl_id: str, items: Iterable[tuple[str, str, str]]) -> str:
    """``(id, term, value)`` as a definition list."""
    return (
        f'<dl id="{dl_id}">'
        + "".join(
            f'<dt>{escape(term)}</dt><dd id="{i}">{escape(value)}</dd>' for i, term, value in items
        )
        + "</dl>"
    )


# -- the pages ----------------------------------------------------------------------------------


def portfolio_page(frame: Frame, view: PortfolioView, *, resolution_s: int) -> str:
    p = view.portfolio
    names: tuple[str, ...] = ("target", "baseline", "scheduled", "metered")
    series: list[Series] = []
    for name in names:
        segs = tuple(
            Segment(s.start, s.start + resolution_s, v)
            for s in p.slots
            if (v := getattr(s, f"{name}_kwh")) is not None
        )
        series.append(Series(name=name, segments=segs))
    if view.awarded:
        names = (*names, "market awards")
        segs = tuple(Segment(t, t + resolution_s, v) for t, v in sorted(view.awarded.items()))
        series.append(Series(name="market awards", segments=segs))
    start = p.slots[0].start if p.slots else view.start
    end = p.slots[-1].start + resolution_s if p.slots else view.end
    label = (
        f"Energy of the accepted offers per {resolution_s // 60}-minute slot, kWh: "
        "target, baseline, scheduled and metered"
        + (", and the deviation markets awarded" if view.awarded else "")
    )
    chart = step_chart(
        series=series, start=start, end=end, unit="kWh per slot", label=label, now=frame.now
    )
    counts = p.summary
    offers_by_state = ", ".join(f"{k} {v}" for k, v in sorted(counts.get("offers", {}).items()))
    figures = _dl(
        "figures",
        [
            ("offers", "accepted offers", str(p.offers)),
            ("objective", "objective", p.objective),
            ("imbalance-baseline", "imbalance, baseline", f"{p.imbalance_baseline_kwh:.3f} kWh"),
            (
                "imbalance-scheduled",
                "imbalance, scheduled",
                f"{p.imbalance_scheduled_kwh:.3f} kWh",
            ),
            ("imbalance-metered", "imbalance, metered", f"{_num(p.imbalance_metered_kwh)} kWh"),
            ("shifted", "energy shifted", f"{p.shifted_kwh:.3f} kWh"),
            (
                "awarded",
                "market awards, up / down (net per slot)",
                f"{sum(v for v in view.awarded.values() if v > 0):.3f} / "
                f"{-sum(v for v in view.awarded.values() if v < 0):.3f} kWh",
            ),
            ("agents-online", "agents online", f"{counts.get('online')} of {counts.get('agents')}"),
            ("offer-states", "offers by state", offers_by_state or "none"),
        ],
    )
    rows = [{**asdict_slot(s), "awarded_kwh": view.awarded.get(s.start)} for s in p.slots]
    spans = " ".join(
        f'<a href="/?days={d}"{" aria-current=page" if d == view.days else ""}>{d} days</a>'
        for d in (1, 2, 7, 30)
    )
    window = (
        f'<p id="window">Delivery from <span id="window-start" data-v="{view.start}">'
        f'{stamp(view.start)}</span> to <span id="window-end" data-v="{view.end}">'
        f"{stamp(view.end)}</span> UTC: the {view.days} day(s) up to the end of the latest "
        f"offer's delivery window, at most a day ahead. Show {spans}; `atp portfolio` "
        "gives any period.</p>"
    )
    return (
        window + f'<figure id="portfolio-chart">{chart}'
        f"<figcaption>{legend(list(names))}<p>Slot length {resolution_s // 60} min; times "
        "in UTC. Baseline: the offers' defaults; scheduled: the schedules in force; metered: "
        "the readings of their devices; target: the series FMAN balances to; market awards: "
        "the deviation from the defaults that markets awarded the offers (+ up, - down). "
        "Imbalance is "
        "sum |x - target| over the slots (against 0 without a target).</p></figcaption>"
        f"</figure><div class=cards><section><h3>Figures</h3>{figures}</section></div>"
        "<h3>Per slot</h3>"
        + table(
            "slots",
            rows,
            [
                ("start", "slot (UTC)", "time"),
                ("target_kwh", "target kWh", "kwh"),
                ("baseline_kwh", "baseline kWh", "kwh"),
                ("scheduled_kwh", "scheduled kWh", "kwh"),
                ("metered_kwh", "metered kWh", "kwh"),
                ("awarded_kwh", "awarded kWh", "kwh"),
            ],
            empty="no accepted offers yet",
        )
    )


def asdict_slot(s: report.Slot) -> dict[str, Any]:
    return {
        "start": s.start,
        "target_kwh": s.target_kwh,
        "baseline_kwh": s.baseline_kwh,
        "scheduled_kwh": s.scheduled_kwh,
        "metered_kwh": s.metered_kwh,
    }


def agents_page(frame: Frame, rows: list[dict[str, Any]]) -> str:
    online = sum(1 for r in rows if r.get("state") == "online")
    head = (
        f'<p><span id="agents-count">{len(rows)}</span> agent(s), '
        f'<span id="agents-online">{online}</span> online (their retained status).</p>'
    )
    return head + table(
        "agents",
        rows,
        [
            ("agent", "agent", "text"),
            ("state", "status", "text"),
            ("since", "since (UTC)", "time"),
            ("seen_at", "last seen (UTC)", "time"),
            ("last_reading", "last reading until (UTC)", "time"),
            ("readings", "readings", "number"),
            ("version", "version", "text"),
            ("devices", "devices", "number"),
            ("offers", "offers", "number"),
            ("active", "active", "number"),
            ("offers_rejected", "offers rejected", "number"),
            ("schedules_refused", "schedules refused", "number"),
        ],
        empty="no agent seen yet",
    )


def offers_page(
    frame: Frame,
    rows: list[dict[str, Any]],
    *,
    total: int,
    states: Sequence[str],
    all_states: Sequence[str],
    agent: str,
    search: str,
    limit: int,
) -> str:
    options = "".join(
        f'<option value="{s}"{" selected" if s in states else ""}>{s}</option>' for s in all_states
    )
    form = (
        '<form method="get" action="/offers" id="offer-search" class="search">'
        f'<label>search <input name="q" id="q" value="{escape(search)}" '
        'placeholder="id, device or agent"></label> '
        f'<label>agent <input name="agent" id="agent" value="{escape(agent)}"></label> '
        f'<label>state <select name="state" id="state"><option value="">any</option>{options}'
        "</select></label> "
        '<button type="submit" id="search">Search</button></form>'
    )
    more = ""
    if total > len(rows) and not search:
        query = urlencode({"agent": agent, "q": search, "limit": total} | (
            {"state": states[0]} if states else {}))  # fmt: skip
        more = (
            f'<p class="notice">Showing {len(rows)} of {total}; '
            f'<a href="/offers?{escape(query)}">show all</a>.</p>'
        )
    return (
        form
        + f'<p><span id="offers-count">{len(rows)}</span> offer(s).</p>{more}'
        + table(
            "offers",
            rows,
            [
                ("id", "offer", "text"),
                ("issuer", "agent", "text"),
                ("device", "device", "text"),
                ("load_type", "type", "text"),
                ("state", "state", "text"),
                ("revision", "rev", "number"),
                ("start_after", "earliest start (UTC)", "time"),
                ("start_before", "latest start (UTC)", "time"),
                ("schedule_version", "schedule", "number"),
                ("metered_slots", "metered slots", "number"),
                ("reason", "reason", "text"),
            ],
            empty="no offer matches",
        )
    )


def counters_page(frame: Frame, c: Counters) -> str:
    workers = sorted(c.workers)
    refusals = [
        {"what": k.split(".", 1)[0], "reason": k.split(".", 1)[-1], "count": int(v)}
        for k, v in c.refusals.items()
    ]
    keys = sorted({k for w in c.workers.values() for k in w})
    rows = [{"key": k, **{w: c.workers[w].get(k) for w in workers}} for k in keys]
    counts = c.counts
    headline = _dl(
        "headline",
        [
            ("readings", "readings kept", str(counts["readings"])),
            ("schedule-versions", "schedule versions", str(counts["schedule_versions"])),
            ("offer-rejects", "offers rejected", str(counts["offer_rejects"])),
            ("executed-metered", "executed offers metered", str(counts["executed_metered"])),
        ],
    )
    return (
        f"<div class=cards><section><h3>The store</h3>{headline}</section></div>"
        "<h3>Refusals by reason <span class=count>(summed over the workers)</span></h3>"
        + table(
            "refusals",
            refusals,
            [
                ("what", "refused", "text"),
                ("reason", "reason", "text"),
                ("count", "count", "number"),
            ],
            empty="nothing refused",
        )
        + "<h3>Every counter per worker <span class=count>(as `atp fman stats`; since each "
        "worker started)</span></h3>"
        + table(
            "counters",
            rows,
            [("key", "counter", "text"), *((w, w, "number") for w in workers)],
            empty="no worker has written counters yet",
        )
    )


def settlement_page(frame: Frame, s: Settlement) -> str:
    if s.period is None:
        return (
            '<p class="notice" id="no-settlement">No settlement run in this store yet: '
            "`atp settle --period MONTH` issues the bills, and the KPIs are reported for a "
            "settled period.</p>"
        )
    links = " ".join(
        f'<a href="/settlement?period={escape(p)}"'
        f"{' aria-current=page' if p == s.period else ''}>{escape(p)}</a>"
        for p in s.periods
    )
    bills = [{**b, "eur": eur_text(b["total_cents"])} for b in s.bills]
    kpis = "".join(f"<li>{escape(line)}</li>" for line in s.kpi_lines)
    return (
        f'<p>Settled periods: {links}</p><h3>Bills of <span id="period">{escape(s.period)}'
        "</span></h3>"
        + table(
            "bills",
            bills,
            [
                ("party", "party", "text"),
                ("eur", "total EUR", "text"),
                ("total_cents", "total cents", "number"),
                ("issued_at", "issued (UTC)", "time"),
                ("run", "run", "text"),
            ],
            empty="no bill issued for this period",
        )
        + f'<h3>The four KPIs</h3><ul id="kpis">{kpis}</ul>'
    )


def accounts_page(frame: Frame, accounts: Sequence[tuple[str, str]]) -> str:
    rows = [{"name": n, "role": r} for n, r in accounts]
    return (
        "<p>Accounts that may log in (`atp web user add NAME --role viewer|operator` adds "
        "one; a restart of `atp web` reads the file again).</p>"
        + table(
            "accounts", rows, [("name", "name", "text"), ("role", "role", "text")], empty="none"
        )
    )


def _notice(n: Notice | None) -> str:
    if n is None:
        return ""
    return (
        f'<p class="notice {"ok" if n.ok else "bad"}" id="action-{"done" if n.ok else "refused"}"'
        f' role="status">{escape(n.text)}</p>'
    )


def market_actions(frame: Frame, m: Markets) -> str:
    """The operator's forms: close or open each market (``atp market close|open``) and change
    its parameters in fmar.toml (``atp market set``). Outside ``#live``, so that the live
    updates do not wipe what is being typed; the state itself is in the live table."""
    if frame.role != "operator":
        return _notice(frame.notice)
    csrf = f'<input type="hidden" name="csrf" value="{escape(frame.csrf)}">'
    parts = [_notice(frame.notice), "<h2>Actions</h2>"]
    if m.config_problem:
        parts.append(f'<p class="notice bad" id="config-problem">{escape(m.config_problem)}</p>')
    elif not m.params:
        parts.append(
            '<p id="params-none">Start the dashboard with <code>--market-config</code> '
            "(the service's fmar.toml) to change parameters here.</p>"
        )
    for row in m.markets:
        mid = row["id"]
        q = escape(mid)
        parts.append(
            f'<div class="market-actions" id="actions-{q}">'
            f'<form method="post" action="/markets/{escape(_path(mid))}/state" class="search">'
            f"<strong>{q}</strong> {csrf}<label>note <input name=note maxlength=200 "
            'placeholder="why (shown to the parties refused)"></label> '
            f'<button type="submit" name="state" value="closed" id="close-{q}">Close</button> '
            f'<button type="submit" name="state" value="open" id="open-{q}">Open</button></form>'
        )
        values = m.params.get(mid)
        if values is not None:
            fields = "".join(
                f'<tr><th scope="row"><label for="p-{q}-{k}">{escape(k)}</label></th>'
                f'<td><input id="p-{q}-{k}" name="{k}" value="{escape(_param_text(v))}">'
                f'<input type="hidden" name="was.{k}" value="{escape(_param_text(v))}">'
                "</td></tr>"
                for k, v in values.items()
            )
            parts.append(
                f'<details id="params-box-{q}"><summary>parameters of {q}</summary>'
                f'<form method="post" action="/markets/{escape(_path(mid))}/params" '
                f'id="params-{q}">{csrf}<table class="form">{fields}</table>'
                f'<p><button type="submit" id="save-{q}">Save parameters</button> '
                "(written to fmar.toml; the service opens its next gate with them, sellers "
                "and buyers apply at once)</p></form></details>"
            )
        parts.append("</div>")
    return "".join(parts)


def _param_text(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, list) else str(v)


def _path(market: str) -> str:
    from urllib.parse import quote

    return quote(market, safe="")


def markets_page(frame: Frame, m: Markets | None) -> str:
    """FMAR's markets with their state, the gate calendar, every gate with the depth of its
    book and its result, and the DSO's congestion registrations."""
    if m is None:
        return (
            '<p id="markets-none">No market store: start the dashboard with '
            "<code>--market-store</code> (FMAR's service.store) or <code>--market-config</code> "
            "(its fmar.toml).</p>"
        )
    head = (
        f'<p><span id="markets-count">{len(m.markets)}</span> market(s), '
        f'<span id="gates-count">{len(m.gates)}</span> gate(s), '
        f'<span id="congestion-count">{len(m.congestion)}</span> congestion registration(s).</p>'
    )
    markets = table(
        "markets",
        [{**r, "note": r["note"] or None} for r in m.markets],
        [
            ("id", "market", "text"),
            ("state", "state", "text"),
            ("since", "since (UTC)", "time"),
            ("note", "note", "text"),
            ("kind", "kind", "text"),
            ("pricing", "pricing", "text"),
            ("nodes", "nodes", "number"),
            ("gates", "gates", "number"),
            ("cleared", "cleared", "number"),
        ],
        empty="no market yet",
    )
    calendar = table(
        "calendar",
        m.calendar,
        [
            ("market", "market", "text"),
            ("gate", "gate", "text"),
            ("opens_at", "opens (UTC)", "time"),
            ("closes_at", "closes (UTC)", "time"),
            ("delivery_start", "delivery from (UTC)", "time"),
            ("slots", "slots", "number"),
            ("resolution_s", "slot (s)", "number"),
            ("stored", "in the store", "text"),
        ],
        empty="no market yet",
    )
    gates = table(
        "gates",
        m.gates,
        [
            ("market", "market", "text"),
            ("gate", "gate", "text"),
            ("state", "state", "text"),
            ("opens_at", "opens (UTC)", "time"),
            ("closes_at", "closes (UTC)", "time"),
            ("delivery_start", "delivery from (UTC)", "time"),
            ("slots", "slots", "number"),
            ("sell", "sell orders", "number"),
            ("request", "requests", "number"),
            ("result", "result", "text"),
            ("welfare_eur", "welfare (EUR)", "number"),
        ],
        empty="no gate yet",
    )
    congestion = table(
        "congestion",
        m.congestion,
        [
            ("market", "market", "text"),
            ("id", "registration", "text"),
            ("party", "DSO", "text"),
            ("node", "node", "text"),
            ("start", "from (UTC)", "time"),
            ("slots", "slots", "number"),
            ("kwh", "kWh in all (signed)", "kwh"),
            ("limit", "limit (EUR/kWh)", "text"),
            ("partial", "partial", "text"),
            ("registered_at", "registered (UTC)", "time"),
        ],
        empty="no congestion registered",
    )
    return (
        head
        + "<h2>Markets</h2>"
        + markets
        + "<h2>Gate calendar <span class=count>(the gate taking orders now and the next "
        f"{CALENDAR_GATES}, from each market's parameters as the service last ran them)"
        "</span></h2>"
        + calendar
        + "<h2>Gates, books and results</h2>"
        + gates
        + "<h2>Congestion registrations <span class=count>(the DSO's)</span></h2>"
        + congestion
    )
