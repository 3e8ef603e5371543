"""Clearing each auction kind against an independent reference MIP, and the rules around it."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

import protocol
from cloud.fmar import Book, Market, Request, SellOrder, clear, read_book, to_builtins

from .books import book
from .checks import check_result
from .reference import reference_welfare

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("one-sided", "two-sided", "network")


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


@pytest.mark.parametrize("kind", KINDS)
def test_small_books_clear_to_the_reference_optimum(kind):
    """The exact path (the compact MIP): every constraint kind, optimal within 1e-4."""
    checked = 0
    for seed in range(6):
        b = book(seed, kind=kind)
        result = clear(b, time_limit_s=30)
        check_result(b, result)
        best = reference_welfare(b)
        assert result.method == "mip"
        assert result.status == "optimal"
        assert _rel(result.welfare_eur, best) <= 1e-4, (seed, result.welfare_eur, best)
        assert result.bound_eur is not None and result.bound_eur >= best - 1e-6
        checked += 1
    assert checked == 6


@pytest.mark.parametrize("kind", KINDS)
def test_the_decomposition_is_feasible_and_bounds_the_reference(kind):
    """The large-book path forced on books of 15 orders: every outcome feasible, its welfare
    at most the optimum, its bound at least the optimum, and close to it on most books."""
    close = 0
    for seed in range(5):
        b = book(seed, kind=kind, orders=15, requests=4, batteries_only=True)
        result = clear(b, time_limit_s=10, exact_vars=0)
        check_result(b, result)
        best = reference_welfare(b)
        assert result.method == "decomposition"
        assert result.welfare_eur <= best + 1e-6
        assert result.bound_eur is not None and result.bound_eur >= best - 1e-6
        close += result.welfare_eur >= best - 0.02 * max(1.0, abs(best))
    assert close >= 3


@pytest.mark.parametrize("why", ["nothing found", "no time"])
def test_a_network_without_rounding_starts_phase_two_from_the_defaults(monkeypatch, why):
    """On a network the rounding MIP may find nothing in time, or be left out when its root
    LP could not finish (on a 20-node book it is slower than the limit); phase two then
    starts from every default choice with only the all-or-nothing requests the master takes
    whole. The outcome is still a balanced clearing, at most the optimum, under a bound at
    least the optimum, and takes each all-or-nothing request wholly or not at all."""
    from cloud.fmar import _decompose

    if why == "nothing found":
        monkeypatch.setattr(_decompose, "round_choices", lambda *args, **kwargs: None)
    else:
        monkeypatch.setattr(_decompose, "SIMPLEX_OVER_IPM", 1e9)
    fell_back = 0
    for seed in range(6):
        b = book(seed, kind="network", orders=15, requests=4, batteries_only=True)
        said: list[str] = []
        result = clear(b, time_limit_s=10, exact_vars=0, progress=said.append)
        check_result(b, result)
        best = reference_welfare(b)
        assert result.method == "decomposition"
        assert result.welfare_eur <= best + 1e-6
        assert result.bound_eur is not None and result.bound_eur >= best - 1e-6
        if any("from the default choices" in line for line in said):
            fell_back += 1
            whole = {r.id: r.kwh for r in b.requests if not r.partial}
            for r in result.requests:
                if r.id in whole and any(r.accepted_kwh):
                    taken = sum(abs(v) for v in r.accepted_kwh)
                    asked = sum(abs(v) for v in whole[r.id])
                    assert taken == pytest.approx(asked), (seed, r.id)
    assert fell_back >= 1


def test_a_larger_book_by_decomposition_against_the_reference():
    from cloud.fmar.instances import book as realistic

    b = realistic(24, seed=3, requests=6)
    result = clear(b, time_limit_s=20, exact_vars=0, relative_gap=1e-3)
    check_result(b, result)
    best = reference_welfare(b)
    assert result.welfare_eur <= best + 1e-6
    assert result.bound_eur is not None and result.bound_eur >= best - 1e-6
    assert result.welfare_eur >= 0.98 * best


def test_the_same_book_in_any_order_clears_the_same():
    b = book(11, kind="network", orders=8, requests=4)
    rng = random.Random(1)
    sell = list(b.sell)
    reqs = list(b.requests)
    nodes = list(b.network.nodes)
    links = list(b.network.links)
    rng.shuffle(sell)
    rng.shuffle(reqs)
    rng.shuffle(nodes)
    rng.shuffle(links)
    network = dataclasses.replace(b.network, nodes=tuple(nodes), links=tuple(links))
    assert network != b.network
    shuffled = dataclasses.replace(b, network=network, sell=tuple(sell), requests=tuple(reqs))
    first = to_builtins(clear(b))
    assert first == to_builtins(clear(shuffled))
    assert first == to_builtins(clear(b))


def test_a_fixed_demand_is_covered_where_sellers_can_and_says_how_much():
    b = book(4, kind="one-sided", orders=3)
    need = sum(abs(v) for v in b.requests[0].kwh)
    result = clear(b, voll=10.0)
    check_result(b, result, voll=10.0)
    covered = sum(abs(v) for v in result.requests[0].accepted_kwh)
    assert 0 < covered <= need + 1e-9
    # at a value of lost load below every ask nothing is bought
    cheap = clear(b, voll=0.0)
    check_result(b, cheap, voll=0.0)
    assert cheap.welfare_eur == pytest.approx(0.0, abs=1e-9)
    # a fixed demand pays the marginal price under pay-as-bid too, never its VOLL
    bid = clear(b, pricing="pay-as-bid")
    check_result(b, bid)
    acc = bid.requests[0]
    assert acc.paid_eur < acc.value_eur or covered == 0


def test_requests_at_one_node_net_against_each_other():
    """Rule 1: an up and a down request at one node and slot match without any seller."""
    base = read_book((ROOT / "examples" / "markets" / "feeder-1.json").read_bytes())
    start = base.market.start
    netting = Book(
        market=base.market,
        requests=(
            Request(id="up", node="n", start=start, kwh=(2.0,), limit_eur_per_kwh=0.3),
            Request(id="down", node="n", start=start, kwh=(-1.5,), limit_eur_per_kwh=0.1),
        ),
    )
    result = clear(netting)
    check_result(netting, result)
    accepted = {r.id: r.accepted_kwh[0] for r in result.requests}
    assert accepted == {"up": pytest.approx(1.5), "down": pytest.approx(-1.5)}
    assert result.welfare_eur == pytest.approx(1.5 * 0.3 + 1.5 * 0.1)


def test_the_worked_example_of_the_docs():
    path = ROOT / "examples" / "markets"
    result = to_builtins(clear(read_book((path / "feeder-1.json").read_bytes())))
    expected = json.loads((path / "feeder-1.result.json").read_text())
    assert result.keys() == expected.keys()
    assert json.dumps(result, sort_keys=True) == json.dumps(expected, sort_keys=True)
    # the numbers docs/market.md works out by hand
    assert result["welfare_eur"] == pytest.approx(0.335)
    assert result["prices"]["feeder-1"] == pytest.approx([0.06, -0.12])
    paid = {a["offer_id"]: a["paid_eur"] for a in result["awards"]}
    assert paid == pytest.approx(
        {"house-1.heater": 0.09, "house-2.boiler": 0.24, "house-3.washer": 0.18}
    )
    washer = next(a for a in result["awards"] if a["offer_id"] == "house-3.washer")
    assert washer["start"] == 1767225600 and washer["deviation_kwh"] == [1.0, -1.0]
    book_ = read_book((path / "feeder-1.json").read_bytes())
    bid = clear(book_, pricing="pay-as-bid")
    check_result(book_, bid)
    assert {a.offer_id: a.paid_eur for a in bid.awards} == pytest.approx(
        {"house-1.heater": 0.09, "house-2.boiler": 0.10, "house-3.washer": 0.02}
    )
    assert bid.surplus_eur == pytest.approx(0.335)


def test_an_all_or_nothing_request_is_made_whole_from_the_uplift():
    """An all-or-nothing request may be accepted although the marginal price of one of its
    slots is above its limit there; it then pays no more than its limit value in total."""
    found = 0
    for seed in range(60):
        b = book(seed, kind="two-sided", orders=5, requests=4)
        result = clear(b)
        check_result(b, result)
        if result.make_whole_eur > 0:
            found += 1
            assert result.uplift_eur >= 0
    assert found > 0


def test_the_two_node_example_of_the_docs():
    """docs/market.md, example 2: a congested link, prices that differ by more than the
    transport cost, and the congestion rent in the surplus."""
    b = read_book((ROOT / "examples" / "markets" / "two-nodes.json").read_bytes())
    result = clear(b)
    check_result(b, result)
    assert result.status == "optimal"
    assert result.welfare_eur == pytest.approx(2 * 0.3 - 0.05 - 0.15 - 0.01)
    assert result.prices.keys() == {"feeder-a", "feeder-b"}
    assert result.prices["feeder-a"] == pytest.approx((0.05,))
    assert result.prices["feeder-b"] == pytest.approx((0.15,))
    assert [f.kwh for f in result.flows] == [pytest.approx((1.0,))]
    assert {a.offer_id: a.paid_eur for a in result.awards} == pytest.approx(
        {"house-5.heat_pump": 0.05, "house-6.heater": 0.15}
    )
    assert result.requests[0].paid_eur == pytest.approx(0.30)
    assert result.transport_eur == pytest.approx(0.01)
    # what the buyer pays beyond what the sellers receive: transport plus the congestion
    # rent (0.15 - 0.05 - 0.01) x 1 kWh
    assert result.surplus_eur == pytest.approx(0.10)
    assert result.uplift_eur == 0.0


def test_a_two_mode_offer_of_protocol_1_3_against_the_reference():
    """A freezer's shed (energy moved out of the intervention returns before and after it)
    sold into a congestion request during the shed and a request for more consumption around
    it (none during the shed, so the two requests cannot net against each other): the
    clearing finds the reference's optimum and the award passes check_schedule."""
    (offer,) = protocol.read_offers((ROOT / "examples/offers/freezer-shed.json").read_bytes())
    assert offer.two_mode is not None and not offer.two_mode.start_scaled
    res = offer.resolution_s
    t0 = offer.default.start
    market = Market(start=t0 - 8 * res, slots=32, resolution_s=res)
    b = Book(
        market=market,
        sell=(SellOrder(offer=offer),),  # asks from the offer's deviation price
        requests=(
            Request(
                id="dso",
                node=offer.grid_node,
                start=t0 + 2 * res,
                kwh=(-0.05,) * 4,
                limit_eur_per_kwh=0.2,
                partial=True,
            ),
            Request(
                id="brp",
                node=offer.grid_node,
                start=t0,
                kwh=(0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.1),
                limit_eur_per_kwh=0.1,
                partial=True,
            ),
        ),
    )
    result = clear(b)
    check_result(b, result)
    best = reference_welfare(b)
    assert best > 0.01
    assert result.status == "optimal"
    assert _rel(result.welfare_eur, best) <= 1e-4
    (award,) = result.awards
    shed = sum(-v for v in award.deviation_kwh if v < 0)
    assert shed > 0.1  # the freezer sheds, and the energy comes back around the shed


def test_a_multi_node_book_out_of_time_still_clears_balanced():
    """Books of several nodes cut short: whole-cluster columns couple every slot, so the
    second phase's master used a little slack on the balance, and the result fell back to
    every default (welfare 0 against a bound of hundreds of EUR). The best balanced mix of
    the columns found is a real clearing."""
    from cloud.fmar.instances import book as generated

    cleared = 0
    for seed in (1, 2):
        b = generated(60, seed=seed, nodes=4, requests=8)
        result = clear(b, time_limit_s=0.3, relative_gap=0.01, exact_vars=0)
        check_result(b, result)
        assert result.method == "decomposition", (seed, result.method, result.status)
        assert result.status in ("optimal", "feasible")
        assert result.bound_eur is not None and result.welfare_eur <= result.bound_eur + 1e-6
        cleared += result.welfare_eur > 0
    assert cleared == 2


def test_a_clearing_that_falls_back_to_every_default_says_so():
    """No solution in time: every order keeps its default choice (the LP with those fixed
    still decides energies and partial acceptances), and the status says that, never
    ``feasible`` as if the search had found a clearing."""
    from cloud.fmar.instances import book as generated

    b = generated(200, seed=0, requests=8)
    result = clear(b, time_limit_s=0.0, exact_vars=10**7)
    check_result(b, result)
    assert result.method == "default"
    assert result.status == "time_limit_defaults"
    assert to_builtins(result)["status"] == "time_limit_defaults"
