"""The ledger: balanced transactions, idempotent runs, corrections as new postings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace as with_

from cloud.settle import (
    AwardMember,
    ContractBook,
    LedgerError,
    MarketAward,
    Period,
    Posting,
    Transaction,
    balances,
    cents,
    check_transaction,
    reconcile,
    settle,
    split_cents,
)

from .build import DEC_1, NOV_1, at, book, offer, readings

NOVEMBER = Period.parse("2026-11")


PAIR = (Posting("a", 5), Posting("b", -5))


def _txn(key="k", postings=PAIR, **kw) -> Transaction:
    return Transaction(
        key=key,
        base=key.split("#")[0],
        kind="reward",
        day="2026-11-05",
        booked_at=0,
        account="party:x",
        postings=postings,
        **kw,
    )


def test_an_unbalanced_transaction_is_refused():
    with pytest.raises(LedgerError, match="does not balance: its postings sum to 1"):
        check_transaction(_txn(postings=(Posting("a", 5), Posting("b", -4))))
    with pytest.raises(LedgerError, match="no postings"):
        check_transaction(_txn(postings=()))
    with pytest.raises(LedgerError, match="whole cents"):
        check_transaction(_txn(postings=(Posting("a", 0.5), Posting("b", -0.5))))  # type: ignore[arg-type]
    with pytest.raises(LedgerError, match="does not balance"):
        reconcile([_txn()], [_txn(postings=(Posting("a", 1),))], booked_at=0)


def test_reconcile_writes_new_keys_once_and_corrects_changed_ones():
    first = reconcile([_txn()], [], booked_at=1)
    assert [t.key for t in first] == ["k"]
    assert reconcile([_txn()], first, booked_at=2) == []
    changed = _txn(postings=(Posting("a", 7), Posting("b", -7)), quantity=70)
    (fix,) = reconcile([changed], first, booked_at=3)
    assert (fix.key, fix.base, fix.booked_at, fix.correction) == ("k#2", "k", 3, True)
    assert fix.postings == (Posting("a", 2), Posting("b", -2))
    assert fix.quantity == 70 and fix.memo.startswith("correction of k")
    assert balances([*first, fix]) == {"a": 7, "b": -7}
    assert reconcile([changed], [*first, fix], booked_at=4) == []
    (back,) = reconcile([_txn()], [*first, fix], booked_at=5)
    assert back.key == "k#3" and back.postings == (Posting("a", -2), Posting("b", 2))
    # zero-amount keys are not written; keys not desired are left alone
    zero = _txn(key="z", postings=(Posting("a", 0), Posting("b", 0)))
    assert reconcile([zero], first, booked_at=6) == []
    assert reconcile([], first, booked_at=6) == []


def _ev_case(late_reading: float | None = None, existing=()):
    ev = offer(
        "house-17.ev.1",
        agent="house-17",
        device="ev",
        default=(at(18), [2.0, 2.0]),
        schedule=(at(19), [2.0, 2.0]),
        window=(at(18), at(22)),
    )
    metered = readings("house-17", "ev", at(18), [0.0, 0.5, 0.0, 0.0, 2.1, 1.0])
    if late_reading is not None:  # a reading that arrived after the first run
        metered.append(readings("house-17", "ev", at(19.25), [late_reading], "house-17.ev.1")[0])
    return settle(
        period=NOVEMBER,
        offers=[ev],
        readings=metered,
        contracts=book("strict-rewards.toml"),
        existing=existing,
        booked_at=DEC_1,
    )


def test_a_second_run_writes_nothing():
    first = _ev_case()
    assert first.new and first.settled_now == ("house-17.ev.1",)
    again = _ev_case(existing=first.new)
    assert again.new == ()
    assert again.due == first.due


def test_a_late_reading_becomes_a_correction():
    first = _ev_case()
    # 19:15 now meters 1.0 + 0.9 = 1.9 kWh: within the tolerance of 2.0, so 1 kWh more delivered
    second = _ev_case(late_reading=0.9, existing=first.new)
    assert {t.key: t.amount_for("party:house-17") for t in second.new} == {
        "offer:house-17.ev.1:reward#2": 6,  # 7.5 kWh x 0.05 = 0.375 -> 0.38, was 0.32
        "offer:house-17.ev.1:penalty#2": 8,  # 0.5 kWh x 0.08 = 0.04, was 0.12
    }
    totals = balances([*first.new, *second.new])
    assert totals["party:house-17"] == 300 + 38 + 8 - 4
    assert sum(totals.values()) == 0
    assert _ev_case(late_reading=0.9, existing=[*first.new, *second.new]).new == ()


def test_split_cents_examples():
    assert split_cents(90, [Decimal("0.585"), Decimal("0.3")]) == [59, 31]
    assert split_cents(-90, [Decimal("0.585"), Decimal("0.3")]) == [-59, -31]
    assert split_cents(10, [Decimal(1)] * 3) == [4, 3, 3]
    assert split_cents(10, [Decimal(0), Decimal(0)]) == [0, 0]
    with pytest.raises(ValueError):
        split_cents(10, [Decimal(-1), Decimal(2)])


@given(
    total=st.integers(-(10**9), 10**9),
    weights=st.lists(st.decimals(0, 10**6, places=4), min_size=1, max_size=20),
)
def test_split_cents_adds_up_and_is_fair_to_a_cent(total, weights):
    parts = split_cents(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for p, w in zip(parts, weights, strict=True):
        assert abs(Decimal(p) - Decimal(total) * w / sum(weights)) < 1


def test_cents_rounds_half_to_even():
    assert [cents(Decimal(x)) for x in ("0.325", "0.335", "-0.325", "0.3251", "2")] == [
        32,
        34,
        -32,
        33,
        200,
    ]


def test_settled_offers_are_skipped_unless_rechecked():
    first = _ev_case()
    ev = offer(
        "house-17.ev.1",
        agent="house-17",
        device="ev",
        default=(at(18), [2.0, 2.0]),
        schedule=(at(19), [2.0, 2.0]),
        window=(at(18), at(22)),
        state="settled",
    )
    late = readings("house-17", "ev", at(18), [0.0, 0.5, 0.0, 0.0, 2.1, 1.0])
    late.append(readings("house-17", "ev", at(19.25), [0.9], "house-17.ev.1")[0])

    def run(**kw):
        return settle(
            period=NOVEMBER,
            offers=[ev],
            readings=late,
            contracts=book("strict-rewards.toml"),
            existing=first.new,
            booked_at=DEC_1 + 1,
            **kw,
        )

    skipped = run()
    assert (skipped.skipped, skipped.offers, skipped.new) == (1, (), ())
    rechecked = run(recheck={"house-17.ev.1"})
    assert rechecked.skipped == 0 and rechecked.settled_now == ()
    assert {t.key for t in rechecked.new} == {
        "offer:house-17.ev.1:reward#2",
        "offer:house-17.ev.1:penalty#2",
    }
    assert with_(ev, state="executed") != ev


def test_an_award_is_settled_with_members_settled_before():
    # a heat pump that started on 31 October carries an award of 1 November
    start = NOV_1 - 900
    hp = offer(
        "house-21.hp.1",
        agent="house-21",
        device="hp",
        default=(start, [0.0, 0.0]),
        schedule=(start, [1.0, 1.0]),
        state="settled",
    )
    award = MarketAward(
        market="m",
        gate="g",
        id="a",
        start=NOV_1,
        deviation_kwh=(1.0,),
        price_eur_per_kwh=(Decimal("0.5"),),
        members=(AwardMember(offer_id="house-21.hp.1", deviation_kwh=(1.0,)),),
    )
    c = book("revenue-sharing.toml").latest("c-house-21")
    contracts = ContractBook([with_(c, valid_from=NOV_1 - 86_400)])
    metered = readings("house-21", "hp", start, [1.0, 1.0])
    result = settle(
        period=NOVEMBER,
        offers=[hp],
        readings=metered,
        awards=[award],
        contracts=contracts,
        booked_at=DEC_1,
    )
    assert result.offers == ()  # delivered in October: settled there
    (a,) = result.awards
    assert (a.status, a.revenue_cents, a.paid_out_cents) == ("paid", 50, 30)
    again = settle(
        period=NOVEMBER,
        offers=[hp],
        readings=[],
        awards=[award],
        contracts=contracts,
        existing=result.new,
        booked_at=DEC_1,
    )
    assert (again.skipped, again.awards, again.new) == (1, (), ())
