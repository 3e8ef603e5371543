"""Market revenue per award, and its sharing with the offers that carried it.

Rules (docs/settlement.md states the same):

1. Per market slot ``i`` with an awarded deviation ``A_i`` (Wh, signed, from the defaults), each
   member ``m`` delivered ``d_mi``: its actual deviation from its *default* (metered - default;
   a market counts from the defaults it was offered) clamped to the direction of its part
   ``p_mi`` of the award and to at most ``|p_mi|`` (no reading: nothing). The award delivered
   ``D_i = sum_m d_mi``.
2. The market pays slot ``i`` only if ``|A_i - D_i| <= margin_kwh + margin_rel * |A_i|`` (plus
   1 Wh per member for rounding); then it pays ``price_i * A_i`` (all of it: within the margin
   counts as delivered). The award's
   revenue ``R`` is the sum over paid slots, rounded once to cents.
3. ``R`` is split over the members by the largest-remainder method in proportion to the value
   they delivered on paid slots (``sum_i price_i * d_mi``, counted only in the direction of
   ``R``), so the portions add up to ``R`` to the cent.
4. Each member's contract decides its payout from its portion: ``revenue_sharing`` pays
   ``share * portion`` (never below zero: no losses are possible), a ``direct`` contract priced
   at the clearing price pays the whole portion, other contracts (strict rewards, direct at
   asks) pay nothing from it (they are paid by their own terms). What is not paid out is the
   aggregator's margin: ``R = paid out + margin``, exactly.
5. An award whose member offer is held, unknown, or on another slot grid is held as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

import msgspec
from msgspec.structs import replace

from ._contract import Contract, DirectPrice, RevenueSharing
from ._delivery import ROUNDING_WH, SlotRecord
from ._inputs import MarketAward
from ._ledger import (
    Transaction,
    aggregator_account,
    market_account,
    party_account,
    transfer,
)
from ._money import cents, per_kwh, split_cents, wh


class AwardSettlement(msgspec.Struct, frozen=True, kw_only=True):
    """What one market award earned and where it went."""

    key: str
    market: str
    gate: str
    order: str
    day: str
    start: int
    status: Literal["paid", "unpaid", "held"]
    reasons: tuple[str, ...] = ()
    #: Market slots with a non-zero award, and how many of them the market pays.
    slots: int = 0
    paid_slots: int = 0
    awarded_wh: int = 0
    delivered_wh: int = 0
    revenue_cents: int = 0
    paid_out_cents: int = 0
    margin_cents: int = 0


class MemberShare(msgspec.Struct, frozen=True, kw_only=True):
    """One member's part of an award's revenue."""

    award: str
    offer_id: str
    party: str
    delivered_wh: int
    portion_cents: int
    payout_cents: int
    kind: Literal["revenue_share", "clearing", "none"]
    contract_id: str
    contract_version: int


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """What the award's settlement needs of a member offer that was evaluated."""

    offer_id: str
    party: str
    held: bool
    resolution_s: int
    slots: Mapping[int, SlotRecord]
    contract: Contract


def settle_award(
    award: MarketAward,
    members: Mapping[str, Member],
    *,
    day: str,
    booked_at: int,
) -> tuple[AwardSettlement, list[MemberShare], list[Transaction]]:
    """Settle one award given its evaluated member offers (by offer id)."""
    head = AwardSettlement(
        key=award.key,
        market=award.market,
        gate=award.gate,
        order=award.id,
        day=day,
        start=award.start,
        status="held",
    )
    reasons = _problems(award, members)
    if reasons:
        return replace(head, reasons=tuple(reasons)), [], []
    n = len(award.deviation_kwh)
    res = award.resolution_s
    one_price = len(award.price_eur_per_kwh) == 1
    price = [award.price_eur_per_kwh[0 if one_price else i] for i in range(n)]
    delivered: dict[str, list[int]] = {m.offer_id: [0] * n for m in award.members}
    slots = paid = awarded_wh = delivered_wh = 0
    revenue = Decimal(0)
    paid_slot = [False] * n
    rounding = ROUNDING_WH * len(award.members)
    for i in range(n):
        t = award.start + i * res
        total = 0
        for part in award.members:
            p = wh(part.deviation_kwh[i])
            rec = members[part.offer_id].slots.get(t)
            if p == 0 or rec is None or rec.metered_wh is None:
                continue
            actual = rec.metered_wh - rec.default_wh
            d = min(max(actual, 0), p) if p > 0 else max(min(actual, 0), p)
            delivered[part.offer_id][i] = d
            total += d
        a = wh(award.deviation_kwh[i])
        if a == 0:
            continue
        slots += 1
        awarded_wh += abs(a)
        delivered_wh += abs(total)
        slack = award.margin_kwh * 1000 + award.margin_rel * abs(a) + rounding
        if abs(a - total) <= slack:
            paid += 1
            paid_slot[i] = True
            revenue += per_kwh(price[i], a)
    r = cents(revenue)
    key = award.key
    txns: list[Transaction] = []
    shares: list[MemberShare] = []
    txns.append(
        Transaction(
            key=f"award:{key}:revenue",
            base=f"award:{key}:revenue",
            kind="market_revenue",
            day=day,
            booked_at=booked_at,
            account=market_account(award.market),
            award=key,
            quantity=sum(abs(wh(award.deviation_kwh[i])) for i in range(n) if paid_slot[i]),
            unit="Wh",
            memo=f"{paid} of {slots} slots delivered within the market's margin",
            postings=transfer(
                payer=market_account(award.market),
                payee=aggregator_account("market_revenue"),
                amount_cents=r,
            ),
        )
    )
    sign = 1 if r >= 0 else -1
    ids = [part.offer_id for part in award.members]
    weights = []
    for oid in ids:
        value = sum(
            (per_kwh(price[i], delivered[oid][i]) for i in range(n) if paid_slot[i]), Decimal(0)
        )
        weights.append(max(Decimal(0), sign * value))
    portions = split_cents(r, weights)
    paid_out = 0
    for oid, portion in zip(ids, portions, strict=True):
        m = members[oid]
        c = m.contract
        terms = c.terms
        kind: Literal["revenue_share", "clearing", "none"] = "none"
        payout = 0
        rate: Decimal | None = None
        if isinstance(terms, RevenueSharing):
            kind, rate = "revenue_share", terms.share
            payout = cents(terms.share * max(portion, 0) / 100)
        elif isinstance(terms, DirectPrice) and terms.price == "clearing":
            kind, payout = "clearing", portion
        member_wh = sum(abs(delivered[oid][i]) for i in range(n) if paid_slot[i])
        shares.append(
            MemberShare(
                award=key,
                offer_id=oid,
                party=m.party,
                delivered_wh=member_wh,
                portion_cents=portion,
                payout_cents=payout,
                kind=kind,
                contract_id=c.id,
                contract_version=c.version,
            )
        )
        if kind == "none":
            continue
        paid_out += payout
        base = f"award:{key}:{kind}:{oid}"
        txns.append(
            Transaction(
                key=base,
                base=base,
                kind=kind,
                day=day,
                booked_at=booked_at,
                account=party_account(m.party),
                offer_id=oid,
                award=key,
                contract_id=c.id,
                contract_version=c.version,
                quantity=member_wh,
                unit="Wh",
                rate=rate,
                memo=f"portion {portion} cents of {r}",
                postings=transfer(
                    payer=aggregator_account(kind),
                    payee=party_account(m.party),
                    amount_cents=payout,
                ),
            )
        )
    status: Literal["paid", "unpaid"] = "paid" if paid else "unpaid"
    result = replace(
        head,
        status=status,
        slots=slots,
        paid_slots=paid,
        awarded_wh=awarded_wh,
        delivered_wh=delivered_wh,
        revenue_cents=r,
        paid_out_cents=paid_out,
        margin_cents=r - paid_out,
    )
    return result, shares, txns


def _problems(award: MarketAward, members: Mapping[str, Member]) -> list[str]:
    n = len(award.deviation_kwh)
    out: list[str] = list(award.problems)
    if n == 0:
        out.append("award: no slots")
    if len(award.price_eur_per_kwh) not in (1, n):
        out.append(f"price_eur_per_kwh: {len(award.price_eur_per_kwh)} values for {n} slots")
    elif not all(p.is_finite() for p in award.price_eur_per_kwh):
        out.append("price_eur_per_kwh: not a finite number")
    if award.resolution_s <= 0 or award.start % award.resolution_s:
        out.append(f"start: {award.start} is not on the {award.resolution_s} s slot grid")
    if not award.members:
        out.append("members: none")
    seen: set[str] = set()
    for j, part in enumerate(award.members):
        where = f"members[{j}]"
        if part.offer_id in seen:
            out.append(f"{where}: offer {part.offer_id!r} twice")
        seen.add(part.offer_id)
        if len(part.deviation_kwh) != n:
            out.append(f"{where}.deviation_kwh: {len(part.deviation_kwh)} values for {n} slots")
        m = members.get(part.offer_id)
        if m is None:
            out.append(f"{where}: offer {part.offer_id!r} is not among the executed offers")
        elif m.held:
            out.append(f"{where}: offer {part.offer_id!r} is held for review")
        elif m.resolution_s != award.resolution_s:
            out.append(
                f"{where}: offer {part.offer_id!r} has {m.resolution_s} s slots, the market "
                f"{award.resolution_s} s"
            )
    return out
