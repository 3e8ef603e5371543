"""Bills from the ledger, and their JSON, CSV and HTML forms."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from cloud.settle import (
    AwardMember,
    MarketAward,
    Period,
    bill_csv,
    bill_html,
    bill_json,
    make_bill,
    parties,
    settle,
)

from .build import DEC_1, at, book, offer, readings

NOVEMBER = Period.parse("2026-11")


@pytest.fixture(scope="module")
def month():
    """Two days of the strict-rewards household (day one: 2 kWh down, 1 of 2 kWh up: 0.15 +
    0.04 - 0.08; day two: all 4 kWh: 0.20 + 0.04) and a market award of 0.40 EUR to a revenue
    sharer (60 %: 0.24)."""
    offers, metered = [], []
    for day in (0, 1):
        shift = day * 86_400
        offers.append(
            offer(
                f"house-17.ev.{day}",
                agent="house-17",
                device="ev",
                default=(at(18) + shift, [2.0]),
                schedule=(at(19) + shift, [2.0]),
                window=(at(18) + shift, at(20) + shift),
            )
        )
        metered += readings("house-17", "ev", at(18) + shift, [0.0, 0, 0, 0, 1.0 + day])
    offers.append(
        offer(
            "house-21.hp.1",
            agent="house-21",
            device="hp",
            default=(at(17), [0.0]),
            schedule=(at(17), [2.0]),
        )
    )
    metered += readings("house-21", "hp", at(17), [2.0])
    award = MarketAward(
        market="fmar-1",
        gate="g1",
        id="a1",
        start=at(17),
        deviation_kwh=(2.0,),
        price_eur_per_kwh=(Decimal("0.2"),),
        members=(AwardMember(offer_id="house-21.hp.1", deviation_kwh=(2.0,)),),
    )
    result = settle(
        period=NOVEMBER,
        offers=offers,
        readings=metered,
        awards=[award],
        contracts=book("strict-rewards.toml", "revenue-sharing.toml"),
        booked_at=DEC_1,
    )
    return result


def test_bills_of_every_party_balance(month):
    names = parties(month.new)
    assert names == ["aggregator", "house-17", "house-21", "market:fmar-1"]
    bills = [make_bill(p, NOVEMBER, month.new, offers=month.offers, issued_at=DEC_1) for p in names]
    assert [b.total_cents for b in bills] == [-335 + 40 - 24, 335, 24, -40]
    assert sum(b.total_cents for b in bills) == 0
    house = bills[1]
    assert [(d.day, d.delivered_wh, d.amount_cents) for d in house.days] == [
        ("2026-11-01", 0, 300),
        ("2026-11-05", 3000, 11),
        ("2026-11-06", 4000, 24),
    ]


def test_json_csv_and_html(month):
    bill = make_bill("house-17", NOVEMBER, month.new, offers=month.offers, issued_at=DEC_1)
    data = json.loads(bill_json(bill))
    assert data["total_cents"] == 335 and data["period"] == "2026-11"
    rows = list(csv.DictReader(io.StringIO(bill_csv(bill))))
    assert rows[-1]["kind"] == "total" and rows[-1]["amount_eur"] == "3.35"
    assert sum(Decimal(r["amount_eur"]) for r in rows[:-1]) == Decimal("3.35")
    assert {r["unit"] for r in rows[:-1]} == {"kWh", "h"}
    assert {r["rate"] for r in rows if r["kind"] == "reward"} == {"0.05"}
    page = bill_html(bill)

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.attrs, self.text = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.attrs += [k for k, _ in attrs]

        def handle_data(self, data):
            self.text.append(data)

    p = Collect()
    p.feed(page)
    assert "script" not in p.tags and "img" not in p.tags and "link" not in p.tags
    assert "src" not in p.attrs and "href" not in p.attrs
    text = " ".join(p.text)
    for want in ("house-17", "2026-11-05", "2026-11-06", "3.000", "4.000", "3.35", "0.05 EUR/kWh"):
        assert want in text


def test_html_escapes_what_it_shows(month):
    bill = make_bill("<b>x</b>", NOVEMBER, month.new, offers=month.offers, issued_at=DEC_1)
    assert "<b>x</b>" not in bill_html(bill) and "&lt;b&gt;" in bill_html(bill)


def test_make_bills_is_make_bill_for_every_party(month):
    from cloud.settle import make_bills

    together = make_bills(NOVEMBER, month.new, offers=month.offers, issued_at=DEC_1)
    one_by_one = [
        make_bill(p, NOVEMBER, month.new, offers=month.offers, issued_at=DEC_1)
        for p in parties(month.new)
    ]
    assert together == one_by_one and len(together) == 4
