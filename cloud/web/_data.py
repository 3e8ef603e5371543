"""What each page shows, read from the store through the operator commands' own reads and
report functions (:mod:`cloud.fman.report`, the settlement's KPIs), so that a page and the
command line say the same numbers. Plain dicts and value objects out; no HTML here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cloud.fman import report
from cloud.fman.store import StoreReader

#: readings looked at per agent to find its latest one
LAST_READING_SCAN = 5000


DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class PortfolioView:
    """The portfolio of the ``days`` up to ``end``: the end of the latest offer's delivery
    window, at most a day after now (a store of a past run shows its last days, a running
    FMAN the day behind and the day ahead). A window keeps the page's work to the offers of
    those days (the store finds them by an index) however long FMAN has run."""

    portfolio: report.Portfolio
    start: int
    end: int
    days: int
    #: the deviation markets awarded the offers, signed kWh (+ = up) per slot of the window:
    #: the sum of the member awards FMAN stored from the markets' results
    awarded: dict[int, float] = field(default_factory=dict)


def portfolio(store: StoreReader, *, resolution_s: int, now: float, days: int) -> PortfolioView:
    latest = store.latest_delivery_end()
    until = min(latest, now + DAY_S) if latest is not None else now
    end = -(-int(until) // resolution_s) * resolution_s
    start = end - days * DAY_S
    p = report.portfolio(store, start=start, end=end, resolution_s=resolution_s)
    awarded: dict[int, float] = {}
    for a in store.market_awards(start, end):
        t = a.slot_start - a.slot_start % resolution_s
        awarded[t] = awarded.get(t, 0.0) + a.kwh
    return PortfolioView(portfolio=p, start=start, end=end, days=days, awarded=awarded)


def agents(store: StoreReader) -> list[dict[str, Any]]:
    """``atp agents list`` rows, with each agent's latest reading and its refusals: offers
    FMAN rejected and schedule versions the agent refused."""
    rows = report.agents(store)
    for r in rows:
        readings = store.readings(agent=r["agent"], limit=LAST_READING_SCAN)
        r["last_reading"] = max((x.start + x.duration_s for x in readings), default=None)
        r["readings"] = store.count_readings(agent=r["agent"])
        r["offers_rejected"] = store.count_offers(agent=r["agent"], states=("rejected",))
        r["schedules_refused"] = store.count_schedules(
            agent=r["agent"], status="refused", all_versions=True
        )
    return rows


def offers(
    store: StoreReader,
    *,
    agent: str | None,
    states: Sequence[str],
    search: str,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """``atp offers list`` rows (its filters), narrowed to ids, devices or agents containing
    ``search``; and how many offers the filters match in all."""
    rows = report.list_offers(store, agent=agent, states=states, limit=limit)
    total = store.count_offers(agent=agent, states=states) if len(rows) >= limit else len(rows)
    if search:
        s = search.lower()
        rows = [
            r
            for r in rows
            if s in r["id"].lower() or s in (r["device"] or "").lower() or s in r["issuer"].lower()
        ]
    return rows, total


@dataclass(frozen=True, slots=True)
class Counters:
    """``atp fman stats`` per worker, and the refusals summed over the workers by what was
    refused and why (``refused.<what>.<code>``)."""

    workers: dict[str, dict[str, float]]
    refusals: dict[str, float]
    counts: dict[str, Any]


def counters(store: StoreReader) -> Counters:
    workers = store.stats()
    refusals: dict[str, float] = {}
    for values in workers.values():
        for k, v in values.items():
            if k.startswith("refused."):
                key = k.removeprefix("refused.")
                refusals[key] = refusals.get(key, 0.0) + v
    return Counters(
        workers=workers, refusals=dict(sorted(refusals.items())), counts=report.counts(store)
    )


@dataclass(frozen=True, slots=True)
class Settlement:
    """The bills of a settled period (``atp bill list``) and its KPIs (``atp kpi``)."""

    periods: list[str]
    period: str | None
    bills: list[dict[str, Any]]
    kpis: dict[str, Any] | None
    kpi_lines: list[str]


def settlement(store: StoreReader, period: str | None) -> Settlement:
    from cloud.cli.settle import kpi_lines
    from cloud.fman.settlement import period_kpis
    from cloud.settle import Period, kpi_json

    runs = store.settlement_runs()
    periods = sorted({r.period for r in runs}, reverse=True)
    # by default the period of the latest run (runs come ordered by when they were made)
    chosen = period if period in periods else (runs[-1].period if runs else None)
    if chosen is None:
        return Settlement(periods=[], period=None, bills=[], kpis=None, kpi_lines=[])
    tz = next(r.tz for r in runs if r.period == chosen)
    bills = [
        {
            "party": b.party,
            "run": b.run_id,
            "issued_at": b.issued_at,
            "total_cents": b.total_cents,
        }
        for b in store.bills(period=chosen)
    ]
    k = period_kpis(store, Period.parse(chosen, tz=tz))
    return Settlement(
        periods=periods,
        period=chosen,
        bills=bills,
        kpis=json.loads(kpi_json(k)),
        kpi_lines=kpi_lines(k),
    )


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)


@dataclass(frozen=True, slots=True)
class Markets:
    """FMAR's markets as ``atp market list --json`` lists them (with the operator's open or
    closed), every gate with its book's depth (sell orders and requests) and its result, the
    gate calendar from now on, the DSO's congestion registrations, and each market's
    parameters as fmar.toml has them now (``params``; empty without the file) for the
    operator's form."""

    markets: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    calendar: list[dict[str, Any]]
    congestion: list[dict[str, Any]]
    params: dict[str, dict[str, Any]]
    #: why fmar.toml could not be read, if it could not
    config_problem: str = ""


#: gates after the current one the calendar shows (the service's default calendar_gates)
CALENDAR_GATES = 4


def markets(location: str, *, now: float, config: Path | None = None) -> Markets:
    import msgspec

    from cloud.fmar import MarketError, gates
    from cloud.fmar.config import MarketSection, load_config
    from cloud.fmar.control import EDITABLE
    from cloud.fmar.store import open_market_store

    params: dict[str, dict[str, Any]] = {}
    problem = ""
    if config is not None:
        try:
            for mid, section in load_config(config).markets.items():
                params[mid] = {k: msgspec.to_builtins(getattr(section, k)) for k in EDITABLE}
        except MarketError as exc:
            problem = f"{config}: {exc}"
    s = open_market_store(location, readonly=True)
    try:
        rows: list[dict[str, Any]] = []
        gate_rows: list[dict[str, Any]] = []
        calendar: list[dict[str, Any]] = []
        for m in s.markets():
            cfg = json.loads(m.config)
            mg = s.gates(m.id)
            control = s.control(m.id)
            rows.append(
                {
                    "id": m.id,
                    "state": control.state if control else "open",
                    "since": control.changed_at if control else None,
                    "note": control.note if control else "",
                    "kind": cfg.get("kind", "two-sided"),
                    "pricing": cfg.get("pricing", "uniform"),
                    "nodes": len(cfg.get("nodes", [])),
                    "gates": len(mg),
                    "cleared": sum(g.state == "cleared" for g in mg),
                }
            )
            stored = {g.gate: g for g in mg}
            section = msgspec.json.decode(m.config, type=MarketSection)
            for g in gates.calendar(m.id, section, now, CALENDAR_GATES):
                kept = stored.get(g.gate)
                calendar.append(
                    {
                        "market": m.id,
                        "gate": g.gate,
                        "opens_at": g.opens_at,
                        "closes_at": g.closes_at,
                        "delivery_start": g.delivery_start,
                        "slots": g.slots,
                        "resolution_s": g.resolution_s,
                        "stored": kept.state if kept else "not opened yet",
                    }
                )
            for g in mg:
                orders = s.orders(m.id, g.gate)
                result = s.result(m.id, g.gate) if g.state == "cleared" else None
                gate_rows.append(
                    {
                        "market": m.id,
                        "gate": g.gate,
                        "state": g.state,
                        "opens_at": g.opens_at,
                        "closes_at": g.closes_at,
                        "delivery_start": g.delivery_start,
                        "slots": g.slots,
                        "sell": sum(o.side == "sell" for o in orders),
                        "request": sum(o.side == "request" for o in orders),
                        "result": result.status if result else "",
                        "welfare_eur": result.welfare_eur if result else None,
                    }
                )
        congestion = []
        for c in s.congestion():
            kwh = json.loads(c.kwh)
            congestion.append(
                {
                    "market": c.market,
                    "id": c.id,
                    "party": c.party,
                    "node": c.node,
                    "start": c.start,
                    "slots": len(kwh),
                    "kwh": round(sum(kwh), 6),
                    "limit": c.limit,
                    "partial": "yes" if c.partial else "all or nothing",
                    "registered_at": c.registered_at,
                }
            )
    finally:
        s.close()
    return Markets(
        markets=rows,
        gates=gate_rows,
        calendar=calendar,
        congestion=congestion,
        params=params,
        config_problem=problem,
    )
