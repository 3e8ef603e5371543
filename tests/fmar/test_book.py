"""Reading books: the JSON form, every refusal with its field path, asks from offer prices."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import protocol
from cloud.fmar import (
    BookError,
    MarketError,
    book_from_builtins,
    book_to_builtins,
    offer_asks,
    order_asks,
    read_book,
    validate_book,
)

from .books import book as random_book

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples" / "markets" / "feeder-1.json").read_text())


def _refused(doc) -> list[str]:
    with pytest.raises(BookError) as err:
        book_from_builtins(doc)
    assert isinstance(err.value, MarketError)
    assert err.value.errors
    return [str(e) for e in err.value.errors]


def _mutated(change) -> dict:
    doc = copy.deepcopy(EXAMPLE)
    change(doc)
    return doc


def test_the_example_book_reads_and_round_trips():
    book = read_book(json.dumps(EXAMPLE))
    assert [o.id for o in book.sell] == ["house-1.heater", "house-2.boiler", "house-3.washer"]
    assert book.network is None
    assert book_from_builtins(book_to_builtins(book)) == book
    # the boiler's asks come from its offer's deviation price, both ways
    up, down = order_asks(book.market, book.sell[1])
    assert up == down == [0.05, 0.05]


def test_random_books_round_trip_through_json():
    for seed in range(5):
        for kind in ("one-sided", "two-sided", "network"):
            book = random_book(seed, kind=kind)
            again = read_book(json.dumps(book_to_builtins(book)))
            assert again == book


def _set(path: str, value):
    def change(doc):
        *head, last = path.split("/")
        node = doc
        for key in head:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()

CASES = [
    (_set("market", _DELETE), "market: required"),
    (_set("market/resolution_s", 1000), "market.resolution_s: 1000 s"),
    (_set("market/start", 1767225601), "market.start: 1767225601 is not on the 900 s slot grid"),
    (_set("market/slots", "2"), "market.slots: expected an integer"),
    (_set("sell/0/offer/profiles/0/lower_kwh/1", 5.0), "sell[0].offer.profiles[0]"),
    (_set("sell/1/ask_up", 0.1), "sell[1].ask_up: unknown key"),
    (_set("sell/0/ask_up_eur_per_kwh", -0.01), "sell[0].ask_up_eur_per_kwh: an ask must be"),
    (_set("sell/2/ask_down_eur_per_kwh", [0.01]), "sell[2].ask_down_eur_per_kwh: 1 values for 2"),
    (_set("sell/2/ask_down_eur_per_kwh/1", -1), "sell[2].ask_down_eur_per_kwh[1]: an ask must"),
    (_set("sell/2/ask_up_eur_per_kwh", "cheap"), "sell[2].ask_up_eur_per_kwh: expected a number"),
    (_set("sell/1/offer/id", "house-1.heater"), "sell[1].offer.id: duplicate of sell[0]"),
    (_set("sell/0/offer/resolution_s", 1800), "sell[0].offer.resolution_s: 1800 s, the market's"),
    (_set("sell/2/offer/start_before", 1767227400), "sell[2].offer: profile 0 may start from"),
    (
        _set("sell/0/node", "feeder-2"),
        "sell[0].node: 'feeder-2' differs from the offer's grid_node",
    ),
    (_set("sell/0/ask_up_eur_per_kwh", _DELETE), "sell[0].ask_up_eur_per_kwh: not given, and the"),
    (_set("sell/0/offer", 7), "sell[0].offer"),
    (_set("sell/0", []), "sell[0]: expected an object"),
    (_set("requests/1/id", "dso-1"), "requests[1].id: duplicate of requests[0]"),
    (_set("requests/0/id", "a b"), "requests[0].id: 1 to 128 letters"),
    (_set("requests/0/start", 1767227400), "requests[0].kwh: runs 1767227400 to 1767228300"),
    (_set("requests/0/start", 1767226000), "requests[0].start: 1767226000 is not on the"),
    (_set("requests/0/kwh/0", "x"), "requests[0].kwh[0]: expected a number"),
    (_set("requests/0/kwh", []), "requests[0].kwh: no slots"),
    (_set("requests/0/limit_eur_per_kwh", -0.1), "requests[0].limit_eur_per_kwh: a limit must"),
    (_set("requests/0/limit_eur_per_kwh", [0.1, 0.2]), "requests[0].limit_eur_per_kwh: 2 values"),
    (_set("requests/0/limit_eur_per_kwh", _DELETE), "requests[0].limit_eur_per_kwh: required"),
    (_set("requests/0/partial", "yes"), "requests[0].partial: expected true or false"),
    (_set("requests/0/node", "feeder-9"), "network: orders and requests name 2 nodes"),
    (_set("extra", 1), "extra: unknown key"),
]


@pytest.mark.parametrize(("change", "expected"), CASES, ids=[c[1][:40] for c in CASES])
def test_bad_books_are_refused_with_the_field_path(change, expected):
    errors = _refused(_mutated(change))
    assert any(expected in e for e in errors), errors


def _network_book(links) -> dict:
    doc = copy.deepcopy(EXAMPLE)
    doc["network"] = {"nodes": ["feeder-1", "feeder-2"], "links": links}
    return doc


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        (
            [{"from": "feeder-1", "to": "feeder-3", "capacity_kwh": 1}],
            "network.links[0].to: 'feeder-3'",
        ),
        (
            [{"from": "feeder-1", "to": "feeder-1", "capacity_kwh": 1}],
            "network.links[0]: a link from",
        ),
        (
            [
                {"from": "feeder-1", "to": "feeder-2", "capacity_kwh": 1},
                {"from": "feeder-1", "to": "feeder-2", "capacity_kwh": 2},
            ],
            "network.links[1]: a second link feeder-1 -> feeder-2",
        ),
        ([{"from": "feeder-1", "to": "feeder-2", "capacity_kwh": -1}], "capacity_kwh: -1 must"),
        ([{"from": "feeder-1", "to": "feeder-2"}], "network.links[0].capacity_kwh: required"),
        (
            [{"from": "feeder-1", "to": "feeder-2", "capacity_kwh": 1, "cost_eur_per_kwh": -1}],
            "network.links[0].cost_eur_per_kwh: -1 must be finite and >= 0",
        ),
    ],
)
def test_bad_networks_are_refused(links, expected):
    errors = _refused(_network_book(links))
    assert any(expected in e for e in errors), errors


def test_a_market_of_several_nodes_needs_each_request_to_name_its_node():
    doc = _network_book([{"from": "feeder-1", "to": "feeder-2", "capacity_kwh": 1}])
    del doc["requests"][0]["node"]
    assert any("requests[0].node: required" in e for e in _refused(doc))
    doc["requests"][0]["node"] = "feeder-2"
    book = book_from_builtins(doc)
    assert book.network is not None and book.network.nodes == ("feeder-1", "feeder-2")


def test_not_json_and_every_error_at_once():
    with pytest.raises(BookError) as err:
        read_book(b"{not json")
    assert "not valid JSON" in str(err.value)
    doc = _mutated(_set("sell/0/ask_up_eur_per_kwh", -1))
    doc["requests"][1]["id"] = "dso-1"
    errors = _refused(doc)
    assert len(errors) >= 2


def test_asks_from_offer_prices_and_goflex_tariffs():
    book = read_book(json.dumps(EXAMPLE))
    market = book.market
    offer = book.sell[0].offer
    # direct mode: each profile slot's [min, max] gives max(min, 0), aligned with the
    # default and held before and after it
    direct = protocol.FlexOffer(
        **{
            **{f: getattr(offer, f) for f in offer.__struct_fields__},
            "mode": "direct",
            "prices": protocol.Prices(
                slots=[protocol.PriceBounds(0.03, 0.2), protocol.PriceBounds(-0.1, 0.3)]
            ),
        }
    )
    assert offer_asks(market, direct) == [0.03, 0.0]
    assert offer_asks(market, offer) is None
    # the same offer as GOFLEX JSON in a book: its tariffConstraint becomes the asks
    doc = copy.deepcopy(EXAMPLE)
    doc["sell"][0] = {"offer": protocol.to_goflex(direct)}
    goflex = book_from_builtins(doc)
    assert order_asks(market, goflex.sell[0]) == ([0.03, 0.0], [0.03, 0.0])
    # an order's own ask wins over the offer's prices
    doc["sell"][0]["ask_up_eur_per_kwh"] = 0.5
    assert order_asks(market, book_from_builtins(doc).sell[0]) == ([0.5, 0.5], [0.03, 0.0])


def test_validate_book_checks_offers_built_in_memory():
    book = read_book(json.dumps(EXAMPLE))
    bad = protocol.FlexOffer(
        **{
            **{f: getattr(book.sell[0].offer, f) for f in book.sell[0].offer.__struct_fields__},
            "default": protocol.DefaultSchedule(start=1767225600, energy_kwh=[9.0, 1.0]),
        }
    )
    from cloud.fmar import SellOrder

    broken = type(book)(
        market=book.market,
        sell=(SellOrder(offer=bad, ask_up_eur_per_kwh=0.1, ask_down_eur_per_kwh=0.1),),
    )
    errors = [str(e) for e in validate_book(broken)]
    assert any(e.startswith("sell[0].offer.default") for e in errors), errors
