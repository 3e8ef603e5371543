"""The market store on both databases: orders stored only while their gate is open, a
redelivered order recognised, a conflicting id refused, a gate cleared exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.fmar._errors import MarketStoreError
from cloud.fmar.store import GateRow, OrderRow, ResultRow, SqlMarketStore, open_market_store

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
