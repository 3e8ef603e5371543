"""The DSO interface (F2.FMAR7): congestion registrations in, requests into gates, answers out.

A registration is kept as the DSO sent it (:class:`~cloud.fmar.store.CongestionRow`); when a
gate closes, the part of every registration whose slots fall in that gate's delivery becomes
a request of the gate's book (:func:`gate_entry`), so a registration spanning several gates
trades in each of them, and one made now trades from the next gate to close. The request's id
in the book is ``congestion.{dso}.{id}`` (:func:`book_id`); parties' own orders may not use
that prefix, so nobody can take a registration's place in a book.

Who the prosumers relevant to a node are is answered here, by FMAR, from the sell orders it
holds in gates not cleared yet (docs/market.md, "The DSO interface", says why not FMAN).

Pure: rows and the market's configuration in, JSON-ready dicts out; the service does the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from protocol import DecodeError, Response
from protocol._dso import CongestionParams, MarketParams, ProsumersParams, parse_dso_params

from .config import MarketSection
from .store import CongestionRow, GateRow, MarketStore, OrderRow, ResultRow

#: The book ids of registrations begin with this; orders on the bid topic may not.
PREFIX = "congestion."


def book_id(party: str, reg_id: str) -> str:
    return f"{PREFIX}{party}.{reg_id}"


def registration(
    p: CongestionParams, *, party: str, m: MarketSection, next_gate: GateRow, at: float
) -> CongestionRow | str:
    """The row to store for ``p`` from ``party``, or why it is refused (a message naming the
    field). ``next_gate`` is the gate taking orders now: the first a registration can reach."""
    if not m.allows("request", party):
        return (
            f"{party!r} may not buy on market {p.market!r} (its buyers: "
            + (", ".join(m.buyers) or "none")
            + ")"
        )
    node = p.node
    if node is None:
        if len(m.nodes) != 1:
            return f"params.node: market {p.market!r} has nodes {', '.join(m.nodes)}; name one"
        node = m.nodes[0]
    if node not in m.nodes:
        return f"params.node: {node!r} is not a node of {p.market!r} ({', '.join(m.nodes)})"
    res = m.resolution_s
    if p.start % res:
        return f"params.start: {p.start} is not on the market's grid of {res} s"
    if p.start + len(p.kwh) * res <= next_gate.delivery_start:
        return (
            f"params.start: the period ends before {next_gate.delivery_start}, the delivery "
            f"start of gate {next_gate.gate}, the next that can trade it"
        )
    if p.start < next_gate.delivery_start:
        return (
            f"params.start: {p.start} is before {next_gate.delivery_start}, the delivery start "
            f"of gate {next_gate.gate}, the next that can trade it"
        )
    lim = p.limit_eur_per_kwh
    limits = lim if isinstance(lim, list) else [] if lim is None else [lim]
    if any(v < 0 for v in limits):
        return "params.limit_eur_per_kwh: must be >= 0 (or null: fixed demand)"
    if sum(abs(v) for v in p.kwh) < m.min_order_kwh:
        return f"params.kwh: less than the market's minimum of {m.min_order_kwh:g} kWh"
    return CongestionRow(
        market=p.market,
        id=p.id,
        party=party,
        node=node,
        start=p.start,
        kwh=json.dumps(list(p.kwh)),
        limit=json.dumps(lim),
        partial=p.partial,
        registered_at=at,
    )


def gate_entry(reg: CongestionRow, gate: GateRow) -> dict[str, Any] | None:
    """The request (a book entry) ``reg`` puts into ``gate``: its slots inside the gate's
    delivery; ``None`` if it has none there."""
    kwh = json.loads(reg.kwh)
    lim = json.loads(reg.limit)
    res = gate.resolution_s
    lo, hi = gate.delivery_start, gate.delivery_start + gate.slots * res
    js = [j for j in range(len(kwh)) if lo <= reg.start + j * res < hi]
    if not js:
        return None
    return {
        "id": book_id(reg.party, reg.id),
        "node": reg.node,
        "start": reg.start + js[0] * res,
        "kwh": [kwh[j] for j in js],
        "limit_eur_per_kwh": [lim[j] for j in js] if isinstance(lim, list) else lim,
        "partial": reg.partial,
    }


def registration_json(reg: CongestionRow, resolution_s: int) -> dict[str, Any]:
    kwh = json.loads(reg.kwh)
    return {
        "market": reg.market,
        "id": reg.id,
        "node": reg.node,
        "start": reg.start,
        "end": reg.start + len(kwh) * resolution_s,
        "kwh": kwh,
        "limit_eur_per_kwh": json.loads(reg.limit),
        "partial": reg.partial,
        "registered_at": reg.registered_at,
    }


def summary(regs: list[CongestionRow], results: dict[str, list[ResultRow]]) -> list[dict[str, Any]]:
    """Per registration, its trades in every cleared gate (``results`` per market): the kWh
    accepted per gate slot and what the DSO paid, and the totals."""
    out = []
    for reg in regs:
        rid = book_id(reg.party, reg.id)
        asked = sum(abs(v) for v in json.loads(reg.kwh))
        gates = []
        for r in results.get(reg.market, []):
            doc = json.loads(r.payload)
            for line in doc.get("requests", []):
                if line.get("id") == rid:
                    gates.append(
                        {
                            "gate": r.gate,
                            "status": r.status,
                            "delivery_start": doc.get("delivery_start"),
                            "accepted_kwh": line["accepted_kwh"],
                            "paid_eur": line["paid_eur"],
                        }
                    )
        gates.sort(key=lambda g: g["gate"])
        out.append(
            {
                "market": reg.market,
                "id": reg.id,
                "node": reg.node,
                "asked_kwh": asked,
                "accepted_kwh": sum(abs(v) for g in gates for v in g["accepted_kwh"]),
                "paid_eur": sum(g["paid_eur"] for g in gates),
                "gates": gates,
            }
        )
    return out


def prosumers(
    market: str, m: MarketSection, node: str | None, orders: list[tuple[GateRow, OrderRow]]
) -> dict[str, Any]:
    """The parties with open sell orders at ``node`` (every node: ``None``) and those orders:
    what a DSO can buy there in the gates not cleared yet."""
    parties: dict[str, list[dict[str, Any]]] = {}
    for gate, o in orders:
        if o.side != "sell":
            continue
        entry = json.loads(o.entry)
        offer = entry["offer"]
        at = entry.get("node") or offer.get("grid_node") or (m.nodes[0] if m.nodes else "")
        if node is not None and at != node:
            continue
        profiles = offer.get("profiles", [])
        ranges = [
            sum(
                u - lo
                for lo, u in zip(p.get("lower_kwh", []), p.get("upper_kwh", []), strict=False)
            )
            for p in profiles
        ]
        parties.setdefault(o.party, []).append(
            {
                "gate": gate.gate,
                "offer_id": o.id,
                "node": at,
                "start_after": offer.get("start_after"),
                "start_before": offer.get("start_before"),
                "range_kwh": max(ranges, default=0.0),
                "ask_up_eur_per_kwh": entry.get("ask_up_eur_per_kwh"),
                "ask_down_eur_per_kwh": entry.get("ask_down_eur_per_kwh"),
            }
        )
    return {
        "market": market,
        "node": node,
        "prosumers": [
            {"party": party, "offers": offers} for party, offers in sorted(parties.items())
        ],
    }


def _error(text: str) -> Response:
    return Response(status="error", reason=text[:1024])


def answer(
    method: str,
    params: Any,
    *,
    party: str,
    markets: Mapping[str, MarketSection],
    store: MarketStore,
    next_gate: Callable[[str], GateRow],
    closed: Callable[[str], str],
    at: float,
) -> Response:
    """The response to the DSO ``party``'s ``method`` with ``params``; never raises for bad
    input. ``next_gate(market)`` is the gate taking orders now (stored), ``closed(market)``
    why the operator closed it (empty: open); a registration is stored before the answer."""
    if not isinstance(params, dict):
        return _error("params: expected an object")
    try:
        p = parse_dso_params(method, params)
    except DecodeError as exc:
        return _error("; ".join(f"{e.path}: {e.message}" for e in exc.errors))
    market = getattr(p, "market", None)
    if market is not None and market not in markets:
        return _error(f"params.market: no market {market!r} (known: {', '.join(markets)})")
    if isinstance(p, CongestionParams):
        mc = markets[p.market]
        why = closed(p.market)
        if why:
            return _error(why)
        nxt = next_gate(p.market)
        row = registration(p, party=party, m=mc, next_gate=nxt, at=at)
        if isinstance(row, str):
            return _error(row)
        outcome = store.add_congestion(row)
        if outcome == "conflict":
            return _error(f"params.id: {p.id!r} is registered already with other values")
        return Response(
            status="ok",
            body={
                **registration_json(row, mc.resolution_s),
                "stored": outcome,
                "next_gate": nxt.gate,
            },
        )
    if isinstance(p, MarketParams):
        regs = [r for r in store.congestion(p.market, party=party) if p.id in (None, r.id)]
        if p.id is not None and not regs:
            return _error(f"params.id: no registration {p.id!r}")
        results = {mk: store.results(mk, limit=10_000) for mk in {r.market for r in regs}}
        traded = summary(regs, results)
        if method == "congestion/summary":
            return Response(
                status="ok",
                body={
                    "registrations": traded,
                    "accepted_kwh": sum(r["accepted_kwh"] for r in traded),
                    "paid_eur": sum(r["paid_eur"] for r in traded),
                },
            )
        out: list[dict[str, Any]] = []
        for reg, t in zip(regs, traded, strict=True):
            res = markets.get(reg.market)
            doc = registration_json(reg, res.resolution_s if res else 900)
            out.append({**doc, "cleared_gates": [g["gate"] for g in t["gates"]]})
        return Response(status="ok", body={"registrations": out})
    assert isinstance(p, ProsumersParams)
    mc = markets[p.market]
    if p.node is not None and p.node not in mc.nodes:
        return _error(
            f"params.node: {p.node!r} is not a node of {p.market!r} ({', '.join(mc.nodes)})"
        )
    held = [
        (g, o)
        for g in store.gates(p.market, states=("open", "closed"))
        for o in store.orders(p.market, g.gate)
    ]
    return Response(status="ok", body=prosumers(p.market, mc, p.node, held))
