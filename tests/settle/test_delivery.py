"""Delivered deviation per slot, meter sums, the characteristic baseline and the holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from msgspec.structs import replace

from cloud.settle import Baseline, ContractBook, Period, Reading, delivered, load_contract, settle
from cloud.settle._baseline import characteristic
from cloud.settle._meters import MeterIndex

from .build import DEC_1, EXAMPLES, NOV_5, Q, at, book, offer, readings

NOVEMBER = Period.parse("2026-11")


@pytest.mark.parametrize(
    ("scheduled", "baseline", "metered", "want"),
    [
        (3000, 1000, 3000, 2000),  # as scheduled
        (3000, 1000, 3100, 2000),  # within the tolerance
        (3000, 1000, 4000, 2000),  # overshoot: up to the scheduled amount
        (3000, 1000, 2000, 1000),  # part of the way
        (3000, 1000, 500, 0),  # the wrong way
        (0, 2000, 500, -1500),  # a reduction, part of the way
        (0, 2000, 2500, 0),
        (1000, 1000, 5000, 0),  # nothing asked, nothing delivered
        (3000, 1000, None, 0),  # no reading
    ],
)
def test_delivered_rule(scheduled, baseline, metered, want):
    got = delivered(scheduled=scheduled, baseline=baseline, metered=metered, tol_wh=50, tol_rel=0.1)
    assert got == want


def test_readings_are_spread_over_slots_and_split_by_tag():
    index = MeterIndex(
        [
            Reading("a", "d", NOV_5, 3600, 4.0),  # an hourly reading: 1 kWh per quarter hour
            Reading("a", "d", NOV_5, Q, 0.5, "o1"),
            Reading("a", "d", NOV_5 + Q, Q, 0.25, "o2"),
        ]
    )
    quarter_hours = [NOV_5 + i * Q for i in range(6)]
    assert index.offer("a", "d", "o1", Q, quarter_hours) == {
        NOV_5: 1500,
        NOV_5 + Q: 1000,
        NOV_5 + 2 * Q: 1000,
        NOV_5 + 3 * Q: 1000,
    }
    assert index.offer("a", "d", "o2", Q, quarter_hours)[NOV_5 + Q] == 1250
    assert index.device("a", "d", Q)[NOV_5 + Q] == 1250
    assert index.device("a", "d", 3600) == {NOV_5: 4750}


def test_missing_readings_hold_or_count_as_not_delivered():
    ev = offer(
        "house-17.ev.1",
        agent="house-17",
        device="ev",
        default=(at(18), [2.0]),
        schedule=(at(19), [2.0]),
    )
    contracts = book("strict-rewards.toml")
    only_18 = readings("house-17", "ev", at(18), [0.0])
    held = settle(
        period=NOVEMBER, offers=[ev], readings=only_18, contracts=contracts, booked_at=DEC_1
    )
    assert held.offers[0].status == "held"
    assert held.offers[0].reasons[0].startswith("missing_readings: 1 slots")
    c = contracts.latest("c-house-17")
    lenient = ContractBook(
        [replace(c, delivery=replace(c.delivery, missing_readings="not_delivered"))]
    )
    paid = settle(
        period=NOVEMBER, offers=[ev], readings=only_18, contracts=lenient, booked_at=DEC_1
    )
    (o,) = paid.offers
    assert (o.status, o.delivered_wh, o.undelivered_wh) == ("settled", 2000, 2000)


def test_offers_without_a_contract_or_of_the_wrong_mode_are_held():
    stray = offer("x.ev.1", agent="house-99", device="ev", default=(at(18), [1.0]))
    direct = offer(
        "house-17.ev.2", agent="house-17", device="ev", default=(at(18), [1.0]), mode="direct"
    )
    result = settle(
        period=NOVEMBER,
        offers=[stray, direct],
        readings=[],
        contracts=book("strict-rewards.toml"),
        booked_at=DEC_1,
        release={"x.ev.1", "house-17.ev.2"},
    )
    reasons = {o.offer_id: o.reasons[0].split(":")[0] for o in result.offers}
    assert reasons == {"x.ev.1": "no_contract", "house-17.ev.2": "mode"}
    assert result.new[0].kind == "fee" and len(result.new) == 1


def _weekday_history(kwh_by_day: dict[int, float]) -> dict[int, int]:
    """History at 18:00 of days before 2026-11-05 (a Thursday)."""
    return {NOV_5 - back * 86_400 + 18 * 3600: round(e * 1000) for back, e in kwh_by_day.items()}


def test_characteristic_baseline_averages_comparable_days():
    assert datetime.fromtimestamp(NOV_5, UTC).strftime("%A") == "Thursday"
    # Wed 4th .. Mon 2nd (weekdays) and Sun 1st / Sat 31st (weekend)
    history = _weekday_history({1: 1.0, 2: 2.0, 3: 3.0, 4: 9.0, 5: 9.0, 6: 1.5})
    rule = Baseline(kind="characteristic", days=3, min_days=2, lookback_days=10)
    t = at(18)
    assert characteristic(history, slots=[t], rule=rule) == {t: 2000}  # mean of 1, 2, 3
    weekday = replace(rule, comparable="weekday", min_days=1, days=1)
    assert characteristic(history, slots=[t], rule=weekday) is None  # no Thursday in history
    anyday = replace(rule, comparable="any", days=5)
    assert characteristic(history, slots=[t], rule=anyday) == {t: 4800}  # 1+2+3+9+9 / 5
    assert characteristic(history, slots=[t + Q], rule=rule) is None


def test_characteristic_baseline_catches_an_inflated_default():
    c = load_contract(EXAMPLES / "strict-rewards.toml")
    c = replace(c, baseline=Baseline(kind="characteristic", days=5, min_days=3))
    # the heat pump says it would draw 3 kWh at 18:00 and is paid to draw none; its history
    # shows it draws 0.5 kWh there on weekdays
    hp = offer(
        "house-17.hp.9",
        agent="house-17",
        device="heat_pump",
        default=(at(18), [3.0]),
        schedule=(at(18), [0.0]),
    )
    history = [
        r
        for back in (1, 2, 3, 6, 7)
        for r in readings("house-17", "heat_pump", at(18) - back * 86_400, [0.5])
    ]
    now = readings("house-17", "heat_pump", at(18), [0.0])
    result = settle(
        period=NOVEMBER,
        offers=[hp],
        readings=history + now,
        contracts=ContractBook([c]),
        booked_at=DEC_1,
    )
    (o,) = result.offers
    assert (o.baseline, o.requested_wh, o.delivered_wh) == ("characteristic", 500, 500)
    (slot,) = result.slots
    assert (slot.default_wh, slot.baseline_wh) == (3000, 500)
