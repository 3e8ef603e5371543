"""Settlement on FMAN's store: contracts kept as versions, a run over a period, bills and KPIs.

The rules are :mod:`cloud.settle`'s (pure); this module only reads the store's rows into its
inputs and writes its outputs back, so ``atp contract``, ``atp settle``, ``atp bill``,
``atp kpi`` and the demo share one path. A run reads and evaluates without the store's write
lock (FMAN's workers go on ingesting), then writes in one write transaction, after checking
under the lock that no other settlement command (a run, a contract, a review) changed what it
read; if one did, it reads and evaluates again under the lock. So two runs at once cannot both
post the same key, and a run that fails writes nothing.

What a run reads: the offers of the period in ``executed`` (or ``settled``: skipped unless a
reading arrived after they were settled) with their schedule in force and their wire payload
(the default schedule, the start window, a direct offer's asks), the readings it needs
(:func:`cloud.settle.readings_window`) and the readings ingest quarantined in that window,
every contract version, the market awards of the period's gates (``market_awards``, with
the member offers delivered before the period) and the ledger of the period's days. What
it writes: the new ledger transactions, each evaluated offer's verdict and slot rows,
``executed`` offers it settled moved to ``settled``, held offers put up for review, and a
new bill for each party whose ledger changed. A run that would change nothing writes
nothing, not even its own row.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

import msgspec

import protocol
from cloud.settle import (
    AcceptanceLimits,
    AwardMember,
    Contract,
    ContractBook,
    ExecutedOffer,
    Kpis,
    MarketAward,
    OfferSettlement,
    Period,
    Posting,
    Reading,
    Settlement,
    SlotRecord,
    Slots,
    Transaction,
    bill_json,
    check_contract,
    contract_from_dict,
    contract_to_dict,
    kpis,
    make_bill,
    make_bills,
    readings_window,
    settle,
)
from cloud.settle import Bill as SettleBill

from .config import SettlementSection
from .store import (
    ContractVersion,
    LedgerTransaction,
    OfferVerdict,
    PostingRow,
    ReviewItem,
    SettlementRun,
    SettlementSlot,
    SettlementWrite,
    Store,
    StoredBill,
    StoredOffer,
    StoredSchedule,
    StoreReader,
)
from .store import MarketAward as AwardRow

#: Schedule statuses under which the agent did not run the schedule in force: the default ran.
NOT_RUN = ("rejected", "late", "superseded")


# -- contracts ---------------------------------------------------------------------------------


def contract_row(c: Contract, *, added_at: float) -> ContractVersion:
    return ContractVersion(
        id=c.id,
        version=c.version,
        party=c.party.id,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        mode=c.mode,
        document=json.dumps(contract_to_dict(c), default=str, sort_keys=True),
        added_at=added_at,
    )


def contract_of(row: ContractVersion) -> Contract:
    return contract_from_dict(
        json.loads(row.document, parse_float=Decimal), source=f"contract {row.id} v{row.version}"
    )


def contract_book(store: StoreReader) -> ContractBook:
    """Every contract version kept in the store."""
    return ContractBook(contract_of(r) for r in store.contracts())


#: The store's counter that every new contract version bumps: ingest reloads the contracts
#: (their acceptance limits) when it moves.
CONTRACTS_COUNTER = "contracts"


def add_contract(store: Store, contract: Contract, *, now: float) -> bool:
    """Keep ``contract`` as a new version; ``False`` if that very version is kept already.
    :class:`~cloud.settle.ContractError` if it would edit a version, change the party,
    start a later version in the past or overlap another contract on a device."""
    check_contract(contract)
    with store.write():
        contract_book(store).with_version(contract, now=now)
        added = store.add_contract(contract_row(contract, added_at=now))
        if added:
            store.bump(CONTRACTS_COUNTER)
        return added


def end_contract(store: Store, contract_id: str, *, at: int, now: int) -> Contract:
    """End ``contract_id`` at ``at``: a new version from now until then."""
    with store.write():
        book = contract_book(store)
        ended = book.ended(contract_id, at, now=now)
        book.with_version(ended, now=now)
        store.add_contract(contract_row(ended, added_at=now))
        store.bump(CONTRACTS_COUNTER)
        return ended


def acceptance_of(book: ContractBook, party: str, at: float) -> AcceptanceLimits | None:
    """What FMAN accepts from ``party`` at ``at`` by its contracts in force (``None``: it has
    none, the worker's configuration decides): the devices they cover together (none named
    by one of them: every device), the highest power and number of open offers they allow."""
    mine = book.of_party(party, at)
    if not mine:
        return None
    devices: list[str] = []
    if all(c.devices for c in mine):
        devices = sorted({d for c in mine for d in c.devices})
    return AcceptanceLimits(
        max_power_kw=max(c.acceptance.max_power_kw for c in mine),
        devices=devices,
        max_open_offers=max(c.acceptance.max_open_offers for c in mine),
    )


# -- the ledger --------------------------------------------------------------------------------


def ledger_row(t: Transaction, *, run_id: str) -> LedgerTransaction:
    return LedgerTransaction(
        key=t.key,
        base=t.base,
        kind=t.kind,
        day=t.day,
        booked_at=t.booked_at,
        account=t.account,
        offer_id=t.offer_id,
        award=t.award,
        contract_id=t.contract_id,
        contract_version=t.contract_version,
        quantity=t.quantity,
        unit=t.unit,
        rate="" if t.rate is None else str(t.rate),
        memo=t.memo,
        run_id=run_id,
        postings=tuple(
            PostingRow(account=p.account, amount_cents=p.amount_cents) for p in t.postings
        ),
    )


def transaction_of(row: LedgerTransaction) -> Transaction:
    return Transaction(
        key=row.key,
        base=row.base,
        kind=row.kind,  # type: ignore[arg-type]  # the ledger stores only Transaction's kinds
        day=row.day,
        booked_at=row.booked_at,
        account=row.account,
        offer_id=row.offer_id,
        award=row.award,
        contract_id=row.contract_id,
        contract_version=row.contract_version,
        quantity=row.quantity,
        unit=row.unit,  # type: ignore[arg-type]  # likewise its units
        rate=Decimal(row.rate) if row.rate else None,
        memo=row.memo,
        postings=tuple(Posting(p.account, p.amount_cents) for p in row.postings),
    )


def period_ledger(store: StoreReader, period: Period) -> list[Transaction]:
    days = period.days()
    return [transaction_of(r) for r in store.ledger(day_from=days[0], day_to=days[-1])]


# -- offers ------------------------------------------------------------------------------------


def executed_offer(row: StoredOffer, schedule: StoredSchedule | None) -> ExecutedOffer:
    """What settlement needs of a stored offer: its default, start window and asks from the
    wire payload, and the schedule in force unless its agent did not run it."""
    assert row.payload is not None, "an executed offer has its payload"
    fo = protocol.decode(row.payload, expect="offer", check=False).body
    res = fo.resolution_s
    default = Slots(start=fo.default.start, energy_kwh=tuple(fo.default.energy_kwh))
    ran = None
    if schedule is not None and schedule.status not in NOT_RUN:
        ran = Slots(start=schedule.start, energy_kwh=tuple(schedule.energy_kwh))
    start_after, start_before = protocol.start_window(fo)
    asks: tuple[Decimal, ...] = ()
    if fo.mode == "direct" and fo.prices is not None:
        asks = _asks(fo.prices, start_after, res, default, ran)
    return ExecutedOffer(
        id=row.id,
        revision=row.revision,
        agent=row.issuer,
        device=row.device or fo.device,
        mode=fo.mode,
        state=row.state,
        resolution_s=res,
        start_after=start_after,
        start_before=start_before,
        default=default,
        schedule=ran,
        ask_up_eur_per_kwh=asks,
        ask_down_eur_per_kwh=asks,
    )


def _asks(
    prices: protocol.Prices, start_after: int, res: int, default: Slots, ran: Slots | None
) -> tuple[Decimal, ...]:
    """A direct offer's asks per slot from ``start_after``. The wire gives per profile slot
    the ``[min, max]`` price the prosumer accepts; the least it accepts (``min``) is its ask,
    up or down. A slot of the schedule takes the price of its place in the schedule, a slot
    of the default (moved away from) its place in the default."""
    if not prices.slots:
        d = prices.deviation_eur_per_kwh
        return () if d is None else (Decimal(str(d)),)
    mins = [Decimal(str(p.min)) for p in prices.slots]
    if len(set(mins)) == 1:
        return (mins[0],)
    spans = [s for s in (ran, default) if s is not None]
    end = max(s.start + len(s.energy_kwh) * res for s in spans)
    out = []
    for t in range(start_after, end, res):
        k = next(
            (
                (t - s.start) // res
                for s in spans
                if s.start <= t < s.start + len(s.energy_kwh) * res
            ),
            0,
        )
        out.append(mins[min(k, len(mins) - 1)])
    return tuple(out)


# -- market awards -----------------------------------------------------------------------------

#: How far before and after a period a run looks for the slots of awards that start in it: a
#: gate's horizon is far shorter, an award's slots are read whole.
AWARD_REACH_S = 7 * 86_400


def gate_label(gate_start: int) -> str:
    """A gate as it appears in ledger keys and bills: its start in UTC."""
    return datetime.fromtimestamp(gate_start, UTC).strftime("%Y-%m-%dT%H:%MZ")


def market_awards(
    rows: Iterable[AwardRow],
    *,
    resolutions: Mapping[str, int],
    margins: SettlementSection,
) -> list[MarketAward]:
    """The store's award rows (one per member offer, market slot and gate) as settlement's
    awards: one per market, gate and aggregate, its deviation per market slot the sum of its
    members' parts. The slot length is the members' (the offers' ``resolutions``; the gaps
    between slots if no member is known), the margin the market's from ``margins``. What does
    not fit (members priced differently in one slot, a slot off the grid) is kept in the
    award's ``problems``: the run holds it rather than guess."""
    groups: dict[tuple[str, int, str], list[AwardRow]] = {}
    for r in rows:
        groups.setdefault((r.market, r.gate_start, r.aggregate_id), []).append(r)
    out: list[MarketAward] = []
    for (market, gate, agg), mine in sorted(groups.items()):
        starts = sorted({r.slot_start for r in mine})
        start = starts[0]
        res = next((resolutions[r.offer_id] for r in mine if r.offer_id in resolutions), 0)
        if res <= 0:
            gaps = [b - a for a, b in pairwise(starts)]
            res = min(gaps, default=900)
        n = (starts[-1] - start) // res + 1
        problems = [
            f"slot {t}: not on the {res} s grid from {start}" for t in starts if (t - start) % res
        ]
        total = [0.0] * n
        prices: list[set[float]] = [set() for _ in range(n)]
        parts: dict[str, list[float]] = {}
        for r in mine:
            i = (r.slot_start - start) // res
            parts.setdefault(r.offer_id, [0.0] * n)[i] += r.kwh
            total[i] += r.kwh
            prices[i].add(r.price_eur_per_kwh)
        for i, ps in enumerate(prices):
            if len(ps) > 1:
                problems.append(
                    f"slot {start + i * res}: members priced differently "
                    f"({', '.join(f'{p:g}' for p in sorted(ps))} EUR/kWh)"
                )
        m = margins.margin(market)
        out.append(
            MarketAward(
                market=market,
                gate=gate_label(gate),
                id=agg,
                start=start,
                resolution_s=res,
                deviation_kwh=tuple(round(x, 6) for x in total),
                price_eur_per_kwh=tuple(
                    Decimal(repr(min(ps))) if ps else Decimal(0) for ps in prices
                ),
                margin_kwh=m.margin_kwh,
                margin_rel=m.margin_rel,
                members=tuple(
                    AwardMember(offer_id=oid, deviation_kwh=tuple(v))
                    for oid, v in sorted(parts.items())
                ),
                problems=tuple(problems),
            )
        )
    return out


# -- a run -------------------------------------------------------------------------------------


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a run did (or, dry, would do)."""

    run_id: str
    period: str
    dry_run: bool
    #: nothing to write: the run left the store as it was
    unchanged: bool
    evaluated: int
    settled: int
    held: tuple[str, ...]
    skipped: int
    transactions: int
    #: sum of the new transactions' postings per account
    moved_cents: dict[str, int]
    bills: tuple[str, ...]


def run_settlement(
    store: Store,
    period: Period,
    *,
    now: int,
    dry_run: bool = False,
    release: Collection[str] = (),
    margins: SettlementSection | None = None,
) -> RunResult:
    """Settle ``period`` from the store, booking at ``now``; see the module's docstring.
    Offers an operator released after review (``atp settle --release``, or ``release``) are
    settled despite their holds. ``margins`` are the markets' delivery margins."""
    run_id = f"{period.label}@{now}-{uuid.uuid4().hex[:8]}"
    margins = margins or SettlementSection()
    # Read and evaluate without the write lock: a month's readings take a while, and FMAN's
    # workers must go on ingesting meanwhile. What they add (readings, executed offers,
    # awards) is for the next run (a reading received after ``now`` names its offer for a
    # recheck); what settlement commands change (a run's ledger, a contract, a review) makes
    # this run read again, under the lock.
    stamp = _stamp(store)
    result = _evaluate(store, period, now=now, release=release, margins=margins)
    with store.write():
        if _stamp(store) != stamp:
            result = _evaluate(store, period, now=now, release=release, margins=margins)
        if release and not dry_run:
            store.release_review(release, at=now, note="released with atp settle --release")
        stored = {v.offer_id: v for v in store.offer_verdicts(period=period.label)}
        by_offer: dict[str, list[SlotRecord]] = {}
        for s in result.slots:
            by_offer.setdefault(s.offer_id, []).append(s)
        verdicts = [
            _verdict(o, by_offer.get(o.offer_id, []), period, run_id, now) for o in result.offers
        ]
        changed = [
            v
            for v in verdicts
            if v.offer_id not in stored
            or (stored[v.offer_id].status, stored[v.offer_id].document) != (v.status, v.document)
        ]
        changed_ids = {v.offer_id for v in changed}
        held = [o for o in result.held if o.offer_id in changed_ids]
        unchanged = not (result.new or result.settled_now or changed)
        bills: list[SettleBill] = []
        if result.new:
            rows = {oid: _settlement_of(v) for oid, v in stored.items()}
            rows.update({o.offer_id: o for o in result.offers})
            ledger = period_ledger(store, period) + list(result.new)
            touched = _parties(result.new)
            bills = make_bills(
                period, ledger, offers=rows.values(), issued_at=now, only=sorted(touched)
            )
        if not (dry_run or unchanged):
            store.record_settlement(
                SettlementWrite(
                    run=SettlementRun(
                        id=run_id,
                        period=period.label,
                        start=period.start,
                        end=period.end,
                        tz=period.tz,
                        booked_at=now,
                        evaluated=len(result.offers),
                        settled=len(result.settled_now),
                        held=len(result.held),
                        skipped=result.skipped,
                        transactions=len(result.new),
                        at=float(now),
                    ),
                    transactions=tuple(ledger_row(t, run_id=run_id) for t in result.new),
                    verdicts=tuple(changed),
                    slots=tuple(_slot_row(s) for s in result.slots if s.offer_id in changed_ids),
                    settled=result.settled_now,
                    held=tuple(
                        ReviewItem(
                            offer_id=o.offer_id,
                            period=period.label,
                            agent=o.agent,
                            device=o.device,
                            reasons=o.reasons,
                            status="held",
                            held_at=float(now),
                            run_id=run_id,
                        )
                        for o in held
                    ),
                    bills=tuple(_bill_row(b, run_id) for b in bills),
                )
            )
    moved: dict[str, int] = {}
    for t in result.new:
        for p in t.postings:
            moved[p.account] = moved.get(p.account, 0) + p.amount_cents
    return RunResult(
        run_id=run_id,
        period=period.label,
        dry_run=dry_run,
        unchanged=unchanged,
        evaluated=len(result.offers),
        settled=len(result.settled_now),
        held=tuple(o.offer_id for o in result.held),
        skipped=result.skipped,
        transactions=len(result.new),
        moved_cents=dict(sorted(moved.items())),
        bills=tuple(b.party for b in bills),
    )


def _stamp(store: StoreReader) -> tuple[object, ...]:
    """What only settlement commands change and a run depends on: the runs written (their
    ledger), the contract versions, the review's decisions."""
    return (
        tuple(r.id for r in store.settlement_runs()),
        tuple((c.id, c.version) for c in store.contracts()),
        tuple((r.offer_id, r.status) for r in store.review_items()),
    )


def _evaluate(
    store: StoreReader,
    period: Period,
    *,
    now: int,
    release: Collection[str],
    margins: SettlementSection,
) -> Settlement:
    book = contract_book(store)
    rows = store.delivered_offers(start=period.start, end=period.end)
    award_rows = store.market_awards(period.start - AWARD_REACH_S, period.end + AWARD_REACH_S)
    # offers that carry an award of the period but were delivered before it
    have = {r.id for r in rows}
    for oid in sorted({a.offer_id for a in award_rows} - have):
        row = store.offer(oid)
        if row is not None and row.state in ("executed", "settled"):
            rows.append(row)
    schedules = store.current_schedules([r.id for r in rows]) if rows else {}
    offers = [executed_offer(r, schedules.get(r.id)) for r in rows if r.payload is not None]
    awards = [
        a
        for a in market_awards(
            award_rows, resolutions={o.id: o.resolution_s for o in offers}, margins=margins
        )
        if period.contains(a.start)
    ]
    recheck = set(store.late_readings(period.label))
    released = set(release) | {
        r.offer_id for r in store.review_items(status="released") if r.period == period.label
    }
    todo = [o for o in offers if o.state == "executed" or o.id in recheck]
    existing = period_ledger(store, period)
    booked = {t.base for t in existing}
    todo_ids = {o.id for o in todo}
    # an award not yet booked, or with a member to evaluate, evaluates all its members
    carried = {
        m.offer_id
        for a in awards
        if f"award:{a.key}:revenue" not in booked or any(m.offer_id in todo_ids for m in a.members)
        for m in a.members
    }
    todo += [o for o in offers if o.id in carried and o.id not in todo_ids]
    readings: list[Reading] = []
    quarantined: list[Reading] = []
    if todo:
        start, end = readings_window(period, todo, book)
        # as far back before an offer delivered before the period as before the period
        back = period.start - start
        start = min([start, *(min(o.default.start, o.ran.start) - back for o in todo)])
        agents = {o.agent for o in todo}
        readings = [
            Reading(r.agent, r.device, r.start, r.duration_s, r.energy_kwh, r.offer_id)
            for r in store.readings_between(start=start, end=end, agents=agents)
        ]
        quarantined = [
            Reading(q.agent, q.device, q.start, q.duration_s, q.energy_kwh, q.offer_id)
            for q in store.quarantined_between(start=start, end=end, agents=agents)
        ]
    return settle(
        period=period,
        offers=offers,
        readings=readings,
        contracts=book,
        awards=awards,
        existing=existing,
        booked_at=now,
        release=released,
        recheck=recheck,
        quarantined=quarantined,
    )


def _verdict(
    o: OfferSettlement, mine: list[SlotRecord], period: Period, run_id: str, now: int
) -> OfferVerdict:
    first = mine[0].start if mine else o.delivery_start
    end = mine[-1].start + mine[-1].resolution_s if mine else o.delivery_start
    return OfferVerdict(
        offer_id=o.offer_id,
        period=period.label,
        agent=o.agent,
        device=o.device,
        status=o.status,
        day=o.day,
        first_slot=first,
        end=end,
        document=msgspec.json.encode(o).decode(),
        run_id=run_id,
        evaluated_at=float(now),
    )


def _settlement_of(v: OfferVerdict) -> OfferSettlement:
    return msgspec.json.decode(v.document, type=OfferSettlement)


def _slot_row(s: SlotRecord) -> SettlementSlot:
    return SettlementSlot(
        offer_id=s.offer_id,
        start=s.start,
        resolution_s=s.resolution_s,
        default_wh=s.default_wh,
        baseline_wh=s.baseline_wh,
        scheduled_wh=s.scheduled_wh,
        metered_wh=s.metered_wh,
        delivered_wh=s.delivered_wh,
    )


def _parties(transactions: Collection[Transaction]) -> set[str]:
    out: set[str] = set()
    for t in transactions:
        for p in t.postings:
            if p.account.startswith("aggregator:"):
                out.add("aggregator")
            elif p.account.startswith("party:"):
                out.add(p.account.removeprefix("party:"))
            else:
                out.add(p.account)
    return out


def _bill_row(b: SettleBill, run_id: str) -> StoredBill:
    return StoredBill(
        party=b.party,
        period=b.period,
        run_id=run_id,
        issued_at=b.issued_at,
        total_cents=b.total_cents,
        document=bill_json(b).decode(),
    )


# -- bills and KPIs ----------------------------------------------------------------------------


def bill(store: StoreReader, party: str, period: Period, *, now: int) -> SettleBill:
    """``party``'s bill for ``period`` from the ledger as it stands (the same as the bill the
    last run issued, unless an operator posted since)."""
    rows = [_settlement_of(v) for v in store.offer_verdicts(period=period.label)]
    return make_bill(
        party,
        period,
        period_ledger(store, period),
        offers=rows if party == "aggregator" else [o for o in rows if o.agent == party],
        issued_at=now,
    )


def period_kpis(store: StoreReader, period: Period) -> Kpis:
    slots = [
        SlotRecord(
            s.offer_id,
            s.start,
            s.resolution_s,
            s.default_wh,
            s.baseline_wh,
            s.scheduled_wh,
            s.metered_wh,
            s.delivered_wh,
        )
        for s in store.settlement_slots(start=period.start, end=period.end)
    ]
    return kpis(
        slots=slots,
        transactions=period_ledger(store, period),
        start=period.start,
        end=period.end,
        tz=period.tz,
    )
