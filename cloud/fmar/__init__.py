"""FMAR, the flexibility market: order books, their clearing, and the results.

Pure functions and frozen value objects, no I/O, no clock: the offline command ``atp market
clear`` and the market service call the same code. A *book* holds sell orders (Flex-Offers
with asks for deviating from their defaults), requests (signed kWh per slot at a node with a
limit price) and an optional network; :func:`clear` maximises welfare over every schedule the
offers allow and prices the outcome (uniform or pay-as-bid). docs/market.md states the rules.

Importing the book model does not load the solvers; :func:`clear` loads them on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._book import (
    POOL_NODE,
    Book,
    Link,
    Market,
    Network,
    Request,
    SellOrder,
    nodes_of,
    offer_asks,
    order_asks,
    order_node,
    request_node,
    validate_book,
)
from ._errors import BookError, ClearingError, MarketError
from ._parse import book_from_builtins, book_to_builtins, read_book
from ._result import Acceptance, Award, Clearing, Flow, Method, Pricing, Status, to_builtins

if TYPE_CHECKING:
    from ._clear import clear

__all__ = [
    "POOL_NODE",
    "Acceptance",
    "Award",
    "Book",
    "BookError",
    "Clearing",
    "ClearingError",
    "Flow",
    "Link",
    "Market",
    "MarketError",
    "Method",
    "Network",
    "Pricing",
    "Request",
    "SellOrder",
    "Status",
    "book_from_builtins",
    "book_to_builtins",
    "clear",
    "nodes_of",
    "offer_asks",
    "order_asks",
    "order_node",
    "read_book",
    "request_node",
    "to_builtins",
    "validate_book",
]


def __getattr__(name: str) -> Any:
    if name == "clear":
        from ._clear import clear

        return clear
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
