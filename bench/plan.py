"""Planning figures: gap and time for 1,000 offers, 100,000 offers through aggregation,
aggregation throughput, and the improvement over the greedy baseline.

Run: ``.venv/bin/python bench/plan.py [--quick]``. Prints medians of several runs; the
machine's other load makes single runs noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from cloud.optim import OrToolsPlanner, PlanRequest
from cloud.optim.aggregate import Aggregator, member_of, total_loss
from cloud.optim.blocks import view
from cloud.optim.disaggregate import disaggregate
from cloud.optim.heuristic import envelope_bound, greedy
from cloud.optim.instances import portfolio, solar_target
from cloud.optim.planner import _loads
from cloud.optim.terms import evaluate, terms_for


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def greedy_value(offers, request) -> float:
    views = [view(o) for o in offers]
    terms = terms_for(request, views)
    placements, _ = greedy(views, terms)
    return evaluate(terms, _loads(views, terms, placements))


def bench_1000(runs: int, limit: float) -> None:
    gaps, times, gains = [], [], []
    for seed in range(runs):
        offers = portfolio(1000, seed=seed)
        req = PlanRequest(offers=offers, target_kwh=solar_target(offers), time_limit_s=limit)
        t = time.perf_counter()
        r = OrToolsPlanner().plan(req)
        times.append(time.perf_counter() - t)
        gaps.append(100 * (r.objective - r.bound) / r.objective)
        base = greedy_value(offers, req)
        gains.append(100 * (base - r.objective) / base)
        print(
            f"  seed {seed}: objective {r.objective:.1f} kWh, bound {r.bound:.1f}, "
            f"gap {gaps[-1]:.3f} %, {times[-1]:.2f} s, {r.status}; greedy {base:.1f} "
            f"(improvement {gains[-1]:.1f} %)"
        )
    # how long the planner needs to prove 1 %, given the time
    offers = portfolio(1000, seed=0)
    req = PlanRequest(offers=offers, target_kwh=solar_target(offers), time_limit_s=180)
    t = time.perf_counter()
    r = OrToolsPlanner().plan(req)
    print(
        f"  seed 0 without the 10 s limit: objective {r.objective:.1f}, bound {r.bound:.1f}, "
        f"gap {100 * (r.objective - r.bound) / r.objective:.3f} % "
        f"after {time.perf_counter() - t:.1f} s ({r.status})"
    )
    print(
        f"1,000 offers x 96 slots, balance, time limit {limit:g} s: median gap "
        f"{statistics.median(gaps):.3f} % to the proven bound in {statistics.median(times):.2f} s; "
        f"median improvement over greedy {statistics.median(gains):.1f} %"
    )


def bench_throughput(n: int, runs: int) -> None:
    offers = portfolio(n, seed=11)
    raw, cached = [], []
    for _ in range(runs):
        t = time.perf_counter()
        agg = Aggregator()
        for o in offers:
            agg.add(o)
        agg.aggregates()
        raw.append(n / (time.perf_counter() - t))
    members = [member_of(o) for o in offers]
    for _ in range(runs):
        t = time.perf_counter()
        agg = Aggregator()
        for m in members:
            agg.add_member(m)
        agg.aggregates()
        cached.append(n / (time.perf_counter() - t))
    print(
        f"aggregation throughput, one core, {n:,} offers: {statistics.median(raw):,.0f} offers/s "
        f"from FlexOffers (inner boxes computed), {statistics.median(cached):,.0f} offers/s from "
        "member records cached at ingest"
    )


def bench_large(n: int, limit: float) -> None:
    offers = portfolio(n, seed=21)
    target = solar_target(offers)
    t0 = time.perf_counter()
    agg = Aggregator(max_group_size=500)
    for o in offers:
        agg.add(o)
    aggs = agg.aggregates()
    t1 = time.perf_counter()
    print(f"  aggregated {n:,} offers into {len(aggs):,} in {t1 - t0:.1f} s", flush=True)
    req = PlanRequest(offers=[a.offer for a in aggs], target_kwh=target, time_limit_s=limit)
    r = OrToolsPlanner().plan(req)
    t2 = time.perf_counter()
    by_id = {a.offer.id: a for a in aggs}
    schedules = [m for s in r.schedules for m in disaggregate(by_id[s.offer_id], s)]
    t3 = time.perf_counter()
    loss = total_loss(aggs)
    full = PlanRequest(offers=offers, target_kwh=target)
    views = [view(o) for o in offers]
    envelope = envelope_bound(views, terms_for(full, views))
    base = greedy_value(offers, full)
    print(
        f"{n:,} offers: aggregate {t1 - t0:.1f} s ({len(aggs)} aggregates), plan {t2 - t1:.1f} s "
        f"({r.status}, objective {r.objective:.0f}, aggregated bound {r.bound:.0f}), disaggregate "
        f"{t3 - t2:.1f} s ({len(schedules):,} schedules); total {t3 - t0:.1f} s"
    )
    print(
        f"  aggregation lost {loss.energy_flexibility_kwh:,.0f} kWh of energy flexibility, "
        f"{loss.time_flexibility_s / 3600:,.0f} h of time flexibility, "
        f"{loss.profiles_dropped:,} exclusive-or profiles; un-aggregated envelope bound "
        f"{envelope:.0f} (the loss against it is at most {r.objective - envelope:.0f}); "
        f"greedy on the un-aggregated offers {base:.0f} "
        f"(improvement {100 * (base - r.objective) / base:.1f} %)"
    )


def bench_loss(n: int, limit: float) -> None:
    """Where the un-aggregated problem can be solved, the price of aggregating it."""
    offers = portfolio(n, seed=31)
    target = solar_target(offers)
    direct = OrToolsPlanner().plan(
        PlanRequest(offers=offers, target_kwh=target, time_limit_s=limit)
    )
    aggs = Aggregator(max_group_size=50)
    for o in offers:
        aggs.add(o)
    got = aggs.aggregates()
    r = OrToolsPlanner().plan(
        PlanRequest(offers=[a.offer for a in got], target_kwh=target, time_limit_s=limit)
    )
    print(
        f"{n:,} offers: un-aggregated plan {direct.objective:.1f} (bound {direct.bound:.1f}), "
        f"aggregated ({len(got)} aggregates) {r.objective:.1f}: loss "
        f"{100 * (r.objective - direct.bound) / max(direct.bound, 1e-9):.1f} % against the "
        "un-aggregated bound"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run each, smaller large case")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    runs = 1 if args.quick else 3
    bench_1000(runs, 10.0)
    bench_throughput(20_000, runs)
    bench_loss(200, 60.0)
    bench_large(20_000 if args.quick else 100_000, 20.0)


if __name__ == "__main__":
    main()
