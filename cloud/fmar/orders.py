"""Orders off the wire into a gate's book, and a cleared book back onto the wire. Pure.

An order is judged against its market and gate before it is stored: the protocol's rules
(:func:`protocol.decode`), then the book's (:func:`~cloud.fmar.validate_book` on a book of the
gate holding that order alone: resolution, horizon, asks, request slots), then the market's
(its nodes, its minimum order size). What is stored is the order's entry of the book JSON, so
a gate's book is exactly what ``atp market clear`` reads, and ``atp market book`` prints it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

import protocol
from protocol import DecodeError, FieldError, MarketRequest, Reason, SellOrder

from ._book import Book
from ._errors import BookError
from ._parse import book_from_builtins
from ._result import Clearing
from .config import MarketSection
from .store import GateRow, OrderRow


@dataclass(frozen=True, slots=True, kw_only=True)
class Bid:
    """A decoded order: ``side`` ``sell`` or ``request``, its id, party and book entry."""

    kind: str
    side: str
    id: str
    party: str
    market: str
    gate: str
    entry: dict[str, Any]


def reasons_of(errors: list[FieldError] | tuple[FieldError, ...], code: str) -> list[Reason]:
    return [Reason(code=code, field=e.path, message=e.message) for e in errors[:50]]


def sender_of(payload: bytes) -> tuple[str, str, str] | None:
    """``(kind, party, order id)`` read loosely from a message that failed to decode, so its
    sender can be told why; ``None`` when the sender cannot be named."""
    try:
        env = msgspec.msgpack.decode(payload)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return None
    if not isinstance(env, dict) or not isinstance(env.get("body"), dict):
        return None
    body = env["body"]
    party = body.get("party")
    offer = body.get("offer")
    oid = body.get("id") or (offer.get("id") if isinstance(offer, dict) else None) or ""
    kind = raw if isinstance(raw := env.get("kind"), str) else "market.order"

    if not isinstance(party, str) or not isinstance(oid, str):
        return None
    try:
        protocol.topics.market_answer_topic("m", party)
    except ValueError:
        return None
    return kind[:64], party, oid[:128]


def decode_bid(payload: bytes) -> Bid:
    """The order in ``payload``; :class:`protocol.DecodeError` (with field paths) if it is no
    valid sell order or request."""
    msg = protocol.decode(payload)
    body = msg.body
    if isinstance(body, SellOrder):
        entry: dict[str, Any] = {"offer": protocol.to_builtins(body.offer)}
        for key in ("node", "ask_up_eur_per_kwh", "ask_down_eur_per_kwh"):
            value = getattr(body, key)
            if value is not None:
                entry[key] = value
        return Bid(
            kind=msg.kind,
            side="sell",
            id=body.offer.id,
            party=body.party,
            market=body.market,
            gate=body.gate,
            entry=entry,
        )
    if isinstance(body, MarketRequest):
        entry = {
            "id": body.id,
            "start": body.start,
            "kwh": list(body.kwh),
            "limit_eur_per_kwh": body.limit_eur_per_kwh,
            "partial": body.partial,
        }
        if body.node is not None:
            entry["node"] = body.node
        return Bid(
            kind=msg.kind,
            side="request",
            id=body.id,
            party=body.party,
            market=body.market,
            gate=body.gate,
            entry=entry,
        )
    raise DecodeError([FieldError("kind", f"{msg.kind!r} is not an order (market.sell or ...)")])


def book_doc(m: MarketSection, gate: GateRow, orders: list[OrderRow]) -> dict[str, Any]:
    """The gate's book as docs/market.md writes it (what ``atp market clear`` reads)."""
    doc: dict[str, Any] = {
        "market": {
            "start": gate.delivery_start,
            "slots": gate.slots,
            "resolution_s": gate.resolution_s,
        }
    }
    network = m.network()
    if network is not None:
        doc["network"] = network
    doc["sell"] = [json.loads(o.entry) for o in orders if o.side == "sell"]
    doc["requests"] = [json.loads(o.entry) for o in orders if o.side == "request"]
    return doc


def check_bid(bid: Bid, m: MarketSection, gate: GateRow) -> list[Reason]:
    """Why ``bid`` cannot go into ``gate`` of market ``m`` (empty: it can)."""
    doc = book_doc(m, gate, [])
    key = "sell" if bid.side == "sell" else "requests"
    doc[key] = [bid.entry]
    try:
        book = book_from_builtins(doc)
    except BookError as exc:
        return [
            Reason(code="book", field=_unprefixed(e.path, key), message=e.message)
            for e in exc.errors[:50]
        ]
    return _market_rules(bid, book, m)


def _unprefixed(path: str, key: str) -> str:
    head = f"{key}[0]"
    return path[len(head) + 1 :] if path.startswith(head + ".") else path


def _market_rules(bid: Bid, book: Book, m: MarketSection) -> list[Reason]:
    reasons: list[Reason] = []
    if bid.side == "sell":
        order = book.sell[0]
        node = order.node or order.offer.grid_node or None
        rng = (
            max(
                sum(u - lo for lo, u in zip(p.lower_kwh, p.upper_kwh, strict=True))
                for p in order.offer.profiles
            )
            if order.offer.profiles
            else 0.0
        )
        size, field = rng, "offer.profiles"
    else:
        req = book.requests[0]
        node = req.node
        size, field = sum(abs(v) for v in req.kwh), "kwh"
    if node is not None and node not in m.nodes:
        reasons.append(
            Reason(
                code="node",
                field="node",
                message=f"{node!r} is not a node of this market ({', '.join(m.nodes)})",
            )
        )
    if size < m.min_order_kwh:
        reasons.append(
            Reason(
                code="size",
                field=field,
                message=f"{size:g} kWh of flexibility < the minimum {m.min_order_kwh:g} kWh",
            )
        )
    return reasons


def result_message(market: str, gate: GateRow, c: Clearing) -> protocol.MarketResult:
    return protocol.MarketResult(
        market=market,
        gate=gate.gate,
        status=c.status,
        welfare_eur=c.welfare_eur,
        bound_eur=c.bound_eur,
        pricing=c.pricing,
        delivery_start=gate.delivery_start,
        resolution_s=gate.resolution_s,
        prices={n: list(p) for n, p in c.prices.items()},
        awards=[
            protocol.AwardLine(
                offer_id=a.offer_id,
                node=a.node,
                start=a.start,
                profile=a.profile,
                energy_kwh=list(a.energy_kwh),
                deviation_kwh=list(a.deviation_kwh),
                paid_eur=a.paid_eur,
            )
            for a in c.awards
        ],
        requests=[
            protocol.AcceptedRequest(
                id=r.id, node=r.node, accepted_kwh=list(r.accepted_kwh), paid_eur=r.paid_eur
            )
            for r in c.requests
        ],
        flows=[
            protocol.FlowLine(source=f.source, target=f.target, kwh=list(f.kwh)) for f in c.flows
        ],
    )
