"""A book as arrays over the market's slots, and the one definition of welfare.

The clearing methods read a book through this view, built once: orders and requests in their
canonical order (by id), asks and defaults per order and market slot, requests per slot with
the value of lost load in place of a missing limit, links by index. :func:`welfare` is the
single definition of the objective: a result's welfare is computed from what it awards, never
taken from a solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloud.optim.blocks import OfferView, view

from ._book import (
    Book,
    Market,
    Request,
    SellOrder,
    nodes_of,
    order_asks,
    order_node,
    request_limits,
    request_node,
    sorted_book,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Numeric:
    market: Market
    nodes: tuple[str, ...]
    orders: tuple[SellOrder, ...]
    views: list[OfferView]
    #: per order: node index; asks and default energy per market slot ``[order, slot]``
    order_node: np.ndarray
    ask_up: np.ndarray
    ask_down: np.ndarray
    default: np.ndarray
    requests: tuple[Request, ...]
    req_node: np.ndarray
    #: ``[request, slot]``: signed kWh asked and the limit (the value of lost load for none)
    req_kwh: np.ndarray
    req_limit: np.ndarray
    req_partial: np.ndarray
    link_src: np.ndarray
    link_dst: np.ndarray
    link_cap: np.ndarray
    link_cost: np.ndarray
    voll: float

    @property
    def slots(self) -> int:
        return self.market.slots

    @property
    def n_orders(self) -> int:
        return len(self.orders)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_links(self) -> int:
        return len(self.link_src)

    def default_item(self, i: int) -> tuple[int, int]:
        """The block index and start of order ``i``'s default schedule."""
        d = self.orders[i].offer.default
        for k, b in enumerate(self.views[i].blocks):
            if b.profile == d.profile:
                return k, d.start
        raise AssertionError("a valid offer's default profile has a block")


def numeric(book: Book, *, voll: float) -> Numeric:
    """The arrays of a valid book (see :func:`~cloud.fmar.validate_book`)."""
    book = sorted_book(book)
    m = book.market
    h = m.slots
    nodes = nodes_of(book)
    index = {n: k for k, n in enumerate(nodes)}
    n_orders = len(book.sell)
    ask_up = np.zeros((n_orders, h))
    ask_down = np.zeros((n_orders, h))
    default = np.zeros((n_orders, h))
    for i, order in enumerate(book.sell):
        up, down = order_asks(m, order)
        ask_up[i] = up
        ask_down[i] = down
        d = order.offer.default
        s = m.slot_of(d.start)
        default[i, s : s + len(d.energy_kwh)] = d.energy_kwh
    n_req = len(book.requests)
    req_kwh = np.zeros((n_req, h))
    req_limit = np.zeros((n_req, h))
    for j, r in enumerate(book.requests):
        s = m.slot_of(r.start)
        req_kwh[j, s : s + len(r.kwh)] = r.kwh
        req_limit[j, s : s + len(r.kwh)] = request_limits(r, voll)
    links = book.network.links if book.network is not None else ()
    return Numeric(
        market=m,
        nodes=nodes,
        orders=book.sell,
        views=[view(o.offer) for o in book.sell],
        order_node=np.array([index[order_node(book, o)] for o in book.sell], dtype=np.int64),
        ask_up=ask_up,
        ask_down=ask_down,
        default=default,
        requests=book.requests,
        req_node=np.array([index[request_node(book, r)] for r in book.requests], dtype=np.int64),
        req_kwh=req_kwh,
        req_limit=req_limit,
        req_partial=np.array([r.partial for r in book.requests], dtype=bool),
        link_src=np.array([index[k.source] for k in links], dtype=np.int64),
        link_dst=np.array([index[k.target] for k in links], dtype=np.int64),
        link_cap=np.array([k.capacity_kwh for k in links], dtype=float),
        link_cost=np.array([k.cost_eur_per_kwh for k in links], dtype=float),
        voll=voll,
    )


def ask_cost(num: Numeric, deviation: np.ndarray) -> np.ndarray:
    """Each order's ask cost of its deviation ``[order, slot]``."""
    return (
        num.ask_up * np.maximum(deviation, 0.0) + num.ask_down * np.maximum(-deviation, 0.0)
    ).sum(axis=1)


def request_value(num: Numeric, accepted: np.ndarray) -> np.ndarray:
    """Each request's value of its accepted kWh ``[request, slot]`` at its limits."""
    return (num.req_limit * np.abs(accepted)).sum(axis=1)


def welfare(num: Numeric, deviation: np.ndarray, accepted: np.ndarray, flows: np.ndarray) -> float:
    """Requests' value minus the asks' cost minus transport cost (docs/market.md)."""
    return float(
        request_value(num, accepted).sum()
        - ask_cost(num, deviation).sum()
        - (num.link_cost[:, None] * flows).sum()
    )


def imbalance(
    num: Numeric, deviation: np.ndarray, accepted: np.ndarray, flows: np.ndarray
) -> np.ndarray:
    """Per node and slot: deviations plus inflows minus outflows minus accepted kWh (0 in a
    balanced outcome)."""
    out = np.zeros((num.n_nodes, num.slots))
    np.add.at(out, num.order_node, deviation)
    np.add.at(out, num.link_dst, flows)
    np.subtract.at(out, num.link_src, flows)
    np.subtract.at(out, num.req_node, accepted)
    return out
