"""The market store on both databases: orders stored only while their gate is open, a
redelivered order recognised, a conflicting id refused, a gate cleared exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cloud.fmar._errors import MarketStoreError
from cloud.fmar.store import (
    CongestionRow,
    ControlRow,
    GateRow,
    OrderRow,
    ResultRow,
    SqlMarketStore,
    open_market_store,
)

T0 = 1_767_225_600


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "fmar.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(location: str) -> Iterator[SqlMarketStore]:
    s = open_market_store(location)
    yield s
    s.close()


def _gate(gate: str = "g1") -> GateRow:
    return GateRow(
        market="m1",
        gate=gate,
        opens_at=T0,
        closes_at=T0 + 600,
        delivery_start=T0 + 900,
        slots=4,
        resolution_s=900,
    )


def _order(oid: str, entry: str = '{"x": 1}', gate: str = "g1") -> OrderRow:
    return OrderRow(
        market="m1", gate=gate, side="sell", id=oid, party="p1", entry=entry, received_at=1.0
    )


def _result(gate: str = "g1") -> ResultRow:
    return ResultRow(
        market="m1", gate=gate, status="optimal", welfare_eur=2.5, payload="{}", cleared_at=3.0
    )


def test_orders_go_into_an_open_gate_only_and_a_redelivery_is_recognised(store: SqlMarketStore):
    assert store.add_order(_order("o1")) == "closed"  # no such gate yet
    assert store.ensure_gate(_gate()) == _gate()
    assert store.ensure_gate(_gate()).state == "open"
    assert store.add_order(_order("o1")) == "stored"
    assert store.add_order(_order("o1")) == "again"
    assert store.add_order(_order("o1", entry='{"x": 2}')) == "conflict"
    assert store.close_gate("m1", "g1", at=2.0)
    assert not store.close_gate("m1", "g1", at=2.0)
    assert store.add_order(_order("o2")) == "closed"
    assert [o.id for o in store.orders("m1", "g1")] == ["o1"]
    assert store.gate("m1", "g1").state == "closed"


def test_a_gate_is_cleared_once_with_its_result_in_the_same_transaction(store: SqlMarketStore):
    store.ensure_gate(_gate())
    store.close_gate("m1", "g1", at=2.0)
    assert store.record_result(_result())
    assert not store.record_result(_result())
    assert [r.gate for r in store.results("m1")] == ["g1"]
    assert store.gate("m1", "g1").state == "cleared"
    assert [r.gate for r in store.unpublished()] == ["g1"]
    store.mark_published("m1", "g1")
    assert store.unpublished() == []
    assert store.result("m1", "g1").welfare_eur == 2.5


def test_two_writers_racing_to_clear_one_gate_write_one_result(location: str):
    first = open_market_store(location)
    first.ensure_gate(_gate())
    stores = [first, open_market_store(location), open_market_store(location)]
    outcomes: list[bool] = []
    go = threading.Barrier(len(stores))

    def clear(s: SqlMarketStore) -> None:
        go.wait()
        outcomes.append(s.record_result(_result()))

    threads = [threading.Thread(target=clear, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False, False, True]
    assert len(first.results("m1")) == 1
    for s in stores:
        s.close()


def test_markets_are_kept_with_their_configuration(store: SqlMarketStore, location: str):
    store.put_market("m1", '{"a": 1}', at=1.0)
    store.put_market("m1", '{"a": 2}', at=2.0)
    reader = open_market_store(location, readonly=True)
    try:
        assert [(m.id, m.config) for m in reader.markets()] == [("m1", '{"a": 2}')]
        with pytest.raises(MarketStoreError, match="read-only"):
            reader.put_market("m2", "{}", at=1.0)
    finally:
        reader.close()


def test_a_missing_sqlite_store_is_refused_to_a_reader(tmp_path: Path):
    with pytest.raises(MarketStoreError, match="no market store"):
        open_market_store(tmp_path / "none.db", readonly=True)


def test_a_gate_keeps_the_configuration_it_opened_with(store: SqlMarketStore):
    g = _gate()
    stored = store.ensure_gate(replace(g, config='{"pricing": "uniform"}'))
    assert stored.config == '{"pricing": "uniform"}'
    # a later ensure with other parameters finds the stored gate as it was
    again = store.ensure_gate(replace(g, config='{"pricing": "pay-as-bid"}'))
    assert again.config == '{"pricing": "uniform"}'
    assert store.gate("m1", "g1") == stored


def test_the_operators_control_is_kept_per_market(store: SqlMarketStore):
    assert store.control("m1") is None
    store.set_control(ControlRow(market="m1", state="closed", changed_at=5.0, note="works"))
    assert store.control("m1") == ControlRow(
        market="m1", state="closed", changed_at=5.0, note="works"
    )
    store.set_control(ControlRow(market="m1", state="open", changed_at=6.0))
    assert store.control("m1").state == "open"
    assert store.control("m2") is None


def test_a_congestion_registration_is_stored_once_and_its_id_is_the_dsos(store: SqlMarketStore):
    reg = CongestionRow(
        market="m1",
        id="c1",
        party="dso",
        node="n1",
        start=T0,
        kwh="[-1.0, -2.0]",
        limit="0.3",
        partial=True,
        registered_at=1.0,
    )
    assert store.add_congestion(reg) == "stored"
    assert store.add_congestion(reg) == "again"
    assert store.add_congestion(replace(reg, kwh="[-5.0]")) == "conflict"
    # another DSO's registration under the same id is its own
    assert store.add_congestion(replace(reg, party="dso-2")) == "stored"
    assert store.congestion("m1", party="dso") == [reg]
    assert {r.party for r in store.congestion()} == {"dso", "dso-2"}
    assert store.congestion("m2") == []


def test_a_store_of_the_first_schema_is_migrated_keeping_its_gates(tmp_path: Path):
    import sqlite3

    from cloud.fmar.store._sql import STEPS, TYPES, VERSION_TABLE

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(VERSION_TABLE.format(**TYPES["sqlite"]))
    for sql in STEPS[0].sql:
        conn.execute(sql.format(**TYPES["sqlite"]))
    conn.execute("INSERT INTO market_schema VALUES (1, 'first', 0)")
    conn.execute("INSERT INTO market_gates VALUES ('m1', 'g1', 1, 2, 3, 4, 900, 'open', 0)")
    conn.commit()
    conn.close()
    s = open_market_store(path)
    try:
        assert s.schema_version() == STEPS[-1].version
        (g,) = s.gates()
        assert (g.gate, g.state, g.config) == ("g1", "open", "")
        assert s.control("m1") is None and s.congestion() == []
    finally:
        s.close()
