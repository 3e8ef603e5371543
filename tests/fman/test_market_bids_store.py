"""The store's market bidding tables on both databases: a gate is claimed once, answers and
results are kept once, the aggregates won are read back as written."""

from __future__ import annotations

import pytest

from cloud.fman import open_store
from cloud.fman.store import MarketBid, MarketGate, MarketWon


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "fman.db")
    return request.getfixturevalue("pg_url")


def gate(g: str = "20260101T0100Z", worker: str = "w1") -> MarketGate:
    return MarketGate(
        market="feeder-1",
        gate=g,
        party="fman-1",
        delivery_start=1_767_229_200,
        closes_at=1_767_227_400,
        worker=worker,
        bid_at=1.0,
    )


def bid(aid: str, g: str = "20260101T0100Z") -> MarketBid:
    return MarketBid(
        market="feeder-1",
        gate=g,
        aggregate_id=aid,
        node="feeder-1",
        offer="{}",
        ask_up=[0.05, 0.1],
        ask_down=[0.05, 0.1],
        members=[("a.hp", 0), ("b.hp", 3)],
    )


def test_a_gate_is_bid_once_and_answers_and_results_are_kept_once(location):
    with open_store(location) as s:
        assert s.claim_market_gate(gate(), [bid("g.feeder-1.1"), bid("g.feeder-1.2")])
        # another worker, later: the gate is taken, its bids are not written
        assert not s.claim_market_gate(gate(worker="w2"), [bid("g.feeder-1.3")])
        assert [b.aggregate_id for b in s.market_bids(waiting=True)] == [
            "g.feeder-1.1",
            "g.feeder-1.2",
        ]
        assert s.market_members() == {"a.hp", "b.hp"}
        assert s.market_members(since=1_767_229_201) == set()
        s.mark_bids_sent("feeder-1", "20260101T0100Z", ["g.feeder-1.1"], 5.0)
        assert s.answer_bid(
            "feeder-1", "20260101T0100Z", "g.feeder-1.1", accepted=True, reason="", at=6.0
        )
        assert not s.answer_bid(  # answered already
            "feeder-1", "20260101T0100Z", "g.feeder-1.1", accepted=False, reason="x", at=7.0
        )
        assert s.answer_bid(
            "feeder-1", "20260101T0100Z", "g.feeder-1.2", accepted=False, reason="size", at=6.0
        )
        got = {b.aggregate_id: b for b in s.market_bids("feeder-1")}
        assert got["g.feeder-1.1"].status == "accepted" and got["g.feeder-1.1"].sent_at == 5.0
        assert got["g.feeder-1.2"].status == "refused" and got["g.feeder-1.2"].reason == "size"
        assert got["g.feeder-1.1"].members == [("a.hp", 0), ("b.hp", 3)]
        assert got["g.feeder-1.1"].ask_up == [0.05, 0.1]
        assert s.market_bids(waiting=True) == []

        assert s.put_market_result("feeder-1", "20260101T0100Z", '{"r": 1}', at=8.0) == "stored"
        assert s.put_market_result("feeder-1", "20260101T0100Z", '{"r": 2}', at=9.0) == (
            "duplicate"
        )
        assert s.put_market_result("feeder-1", "20260101T0200Z", "{}", at=9.0) == "unknown"
        (g,) = s.market_gates(result_state="new")
        assert g.result == '{"r": 1}'
        won = MarketWon(
            market="feeder-1",
            gate="20260101T0100Z",
            aggregate_id="g.feeder-1.1",
            node="feeder-1",
            start=1_767_229_200,
            energy_kwh=[1.0, 2.0],
            deviation_kwh=[-0.5, 0.25],
            up_kwh=0.25,
            down_kwh=0.5,
            paid_eur=0.06,
            price_eur_per_kwh=0.08,
            state="applied",
            at=10.0,
        )
        assert s.settle_market_result(
            "feeder-1", "20260101T0100Z", state="applied", note="1 won", won=[won]
        )
        assert not s.settle_market_result(  # once
            "feeder-1", "20260101T0100Z", state="late", note="", won=[won]
        )
        assert s.market_won("feeder-1") == [won]
        (g,) = s.market_gates("feeder-1")
        assert g.result_state == "applied" and g.note == "1 won"
