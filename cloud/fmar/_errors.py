"""The market package's exception tree.

    MarketError                 anything this package refuses
    ├── BookError               a book (orders, requests, network) that cannot be cleared
    │                           as written; every entry names its field path
    ├── ClearingError           the solvers failed in a way no fallback covers
    ├── MarketStoreError        the market store cannot be opened, read or written
    └── MarketConfigError       ``fmar.toml`` breaks a rule; names the key

A book that clears badly is not an error: a valid book always clears (running every default
and accepting nothing is always feasible), and the result says how good the clearing is.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol import FieldError


class MarketError(Exception):
    """Root of every error raised by :mod:`cloud.fmar`."""


class BookError(MarketError):
    """A book breaks the rules of docs/market.md; ``errors`` lists every problem found, each
    with the path of its field (``sell[3].ask_up_eur_per_kwh[5]``)."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class ClearingError(MarketError):
    """A solver reported an error that the clearing could not answer with a fallback."""


class MarketStoreError(MarketError):
    """The market store failed (a database error, a file that is not the store)."""


class MarketConfigError(MarketError):
    """A key of the service's configuration is wrong; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)
