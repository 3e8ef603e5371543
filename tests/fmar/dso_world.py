"""A small market world in which FMAR's own DSO handler answers the examples/dso/ requests.

The market is ``feeder-1`` of examples/fmar.toml, its gate delivering from 2026-01-01 00:00 UTC
holds the sell orders of examples/markets/feeder-1.json with one ask each (each sent by its
offer's issuer).
``fresh`` is that gate open; ``cleared`` is the same after examples/dso/congestion.request.json
was registered and the gate closed and cleared as the service does it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec

import protocol
from cloud.fmar import clear, dso, gates
from cloud.fmar._parse import book_from_builtins
from cloud.fmar.config import load_config
from cloud.fmar.orders import book_doc, result_message
from cloud.fmar.store import OrderRow, ResultRow, open_market_store

EXAMPLES = Path(__file__).parents[2] / "examples"
MARKET = "feeder-1"
D = 1_767_225_600
#: The wall time the world's writes carry.
AT = 1_767_222_000.0


def answer_in_world(request_file: Path, world: str) -> dict[str, Any]:
    """The response (as JSON builtins) to ``request_file`` from the DSO ``dso``."""
    cfg = load_config(EXAMPLES / "fmar.toml")
    m = cfg.markets[MARKET]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_market_store(Path(tmp) / "fmar.db")
        try:
            gate = store.ensure_gate(
                replace(gates.gate_delivering(MARKET, m, D), config=msgspec.json.encode(m).decode())
            )

            def ask(path: Path) -> protocol.Response:
                req = protocol.from_json(path.read_bytes(), protocol.Request)
                return dso.answer(
                    req.method,
                    req.params,
                    party="dso",
                    markets=cfg.markets,
                    store=store,
                    next_gate=lambda _m: gate,
                    closed=lambda _m: "",
                    at=AT,
                )

            book = json.loads((EXAMPLES / "markets" / "feeder-1.json").read_text())
            for entry in book["sell"]:
                if any(isinstance(v, list) for k, v in entry.items() if k.startswith("ask_")):
                    continue  # asks per slot of the book's two; this market has four
                oid = entry["offer"]["id"]
                party = entry["offer"]["issuer"]
                row = OrderRow(
                    market=MARKET,
                    gate=gate.gate,
                    side="sell",
                    id=oid,
                    party=party,
                    entry=json.dumps(entry, sort_keys=True),
                    received_at=AT,
                )
                assert store.add_order(row) == "stored"
            if world == "cleared":
                assert ask(EXAMPLES / "dso" / "congestion.request.json").status == "ok"
                for reg in store.congestion(MARKET):
                    entry = dso.gate_entry(reg, gate)
                    assert entry is not None
                    store.add_order(
                        OrderRow(
                            market=MARKET,
                            gate=gate.gate,
                            side="request",
                            id=entry["id"],
                            party=reg.party,
                            entry=json.dumps(entry, sort_keys=True),
                            received_at=AT,
                        )
                    )
                assert store.close_gate(MARKET, gate.gate, at=AT)
                doc = book_doc(m, gate, store.orders(MARKET, gate.gate))
                c = clear(book_from_builtins(doc), pricing=m.pricing, voll=m.voll, check=False)
                body = result_message(MARKET, gate, c)
                assert store.record_result(
                    ResultRow(
                        market=MARKET,
                        gate=gate.gate,
                        status=body.status,
                        welfare_eur=body.welfare_eur,
                        payload=protocol.to_json(body).decode(),
                        cleared_at=AT,
                    )
                )
            return protocol.to_builtins(ask(request_file))
        finally:
            store.close()


def world_of(name: str) -> str:
    """Which world answers ``examples/dso/NAME.request.json``: the queries of trades, the
    cleared one; the rest, the open gate."""
    return "cleared" if name.startswith(("congestion-list", "congestion-summary")) else "fresh"
