"""The four KPIs on the first worked example, by hand."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cloud.settle import Period, kpi_json, kpis, settle

from .build import DEC_1, NOV_5, at, book, offer, readings


@pytest.fixture(scope="module")
def example():
    ev = offer(
        "house-17.ev.1",
        agent="house-17",
        device="ev",
        default=(at(18), [2.0, 2.0]),
        schedule=(at(19), [2.0, 2.0]),
        window=(at(18), at(22)),
    )
    metered = readings("house-17", "ev", at(18), [0.0, 0.5, 0.0, 0.0, 2.1, 1.0])
    return settle(
        period=Period.parse("2026-11"),
        offers=[ev],
        readings=metered,
        contracts=book("strict-rewards.toml"),
        booked_at=DEC_1,
    )


def test_kpis_by_hand(example):
    prices = {at(18): Decimal("0.30"), at(19): Decimal("0.10")}
    k = kpis(
        slots=example.slots,
        transactions=example.new,
        start=NOV_5,
        end=NOV_5 + 86_400,
        prices=prices,
    )

    la = k.load_adaptability
    assert (la.peak_demand_mw, la.peak_hour) == (0.004, at(18))
    assert [(h.hour, h.flexibility_mwh, h.adaptability) for h in la.hours] == [
        (at(18), 0.0035, 0.875),
        (at(19), 0.003, 0.75),
    ]
    assert la.average == round(6.5 / 4 / 24, 6)

    p = k.projections
    assert p.flexibility_mwh_per_h == round(0.0065 / 24, 6)
    assert p.deal_value_eur_per_h == 0  # no market, no direct offers
    assert [x.scale for x in p.projections] == [10, 100, 1000]
    assert p.projections[2].flexibility_mwh_per_h == round(0.0065 / 24 * 1000, 6)
    assert p.assumptions

    r = k.revenues
    # the fee is booked on 1 November, outside the window: 0.32 + 0.08 - 0.12
    assert r.factual.paid_to_parties_eur == Decimal("0.28")
    assert r.factual.aggregator_net_eur == Decimal("-0.28")
    # (2 + 1.5) kWh saved at 0.30, (2.1 + 1.0) kWh more at 0.10
    assert r.factual.savings_eur == Decimal("0.74")
    assert r.capacity_mw == 0.0035
    assert r.per_mw_year.paid_to_parties_eur == Decimal("29200.00")  # 0.28 / 0.0035 x 365
    assert r.projections[0].paid_to_parties_eur == Decimal("2.80")

    a = k.adaptation
    assert [
        (h.baseline_mwh, h.scheduled_mwh, h.metered_mwh, h.planned_mwh, h.realised_mwh)
        for h in a.hours
    ] == [
        (0.004, 0.0, 0.0005, -0.004, -0.0035),
        (0.0, 0.004, 0.0031, 0.004, 0.0031),
    ]
    assert (a.planned_abs_mwh, a.realised_abs_mwh, a.unmetered_slots) == (0.008, 0.0066, 0)


def test_kpi_json_has_one_key_per_kpi(example):
    k = kpis(slots=example.slots, transactions=example.new, start=NOV_5, end=NOV_5 + 86_400)
    data = json.loads(kpi_json(k))
    assert list(data) == ["2.1.1.1.a", "2.1.1.1.c", "2.1.1.2.a", "2.1.1.2.b"]
    assert data["2.1.1.2.a"]["factual"]["savings_eur"] is None
    assert data["2.1.1.2.a"]["factual"]["paid_to_parties_eur"] == 0.28


def test_kpis_without_demand_or_data():
    k = kpis(slots=[], transactions=[], start=NOV_5, end=NOV_5 + 3600)
    assert k.load_adaptability.average is None and k.revenues.per_mw_year is None
    with pytest.raises(ValueError):
        kpis(slots=[], transactions=[], start=NOV_5, end=NOV_5)
