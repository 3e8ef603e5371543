"""The double-entry ledger: accounts, postings, transactions, idempotency and corrections.

Every amount is an integer number of cents. A :class:`Transaction` moves money between
accounts: its postings sum to exactly zero (checked on construction of every new
transaction), so the ledger as a whole always sums to zero. The sign convention: a positive
posting is money the account's holder receives, a negative one money it pays. Accounts:

    party:<id>              a prosumer or DSO under contract (what the aggregator owes it)
    market:<id>             a market (what it owes the aggregator, negative)
    aggregator:<kind>       the aggregator's own books, one account per kind of transaction

Idempotency: each transaction has a stable ``key`` derived from what it settles
(``offer:<offer id>:reward``, ``award:<market>/<gate>/<order>:revenue``,
``fee:<contract>:<month>:v<version>``). A run computes what every key should total and
:func:`reconcile` compares it with what the ledger already holds under that key: nothing new
if they agree, a **correction** (a new transaction ``<key>#2``, ``#3``, ... posting the
difference) if they do not. Nothing is ever edited or deleted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Literal

import msgspec
from msgspec.structs import replace

from ._errors import LedgerError

Kind = Literal[
    "reward",
    "flex_hours",
    "fee",
    "penalty",
    "asks",
    "market_revenue",
    "revenue_share",
    "clearing",
]
#: What each kind means, for bills.
KIND_TEXT: dict[str, str] = {
    "reward": "reward for delivered deviation",
    "flex_hours": "reward for time flexibility offered",
    "fee": "fixed monthly fee",
    "penalty": "penalty for deviation not delivered",
    "asks": "direct offer paid at its asks",
    "market_revenue": "market revenue",
    "revenue_share": "share of market revenue",
    "clearing": "direct offer paid at the clearing price",
}
Unit = Literal["Wh", "s", "month", ""]


class Posting(msgspec.Struct, array_like=True, frozen=True, gc=False):
    account: str
    amount_cents: int


class Transaction(msgspec.Struct, frozen=True, kw_only=True):
    """One balanced movement of money, with what it is for."""

    #: Unique and stable: the idempotency key (``base``, or ``base#n`` for a correction).
    key: str
    #: The key of the first transaction of its chain.
    base: str
    kind: Kind
    #: The delivery day it belongs to (a fee: the first day of its month), in the run's zone.
    day: str
    #: When the run that made it was booked (the run's clock, epoch seconds).
    booked_at: int
    #: The counterparty's account (``party:house-17``, ``market:fmar-1``).
    account: str
    offer_id: str = ""
    #: ``market/gate/order`` of a market award.
    award: str = ""
    contract_id: str = ""
    contract_version: int = 0
    #: What was counted (energy in Wh, time in s, a month as 1) and the rate per unit shown on
    #: a bill (EUR per kWh, per hour, per month, or a share).
    quantity: int = 0
    unit: Unit = ""
    rate: Decimal | None = None
    memo: str = ""
    postings: tuple[Posting, ...]

    @property
    def correction(self) -> bool:
        return self.key != self.base

    def amount_for(self, account: str) -> int:
        return sum(p.amount_cents for p in self.postings if p.account == account)


def party_account(party: str) -> str:
    return f"party:{party}"


def market_account(market: str) -> str:
    return f"market:{market}"


def aggregator_account(kind: str) -> str:
    return f"aggregator:{kind}"


def check_transaction(t: Transaction) -> Transaction:
    """``t`` if its postings balance and name accounts; :class:`LedgerError` otherwise."""
    if not t.postings:
        raise LedgerError(f"transaction {t.key!r} has no postings")
    total = 0
    for p in t.postings:
        if not isinstance(p.amount_cents, int) or isinstance(p.amount_cents, bool):
            raise LedgerError(f"transaction {t.key!r}: {p.account} amount is not whole cents")
        if not p.account:
            raise LedgerError(f"transaction {t.key!r}: a posting names no account")
        total += p.amount_cents
    if total != 0:
        raise LedgerError(f"transaction {t.key!r} does not balance: its postings sum to {total}")
    return t


def transfer(*, payer: str, payee: str, amount_cents: int) -> tuple[Posting, ...]:
    """Postings for ``payer`` paying ``payee`` (a negative amount flows the other way)."""
    return (Posting(payee, amount_cents), Posting(payer, -amount_cents))


def balances(transactions: Iterable[Transaction]) -> dict[str, int]:
    """Each account's balance over ``transactions``."""
    out: dict[str, int] = defaultdict(int)
    for t in transactions:
        for p in t.postings:
            out[p.account] += p.amount_cents
    return dict(out)


def reconcile(
    desired: Iterable[Transaction], existing: Iterable[Transaction], *, booked_at: int
) -> list[Transaction]:
    """What to write so that each desired key totals what it should: desired transactions
    new to the ledger (leaving out those of zero amount), and corrections for keys whose
    postings so far differ. Keys in the ledger that are not desired are left alone."""
    chains: dict[str, list[Transaction]] = defaultdict(list)
    keys: set[str] = set()
    for t in existing:
        check_transaction(t)
        if t.key in keys:
            raise LedgerError(f"transaction key {t.key!r} appears twice in the ledger")
        keys.add(t.key)
        chains[t.base].append(t)
    out: list[Transaction] = []
    seen: set[str] = set()
    for d in desired:
        if d.key != d.base:
            raise LedgerError(f"desired transaction {d.key!r} must be a chain's first")
        if d.key in seen:
            raise LedgerError(f"transaction key {d.key!r} is desired twice")
        seen.add(d.key)
        want = _per_account(d.postings)
        prior = chains.get(d.key)
        if not prior:
            if any(want.values()):
                out.append(check_transaction(d))
            continue
        have = _per_account(p for t in prior for p in t.postings)
        diff = {a: want.get(a, 0) - have.get(a, 0) for a in want.keys() | have.keys()}
        postings = tuple(Posting(a, v) for a, v in sorted(diff.items()) if v)
        if not postings:
            continue
        n = len(prior) + 1
        while f"{d.key}#{n}" in keys:
            n += 1
        out.append(
            check_transaction(
                replace(
                    d,
                    key=f"{d.key}#{n}",
                    booked_at=booked_at,
                    quantity=d.quantity - sum(t.quantity for t in prior),
                    memo=f"correction of {d.key}" + (f": {d.memo}" if d.memo else ""),
                    postings=postings,
                )
            )
        )
    return out


def _per_account(postings: Iterable[Posting]) -> Mapping[str, int]:
    out: dict[str, int] = defaultdict(int)
    for p in postings:
        out[p.account] += p.amount_cents
    return out
