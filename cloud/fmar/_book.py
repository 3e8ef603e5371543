"""The order book: what a market clears, as frozen value objects, and the rules it must meet.

A *sell order* is a Flex-Offer with its asks (EUR per kWh of up and of down deviation from
its default schedule, per market slot or as one figure) at a grid node. A *request* is a signed
quantity per slot at a node (positive: up, more consumption or less production) with a limit
price (``None``: fixed demand, valued at the market's value of lost load) and whether it may be
accepted in part. An optional *network* joins nodes by directed links with a capacity and a
transport cost. The objects hold what the book says; :func:`validate_book` checks the rules of
docs/market.md and the helpers here resolve what a field may leave out (an order's node, its
asks from the offer's own prices), so that parsing, the clearing and a future service read a
book the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import protocol
from protocol import FieldError, FlexOffer

#: Ids appear in MQTT topics and file names (the protocol's rule).
ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
#: Longest market horizon, in slots (31 days of quarter hours).
MAX_MARKET_SLOTS = 2976
#: The one node of a market without a network whose orders name none.
POOL_NODE = "pool"

Price = float | tuple[float, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Market:
    """The horizon: ``slots`` slots of ``resolution_s`` seconds from ``start`` (epoch s)."""

    start: int
    slots: int
    resolution_s: int = 900

    @property
    def end(self) -> int:
        return self.start + self.slots * self.resolution_s

    def slot_of(self, ts: int) -> int:
        return (ts - self.start) // self.resolution_s


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A directed link: flow carries up deviation from ``source`` to ``target`` (or, equally,
    down deviation the other way), at most ``capacity_kwh`` per slot, at ``cost_eur_per_kwh``."""

    source: str
    target: str
    capacity_kwh: float
    cost_eur_per_kwh: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    nodes: tuple[str, ...]
    links: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SellOrder:
    """An offer and its asks; ``None`` for an ask or the node means "from the offer"."""

    offer: FlexOffer
    node: str | None = None
    ask_up_eur_per_kwh: Price | None = None
    ask_down_eur_per_kwh: Price | None = None

    @property
    def id(self) -> str:
        return self.offer.id


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """``kwh[j]`` is asked for market slot ``start + j`` (signed: positive is up);
    ``limit_eur_per_kwh`` is one figure, one per slot of ``kwh``, or ``None`` (fixed demand)."""

    id: str
    node: str | None
    start: int
    kwh: tuple[float, ...]
    limit_eur_per_kwh: Price | None
    partial: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Book:
    market: Market
    network: Network | None = None
    sell: tuple[SellOrder, ...] = ()
    requests: tuple[Request, ...] = ()


# -- resolving what may be left out -----------------------------------------------------------


def nodes_of(book: Book) -> tuple[str, ...]:
    """The market's nodes: the network's, or the one node every order and request names
    (:data:`POOL_NODE` when none names one)."""
    if book.network is not None:
        return book.network.nodes
    named = {n for n in (_named_node(o) for o in book.sell) if n}
    named |= {r.node for r in book.requests if r.node}
    return (min(named),) if named else (POOL_NODE,)


def _named_node(order: SellOrder) -> str | None:
    return order.node if order.node is not None else (order.offer.grid_node or None)


def order_node(book: Book, order: SellOrder) -> str:
    """The node an order trades at (the order's, else its offer's grid node, else the single
    node of a market without a network)."""
    return _named_node(order) or nodes_of(book)[0]


def request_node(book: Book, request: Request) -> str:
    return request.node or nodes_of(book)[0]


def order_asks(market: Market, order: SellOrder) -> tuple[list[float], list[float]]:
    """The asks (up, down) per market slot: the order's where given, else the offer's prices
    (see docs/market.md: ``deviation_eur_per_kwh`` for both directions; direct-mode per-slot
    ``[min, max]`` pairs give ``max(min, 0)``, aligned with the default schedule's slots and
    held constant before and after it). Raises ``ValueError`` naming the field when neither
    gives an ask (:func:`validate_book` reports that first)."""
    out = []
    for name, given in (
        ("ask_up_eur_per_kwh", order.ask_up_eur_per_kwh),
        ("ask_down_eur_per_kwh", order.ask_down_eur_per_kwh),
    ):
        if given is not None:
            out.append(_per_slot(given, market.slots))
            continue
        derived = offer_asks(market, order.offer)
        if derived is None:
            raise ValueError(f"{name}: not given and the offer has no prices")
        out.append(derived)
    return out[0], out[1]


def offer_asks(market: Market, offer: FlexOffer) -> list[float] | None:
    """An ask per market slot from the offer's own prices, or ``None`` when it has none
    (:func:`protocol.offer_asks`, the rule FMAN's planner applies too)."""
    return protocol.offer_asks(offer, start=market.start, slots=market.slots)


def _per_slot(value: Price, slots: int) -> list[float]:
    return [float(value)] * slots if isinstance(value, int | float) else [float(v) for v in value]


def request_limits(request: Request, voll: float) -> list[float]:
    """The limit per slot of the request (the value of lost load where it has none)."""
    limit = request.limit_eur_per_kwh
    if limit is None:
        return [voll] * len(request.kwh)
    return _per_slot(limit, len(request.kwh))


# -- the rules ----------------------------------------------------------------------------------


def validate_book(book: Book, *, offers_checked: bool = False) -> list[FieldError]:
    """Every rule the book breaks (docs/market.md), with field paths; empty means it clears.

    Offers are checked by :func:`protocol.validate_offer` too (unless ``offers_checked``: the
    reader decoded them with the protocol's checks), so a book built in memory gets the same
    verdict as one read from a file."""
    errors: list[FieldError] = []
    m = book.market
    if not protocol.resolution_ok(m.resolution_s):
        errors.append(
            FieldError("market.resolution_s", f"{m.resolution_s} s: 900 to 3600, dividing a day")
        )
        return errors
    if m.start % m.resolution_s:
        errors.append(
            FieldError("market.start", f"{m.start} is not on the {m.resolution_s} s slot grid")
        )
    if not 1 <= m.slots <= MAX_MARKET_SLOTS:
        errors.append(FieldError("market.slots", f"{m.slots}: 1 to {MAX_MARKET_SLOTS} allowed"))
        return errors
    for i, order in enumerate(book.sell):
        grid = order.offer.grid_node
        if order.node is not None and grid and order.node != grid:
            message = f"{order.node!r} differs from the offer's grid_node {grid!r}"
            errors.append(FieldError(f"sell[{i}].node", message))
    if errors:
        return errors
    nodes = _check_network(book.network, errors)
    if book.network is None:
        named = {n for n in (_named_node(o) for o in book.sell) if n}
        named |= {r.node for r in book.requests if r.node}
        if len(named) > 1:
            errors.append(
                FieldError(
                    "network",
                    f"orders and requests name {len(named)} nodes ({', '.join(sorted(named))}); "
                    "a market of several nodes needs a network",
                )
            )
            return errors
        nodes = set(nodes_of(book))
    seen: dict[str, int] = {}
    for i, order in enumerate(book.sell):
        if not offers_checked:
            errors.extend(
                FieldError(f"sell[{i}].offer.{e.path}", e.message)
                for e in protocol.validate_offer(order.offer)
            )
        _check_order(book, i, order, nodes, seen, errors)
    seen_r: dict[str, int] = {}
    for j, req in enumerate(book.requests):
        _check_request(book, j, req, nodes, seen_r, errors)
    return errors


def _check_network(network: Network | None, errors: list[FieldError]) -> set[str]:
    if network is None:
        return set()
    nodes: set[str] = set()
    if not network.nodes:
        errors.append(FieldError("network.nodes", "no nodes"))
    for k, n in enumerate(network.nodes):
        if not 1 <= len(n) <= 64:
            errors.append(FieldError(f"network.nodes[{k}]", "a node name has 1 to 64 characters"))
        elif n in nodes:
            errors.append(FieldError(f"network.nodes[{k}]", f"duplicate node {n!r}"))
        nodes.add(n)
    pairs: dict[tuple[str, str], int] = {}
    for k, link in enumerate(network.links):
        p = f"network.links[{k}]"
        for name, end in (("from", link.source), ("to", link.target)):
            if end not in nodes:
                errors.append(FieldError(f"{p}.{name}", f"{end!r} is not a node of the network"))
        if link.source == link.target:
            errors.append(FieldError(p, f"a link from {link.source!r} to itself"))
        pair = (link.source, link.target)
        if pair in pairs:
            errors.append(
                FieldError(p, f"a second link {pair[0]} -> {pair[1]} (first: links[{pairs[pair]}])")
            )
        pairs.setdefault(pair, k)
        for name, value in (
            ("capacity_kwh", link.capacity_kwh),
            ("cost_eur_per_kwh", link.cost_eur_per_kwh),
        ):
            if not math.isfinite(value) or value < 0:
                errors.append(FieldError(f"{p}.{name}", f"{value:g} must be finite and >= 0"))
    return nodes


def _check_order(
    book: Book,
    i: int,
    order: SellOrder,
    nodes: set[str],
    seen: dict[str, int],
    errors: list[FieldError],
) -> None:
    p = f"sell[{i}]"
    m = book.market
    offer = order.offer
    if offer.id in seen:
        errors.append(FieldError(f"{p}.offer.id", f"duplicate of sell[{seen[offer.id]}]"))
    seen.setdefault(offer.id, i)
    if offer.resolution_s != m.resolution_s:
        errors.append(
            FieldError(
                f"{p}.offer.resolution_s",
                f"{offer.resolution_s} s, the market's is {m.resolution_s} s",
            )
        )
        return
    node = order_node(book, order)
    if node not in nodes:
        where = f"{p}.node" if order.node is not None else f"{p}.offer.grid_node"
        errors.append(FieldError(where, f"{node!r} is not a node of the network"))
    _check_horizon(m, offer, p, errors)
    for name, given in (
        ("ask_up_eur_per_kwh", order.ask_up_eur_per_kwh),
        ("ask_down_eur_per_kwh", order.ask_down_eur_per_kwh),
    ):
        if given is None:
            if offer_asks(m, offer) is None:
                errors.append(
                    FieldError(
                        f"{p}.{name}", "not given, and the offer has no prices to take it from"
                    )
                )
            continue
        _check_prices(f"{p}.{name}", given, m.slots, "market slots", errors, what="an ask")


def _check_horizon(m: Market, offer: FlexOffer, p: str, errors: list[FieldError]) -> None:
    """Every start the offer allows, with its profile's length, and its default lie within
    the market's horizon."""
    res = m.resolution_s
    d = offer.default
    if d.start < m.start or d.start + len(d.energy_kwh) * res > m.end:
        errors.append(
            FieldError(
                f"{p}.offer.default",
                f"runs {d.start} to {d.start + len(d.energy_kwh) * res}, outside the market's "
                f"horizon {m.start} to {m.end}",
            )
        )
    for k, prof in enumerate(protocol.effective_profiles(offer)):
        lo, hi = protocol.profile_window(offer, prof)
        lo = protocol.align_up(lo, res)
        hi -= hi % res
        if lo > hi:
            continue  # a profile no start can run: never chosen
        if lo < m.start or hi + prof.n_slots * res > m.end:
            errors.append(
                FieldError(
                    f"{p}.offer",
                    f"profile {k} may start from {lo} to {hi} and run {prof.n_slots} slots, "
                    f"leaving the market's horizon {m.start} to {m.end}",
                )
            )


def _check_prices(
    path: str,
    value: Price,
    length: int,
    unit: str,
    errors: list[FieldError],
    *,
    what: str,
) -> None:
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            errors.append(FieldError(path, f"{what} must be finite and >= 0, got {value:g}"))
        return
    if len(value) != length:
        errors.append(FieldError(path, f"{len(value)} values for {length} {unit}"))
    for t, v in enumerate(value):
        if not math.isfinite(v) or v < 0:
            errors.append(FieldError(f"{path}[{t}]", f"{what} must be finite and >= 0, got {v:g}"))


def _check_request(
    book: Book,
    j: int,
    req: Request,
    nodes: set[str],
    seen: dict[str, int],
    errors: list[FieldError],
) -> None:
    p = f"requests[{j}]"
    m = book.market
    if not ID_RE.match(req.id):
        errors.append(
            FieldError(f"{p}.id", "1 to 128 letters, digits or _.:@- (no blanks, / + or #)")
        )
    if req.id in seen:
        errors.append(FieldError(f"{p}.id", f"duplicate of requests[{seen[req.id]}]"))
    seen.setdefault(req.id, j)
    node = request_node(book, req)
    if node not in nodes:
        errors.append(FieldError(f"{p}.node", f"{node!r} is not a node of the network"))
    if req.node is None and book.network is not None and len(book.network.nodes) > 1:
        errors.append(FieldError(f"{p}.node", "required in a market of several nodes"))
    if req.start % m.resolution_s:
        errors.append(
            FieldError(f"{p}.start", f"{req.start} is not on the {m.resolution_s} s slot grid")
        )
    if not req.kwh:
        errors.append(FieldError(f"{p}.kwh", "no slots"))
    end = req.start + len(req.kwh) * m.resolution_s
    if req.start < m.start or end > m.end:
        errors.append(
            FieldError(
                f"{p}.kwh",
                f"runs {req.start} to {end}, outside the market's horizon {m.start} to {m.end}",
            )
        )
    for t, v in enumerate(req.kwh):
        if not math.isfinite(v) or abs(v) > 1e6:
            errors.append(FieldError(f"{p}.kwh[{t}]", f"{v:g} is not a quantity in kWh"))
    if req.limit_eur_per_kwh is not None:
        _check_prices(
            f"{p}.limit_eur_per_kwh",
            req.limit_eur_per_kwh,
            len(req.kwh),
            "slots of kwh",
            errors,
            what="a limit",
        )


def sorted_book(book: Book) -> Book:
    """The book in its canonical order (orders and requests by id, nodes by name, links by
    their ends): the clearing reads it in this order, so a book clears the same whatever order
    it lists things."""
    network = book.network
    if network is not None:
        network = Network(
            nodes=tuple(sorted(network.nodes)),
            links=tuple(sorted(network.links, key=lambda k: (k.source, k.target))),
        )
    return Book(
        market=book.market,
        network=network,
        sell=tuple(sorted(book.sell, key=lambda o: o.id)),
        requests=tuple(sorted(book.requests, key=lambda r: r.id)),
    )
