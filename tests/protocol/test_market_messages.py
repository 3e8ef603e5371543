"""The market messages of protocol 1.4: they round-trip, are validated with field paths, and
their topics build and parse."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

import protocol
from protocol import DecodeError, MarketRequest, SellOrder, topics

BOOK = Path(__file__).parents[2] / "examples" / "markets" / "feeder-1.json"
NOW = 1_767_222_000


def _sell_orders() -> list[SellOrder]:
    book = json.loads(BOOK.read_text())
    assert book["sell"]
    return [
        msgspec.convert({"market": "feeder-1", "party": "fman-1", **o}, SellOrder)
        for o in book["sell"]
    ]


def test_orders_from_the_book_json_round_trip_on_the_wire():
    orders = _sell_orders()
    for order in orders:
        msg = protocol.decode(protocol.encode(order, ts=NOW))
        assert msg.kind == "market.sell" and msg.body == order
        assert msg.version == (1, 4)
    req = MarketRequest(
        market="feeder-1",
        party="dso-1",
        id="dso-1.c1",
        start=1767225600,
        kwh=[-1.0, -2.0],
        limit_eur_per_kwh=[0.2, 0.3],
        partial=False,
    )
    assert protocol.decode(protocol.encode(req, ts=NOW), expect="market.request").body == req


def test_a_sell_order_with_a_bad_offer_or_a_negative_ask_is_refused_with_field_paths():
    order = _sell_orders()[0]
    bad = msgspec.structs.replace(
        order,
        ask_up_eur_per_kwh=-1.0,
        offer=msgspec.structs.replace(order.offer, start_before=order.offer.start_after - 900),
    )
    with pytest.raises(DecodeError) as info:
        protocol.decode(protocol.encode(bad, ts=NOW))
    paths = {e.path for e in info.value.errors}
    assert "ask_up_eur_per_kwh" in paths
    assert any(p.startswith("offer.") for p in paths), paths


def test_a_request_with_limits_that_do_not_match_its_slots_is_refused():
    req = MarketRequest(
        market="m", party="dso-1", id="r", start=1767225600, kwh=[1.0], limit_eur_per_kwh=[1, 2]
    )
    with pytest.raises(DecodeError, match="limit_eur_per_kwh"):
        protocol.decode(protocol.encode(req, ts=NOW))


def test_a_gate_notice_and_a_result_round_trip():
    g = protocol.GateTimes(
        gate="g1", opens_at=NOW, closes_at=NOW + 600, delivery_start=NOW + 900, slots=4
    )
    notice = protocol.GateNotice(market="m", current=g, state="open", upcoming=[g])
    assert protocol.decode(protocol.encode(notice, ts=NOW)).body == notice
    result = protocol.MarketResult(
        market="m",
        gate="g1",
        status="optimal",
        welfare_eur=1.5,
        bound_eur=1.5,
        delivery_start=NOW + 900,
        resolution_s=900,
        prices={"n1": [0.1] * 4},
        awards=[
            protocol.AwardLine(
                offer_id="o",
                node="n1",
                start=NOW + 900,
                profile=0,
                energy_kwh=[1.0],
                deviation_kwh=[1, 0, 0, 0],
                paid_eur=0.1,
            )
        ],
    )
    assert protocol.decode(protocol.encode(result, ts=NOW), expect="market.result").body == result


def test_market_topics_build_and_parse():
    assert topics.market_topic("m1", "bid") == "atp/v1/m/m1/bid"
    assert topics.all_markets("bid") == "atp/v1/m/+/bid"
    answer = topics.market_answer_topic("m1", "fman-1")
    assert answer == "atp/v1/m/m1/ack/fman-1"
    parsed = topics.parse(answer)
    assert (parsed.scope, parsed.owner, parsed.channel) == ("m", "m1", "ack/fman-1")
    with pytest.raises(ValueError):
        topics.parse("atp/v1/m/m1/ack/a/b")
    with pytest.raises(ValueError):
        topics.market_answer_topic("m1", "bad party")
