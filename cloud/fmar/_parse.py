"""Reading a book from its JSON form (docs/market.md), with every error named by its path.

The shape (keys, types) is checked here while walking the document; the rules that relate
fields (nodes, horizon, duplicates, asks) are :func:`~cloud.fmar._book.validate_book`'s, so a
book built in memory meets the same rules. Offers are read by the protocol (project JSON or
GOFLEX JSON), their errors prefixed with the order's path. Unknown keys are refused: a
misspelt ``ask_up`` must not silently fall back to the offer's prices.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from typing import Any

import msgspec

import protocol
from protocol import FieldError, FlexOffer

from ._book import Book, Link, Market, Network, Price, Request, SellOrder, validate_book
from ._errors import BookError

_TOP = {"market", "network", "sell", "requests"}
_MARKET = {"start", "slots", "resolution_s"}
_NETWORK = {"nodes", "links"}
_LINK = {"from", "to", "capacity_kwh", "cost_eur_per_kwh"}
_ORDER = {"offer", "node", "ask_up_eur_per_kwh", "ask_down_eur_per_kwh"}
_REQUEST = {"id", "node", "start", "kwh", "limit_eur_per_kwh", "partial"}
_MISSING = object()


class _Reader:
    """Collects errors while reading; each getter returns ``None`` after recording one."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def obj(self, value: Any, path: str, keys: set[str]) -> Mapping[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {_kind(value)}")
            return None
        for k in sorted(set(value) - keys):
            self.fail(_at(path, k), f"unknown key (known: {', '.join(sorted(keys))})")
        return value

    def list(self, value: Any, path: str) -> list[Any] | None:
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {_kind(value)}")
            return None
        return value

    def int(self, value: Any, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {_kind(value)}")
            return None
        return value

    def num(self, value: Any, path: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number, got {_kind(value)}")
            return None
        if not math.isfinite(value):
            self.fail(path, f"{value} is not finite")
            return None
        return float(value)

    def str(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_kind(value)}")
            return None
        return value

    def nums(self, value: Any, path: builtins.str) -> tuple[float, ...] | None:
        items = self.list(value, path)
        if items is None:
            return None
        out = [self.num(v, f"{path}[{k}]") for k, v in enumerate(items)]
        return None if any(v is None for v in out) else tuple(v for v in out if v is not None)

    def price(self, value: Any, path: builtins.str) -> Price | None:
        """A number or a list of numbers."""
        if isinstance(value, list):
            return self.nums(value, path)
        return self.num(value, path)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def read_book(data: bytes | str) -> Book:
    """The book in ``data`` (its JSON form), checked against every rule; a
    :class:`~cloud.fmar.BookError` lists every problem with its field path."""
    try:
        doc = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BookError([FieldError("", f"not valid JSON: {exc}")]) from None
    return book_from_builtins(doc)


def book_from_builtins(doc: Any) -> Book:
    """The book in ``doc`` (decoded JSON), checked like :func:`read_book`."""
    rd = _Reader()
    top = rd.obj(doc, "", _TOP)
    if top is None:
        raise BookError(rd.errors)
    market = _market(rd, top.get("market", _MISSING))
    network = None
    if top.get("network") is not None:
        network = _network(rd, top["network"])
    sell: list[SellOrder] = []
    orders = rd.list(top.get("sell", []), "sell")
    for i, raw in enumerate(orders or []):
        order = _order(rd, raw, f"sell[{i}]")
        if order is not None:
            sell.append(order)
    requests: list[Request] = []
    reqs = rd.list(top.get("requests", []), "requests")
    for j, raw in enumerate(reqs or []):
        req = _request(rd, raw, f"requests[{j}]")
        if req is not None:
            requests.append(req)
    if rd.errors or market is None:
        raise BookError(rd.errors)
    book = Book(market=market, network=network, sell=tuple(sell), requests=tuple(requests))
    errors = validate_book(book, offers_checked=True)
    if errors:
        raise BookError(errors)
    return book


def _market(rd: _Reader, raw: Any) -> Market | None:
    if raw is _MISSING:
        rd.fail("market", "required")
        return None
    m = rd.obj(raw, "market", _MARKET)
    if m is None:
        return None
    for key in ("start", "slots"):
        if key not in m:
            rd.fail(f"market.{key}", "required")
    start = rd.int(m["start"], "market.start") if "start" in m else None
    slots = rd.int(m["slots"], "market.slots") if "slots" in m else None
    res = rd.int(m.get("resolution_s", 900), "market.resolution_s")
    if start is None or slots is None or res is None:
        return None
    return Market(start=start, slots=slots, resolution_s=res)


def _network(rd: _Reader, raw: Any) -> Network | None:
    n = rd.obj(raw, "network", _NETWORK)
    if n is None:
        return None
    nodes: list[str] = []
    for k, v in enumerate(rd.list(n.get("nodes", []), "network.nodes") or []):
        s = rd.str(v, f"network.nodes[{k}]")
        if s is not None:
            nodes.append(s)
    links: list[Link] = []
    for k, v in enumerate(rd.list(n.get("links", []), "network.links") or []):
        p = f"network.links[{k}]"
        link = rd.obj(v, p, _LINK)
        if link is None:
            continue
        missing = [key for key in ("from", "to", "capacity_kwh") if key not in link]
        for key in missing:
            rd.fail(f"{p}.{key}", "required")
        if missing:
            continue
        src = rd.str(link["from"], f"{p}.from")
        dst = rd.str(link["to"], f"{p}.to")
        cap = rd.num(link["capacity_kwh"], f"{p}.capacity_kwh")
        cost = rd.num(link.get("cost_eur_per_kwh", 0.0), f"{p}.cost_eur_per_kwh")
        if src is None or dst is None or cap is None or cost is None:
            continue
        links.append(Link(source=src, target=dst, capacity_kwh=cap, cost_eur_per_kwh=cost))
    return Network(nodes=tuple(nodes), links=tuple(links))


def _offer(rd: _Reader, raw: Any, path: str) -> FlexOffer | None:
    try:
        if protocol.is_goflex(raw):
            return protocol.from_goflex(raw)[0]
        return protocol.from_builtins(raw, FlexOffer)
    except (protocol.DecodeError, protocol.ConversionError) as exc:
        for e in exc.errors:
            rd.fail(f"{path}.{e.path}" if e.path else path, e.message)
    return None


def _order(rd: _Reader, raw: Any, p: str) -> SellOrder | None:
    o = rd.obj(raw, p, _ORDER)
    if o is None:
        return None
    if "offer" not in o:
        rd.fail(f"{p}.offer", "required")
        return None
    offer = _offer(rd, o["offer"], f"{p}.offer")
    node = None if o.get("node") is None else rd.str(o["node"], f"{p}.node")
    asks: dict[str, Price | None] = {}
    ok = True
    for key in ("ask_up_eur_per_kwh", "ask_down_eur_per_kwh"):
        if o.get(key) is None:
            asks[key] = None
            continue
        asks[key] = rd.price(o[key], f"{p}.{key}")
        ok = ok and asks[key] is not None
    if offer is None or not ok or (o.get("node") is not None and node is None):
        return None
    return SellOrder(
        offer=offer,
        node=node,
        ask_up_eur_per_kwh=asks["ask_up_eur_per_kwh"],
        ask_down_eur_per_kwh=asks["ask_down_eur_per_kwh"],
    )


def _request(rd: _Reader, raw: Any, p: str) -> Request | None:
    r = rd.obj(raw, p, _REQUEST)
    if r is None:
        return None
    missing = [key for key in ("id", "start", "kwh", "limit_eur_per_kwh") if key not in r]
    for key in missing:
        rd.fail(
            f"{p}.{key}",
            "required (null for fixed demand)" if key == "limit_eur_per_kwh" else "required",
        )
    if missing:
        return None
    rid = rd.str(r["id"], f"{p}.id")
    node = None if r.get("node") is None else rd.str(r["node"], f"{p}.node")
    start = rd.int(r["start"], f"{p}.start")
    kwh = rd.nums(r["kwh"], f"{p}.kwh")
    limit = (
        None
        if r["limit_eur_per_kwh"] is None
        else rd.price(r["limit_eur_per_kwh"], f"{p}.limit_eur_per_kwh")
    )
    partial = r.get("partial", True)
    if not isinstance(partial, bool):
        rd.fail(f"{p}.partial", f"expected true or false, got {_kind(partial)}")
        return None
    if (
        rid is None
        or start is None
        or kwh is None
        or (r["limit_eur_per_kwh"] is not None and limit is None)
        or (r.get("node") is not None and node is None)
    ):
        return None
    return Request(
        id=rid, node=node, start=start, kwh=kwh, limit_eur_per_kwh=limit, partial=partial
    )


def book_to_builtins(book: Book) -> dict[str, Any]:
    """The JSON form of a book (what :func:`read_book` reads back to an equal book)."""
    doc: dict[str, Any] = {
        "market": {
            "start": book.market.start,
            "slots": book.market.slots,
            "resolution_s": book.market.resolution_s,
        }
    }
    if book.network is not None:
        doc["network"] = {
            "nodes": list(book.network.nodes),
            "links": [
                {
                    "from": k.source,
                    "to": k.target,
                    "capacity_kwh": k.capacity_kwh,
                    "cost_eur_per_kwh": k.cost_eur_per_kwh,
                }
                for k in book.network.links
            ],
        }
    sell = []
    for o in book.sell:
        item: dict[str, Any] = {"offer": protocol.to_builtins(o.offer)}
        if o.node is not None:
            item["node"] = o.node
        for key, value in (
            ("ask_up_eur_per_kwh", o.ask_up_eur_per_kwh),
            ("ask_down_eur_per_kwh", o.ask_down_eur_per_kwh),
        ):
            if value is not None:
                item[key] = list(value) if isinstance(value, tuple) else value
        sell.append(item)
    doc["sell"] = sell
    doc["requests"] = [
        {
            "id": r.id,
            **({"node": r.node} if r.node is not None else {}),
            "start": r.start,
            "kwh": list(r.kwh),
            "limit_eur_per_kwh": list(r.limit_eur_per_kwh)
            if isinstance(r.limit_eur_per_kwh, tuple)
            else r.limit_eur_per_kwh,
            "partial": r.partial,
        }
        for r in book.requests
    ]
    return doc
