"""What the market service keeps, as frozen rows, and the typed interface to it.

Callers name what they want (``add_order``, ``record_result``) and get rows back; the SQL is in
:mod:`._sql`, written once for SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

GateState = Literal["open", "closed", "cleared"]
#: What storing an order did: ``stored`` new, ``again`` the same order was already stored (a
#: redelivery: answer it again), ``conflict`` another order has its id in that gate, ``closed``
#: the gate takes no more orders.
AddOutcome = Literal["stored", "again", "conflict", "closed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketRow:
    id: str
    #: the market's configuration as the service ran it (JSON)
    config: str
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GateRow:
    market: str
    gate: str
    opens_at: int
    closes_at: int
    delivery_start: int
    slots: int
    resolution_s: int
    state: GateState = "open"
    #: wall time of the state's last change
    changed_at: float = 0.0
    #: the market's configuration this gate runs with (JSON; empty for a gate stored before
    #: it was kept): a change of fmar.toml takes effect at the next gate, never mid-gate
    config: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRow:
    market: str
    gate: str
    #: ``sell`` or ``request``
    side: str
    id: str
    party: str
    #: the order's entry of the book JSON (docs/market.md)
    entry: str
    received_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultRow:
    market: str
    gate: str
    status: str
    welfare_eur: float
    #: the result message's JSON form
    payload: str
    cleared_at: float
    published: bool = False


#: What the operator set (``atp market open|close``): ``open`` takes orders, ``closed`` none.
MarketState = Literal["open", "closed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlRow:
    market: str
    state: MarketState
    changed_at: float
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CongestionRow:
    """A DSO's congestion registration: signed kWh per slot from ``start`` at ``node``, at
    most ``limit`` EUR/kWh (JSON: a number, a list per slot, or null)."""

    market: str
    id: str
    party: str
    node: str
    start: int
    #: JSON list of signed kWh per market slot from ``start``
    kwh: str
    #: JSON: a number, a list per slot, or ``null`` (fixed demand)
    limit: str
    partial: bool
    registered_at: float


class MarketReader(Protocol):
    """Reads, for the operator commands (a reader never migrates or writes)."""

    where: str

    def markets(self) -> list[MarketRow]: ...

    def gate(self, market: str, gate: str) -> GateRow | None: ...

    def gates(
        self, market: str | None = None, *, states: tuple[GateState, ...] = ()
    ) -> list[GateRow]: ...

    def orders(self, market: str, gate: str) -> list[OrderRow]: ...

    def result(self, market: str, gate: str) -> ResultRow | None: ...

    def results(self, market: str | None = None, *, limit: int = 100) -> list[ResultRow]: ...

    def control(self, market: str) -> ControlRow | None: ...

    def congestion(
        self, market: str | None = None, *, party: str | None = None
    ) -> list[CongestionRow]: ...

    def close(self) -> None: ...


class MarketStore(MarketReader, Protocol):
    def put_market(self, market: str, config: str, *, at: float) -> None: ...

    def ensure_gate(self, gate: GateRow) -> GateRow:
        """The stored gate of that id, inserted as ``gate`` if there was none."""
        ...

    def add_order(self, order: OrderRow) -> AddOutcome:
        """Store ``order`` in its gate, in one transaction with the check that the gate is
        open (so an order is either in the book the gate clears or refused, never lost)."""
        ...

    def close_gate(self, market: str, gate: str, *, at: float) -> bool:
        """``open`` to ``closed``; ``False`` if it was not open."""
        ...

    def record_result(self, result: ResultRow) -> bool:
        """The gate's change to ``cleared`` and its result, in one transaction; ``False``
        (nothing written) if the gate was already cleared: a gate is cleared once."""
        ...

    def mark_published(self, market: str, gate: str) -> None: ...

    def set_control(self, row: ControlRow) -> None: ...

    def add_congestion(self, row: CongestionRow) -> AddOutcome:
        """``stored``, ``again`` (the same registration) or ``conflict`` (its id is taken)."""
        ...
