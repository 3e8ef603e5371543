"""The worked examples of docs/settlement.md, each with the numbers the page gives."""

from __future__ import annotations

from decimal import Decimal

from msgspec.structs import replace

from cloud.settle import (
    AwardMember,
    MarketAward,
    Period,
    balances,
    make_bill,
    settle,
)

from .build import DEC_1, at, book, offer, readings

NOVEMBER = Period.parse("2026-11")
BOOKED = DEC_1 + 3600


def amounts(result, account):
    """``{kind: cents}`` posted on ``account`` by the run's new transactions."""
    out = {}
    for t in result.new:
        v = t.amount_for(account)
        if v:
            out[t.kind] = out.get(t.kind, 0) + v
    return out


def test_example_1_strict_rewards_with_partial_delivery():
    ev = offer(
        "house-17.ev.1",
        agent="house-17",
        device="ev",
        default=(at(18), [2.0, 2.0]),
        schedule=(at(19), [2.0, 2.0]),
        window=(at(18), at(22)),
    )
    metered = readings("house-17", "ev", at(18), [0.0, 0.5, 0.0, 0.0, 2.1, 1.0])
    result = settle(
        period=NOVEMBER,
        offers=[ev],
        readings=metered,
        contracts=book("strict-rewards.toml"),
        booked_at=BOOKED,
    )
    (o,) = result.offers
    assert o.status == "settled" and o.reasons == ()
    assert (o.requested_wh, o.delivered_wh, o.undelivered_wh) == (8000, 6500, 1500)
    by_slot = {r.start: r.delivered_wh for r in result.slots}
    assert by_slot == {at(18): -2000, at(18.25): -1500, at(19): 2000, at(19.25): 1000}
    # 6.5 kWh x 0.05 = 0.325 -> 0.32 (ties to even); 4 h x 0.02 = 0.08; 1.5 kWh x 0.08 = 0.12
    assert amounts(result, "party:house-17") == {
        "reward": 32,
        "flex_hours": 8,
        "penalty": -12,
        "fee": 300,
    }
    assert result.settled_now == ("house-17.ev.1",)
    bill = make_bill("house-17", NOVEMBER, result.new, offers=result.offers, issued_at=BOOKED)
    assert bill.total_cents == 328
    assert sum(line.amount_cents for line in bill.lines) == 328
    (day,) = [d for d in bill.days if d.offers]
    assert (day.day, day.delivered_wh, day.undelivered_wh) == ("2026-11-05", 6500, 1500)
    assert sum(balances(result.new).values()) == 0


def test_example_2_revenue_sharing():
    contracts = book("revenue-sharing.toml")
    c21 = contracts.latest("c-house-21")
    c22 = replace(
        c21,
        id="c-house-22",
        party=replace(c21.party, id="house-22"),
        terms=replace(c21.terms, share=Decimal("0.5")),
    )
    contracts = contracts.with_version(c22)
    hp = offer(
        "house-21.hp.1",
        agent="house-21",
        device="heat_pump",
        default=(at(17), [1.0, 1.0]),
        schedule=(at(17), [3.0, 3.0]),
    )
    boiler = offer(
        "house-22.boiler.1",
        agent="house-22",
        device="boiler",
        default=(at(17), [0.0, 0.0]),
        schedule=(at(17), [1.0, 1.0]),
    )
    award = MarketAward(
        market="fmar-1",
        gate="2026-11-05T16",
        id="agg-7",
        start=at(17),
        deviation_kwh=(3.0, 3.0),
        price_eur_per_kwh=(Decimal("0.15"),),
        margin_kwh=0.1,
        margin_rel=0.05,
        members=(
            AwardMember(offer_id="house-21.hp.1", deviation_kwh=(2.0, 2.0)),
            AwardMember(offer_id="house-22.boiler.1", deviation_kwh=(1.0, 1.0)),
        ),
    )
    metered = readings("house-21", "heat_pump", at(17), [3.0, 2.9]) + readings(
        "house-22", "boiler", at(17), [1.0, 1.0]
    )
    result = settle(
        period=NOVEMBER,
        offers=[hp, boiler],
        readings=metered,
        contracts=contracts,
        awards=[award],
        booked_at=BOOKED,
    )
    # too little history for the characteristic baseline: the default is the baseline
    assert all(o.baseline == "default" and o.notes for o in result.offers)
    (a,) = result.awards
    assert (a.status, a.slots, a.paid_slots) == ("paid", 2, 2)
    assert (a.revenue_cents, a.paid_out_cents, a.margin_cents) == (90, 51, 39)
    shares = {s.offer_id: (s.portion_cents, s.payout_cents) for s in result.shares}
    assert shares == {"house-21.hp.1": (59, 35), "house-22.boiler.1": (31, 16)}
    assert amounts(result, "market:fmar-1") == {"market_revenue": -90}
    assert amounts(result, "party:house-21") == {"revenue_share": 35}
    assert amounts(result, "party:house-22") == {"revenue_share": 16}
    agg = make_bill("aggregator", NOVEMBER, result.new, offers=result.offers, issued_at=BOOKED)
    assert agg.total_cents == 39


def test_example_3_direct_offer_paid_at_its_asks():
    battery = offer(
        "house-30.battery.1",
        agent="house-30",
        device="battery",
        mode="direct",
        default=(at(12), [0.0, 0.0]),
        schedule=(at(12), [2.0, -1.0]),
        asks=("0.10", "0.12"),
    )
    result = settle(
        period=NOVEMBER,
        offers=[battery],
        readings=readings("house-30", "battery", at(12), [2.0, -0.6]),
        contracts=book("direct.json"),
        booked_at=BOOKED,
    )
    (o,) = result.offers
    assert o.status == "settled"
    assert (o.delivered_wh, o.undelivered_wh) == (2600, 400)
    # 2.0 kWh up x 0.10 + 0.6 kWh down x 0.12 = 0.272 -> 0.27; no penalty in direct trading
    assert amounts(result, "party:house-30") == {"asks": 27}
    assert amounts(result, "aggregator:asks") == {"asks": -27}


def _submeter_case(**kwargs):
    hp = offer(
        "house-40.hp.1",
        agent="house-40",
        device="heat_pump",
        default=(at(6), [1.5, 1.5]),
        schedule=(at(6.5), [1.5, 1.5]),
    )
    metered = readings("house-40", "heat_pump", at(6), [0.0, 0.0, 1.5, 1.5]) + readings(
        "house-40", "main", at(6), [0.3, 0.2, 1.2, 2.0]
    )
    return settle(
        period=NOVEMBER,
        offers=[hp],
        readings=metered,
        contracts=book("submeter.toml"),
        booked_at=BOOKED,
        **kwargs,
    )


def test_example_4_failed_submeter_check_holds_the_offer():
    result = _submeter_case()
    (o,) = result.offers
    assert o.status == "held"
    # 06:30: heat pump 1.5 kWh against a main meter of 1.2 kWh: 0.3 > 0.05 + 2 % of 1.2
    assert o.reasons == (
        f"submeter_check: sub-meters 1500 Wh exceed the main meter 1200 Wh at {at(6.5)}",
    )
    assert result.new == () and result.settled_now == ()
    bill = make_bill("house-40", NOVEMBER, result.new, offers=result.offers, issued_at=BOOKED)
    assert bill.total_cents == 0 and bill.held == ("house-40.hp.1",)


def test_example_4_released_after_review_is_paid():
    result = _submeter_case(release={"house-40.hp.1"})
    (o,) = result.offers
    assert o.status == "settled" and o.notes and o.reasons == ()
    # 6 kWh of deviation requested and delivered: 6 x 0.05 = 0.30
    assert o.delivered_wh == 6000
    assert amounts(result, "party:house-40") == {"reward": 30}
