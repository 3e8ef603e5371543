"""FMAN's side of the market in the store: the gates it bid in, each aggregate it bid, and
each aggregate it won.

Written once for both databases, as a mixin of :class:`~._sql.SqlStore`. Why three tables:

- ``market_gates`` holds one row per gate FMAN bid in. Inserting it is how exactly one
  worker bids per gate (the insert that wins the primary key bids; a worker that takes the
  planner lease over later finds the row and only resends what is unanswered). The gate's
  result is written into the same row once: a second copy of the result finds it set and is
  ignored.
- ``market_bids`` holds each sell order as sent (the aggregate offer, its asks) and its
  members with the revision each had, so an award can be checked against the members as
  they are now. Its status follows FMAR's answer.
- ``market_won`` holds each awarded aggregate: what was won, at what price, and what
  became of it (``applied``, ``late``, ``changed``). The awards per member, shared with
  settlement, are in ``market_awards``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Statements of the migration step that adds these tables (see :mod:`._migrations`).
MARKET_TABLES = (
    "CREATE TABLE market_gates (market TEXT, gate TEXT, party TEXT NOT NULL, "
    "delivery_start {int} NOT NULL, closes_at {int} NOT NULL, worker TEXT, bid_at {real}, "
    "result TEXT, result_at {real}, result_state TEXT, note TEXT, "
    "PRIMARY KEY (market, gate))",
    "CREATE TABLE market_bids (market TEXT, gate TEXT, aggregate_id TEXT, node TEXT NOT NULL, "
    "offer TEXT NOT NULL, ask_up TEXT NOT NULL, ask_down TEXT NOT NULL, members TEXT NOT NULL, "
    "status TEXT NOT NULL, reason TEXT, sent_at {real}, answered_at {real}, "
    "PRIMARY KEY (market, gate, aggregate_id))",
    "CREATE INDEX idx_market_bids_status ON market_bids (status)",
    "CREATE TABLE market_won (market TEXT, gate TEXT, aggregate_id TEXT, node TEXT, "
    "start {int}, energy_kwh TEXT, deviation_kwh TEXT, up_kwh {real}, down_kwh {real}, "
    "paid_eur {real}, price_eur_per_kwh {real}, state TEXT NOT NULL, note TEXT, at {real}, "
    "PRIMARY KEY (market, gate, aggregate_id))",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketGate:
    """A gate FMAN bid in; ``result`` is the result message's JSON once it arrived and
    ``result_state`` what was done with it (``new``, ``applied``, ``late``)."""

    market: str
    gate: str
    party: str
    delivery_start: int
    closes_at: int
    worker: str | None = None
    bid_at: float | None = None
    result: str | None = None
    result_at: float | None = None
    result_state: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketBid:
    """One sell order FMAN sent: an aggregate (its offer as project JSON), its asks per
    market slot and its members as ``(offer id, revision)``."""

    market: str
    gate: str
    aggregate_id: str
    node: str
    offer: str
    ask_up: list[float]
    ask_down: list[float]
    members: list[tuple[str, int]]
    #: ``pending`` (stored, not yet with the broker), ``sent``, ``accepted``, ``refused``
    status: str = "pending"
    reason: str | None = None
    sent_at: float | None = None
    answered_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketWon:
    """An awarded aggregate: its awarded energy per slot from ``start``, the deviation per
    market slot, the kWh up and down, what FMAR pays for it and the average price; ``state``
    ``applied`` (schedules issued to its members), ``late`` (the result came after delivery
    started) or ``changed`` (members changed since bidding: ``note`` says which)."""

    market: str
    gate: str
    aggregate_id: str
    node: str
    start: int
    energy_kwh: list[float]
    deviation_kwh: list[float]
    up_kwh: float
    down_kwh: float
    paid_eur: float
    price_eur_per_kwh: float
    state: str
    note: str = ""
    at: float = 0.0


class MarketTables:
    """The market reads and writes of :class:`~._sql.SqlStore` (see the module docstring)."""

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def write(self, *, offers: Any = None) -> Any:
        raise NotImplementedError

    # -- writes --------------------------------------------------------------------------

    def claim_market_gate(self, gate: MarketGate, bids: Sequence[MarketBid]) -> bool:
        """Record that FMAN bids ``bids`` in ``gate``, unless a worker already did: ``False``
        then, and nothing is written."""
        with self.write(offers=()):
            n = self._exec(
                "INSERT INTO market_gates(market, gate, party, delivery_start, closes_at, "
                "worker, bid_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (market, gate) DO NOTHING",
                (
                    gate.market,
                    gate.gate,
                    gate.party,
                    gate.delivery_start,
                    gate.closes_at,
                    gate.worker,
                    gate.bid_at,
                ),
            )
            if n == 0:
                return False
            for b in bids:
                self._exec(
                    "INSERT INTO market_bids(market, gate, aggregate_id, node, offer, ask_up, "
                    "ask_down, members, status) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        b.market,
                        b.gate,
                        b.aggregate_id,
                        b.node,
                        b.offer,
                        json.dumps(b.ask_up),
                        json.dumps(b.ask_down),
                        json.dumps([list(m) for m in b.members]),
                        b.status,
                    ),
                )
        return True

    def mark_bids_sent(self, market: str, gate: str, ids: Sequence[str], at: float) -> None:
        with self.write(offers=()):
            for aid in ids:
                self._exec(
                    "UPDATE market_bids SET status='sent', sent_at=? WHERE market=? AND gate=? "
                    "AND aggregate_id=? AND status IN ('pending', 'sent')",
                    (at, market, gate, aid),
                )

    def answer_bid(
        self, market: str, gate: str, aggregate_id: str, *, accepted: bool, reason: str, at: float
    ) -> bool:
        """FMAR's answer to one bid; ``False`` if no such bid is waiting for one."""
        with self.write(offers=()):
            return (
                self._exec(
                    "UPDATE market_bids SET status=?, reason=?, answered_at=? WHERE market=? "
                    "AND gate=? AND aggregate_id=? AND status IN ('pending', 'sent')",
                    ("accepted" if accepted else "refused", reason, at, market, gate, aggregate_id),
                )
                > 0
            )

    def put_market_result(self, market: str, gate: str, payload: str, *, at: float) -> str:
        """Keep the result of ``gate``: ``stored``, ``duplicate`` (it has one already) or
        ``unknown`` (FMAN did not bid in it; nothing is kept)."""
        with self.write(offers=()):
            n = self._exec(
                "UPDATE market_gates SET result=?, result_at=?, result_state='new' "
                "WHERE market=? AND gate=? AND result IS NULL",
                (payload, at, market, gate),
            )
            if n:
                return "stored"
            known = self._rows(
                "SELECT 1 AS one FROM market_gates WHERE market=? AND gate=?", (market, gate)
            )
        return "duplicate" if known else "unknown"

    def settle_market_result(
        self, market: str, gate: str, *, state: str, note: str, won: Sequence[MarketWon]
    ) -> bool:
        """Record what became of a result (``applied`` or ``late``) and the aggregates won,
        once: ``False`` if it was already recorded."""
        with self.write(offers=()):
            n = self._exec(
                "UPDATE market_gates SET result_state=?, note=? WHERE market=? AND gate=? "
                "AND result_state='new'",
                (state, note, market, gate),
            )
            if not n:
                return False
            for w in won:
                self._exec(
                    "INSERT INTO market_won(market, gate, aggregate_id, node, start, energy_kwh, "
                    "deviation_kwh, up_kwh, down_kwh, paid_eur, price_eur_per_kwh, state, note, "
                    "at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        w.market,
                        w.gate,
                        w.aggregate_id,
                        w.node,
                        w.start,
                        json.dumps(w.energy_kwh),
                        json.dumps(w.deviation_kwh),
                        w.up_kwh,
                        w.down_kwh,
                        w.paid_eur,
                        w.price_eur_per_kwh,
                        w.state,
                        w.note,
                        w.at,
                    ),
                )
        return True

    # -- reads ---------------------------------------------------------------------------

    def market_gates(
        self, market: str | None = None, *, result_state: str | None = None
    ) -> list[MarketGate]:
        conds, params = [], []
        if market is not None:
            conds.append("market=?")
            params.append(market)
        if result_state is not None:
            conds.append("result_state=?")
            params.append(result_state)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        return [
            MarketGate(**r)
            for r in self._rows(
                "SELECT market, gate, party, delivery_start, closes_at, worker, bid_at, result, "
                f"result_at, result_state, note FROM market_gates {where} ORDER BY market, gate",
                params,
            )
        ]

    def market_bids(
        self, market: str | None = None, gate: str | None = None, *, waiting: bool = False
    ) -> list[MarketBid]:
        """Bids of a market and gate (or all); ``waiting``: those without FMAR's answer."""
        conds, params = [], []
        for col, value in (("market", market), ("gate", gate)):
            if value is not None:
                conds.append(f"{col}=?")
                params.append(value)
        if waiting:
            conds.append("status IN ('pending', 'sent')")
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        out = []
        for r in self._rows(
            "SELECT market, gate, aggregate_id, node, offer, ask_up, ask_down, members, status, "
            f"reason, sent_at, answered_at FROM market_bids {where} "
            "ORDER BY market, gate, aggregate_id",
            params,
        ):
            r["ask_up"] = json.loads(r["ask_up"])
            r["ask_down"] = json.loads(r["ask_down"])
            r["members"] = [(str(m[0]), int(m[1])) for m in json.loads(r["members"])]
            out.append(MarketBid(**r))
        return out

    def market_members(self, since: int = 0) -> set[str]:
        """Every offer that is a member of a bid, on any market, in a gate delivering from
        ``since`` on: flexibility sold once is not sold again."""
        out: set[str] = set()
        for r in self._rows(
            "SELECT b.members FROM market_bids b JOIN market_gates g ON g.market = b.market "
            "AND g.gate = b.gate WHERE g.delivery_start >= ?",
            (since,),
        ):
            out.update(str(m[0]) for m in json.loads(r["members"]))
        return out

    def market_won(self, market: str | None = None) -> list[MarketWon]:
        where, params = ("WHERE market=?", [market]) if market is not None else ("", [])
        out = []
        for r in self._rows(
            "SELECT market, gate, aggregate_id, node, start, energy_kwh, deviation_kwh, up_kwh, "
            "down_kwh, paid_eur, price_eur_per_kwh, state, note, at FROM market_won "
            f"{where} ORDER BY market, gate, aggregate_id",
            params,
        ):
            r["energy_kwh"] = json.loads(r["energy_kwh"])
            r["deviation_kwh"] = json.loads(r["deviation_kwh"])
            r["note"] = r["note"] or ""
            out.append(MarketWon(**r))
        return out
