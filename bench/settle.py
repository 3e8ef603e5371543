"""Settlement figures: a month of 10,000 offers and 1,000,000 meter readings.

Run: ``.venv/bin/python bench/settle.py [--quick]``. Builds one month (November 2026) in
memory: 150 agents with two flexible devices each, 48 of them with a main meter, every meter
read each quarter hour (1,002,240 readings); 10,000 executed offers of one to four hours,
most moved by a schedule; contracts of every kind (strict rewards, revenue sharing, direct at
asks and at the clearing price; a fifth of them with the characteristic baseline); one market
award per hour with the offers that start then. It then times, median of several runs:

- the first settlement run (an empty ledger: everything is new),
- a second run over the same data and the first run's transactions (idempotent: nothing new),
- every party's bill and the four KPIs from the first run's rows.

The inputs are built before the clock starts: this measures the pure engine on the rows a
store would hand it, not reading them from a database.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
from decimal import Decimal

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
    Metering,
    Party,
    Period,
    Reading,
    RevenueSharing,
    Slots,
    StrictRewards,
    kpis,
    make_bills,
    settle,
)

PERIOD = Period.parse("2026-11")
Q = 900
DAYS = 30
TARGET_S = 30.0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}"


def contract(i: int, agent: str, rng: random.Random, main_meter: bool) -> Contract:
    kind = (
        "strict",
        "strict",
        "strict",
        "strict",
        "share",
        "share",
        "share",
        "asks",
        "asks",
        "clearing",
    )[i % 10]
    if kind == "strict":
        terms: StrictRewards | RevenueSharing | DirectPrice = StrictRewards(
            reward_eur_per_kwh=Decimal("0.05"),
            reward_eur_per_flex_hour=Decimal("0.01"),
            fee_eur_per_month=Decimal("2.50"),
            penalty_eur_per_kwh=Decimal("0.08"),
        )
    elif kind == "share":
        terms = RevenueSharing(share=Decimal("0.6"))
    else:
        terms = DirectPrice(price="asks" if kind == "asks" else "clearing")
    return Contract(
        id=f"c-{agent}",
        party=Party(id=agent),
        valid_from=PERIOD.start - 86_400 * 90,
        mode="direct" if isinstance(terms, DirectPrice) else "delegated",
        terms=terms,
        delivery=Delivery(missing_readings="not_delivered"),
        baseline=Baseline(kind="characteristic" if i % 5 == 0 else "default", min_days=3),
        metering=Metering(main_meter="main" if main_meter else ""),
    )


def month(n_offers: int, n_agents: int, seed: int = 1):
    """The month's contracts, offers, readings and awards."""
    rng = random.Random(seed)
    agents = [f"house-{i}" for i in range(n_agents)]
    with_main = set(agents[:: max(1, round(n_agents / 48))][:48])
    book = ContractBook([contract(i, a, rng, a in with_main) for i, a in enumerate(agents)])
    devices = [(a, d) for a in agents for d in ("hp", "ev")]
    per_device = -(-n_offers // len(devices))
    load: dict[tuple[str, str], dict[int, float]] = {d: {} for d in devices}
    tags: dict[tuple[str, str], dict[int, str]] = {d: {} for d in devices}
    offers: list[ExecutedOffer] = []
    by_hour: dict[int, list[tuple[ExecutedOffer, dict[int, float]]]] = {}
    for k in range(n_offers):
        agent, device = devices[k % len(devices)]
        j = k // len(devices)
        c = book.latest(f"c-{agent}")
        day = j * DAYS // per_device
        half = j % 2
        n = rng.randint(4, 16)
        start = PERIOD.start + day * 86_400 + (half * 48 + rng.randint(0, 48 - n - 8)) * Q
        default = tuple(round(rng.uniform(0.2, 2.5), 3) for _ in range(n))
        moved = rng.random() < 0.8
        shift = rng.randint(1, 8) * Q if moved else 0
        sched = tuple(round(e * rng.uniform(0.6, 1.2), 3) for e in default) if moved else default
        asks = (Decimal("0.04"),) if c.mode == "direct" else ()
        o = ExecutedOffer(
            id=f"{agent}.{device}.{k}",
            agent=agent,
            device=device,
            mode=c.mode,
            start_after=start,
            start_before=start + 8 * Q,
            default=Slots(start=start, energy_kwh=default),
            schedule=Slots(start=start + shift, energy_kwh=sched) if moved else None,
            ask_up_eur_per_kwh=asks,
            ask_down_eur_per_kwh=asks,
        )
        offers.append(o)
        # what the device draws: the schedule, followed within a few per cent
        series = load[(agent, device)]
        for i, e in enumerate(sched):
            t = start + shift + i * Q
            series[t] = series.get(t, 0.0) + e * rng.uniform(0.93, 1.05)
            tags[(agent, device)][t] = o.id
        deviation: dict[int, float] = {}
        for i, e in enumerate(default):
            deviation[start + i * Q] = deviation.get(start + i * Q, 0.0) - e
        for i, e in enumerate(sched):
            deviation[start + shift + i * Q] = deviation.get(start + shift + i * Q, 0.0) + e
        if moved and c.terms.__class__ is not StrictRewards:
            by_hour.setdefault((start + shift) // 3600 * 3600, []).append((o, deviation))
    short_main = set(sorted(with_main)[::8])
    readings: list[Reading] = []
    for t in range(PERIOD.start, PERIOD.end, Q):
        for agent in agents:
            total = 0.0
            for device in ("hp", "ev"):
                e = load[(agent, device)].get(t, 0.0) + rng.uniform(0.0, 0.05)
                total += e
                tag = tags[(agent, device)].get(t, "")
                readings.append(Reading(agent, device, t, Q, round(e, 3), tag))
            if agent in with_main:
                # one main meter in eight reads short on the 10th: its offers are held
                short = 1.0 if agent in short_main and PERIOD.day_of(t).endswith("-10") else 0.0
                readings.append(Reading(agent, "main", t, Q, round(total + 0.3 - short, 3)))
    awards: list[MarketAward] = []
    for hour, members in sorted(by_hour.items()):
        members = members[:8]
        parts = [
            AwardMember(
                offer_id=o.id,
                deviation_kwh=tuple(round(dev.get(hour + i * Q, 0.0), 3) for i in range(4)),
            )
            for o, dev in members
        ]
        awarded = tuple(round(sum(p.deviation_kwh[i] for p in parts), 3) for i in range(4))
        # a uniform price is per kWh of up deviation: negative where the award is down
        price = Decimal(rng.randint(5, 25)) / 100
        awards.append(
            MarketAward(
                market="fmar-1",
                gate=f"{hour}",
                id=f"agg-{hour}",
                start=hour,
                deviation_kwh=awarded,
                price_eur_per_kwh=tuple(price if a >= 0 else -price for a in awarded),
                margin_kwh=0.5,
                margin_rel=0.1,
                members=tuple(parts),
            )
        )
    return book, offers, readings, awards


def timed(fn, runs: int):
    times, result = [], None
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one run of a tenth of the month's size")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    n_offers, n_agents, runs = (1_000, 15, 1) if args.quick else (10_000, 150, args.runs)
    print(f"settlement benchmark: {machine()}")
    t = time.perf_counter()
    book, offers, readings, awards = month(n_offers, n_agents)
    print(
        f"built {len(offers):,} offers, {len(readings):,} readings, {len(awards):,} awards, "
        f"{len(book):,} contracts in {time.perf_counter() - t:.1f} s (not timed)"
    )

    def first():
        return settle(
            period=PERIOD,
            offers=offers,
            readings=readings,
            contracts=book,
            awards=awards,
            booked_at=PERIOD.end,
        )

    med, lo, hi, result = timed(first, runs)
    held = len(result.held)
    paid = sum(1 for a in result.awards if a.status == "paid")
    print(
        f"first run:  median {med:.2f} s (min {lo:.2f}, max {hi:.2f}, {runs} runs), target "
        f"{TARGET_S:.0f} s: {'met' if med <= TARGET_S else 'MISSED'}; "
        f"{len(result.new):,} transactions, {len(result.slots):,} slot rows, "
        f"{len(result.offers) - held:,} offers settled, {held:,} held, {paid:,} of "
        f"{len(result.awards):,} awards paid"
    )
    ledger = result.new
    # as the store hands them to the next run: what the first run settled is now `settled`
    done = set(result.settled_now)
    offers_after = [replace(o, state="settled") if o.id in done else o for o in offers]

    def second():
        return settle(
            period=PERIOD,
            offers=offers_after,
            readings=readings,
            contracts=book,
            awards=awards,
            existing=ledger,
            booked_at=PERIOD.end + 3600,
        )

    med2, lo2, hi2, again = timed(second, runs)
    assert again.new == (), "the second run wrote something"
    print(
        f"second run: median {med2:.2f} s (min {lo2:.2f}, max {hi2:.2f}), nothing new, "
        f"{again.skipped:,} settled offers skipped, {len(again.offers):,} evaluated again; "
        f"ratio to the first {med2 / med:.2f}"
    )

    def full():
        return settle(
            period=PERIOD,
            offers=offers_after,
            readings=readings,
            contracts=book,
            awards=awards,
            existing=ledger,
            booked_at=PERIOD.end + 3600,
            recheck=done,
        )

    med4, lo4, hi4, everything = timed(full, runs)
    assert everything.new == (), "re-evaluating everything wrote something"
    print(
        f"second run re-evaluating every offer (recheck all): median {med4:.2f} s "
        f"(min {lo4:.2f}, max {hi4:.2f}), nothing new; ratio to the first {med4 / med:.2f}"
    )

    def reports():
        bills = make_bills(PERIOD, ledger, offers=result.offers, issued_at=PERIOD.end)
        k = kpis(slots=result.slots, transactions=ledger, start=PERIOD.start, end=PERIOD.end)
        return bills, k

    med3, _, _, (bills, k) = timed(reports, runs)
    assert sum(b.total_cents for b in bills) == 0
    print(
        f"bills for {len(bills):,} parties and the four KPIs: median {med3:.2f} s; "
        f"aggregator net {k.revenues.factual.aggregator_net_eur} EUR, market revenue "
        f"{k.revenues.factual.market_revenue_eur} EUR, load adaptability (mean) "
        f"{k.load_adaptability.average}"
    )


if __name__ == "__main__":
    main()
