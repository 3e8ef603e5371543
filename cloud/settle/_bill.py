"""Bills: per party and period, lines and a total taken from the ledger.

A bill's lines are the ledger's postings on the party's accounts, for transactions of the
period's days, summed per day and kind of transaction (corrections are counted on the line
of their day and kind, and flagged). The total is the sum of the lines, which is the balance
of the party's accounts over those transactions: a bill cannot disagree with the ledger. The
delivered flexibility per day comes from the settlement's per-offer rows.

Parties: a prosumer or DSO by its id (accounts ``party:<id>``); ``market:<id>`` for a market;
``aggregator`` for the aggregator's own books (every ``aggregator:*`` account, so its total is
its net result: market revenue and penalties in, rewards, fees and payouts out). A positive
amount is money the party receives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

import msgspec

from ._ledger import KIND_TEXT, Transaction, party_account
from ._period import Period
from ._settlement import OfferSettlement

AGGREGATOR = "aggregator"


class BillLine(msgspec.Struct, frozen=True, kw_only=True):
    day: str
    kind: str
    text: str
    account: str
    #: Summed over the line's transactions, in ``unit`` (Wh, s).
    quantity: int
    unit: str
    #: The rate (EUR per kWh, per hour, per month; a share) if all its transactions had one.
    rate: Decimal | None
    transactions: int
    corrections: int
    amount_cents: int


class BillDay(msgspec.Struct, frozen=True, kw_only=True):
    """Delivered flexibility of one day, and the day's amount."""

    day: str
    offers: int
    requested_wh: int
    delivered_wh: int
    undelivered_wh: int
    amount_cents: int


class Bill(msgspec.Struct, frozen=True, kw_only=True):
    party: str
    period: str
    start: int
    end: int
    tz: str
    issued_at: int
    currency: str = "EUR"
    accounts: tuple[str, ...]
    lines: tuple[BillLine, ...]
    days: tuple[BillDay, ...]
    #: Offers of the party delivered in the period and held for review (not on this bill).
    held: tuple[str, ...] = ()
    total_cents: int


def accounts_of(party: str) -> tuple[str, ...] | None:
    """The account a party's bill covers; ``None`` for the aggregator (every
    ``aggregator:*`` account)."""
    if party == AGGREGATOR:
        return None
    if party.startswith("market:"):
        return (party,)
    return (party_account(party),)


def make_bill(
    party: str,
    period: Period,
    transactions: Iterable[Transaction],
    *,
    offers: Iterable[OfferSettlement] = (),
    issued_at: int,
) -> Bill:
    """The bill of ``party`` for ``period`` from the ledger's ``transactions`` (any superset
    of the period's) and the settlement's offer rows."""
    wanted = accounts_of(party)

    def mine(account: str) -> bool:
        return account.startswith("aggregator:") if wanted is None else account in wanted

    days = set(period.days())
    lines: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
        lambda: {"quantity": 0, "transactions": 0, "corrections": 0, "amount": 0}
    )
    units: dict[tuple[str, str, str], str] = {}
    rates: dict[tuple[str, str, str], set[Decimal | None]] = defaultdict(set)
    seen_accounts: set[str] = set()
    for t in transactions:
        if t.day not in days:
            continue
        for p in t.postings:
            if not mine(p.account):
                continue
            seen_accounts.add(p.account)
            key = (t.day, t.kind, p.account)
            line = lines[key]
            line["quantity"] += t.quantity
            line["transactions"] += 1
            line["corrections"] += int(t.correction)
            line["amount"] += p.amount_cents
            units[key] = t.unit
            rates[key].add(t.rate)
    bill_lines = tuple(
        BillLine(
            day=day,
            kind=kind,
            text=KIND_TEXT.get(kind, kind),
            account=account,
            quantity=v["quantity"],
            unit=units[(day, kind, account)],
            rate=next(iter(rates[(day, kind, account)]))
            if len(rates[(day, kind, account)]) == 1
            else None,
            transactions=v["transactions"],
            corrections=v["corrections"],
            amount_cents=v["amount"],
        )
        for (day, kind, account), v in sorted(lines.items())
    )
    per_day_amount: dict[str, int] = defaultdict(int)
    for bill_line in bill_lines:
        per_day_amount[bill_line.day] += bill_line.amount_cents
    flex: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    held: list[str] = []
    for o in offers:
        if o.day not in days or (wanted is not None and party_account(o.agent) not in wanted):
            continue
        if o.status == "held":
            held.append(o.offer_id)
            continue
        f = flex[o.day]
        f[0] += 1
        f[1] += o.requested_wh
        f[2] += o.delivered_wh
        f[3] += o.undelivered_wh
    bill_days = tuple(
        BillDay(
            day=d,
            offers=flex[d][0] if d in flex else 0,
            requested_wh=flex[d][1] if d in flex else 0,
            delivered_wh=flex[d][2] if d in flex else 0,
            undelivered_wh=flex[d][3] if d in flex else 0,
            amount_cents=per_day_amount.get(d, 0),
        )
        for d in sorted(flex.keys() | per_day_amount.keys())
    )
    return Bill(
        party=party,
        period=period.label,
        start=period.start,
        end=period.end,
        tz=period.tz,
        issued_at=issued_at,
        accounts=tuple(sorted(seen_accounts)) if wanted is None else wanted,
        lines=bill_lines,
        days=bill_days,
        held=tuple(sorted(held)),
        total_cents=sum(b.amount_cents for b in bill_lines),
    )


def parties(transactions: Iterable[Transaction]) -> list[str]:
    """Every party that has a bill: the aggregator, markets and contract parties."""
    out: set[str] = set()
    for t in transactions:
        for p in t.postings:
            if p.account.startswith("aggregator:"):
                out.add(AGGREGATOR)
            elif p.account.startswith("market:"):
                out.add(p.account)
            elif p.account.startswith("party:"):
                out.add(p.account.removeprefix("party:"))
    return sorted(out)


def make_bills(
    period: Period,
    transactions: Iterable[Transaction],
    *,
    offers: Iterable[OfferSettlement] = (),
    issued_at: int,
    only: Iterable[str] | None = None,
) -> list[Bill]:
    """The bills of every party in ``transactions`` (or of ``only`` those), in one pass over
    the ledger: the same bills :func:`make_bill` makes one at a time."""
    groups: dict[str, list[Transaction]] = defaultdict(list)
    for t in transactions:
        touched = set()
        for p in t.postings:
            if p.account.startswith("aggregator:"):
                touched.add(AGGREGATOR)
            elif p.account.startswith("market:"):
                touched.add(p.account)
            elif p.account.startswith("party:"):
                touched.add(p.account.removeprefix("party:"))
        for name in touched:
            groups[name].append(t)
    by_agent: dict[str, list[OfferSettlement]] = defaultdict(list)
    all_offers: list[OfferSettlement] = []
    for o in offers:
        by_agent[o.agent].append(o)
        all_offers.append(o)
    names = sorted(groups) if only is None else list(only)
    return [
        make_bill(
            name,
            period,
            groups.get(name, []),
            offers=all_offers if name == AGGREGATOR else by_agent.get(name, []),
            issued_at=issued_at,
        )
        for name in names
    ]
