"""Bills reconcile to the cent over random portfolios: contracts of every kind, deliveries
with missing and wrong-way readings, and market awards with random prices and margins."""

from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from cloud.settle import (
    AwardMember,
    Baseline,
    Contract,
    ContractBook,
    Delivery,
    DirectPrice,
    ExecutedOffer,
    MarketAward,
    Party,
    Period,
    Reading,
    RevenueSharing,
    Slots,
    StrictRewards,
    balances,
    cents,
    make_bill,
    parties,
    settle,
    wh,
)

from .build import DEC_1, NOV_1, NOV_5, Q, profile

NOVEMBER = Period.parse("2026-11")
money = st.decimals(min_value=0, max_value=2, places=3)
kwh = st.floats(min_value=-5, max_value=5, allow_nan=False).map(lambda x: round(x, 4))


@st.composite
def contracts(draw, party: str) -> Contract:
    kind = draw(st.sampled_from(["strict", "share", "asks", "clearing"]))
    if kind == "strict":
        terms = StrictRewards(
            reward_eur_per_kwh=draw(money),
            reward_eur_per_flex_hour=draw(money),
            fee_eur_per_month=draw(money),
            penalty_eur_per_kwh=draw(money),
        )
    elif kind == "share":
        terms = RevenueSharing(share=draw(st.decimals(0, 1, places=2)))
    else:
        terms = DirectPrice(price="asks" if kind == "asks" else "clearing")
    return Contract(
        id=f"c-{party}",
        party=Party(id=party),
        valid_from=NOV_1,
        mode="direct" if isinstance(terms, DirectPrice) else "delegated",
        terms=terms,
        delivery=Delivery(
            tolerance_kwh=draw(st.sampled_from([0.0, 0.05, 0.2])),
            tolerance_rel=draw(st.sampled_from([0.0, 0.1])),
            missing_readings=draw(st.sampled_from(["hold", "not_delivered"])),
        ),
        baseline=Baseline(
            kind=draw(st.sampled_from(["default", "characteristic"])), days=3, min_days=1
        ),
    )


@st.composite
def portfolios(draw):
    n_parties = draw(st.integers(1, 4))
    book = ContractBook([draw(contracts(f"p{i}")) for i in range(n_parties)])
    rng = random.Random(draw(st.integers(0, 2**32)))
    offers: list[ExecutedOffer] = []
    readings: list[Reading] = []
    for k in range(draw(st.integers(0, 8))):
        party = f"p{draw(st.integers(0, n_parties - 1))}"
        c = book.latest(f"c-{party}")
        n = draw(st.integers(1, 4))
        start = NOV_5 + draw(st.integers(0, 80)) * Q
        default = tuple(draw(kwh) for _ in range(n))
        shift = draw(st.integers(0, 3)) * Q
        schedule = tuple(draw(kwh) for _ in range(n)) if draw(st.booleans()) else None
        oid = f"{party}.d{k}.{k}"
        ask = (Decimal(draw(money)),) if draw(st.integers(0, 9)) else ()
        offers.append(
            ExecutedOffer(
                id=oid,
                agent=party,
                device=f"d{k}",
                mode=c.mode,
                start_after=start,
                start_before=start + shift,
                default=Slots(start=start, energy_kwh=default),
                schedule=Slots(start=start + shift, energy_kwh=schedule) if schedule else None,
                ask_up_eur_per_kwh=ask,
                ask_down_eur_per_kwh=ask,
            )
        )
        ran = profile(offers[-1].ran)
        for t in range(start, start + (n + 3) * Q, Q):
            roll = rng.random()
            if roll < 0.5:  # as scheduled
                readings.append(Reading(party, f"d{k}", t, Q, ran.get(t, 0.0), oid))
            elif roll < 0.85:  # anything; the rest of the slots go unmetered
                readings.append(Reading(party, f"d{k}", t, Q, round(rng.uniform(-5, 5), 3), oid))
            if rng.random() < 0.3:  # some history for the characteristic baseline
                readings.append(Reading(party, f"d{k}", t - 86_400, Q, rng.uniform(0, 3)))
    awards: list[MarketAward] = []
    for j in range(draw(st.integers(0, 3)) if offers else 0):
        members = draw(
            st.lists(st.sampled_from(offers), min_size=1, max_size=4, unique_by=lambda o: o.id)
        )
        start = min(m.ran.start for m in members)
        n = draw(st.integers(1, 4))
        parts = {}
        for m in members:
            if draw(st.booleans()):  # what its schedule moves it by (as FMAN disaggregates)
                d, r = profile(m.default), profile(m.ran)
                parts[m.id] = tuple(
                    round(r.get(start + i * Q, 0.0) - d.get(start + i * Q, 0.0), 4)
                    for i in range(n)
                )
            else:
                parts[m.id] = tuple(draw(kwh) for _ in range(n))
        total = tuple(round(sum(p[i] for p in parts.values()), 4) for i in range(n))
        awards.append(
            MarketAward(
                market=draw(st.sampled_from(["fmar-1", "fmar-2"])),
                gate=f"g{j}",
                id=f"a{j}",
                start=start,
                deviation_kwh=total,
                price_eur_per_kwh=tuple(
                    draw(st.decimals("-0.2", 1, places=4))
                    for _ in range(draw(st.sampled_from([1, n])))
                ),
                margin_kwh=draw(st.sampled_from([0.0, 0.5, 100.0])),
                margin_rel=draw(st.sampled_from([0.0, 0.1])),
                members=tuple(
                    AwardMember(offer_id=oid, deviation_kwh=p) for oid, p in parts.items()
                ),
            )
        )
    release = {o.id for o in offers if rng.random() < 0.3}
    return book, offers, readings, awards, release


def _run(book, offers, readings, awards, release, existing=()):
    return settle(
        period=NOVEMBER,
        offers=offers,
        readings=readings,
        contracts=book,
        awards=awards,
        existing=existing,
        booked_at=DEC_1,
        release=release,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios())
def test_bills_reconcile_to_the_cent(portfolio):
    book, offers, readings, awards, release = portfolio
    result = _run(book, offers, readings, awards, release)
    ledger = result.new
    event(f"offers held: {any(o.status == 'held' for o in result.offers)}")
    event(f"offers settled: {any(o.status == 'settled' for o in result.offers)}")
    for a in result.awards:
        event(f"award {a.status}")
    event(f"revenue shared: {any(s.payout_cents for s in result.shares)}")

    # every transaction and so the whole ledger sums to zero
    for t in ledger:
        assert sum(p.amount_cents for p in t.postings) == 0
    totals = balances(ledger)
    assert sum(totals.values()) == 0

    # each bill's lines sum to its total, the total is the ledger's balance of the party's
    # accounts, and all bills together sum to zero
    names = parties(ledger)
    bills = [make_bill(p, NOVEMBER, ledger, offers=result.offers, issued_at=DEC_1) for p in names]
    for b in bills:
        assert sum(line.amount_cents for line in b.lines) == b.total_cents
        assert sum(d.amount_cents for d in b.days) == b.total_cents
        want = sum(v for a, v in totals.items() if a in b.accounts)
        assert b.total_cents == want
    assert sum(b.total_cents for b in bills) == 0

    # market revenue = what was paid out of it + the aggregator's margin, per award and in all
    for a in result.awards:
        shares = [s for s in result.shares if s.award == a.key]
        if a.status == "held":
            assert shares == [] and a.revenue_cents == 0
            continue
        assert sum(s.portion_cents for s in shares) in (a.revenue_cents, 0)
        assert a.revenue_cents == a.paid_out_cents + a.margin_cents
        assert a.paid_out_cents == sum(s.payout_cents for s in shares)
        for s in shares:
            if s.kind == "revenue_share":
                assert 0 <= s.payout_cents <= max(s.portion_cents, 0)
    revenue = totals.get("aggregator:market_revenue", 0)
    paid_out = -(totals.get("aggregator:revenue_share", 0) + totals.get("aggregator:clearing", 0))
    assert revenue == sum(a.revenue_cents for a in result.awards)
    assert revenue == -sum(v for acc, v in totals.items() if acc.startswith("market:"))
    assert revenue == paid_out + sum(a.margin_cents for a in result.awards)

    # strict rewards are the contract's rates times the settled quantities, rounded once
    for o in result.offers:
        c = book.latest(o.contract_id) if o.contract_id else None
        if o.status != "settled" or c is None or not isinstance(c.terms, StrictRewards):
            continue
        got = {t.kind: t.amount_for(f"party:{o.agent}") for t in ledger if t.offer_id == o.offer_id}
        assert got.get("reward", 0) == cents(c.terms.reward_eur_per_kwh * o.delivered_wh / 1000)
        assert got.get("penalty", 0) == -cents(
            c.terms.penalty_eur_per_kwh * o.undelivered_wh / 1000
        )

    # idempotent: a second run over the same data writes nothing; input order does not matter
    again = _run(book, offers, readings, awards, release, existing=ledger)
    assert again.new == ()
    done = set(result.settled_now)
    moved = [replace(o, state="settled") if o.id in done else o for o in offers]
    skipping = _run(book, moved, readings, awards, release, existing=ledger)
    assert skipping.new == () and skipping.skipped <= len(done)
    shuffled = _run(book, offers[::-1], readings[::-1], awards[::-1], release)
    assert sorted(t.key for t in shuffled.new) == sorted(t.key for t in ledger)
    assert balances(shuffled.new) == totals


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(st.lists(kwh, min_size=2, max_size=2), min_size=1, max_size=4),
    price=st.decimals(-1, 1, places=4),
    share=st.decimals(0, 1, places=2),
)
def test_an_award_delivered_exactly_is_paid_in_full(parts, price, share):
    book = ContractBook(
        [
            Contract(
                id="c",
                party=Party(id="p"),
                valid_from=NOV_1,
                mode="delegated",
                terms=RevenueSharing(share=share),
            )
        ]
    )
    offers, readings, members = [], [], []
    for k, p in enumerate(parts):
        oid = f"o{k}"
        offers.append(
            ExecutedOffer(
                id=oid,
                agent="p",
                device=f"d{k}",
                start_after=NOV_5,
                start_before=NOV_5,
                default=Slots(start=NOV_5, energy_kwh=(1.0, 1.0)),
                schedule=Slots(start=NOV_5, energy_kwh=(1.0 + p[0], 1.0 + p[1])),
            )
        )
        readings += [Reading("p", f"d{k}", NOV_5 + i * Q, Q, 1.0 + p[i], oid) for i in range(2)]
        members.append(AwardMember(offer_id=oid, deviation_kwh=tuple(p)))
    total = [sum(wh(p[i]) for p in parts) for i in range(2)]
    award = MarketAward(
        market="m",
        gate="g",
        id="a",
        start=NOV_5,
        deviation_kwh=tuple(x / 1000 for x in total),
        price_eur_per_kwh=(price,),
        members=tuple(members),
    )
    result = settle(
        period=NOVEMBER,
        offers=offers,
        readings=readings,
        contracts=book,
        awards=[award],
        booked_at=DEC_1,
    )
    (a,) = result.awards
    assert a.paid_slots == sum(1 for x in total if x)
    assert a.revenue_cents == cents(price * sum(total) / 1000)
