"""A settlement run: a period's executed offers, readings and awards in; settlement rows and
ledger transactions out.

:func:`settle` is pure: it is handed everything (the contract book, the ledger's existing
transactions, the time to book at) and returns what to write. Running it again over the same
inputs plus what the first run wrote returns nothing new to write, which is what makes
``atp settle`` idempotent. What it decides, per offer delivered in the period (its first slot
in the period):

1. the contract version in force at the offer's first slot (none: held, ``no_contract``);
2. the baseline: the default schedule, or the characteristic consumption (:mod:`._baseline`);
3. per slot the delivered deviation (:mod:`._delivery`);
4. holds for review: a slot that should deviate but has no reading (unless the contract counts
   it as not delivered), a failed sub-meter check (:mod:`._meters`), an offer whose mode is not
   the contract's, a direct offer without an ask for a slot it delivered in. An operator
   ``release``-s a reviewed offer: missing readings then count as not delivered and a failed
   sub-meter check is overruled; the other holds need their data fixed;
5. the money of its contract's terms: strict rewards (reward per kWh delivered, per hour of
   time flexibility offered, penalty per kWh not delivered), or a direct offer paid at its asks.

Then the market awards that start in the period (:mod:`._awards`), and the monthly fees of
strict-reward contracts for each calendar month wholly inside the period (in proportion to the
part of the month each version is in force). Offers that carry an award but start before the
period must be among the inputs: they are evaluated for the award and settled in their own
period.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import Literal

import msgspec

from ._awards import AwardSettlement, Member, MemberShare, settle_award
from ._baseline import DayCalendar, characteristic
from ._book import ContractBook
from ._contract import Contract, Delivery, DirectPrice, StrictRewards, terms_kind
from ._delivery import SlotRecord, offer_slots, profile_wh
from ._errors import InputError
from ._inputs import ExecutedOffer, MarketAward, Reading
from ._ledger import (
    Kind,
    Transaction,
    Unit,
    aggregator_account,
    party_account,
    reconcile,
    transfer,
)
from ._meters import MeterIndex, check_submeters
from ._money import cents, per_kwh
from ._period import Period

#: Offer states a run accepts: executed, or settled by an earlier run.
SETTLEABLE_STATES = ("executed", "settled")


class OfferSettlement(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict on one offer delivered in the period."""

    offer_id: str
    revision: int
    agent: str
    device: str
    day: str
    delivery_start: int
    status: Literal["settled", "held"]
    reasons: tuple[str, ...] = ()
    #: Holds an operator overruled (``release``), and notes (a baseline that fell back).
    notes: tuple[str, ...] = ()
    contract_id: str = ""
    contract_version: int = 0
    terms: str = ""
    baseline: Literal["default", "characteristic"] = "default"
    slots: int = 0
    requested_wh: int = 0
    delivered_wh: int = 0
    undelivered_wh: int = 0
    #: Time flexibility offered: the width of the start window.
    flex_s: int = 0


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one run decided. ``new`` is what to write to the ledger; ``settled_now`` the
    offers to move from ``executed`` to ``settled``. ``offers``, ``slots`` and ``awards`` hold
    what was evaluated in this run (a skipped offer keeps the rows of the run that settled
    it)."""

    period: Period
    booked_at: int
    offers: tuple[OfferSettlement, ...]
    slots: tuple[SlotRecord, ...]
    awards: tuple[AwardSettlement, ...]
    shares: tuple[MemberShare, ...]
    #: Every non-zero transaction this period's keys call for (written now or before).
    due: tuple[Transaction, ...]
    new: tuple[Transaction, ...]
    settled_now: tuple[str, ...]
    #: Settled offers not evaluated again (not in ``recheck``, carrying no award evaluated).
    skipped: int = 0

    @property
    def held(self) -> list[OfferSettlement]:
        return [o for o in self.offers if o.status == "held"]


class _Evaluated(msgspec.Struct, frozen=True, kw_only=True):
    result: OfferSettlement
    rows: list[SlotRecord]
    contract: Contract | None
    offer: ExecutedOffer


def settle(
    *,
    period: Period,
    offers: Iterable[ExecutedOffer],
    readings: Iterable[Reading],
    contracts: ContractBook,
    awards: Iterable[MarketAward] = (),
    existing: Iterable[Transaction] = (),
    booked_at: int,
    release: Collection[str] = (),
    recheck: Collection[str] = (),
    quarantined: Iterable[Reading] = (),
) -> Settlement:
    """Settle ``period``; see the module's docstring for the rules. ``recheck`` names settled
    offers to evaluate again (readings arrived after they were settled); other settled offers
    are skipped, and so are awards whose members are all skipped and whose revenue is in the
    ledger. ``quarantined`` are readings FMAN set aside (implausible, say): an offer with one
    of its device in its slots is held for review (``quarantined``) rather than settled as if
    the slot were simply unmetered."""
    offer_list = _checked_offers(offers)
    award_list = [a for a in _checked_awards(awards) if period.contains(a.start)]
    existing = list(existing)
    booked = {t.base for t in existing}
    recheck = frozenset(recheck)
    by_id = {o.id: o for o in offer_list}
    todo = {o.id for o in offer_list if o.state == "executed" or o.id in recheck}
    live_awards = []
    for a in award_list:
        ids = [m.offer_id for m in a.members]
        if any(i in todo or i not in by_id for i in ids) or (
            f"award:{a.key}:revenue" not in booked
        ):
            live_awards.append(a)
            todo.update(i for i in ids if i in by_id)
    meters = MeterIndex(readings)
    calendar = DayCalendar(period.tz)
    release = frozenset(release)
    aside: dict[tuple[str, str], list[Reading]] = {}
    for q in quarantined:
        aside.setdefault((q.agent, q.device), []).append(q)
    evaluated = {
        oid: _evaluate(
            by_id[oid],
            book=contracts,
            meters=meters,
            period=period,
            calendar=calendar,
            release=release,
            aside=aside,
        )
        for oid in sorted(todo)
    }
    in_period = [e for e in evaluated.values() if period.contains(e.offer.delivery_start)]
    in_period.sort(key=lambda e: (e.offer.delivery_start, e.offer.id))

    desired: list[Transaction] = []
    for e in in_period:
        if e.result.status == "settled" and e.contract is not None:
            desired.extend(_offer_transactions(e, booked_at=booked_at))

    award_rows: list[AwardSettlement] = []
    share_rows: list[MemberShare] = []
    members = {
        oid: Member(
            offer_id=oid,
            party=e.contract.party.id,
            held=e.result.status == "held",
            resolution_s=e.offer.resolution_s,
            slots={r.start: r for r in e.rows},
            contract=e.contract,
        )
        for oid, e in evaluated.items()
        if e.contract is not None
    }
    for a in sorted(live_awards, key=lambda a: (a.start, a.key)):
        row, shares, txns = settle_award(
            a, members, day=period.day_of(a.start), booked_at=booked_at
        )
        award_rows.append(row)
        share_rows.extend(shares)
        desired.extend(txns)

    desired.extend(_fees(contracts, period, booked_at=booked_at))
    new = reconcile(desired, existing, booked_at=booked_at)
    return Settlement(
        period=period,
        booked_at=booked_at,
        offers=tuple(e.result for e in in_period),
        slots=tuple(r for e in in_period for r in e.rows),
        awards=tuple(award_rows),
        shares=tuple(share_rows),
        due=tuple(t for t in desired if any(p.amount_cents for p in t.postings)),
        new=tuple(new),
        settled_now=tuple(
            e.offer.id
            for e in in_period
            if e.result.status == "settled" and e.offer.state == "executed"
        ),
        skipped=len(offer_list) - len(evaluated),
    )


def readings_window(
    period: Period, offers: Iterable[ExecutedOffer], contracts: ContractBook
) -> tuple[int, int]:
    """``[start, end)`` of the readings a run over ``period`` needs: from the longest
    characteristic-baseline look-back before the period to the end of the last offer."""
    back = max(
        (c.baseline.lookback_days for c in contracts if c.baseline.kind == "characteristic"),
        default=0,
    )
    end = period.end
    for o in offers:
        for s in (o.default, o.ran):
            end = max(end, s.start + len(s.energy_kwh) * o.resolution_s)
    # a day more on the early side: a time zone's day may start before the UTC one
    return period.start - (back + 1) * 86_400 if back else period.start, end


# -- one offer ---------------------------------------------------------------------------------


def _evaluate(
    offer: ExecutedOffer,
    *,
    book: ContractBook,
    meters: MeterIndex,
    period: Period,
    calendar: DayCalendar,
    release: frozenset[str],
    aside: dict[tuple[str, str], list[Reading]] | None = None,
) -> _Evaluated:
    t0 = offer.delivery_start
    contract = book.in_force(offer.agent, offer.device, t0)
    rule = contract.delivery if contract is not None else Delivery()
    res = offer.resolution_s
    default = profile_wh(offer.default.start, offer.default.energy_kwh, res)
    ran = offer.ran
    scheduled = default if ran is offer.default else profile_wh(ran.start, ran.energy_kwh, res)
    slots = sorted(default.keys() | scheduled.keys())
    metered = meters.offer(offer.agent, offer.device, offer.id, res, slots)
    reasons: list[str] = []
    notes: list[str] = []
    baseline = None
    if contract is not None and contract.baseline.kind == "characteristic":
        baseline = characteristic(
            meters.device(offer.agent, offer.device, res),
            slots=slots,
            rule=contract.baseline,
            calendar=calendar,
        )
        if baseline is None:
            notes.append(
                f"baseline: fewer than {contract.baseline.min_days} comparable days metered; "
                "the default schedule is the baseline"
            )
    rows, missing = offer_slots(
        offer.id,
        res,
        default=default,
        scheduled=scheduled,
        baseline=baseline,
        metered=metered,
        rule=rule,
    )
    released = offer.id in release
    if contract is None:
        reasons.append(f"no_contract: none covers {offer.agent}/{offer.device} at {t0}")
    else:
        if contract.mode != offer.mode:
            reasons.append(f"mode: a {offer.mode} offer under a {contract.mode} contract")
        if missing and contract.delivery.missing_readings == "hold":
            text = (
                f"missing_readings: {len(missing)} slots that should deviate have no reading "
                f"(first at {missing[0]})"
            )
            (notes if released else reasons).append(text)
        m = contract.metering
        if m.main_meter and offer.device not in m.certified:
            failure = check_submeters(
                meters,
                agent=offer.agent,
                main_meter=m.main_meter,
                slots=[r.start for r in rows],
                res=res,
                tolerance_kwh=m.tolerance_kwh,
                tolerance_rel=m.tolerance_rel,
            )
            if failure is not None:
                (notes if released else reasons).append(failure.reason())
        set_aside = _set_aside(offer, rows, (aside or {}).get((offer.agent, offer.device), ()))
        if set_aside:
            (notes if released else reasons).append(set_aside)
        terms = contract.terms
        if isinstance(terms, DirectPrice) and terms.price == "asks":
            reasons.extend(_ask_problems(offer, rows))
    requested = sum(abs(r.scheduled_wh - r.baseline_wh) for r in rows)
    got = sum(abs(r.delivered_wh) for r in rows)
    result = OfferSettlement(
        offer_id=offer.id,
        revision=offer.revision,
        agent=offer.agent,
        device=offer.device,
        day=period.day_of(t0),
        delivery_start=t0,
        status="held" if reasons else "settled",
        reasons=tuple(reasons),
        notes=tuple(notes),
        contract_id=contract.id if contract else "",
        contract_version=contract.version if contract else 0,
        terms=terms_kind(contract.terms) if contract else "",
        baseline="characteristic" if baseline is not None else "default",
        slots=len(rows),
        requested_wh=requested,
        delivered_wh=got,
        undelivered_wh=requested - got,
        flex_s=max(0, offer.start_before - offer.start_after),
    )
    return _Evaluated(result=result, rows=rows, contract=contract, offer=offer)


def _set_aside(offer: ExecutedOffer, rows: list[SlotRecord], aside: Iterable[Reading]) -> str:
    """The reason to hold ``offer`` if a quarantined reading of its device (tagged with it,
    or untagged) overlaps one of its slots; empty otherwise."""
    if not rows:
        return ""
    first, end = rows[0].start, rows[-1].start + offer.resolution_s
    hits = sorted(
        q.start
        for q in aside
        if q.offer_id in ("", offer.id) and q.start < end and q.start + q.duration_s > first
    )
    if not hits:
        return ""
    return (
        f"quarantined: {len(hits)} reading(s) of {offer.device} in its slots were set aside "
        f"(first at {hits[0]})"
    )


def _ask(asks: tuple[Decimal, ...], i: int) -> Decimal | None:
    if len(asks) == 1:
        return asks[0]
    return asks[i] if 0 <= i < len(asks) else None


def _ask_problems(offer: ExecutedOffer, rows: list[SlotRecord]) -> list[str]:
    out = []
    for name, asks in (
        ("ask_up_eur_per_kwh", offer.ask_up_eur_per_kwh),
        ("ask_down_eur_per_kwh", offer.ask_down_eur_per_kwh),
    ):
        if any(not a.is_finite() or a < 0 for a in asks):
            out.append(f"{name}: asks must be finite and not negative")
    for r in rows:
        if r.delivered_wh == 0:
            continue
        asks = offer.ask_up_eur_per_kwh if r.delivered_wh > 0 else offer.ask_down_eur_per_kwh
        if _ask(asks, (r.start - offer.start_after) // offer.resolution_s) is None:
            name = "ask_up_eur_per_kwh" if r.delivered_wh > 0 else "ask_down_eur_per_kwh"
            out.append(f"{name}: no ask for the slot at {r.start}")
            break
    return out


def _offer_transactions(e: _Evaluated, *, booked_at: int) -> list[Transaction]:
    c, o, res = e.contract, e.result, e.offer.resolution_s
    assert c is not None
    party = party_account(c.party.id)

    def txn(
        kind: Kind,
        payer: str,
        payee: str,
        amount: Decimal,
        quantity: int,
        unit: Unit,
        rate: Decimal | None,
    ) -> Transaction:
        key = f"offer:{o.offer_id}:{kind}"
        return Transaction(
            key=key,
            base=key,
            kind=kind,
            day=o.day,
            booked_at=booked_at,
            account=party,
            offer_id=o.offer_id,
            contract_id=c.id,
            contract_version=c.version,
            quantity=quantity,
            unit=unit,
            rate=rate,
            postings=transfer(payer=payer, payee=payee, amount_cents=cents(amount)),
        )

    terms = c.terms
    out: list[Transaction] = []
    if isinstance(terms, StrictRewards):
        rate = terms.reward_eur_per_kwh
        out.append(
            txn(
                "reward",
                aggregator_account("reward"),
                party,
                per_kwh(rate, o.delivered_wh),
                o.delivered_wh,
                "Wh",
                rate,
            )
        )
        rate = terms.reward_eur_per_flex_hour
        out.append(
            txn(
                "flex_hours",
                aggregator_account("flex_hours"),
                party,
                rate * o.flex_s / 3600,
                o.flex_s,
                "s",
                rate,
            )
        )
        rate = terms.penalty_eur_per_kwh
        out.append(
            txn(
                "penalty",
                party,
                aggregator_account("penalty"),
                per_kwh(rate, o.undelivered_wh),
                o.undelivered_wh,
                "Wh",
                rate,
            )
        )
    elif isinstance(terms, DirectPrice) and terms.price == "asks":
        offer = e.offer
        amount = Decimal(0)
        for r in e.rows:
            if r.delivered_wh == 0:
                continue
            asks = offer.ask_up_eur_per_kwh if r.delivered_wh > 0 else offer.ask_down_eur_per_kwh
            ask = _ask(asks, (r.start - offer.start_after) // res)
            assert ask is not None  # checked when evaluated
            amount += per_kwh(ask, abs(r.delivered_wh))
        out.append(
            txn("asks", aggregator_account("asks"), party, amount, o.delivered_wh, "Wh", None)
        )
    return out


# -- fees --------------------------------------------------------------------------------------


def _fees(book: ContractBook, period: Period, *, booked_at: int) -> list[Transaction]:
    out: list[Transaction] = []
    for month in period.months():
        span = month.end - month.start
        for cid in book.ids():
            seconds: dict[int, int] = {}
            versions: dict[int, Contract] = {}
            for c, a, b in book.in_force_segments(cid, month.start, month.end):
                seconds[c.version] = seconds.get(c.version, 0) + (b - a)
                versions[c.version] = c
            for v, secs in sorted(seconds.items()):
                c = versions[v]
                terms = c.terms
                if not isinstance(terms, StrictRewards) or not terms.fee_eur_per_month:
                    continue
                key = f"fee:{cid}:{month.label}:v{v}"
                party = party_account(c.party.id)
                out.append(
                    Transaction(
                        key=key,
                        base=key,
                        kind="fee",
                        day=month.day_of(month.start),
                        booked_at=booked_at,
                        account=party,
                        contract_id=cid,
                        contract_version=v,
                        quantity=secs,
                        unit="s",
                        rate=terms.fee_eur_per_month,
                        memo=f"{secs / 86_400:g} of {span / 86_400:g} days in {month.label}",
                        postings=transfer(
                            payer=aggregator_account("fee"),
                            payee=party,
                            amount_cents=cents(terms.fee_eur_per_month * secs / span),
                        ),
                    )
                )
    return out


# -- input checks ------------------------------------------------------------------------------


def _checked_offers(offers: Iterable[ExecutedOffer]) -> list[ExecutedOffer]:
    out: list[ExecutedOffer] = []
    seen: set[str] = set()
    for i, o in enumerate(offers):
        where = f"offers[{i}]"
        if o.id in seen:
            raise InputError(f"{where}.id", f"offer {o.id!r} appears twice")
        seen.add(o.id)
        if o.state not in SETTLEABLE_STATES:
            raise InputError(f"{where}.state", f"{o.state!r} is not executed or settled")
        res = o.resolution_s
        if res <= 0 or 86_400 % res:
            raise InputError(f"{where}.resolution_s", f"{res} does not divide a day")
        for name, s in (("default", o.default), ("schedule", o.schedule)):
            if s is not None and s.start % res:
                raise InputError(f"{where}.{name}.start", f"{s.start} is not on the slot grid")
        out.append(o)
    return out


def _checked_awards(awards: Iterable[MarketAward]) -> list[MarketAward]:
    out: list[MarketAward] = []
    seen: set[str] = set()
    for a in awards:
        if a.key in seen:
            raise InputError(f"awards[{a.key}]", "the award appears twice")
        seen.add(a.key)
        out.append(a)
    return out
