"""The local page's HTML, built from plain data (pure: no store, no file, no clock read).

Every value is escaped where it is put in. Tables carry the raw value of each cell in
``data-v`` so that ``sort.js`` sorts numbers and times as numbers; ids on the figures let a
person's browser extension or a test find them. No inline script or style: the page's
Content-Security-Policy allows only its own two files.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from agent.store import Plan
from agent.web._edit import DeviceForm, EditResult, field_name, show
from agent.web._svg import Segment, Series, legend, step_chart
from protocol import MeterReading

STATES = ("offered", "accepted", "assigned", "executing", "rejected", "executed", "expired")


@dataclass(frozen=True, slots=True)
class Frame:
    """What every page shows around its content."""

    agent: str
    version: str
    now: float
    simulated: bool
    csrf: str
    logged_in: bool
    #: the page's address as the agent serves it
    listen: str


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86_400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + (f"{h} h " if d or h else "") + f"{m} min"


def stamp(ts: float | None) -> str:
    """A time in a table cell (the column says UTC)."""
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _num(v: float | None, fmt: str, unit: str = "") -> str:
    if v is None:
        return "-"
    text = format(v, fmt)
    if text.startswith("-") and not text.strip("-0."):
        text = text[1:]  # no "-0.000"
    return text + (f" {unit}" if unit else "")


def _cell(text: str, value: Any = None, *, cls: str = "", num: bool = False) -> str:
    attrs = f' data-v="{escape(str(value))}"' if value is not None else ""
    classes = " ".join(c for c in (cls, "num" if num else "") if c)
    if classes:
        attrs += f' class="{classes}"'
    return f"<td{attrs}>{escape(text)}</td>"


def _table(table_id: str, headers: Sequence[tuple[str, str]], rows: Iterable[str]) -> str:
    """A sortable table; ``headers`` are ``(title, "text" | "number")``."""
    ths = "".join(f'<th scope="col" data-type="{kind}">{escape(t)}</th>' for t, kind in headers)
    body = "".join(rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="empty">none</td></tr>'
    return (
        f'<table id="{table_id}" class="sortable"><thead><tr>{ths}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def layout(frame: Frame, *, title: str, active: str, content: str, refresh: int = 0) -> str:
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if href == active else ""}>{name}</a>'
        for href, name in (("/", "Overview"), ("/offers", "Offers and schedules"),
                           ("/config", "Configuration"))
    )  # fmt: skip
    logout = (
        '<form method="post" action="/logout" class="logout">'
        f'<input type="hidden" name="csrf" value="{escape(frame.csrf)}">'
        '<button type="submit">Log out</button></form>'
        if frame.logged_in
        else ""
    )
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    clock = "simulated clock" if frame.simulated else "agent clock"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{escape(title)} · {escape(frame.agent)} · FOA</title>"
        '<link rel="stylesheet" href="/static/app.css">'
        '<link rel="icon" href="data:,">'
        '<script src="/static/sort.js" defer></script></head><body>'
        f'<header><h1>FOA <span id="agent-id">{escape(frame.agent)}</span></h1>'
        f"<nav>{nav}</nav>{logout}</header>"
        f"<main><h2>{escape(title)}</h2>{content}</main>"
        f"<footer>atp-flex {escape(frame.version)} · {clock}: "
        f'<time id="agent-now">{when(frame.now)}</time> · served on {escape(frame.listen)}'
        "</footer></body></html>"
    )


# -- overview -----------------------------------------------------------------------------------


def overview(
    frame: Frame,
    *,
    status: Mapping[str, Any],
    health: Mapping[str, Any],
    devices: Sequence[Mapping[str, Any]],
    readings: Sequence[MeterReading],
    resolution_s: int,
) -> str:
    c = status["connection"]
    if c["connected"]:
        state = f'<span class="ok">online</span> since {when(c["since"])}'
    else:
        state = f'<span class="bad">offline</span> since {when(c["since"])}'
    connection = _dl(
        "connection",
        [
            ("broker", escape(c["broker"] or "-"), "broker"),
            ("state", state, "connection-state"),
            ("last heartbeat", escape(when(status["heartbeat"])), "heartbeat"),
            ("running for", escape(duration(float(health.get("uptime_s", 0)))), "uptime"),
            ("control steps failed", str(health.get("errors", 0)), "step-errors"),
            ("devices not answering", str(len(status["faults"])), "faults"),
        ],
    )
    o = status["outbox"]
    kinds = ", ".join(f"{escape(k)} {n}" for k, n in sorted(o["by_kind"].items())) or "nothing"
    outbox = _dl(
        "outbox",
        [
            ("held (waiting to go or for FMAN's answer)", str(o["waiting"]), "outbox-waiting"),
            ("by kind", kinds, "outbox-kinds"),
            ("sent, not answered yet", str(o["unanswered"]), "outbox-unanswered"),
            ("sent again (no answer in time)", str(o["resent"]), "outbox-resent"),
            ("refused (dead letters)", str(o["dead_letters"]), "outbox-dead"),
            ("readings set aside by FMAN", str(o["quarantined"]), "outbox-quarantined"),
            ("meter batches dropped", str(status["dropped_meter_batches"]), "outbox-dropped"),
        ],
    )
    counts = status["offers"]
    states = [s for s in STATES if s in counts] + sorted(set(counts) - set(STATES))
    offers = (
        '<table id="offer-counts"><tbody>'
        + "".join(
            f'<tr><th scope="row">{escape(s)}</th>'
            f'<td id="offers-{escape(s)}" class="num">{counts[s]}</td></tr>'
            for s in states
        )
        + "</tbody></table>"
        if states
        else '<p id="offer-counts">no offers yet</p>'
    )
    last = {r["device"]: r for r in status["last_readings"]}
    rows = []
    for d in devices:
        r = last.get(d["device"])
        fault = d["fault"]
        rows.append(
            f'<tr id="device-{escape(d["device"])}">'
            + _cell(d["device"], cls="device")
            + _cell(d["driver"])
            + _cell(d["generator"] or "-")
            + _cell(_num(d["power_w"], ".0f", "W"), d["power_w"] or 0, cls="power", num=True)
            + _cell(
                _num(d["energy_kwh"], ".3f", "kWh"), d["energy_kwh"] or 0, cls="register", num=True
            )
            + _cell(str(d["setpoint"] or "-"), cls="setpoint")
            + _cell(
                _num(r["energy_kwh"] if r else None, ".3f", "kWh"),
                r["energy_kwh"] if r else -1e99,
                cls="last-kwh",
                num=True,
            )
            + _cell(stamp(r["start"]) if r else "-", r["start"] if r else 0, cls="last-slot time")
            + _cell(stamp(d["ts"]), d["ts"] or 0, cls="measured time")
            + (_cell(f"fault: {fault}", 1, cls="bad") if fault else _cell("ok", 0, cls="ok"))
            + "</tr>"
        )
    table = _table(
        "devices",
        [("device", "text"), ("driver", "text"), ("generator", "text"), ("power", "number"),
         ("energy register", "number"), ("set-point", "text"), ("last slot", "number"),
         ("slot from (UTC)", "number"), ("measured (UTC)", "number"), ("state", "number")],
        rows,
    )  # fmt: skip
    chart = _readings_chart(readings, now=frame.now, resolution_s=resolution_s)
    return (
        '<div class="cards">'
        f"<section><h3>Connection</h3>{connection}</section>"
        f"<section><h3>Outbox</h3>{outbox}</section>"
        f"<section><h3>Offers by state</h3>{offers}"
        '<p><a href="/offers">the offers and their schedules</a></p></section></div>'
        f"<section><h3>Devices</h3>{table}</section>"
        f"<section><h3>Metered over the last day</h3>{chart}</section>"
    )


def _dl(dl_id: str, items: Sequence[tuple[str, str, str]]) -> str:
    """A definition list; values are HTML already escaped."""
    body = "".join(f'<dt>{escape(k)}</dt><dd id="{i}">{v}</dd>' for k, v, i in items)
    return f'<dl id="{dl_id}">{body}</dl>'


def _readings_chart(readings: Sequence[MeterReading], *, now: float, resolution_s: int) -> str:
    by_device: dict[str, list[Segment]] = {}
    for r in readings:
        if r.duration_s > 0:
            kw = r.energy_kwh * 3600.0 / r.duration_s
            by_device.setdefault(r.device, []).append(Segment(r.start, r.start + r.duration_s, kw))
    names = sorted(by_device)
    series = [Series(n, tuple(by_device[n])) for n in names]
    end = int(now) // resolution_s * resolution_s + resolution_s
    first = min((r.start for r in readings), default=end)
    start = max(end - 86_400, min(first // 3600 * 3600, end - 6 * 3600))
    svg = step_chart(
        series=series,
        start=start,
        end=end,
        unit="kW (mean over the slot)",
        label="Metered power per device and slot over the last day",
        now=now,
    )
    return (
        f'<figure id="metered-chart">{svg}<figcaption>{legend(names)}'
        f"<p>Mean power of each device over each metering slot of {resolution_s // 60} min "
        "(energy metered in the slot divided by its length); positive: consumed, negative: "
        "produced.</p></figcaption></figure>"
    )


# -- offers and schedules -----------------------------------------------------------------------


def offers_page(
    frame: Frame,
    *,
    offers: Sequence[Mapping[str, Any]],
    plans: Mapping[str, Plan],
    reasons: Mapping[str, str],
    show_all: bool,
    resolution_s: int,
) -> str:
    rows = []
    for o in offers:
        p = plans.get(o["id"])
        if p is None:
            plan, energy = "-", None
        else:
            plan = "default" if p.source == "default" else f"schedule v{p.version}"
            energy = sum(p.energy_kwh)
        rows.append(
            f'<tr id="offer-{escape(o["id"])}">'
            + _cell(o["id"], cls="offer-id")
            + _cell(o["device"])
            + _cell(o["load_type"])
            + _cell(str(o["revision"]), o["revision"], cls="revision", num=True)
            + _cell(o["state"], cls="state")
            + _cell(stamp(o["start_after"]), o["start_after"], cls="time")
            + _cell(stamp(o["start_before"]), o["start_before"], cls="time")
            + _cell(stamp(o["assignment_before"]), o["assignment_before"], cls="time")
            + _cell(str(o["slots"]), o["slots"], num=True)
            + _cell(plan, p.version if p else -1, cls="plan")
            + _cell(
                stamp(p.start) + " to " + stamp(p.end)[11:] if p else "-",
                p.start if p else 0,
                cls="time",
            )
            + _cell(
                _num(energy, ".3f", "kWh"),
                energy if energy is not None else -1e99,
                cls="planned",
                num=True,
            )
            + _cell(reasons.get(o["id"], "") or "-")
            + "</tr>"
        )
    table = _table(
        "offers",
        [("offer", "text"), ("device", "text"), ("load", "text"), ("revision", "number"),
         ("state", "text"), ("earliest start (UTC)", "number"),
         ("latest start", "number"), ("decide by", "number"), ("slots", "number"),
         ("plan in force", "number"), ("plan runs", "number"), ("planned energy", "number"),
         ("FMAN's reason", "text")],
        rows,
    )  # fmt: skip
    switch = (
        '<a href="/offers">only live offers</a>'
        if show_all
        else '<a href="/offers?all=1">finished offers too</a>'
    )
    which = "All offers the store keeps" if show_all else "Live offers"
    return (
        f"<section><h3>Plans in force</h3>{_plans_chart(plans, offers, frame.now)}</section>"
        f'<section><h3>{which} <span class="count" id="offer-count">{len(offers)}</span></h3>'
        f"<p>{switch} · times in UTC on the agent's clock · slots of "
        f"{resolution_s // 60} min</p>{table}</section>"
    )


def _plans_chart(plans: Mapping[str, Plan], offers: Sequence[Mapping[str, Any]], now: float) -> str:
    live = {o["id"] for o in offers if o["state"] in ("accepted", "assigned", "executing")}
    by_device: dict[str, list[Segment]] = {}
    res = {p.resolution_s for p in plans.values()}
    lo, hi = int(now), int(now) + 3600
    for offer_id, p in plans.items():
        if offer_id not in live and p.end < now:
            continue
        segs = by_device.setdefault(p.device, [])
        for i, e in enumerate(p.energy_kwh):
            s = p.start + i * p.resolution_s
            segs.append(Segment(s, s + p.resolution_s, e * 3600.0 / p.resolution_s))
        lo, hi = min(lo, p.start), max(hi, p.end)
    names = sorted(by_device)
    slot = ", ".join(f"{r // 60} min" for r in sorted(res)) or "-"
    svg = step_chart(
        series=[Series(n, tuple(by_device[n])) for n in names],
        start=lo,
        end=hi,
        unit="kW (mean over the slot)",
        label="Planned power per device and slot (schedules and defaults in force)",
        now=now,
    )
    return (
        f'<figure id="plans-chart">{svg}<figcaption>{legend(names)}'
        f"<p>What each device is to take per slot (slots of {slot}) under the schedule FMAN "
        "sent or, without one, the offer's default, as mean power over the slot.</p>"
        "</figcaption></figure>"
    )


# -- configuration ------------------------------------------------------------------------------


def config_page(
    frame: Frame,
    *,
    summary: Sequence[tuple[str, str]],
    forms: Sequence[DeviceForm],
    running: Mapping[str, Mapping[str, Any]],
    version: str,
    result: EditResult | None,
    restart_needed: bool,
    path: str,
) -> str:
    parts = []
    if result is not None and result.saved:
        changed = ", ".join(result.changed)
        parts.append(
            f'<p id="saved" class="notice ok" role="status">Saved {escape(changed)} to '
            f"{escape(path)}, checked as <code>foa config check</code> checks it. The agent "
            "runs with the values it started with: restart it to apply the change "
            "(<code>sudo systemctl restart foa</code>).</p>"
        )
    elif result is not None and result.errors:
        items = "".join(
            f'<li data-key="{escape(k)}"><code>{escape(k or path)}</code>: {escape(m)}</li>'
            for k, m in result.errors
        )
        parts.append(
            '<div id="errors" class="notice bad" role="alert"><p>Not saved: the file is '
            f"unchanged.</p><ul>{items}</ul></div>"
        )
    elif result is not None:
        parts.append('<p id="saved" class="notice" role="status">Nothing was changed.</p>')
    if restart_needed and not (result is not None and result.saved):
        parts.append(
            '<p id="restart" class="notice" role="status">The file has changed since the '
            "agent started: restart the agent to apply it "
            "(<code>sudo systemctl restart foa</code>).</p>"
        )
    summary_rows = [(k, escape(v), f"cfg-{i}") for i, (k, v) in enumerate(summary)]
    parts.append(_dl("config-summary", summary_rows))

    bad = {k for k, _ in result.errors} if result is not None else set()
    submitted = result.submitted if result is not None and not result.saved else {}
    sets = []
    for f in forms:
        rows = []
        for fld in f.fields:
            name = field_name(f.device, fld.key)
            value = submitted.get(name, show(f.values.get(fld.key)))
            default = show(list(fld.default) if isinstance(fld.default, tuple) else fld.default)
            in_force = running.get(f.device, {}).get(fld.key)
            invalid = ' aria-invalid="true"' if name in bad else ""
            kind = 'inputmode="decimal"' if fld.kind == "number" else 'inputmode="text"'
            rows.append(
                f'<tr><th scope=row><label for="{escape(name)}">{escape(fld.label)}</label>'
                f"<br><code>{escape(fld.key)}</code></th>"
                f'<td><input id="{escape(name)}" name="{escape(name)}" value="{escape(value)}" '
                f'{kind} placeholder="{escape(default or "none")}" autocomplete="off"{invalid}>'
                f"</td><td>{escape(fld.unit)}</td>"
                f"<td>{escape(default or 'none')}</td>"
                f"<td>{escape(show(in_force) or 'default')}</td></tr>"
            )
        sets.append(
            f'<fieldset id="device-{escape(f.device)}"><legend>{escape(f.device)} '
            f"<small>({escape(f.generator)})</small></legend><table class=form>"
            "<thead><tr><th>setting</th><th>value in the file</th><th>unit</th>"
            "<th>default</th><th>running with</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></fieldset>"
        )
    if sets:
        parts.append(
            '<form method="post" action="/config" id="config-form">'
            f'<input type="hidden" name="csrf" value="{escape(frame.csrf)}">'
            f'<input type="hidden" name="version" value="{escape(version)}">'
            "<p>Prices and comfort limits of the devices. Leave a field empty for the default. "
            "A change is checked as <code>foa config check</code> checks the file and saved "
            "only if the whole file passes.</p>"
            + "".join(sets)
            + '<p><button type="submit" id="save">Check and save</button></p></form>'
        )
    else:
        parts.append("<p>No device of this agent has settings this page edits.</p>")
    return "".join(parts)


# -- login --------------------------------------------------------------------------------------


def login_page(*, agent: str, csrf: str, next_path: str, error: str) -> str:
    err = (
        f'<p id="login-error" class="notice bad" role="alert">{escape(error)}</p>' if error else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Log in · {escape(agent)} · FOA</title>"
        '<link rel="stylesheet" href="/static/app.css"><link rel="icon" href="data:,">'
        "</head><body class=login>"
        f'<main><h1>FOA <span id="agent-id">{escape(agent)}</span></h1>{err}'
        '<form method="post" action="/login" id="login-form">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<p><label for="password">Password</label><br>'
        '<input type="password" id="password" name="password" autocomplete="current-password" '
        "autofocus required></p>"
        '<p><button type="submit" id="login">Log in</button></p></form></main></body></html>'
    )
