"""Planning figures: gap and time for 1,000 offers, 100,000 offers through aggregation,
aggregation throughput, and the improvement over the greedy baseline.

Run: ``.venv/bin/python bench/plan.py [--quick]``. Prints medians of several runs; the
machine's other load makes single runs noisy.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time

from cloud.optim import OrToolsPlanner, PlanRequest
from cloud.optim.aggregate import Aggregator, aggregate, member_of, total_loss
from cloud.optim.blocks import view
from cloud.optim.bounds import envelope_bound
from cloud.optim.cutting_plane import lagrangian_bound
from cloud.optim.disaggregate import disaggregate
from cloud.optim.greedy import greedy
from cloud.optim.instances import portfolio, solar_target
from cloud.optim.placements import loads as _loads
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
    # the shifted defaults only (no refinement): the baseline the figures in docs/optim.md use
    placements, _ = greedy(views, terms, deadline=0.0)
    return evaluate(terms, _loads(views, terms, placements))


def warm_up() -> float:
    """Aggregate and plan a few offers once, so that the compiled kernels are loaded
    (compiled on the first use after an install, then cached on disk); returns the seconds
    it took."""
    offers = portfolio(8, seed=99)
    t = time.perf_counter()
    aggregates = [a.offer for a in aggregate(offers)]
    OrToolsPlanner(exact_vars=0).plan(
        PlanRequest(offers=aggregates, target_kwh=solar_target(offers), time_limit_s=5)
    )
    return time.perf_counter() - t


def bench_1000(seeds: int, limit: float) -> None:
    gaps, times, gains = [], [], []
    for seed in range(seeds):
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
            f"(improvement {gains[-1]:.1f} %)",
            flush=True,
        )
    # how long the planner needs to prove optimality, given the time
    offers = portfolio(1000, seed=0)
    req = PlanRequest(
        offers=offers, target_kwh=solar_target(offers), time_limit_s=180, relative_gap=0.0
    )
    t = time.perf_counter()
    r = OrToolsPlanner().plan(req)
    print(
        f"  seed 0 asked for a zero gap: objective {r.objective:.1f}, bound {r.bound:.1f}, "
        f"gap {100 * (r.objective - r.bound) / r.objective:.3f} % "
        f"after {time.perf_counter() - t:.1f} s ({r.status})"
    )
    print(
        f"1,000 offers x 96 slots, balance, time limit {limit:g} s, gap asked 1 %, {seeds} seeds: "
        f"median gap {statistics.median(gaps):.3f} % (worst {max(gaps):.3f} %) to the proven "
        f"bound in median {statistics.median(times):.2f} s (worst {max(times):.2f} s); "
        f"median improvement over greedy {statistics.median(gains):.1f} %"
    )


def bench_scale(sizes: tuple[int, ...], limit: float) -> None:
    """Time to the 1 % gap as the portfolio grows (the same mix, seed 7)."""
    for n in sizes:
        offers = portfolio(n, seed=7)
        t = time.perf_counter()
        r = OrToolsPlanner().plan(
            PlanRequest(offers=offers, target_kwh=solar_target(offers), time_limit_s=limit)
        )
        print(
            f"{n:,} offers, balance, time limit {limit:g} s, gap asked 1 %: gap "
            f"{100 * (r.objective - r.bound) / r.objective:.3f} % in "
            f"{time.perf_counter() - t:.2f} s ({r.status})",
            flush=True,
        )


def bench_throughput(sizes: tuple[int, ...], runs: int) -> None:
    """Offers per second through ``Aggregator`` (add every offer, build every aggregate),
    measured two ways: from ``FlexOffer`` objects (each offer's arrays extracted by
    ``member_of`` inside the timing) and from member records cached at ingest (``member_of``
    done when the offer arrived, as FMAN's ingest can: the aggregation itself)."""
    for n in sizes:
        offers = portfolio(n, seed=11)
        raw, cached, ingest = [], [], []
        for _ in range(runs):
            gc.collect()  # the previous run's objects are freed before the clock starts
            t = time.perf_counter()
            agg = Aggregator()
            for o in offers:
                agg.add(o)
            agg.aggregates()
            raw.append(n / (time.perf_counter() - t))
            del agg
        for _ in range(runs):
            t = time.perf_counter()
            members = [member_of(o) for o in offers]
            ingest.append(n / (time.perf_counter() - t))
            gc.collect()
            t = time.perf_counter()
            agg = Aggregator()
            for m in members:
                agg.add_member(m)
            count = len(agg.aggregates())
            cached.append(n / (time.perf_counter() - t))
            del agg, members
        print(
            f"aggregation throughput, one core, {n:,} offers into {count:,} aggregates: "
            f"{statistics.median(cached):,.0f} offers/s from member records cached at ingest "
            f"(the aggregation itself), {statistics.median(raw):,.0f} offers/s from FlexOffer "
            f"objects; member_of alone (the ingest step) {statistics.median(ingest):,.0f} "
            "offers/s",
            flush=True,
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
    terms = terms_for(full, views)
    t4 = time.perf_counter()
    unagg = max(
        # any slot values give a proven bound on the un-aggregated optimum: the aggregated
        # plan's, and those of a 2 % sample of the offers planned directly
        lagrangian_bound(views, terms, r.slot_values),
        lagrangian_bound(views, terms, sample_values(offers, target, share=0.02)),
    )
    t5 = time.perf_counter()
    envelope = envelope_bound(views, terms)
    base = greedy_value(offers, full)
    print(
        f"{n:,} offers: aggregate {t1 - t0:.1f} s ({len(aggs)} aggregates), plan {t2 - t1:.1f} s "
        f"({r.status}, objective {r.objective:.0f}, aggregated bound {r.bound:.0f}), disaggregate "
        f"{t3 - t2:.1f} s ({len(schedules):,} schedules); total {t3 - t0:.1f} s"
    )
    print(
        f"  aggregation lost {loss.energy_flexibility_kwh:,.0f} kWh x slots of energy "
        f"flexibility, {loss.time_flexibility_s / 3600:,.0f} h of time flexibility, "
        f"{loss.profiles_dropped:,} exclusive-or profiles"
    )
    print(
        f"  un-aggregated bound (Lagrangian at the slot values of the aggregated plan and of a "
        f"2 % sample, {t5 - t4:.1f} s): {unagg:.0f} (envelope bound {envelope:.0f}); the plan "
        "is at most "
        f"{100 * (r.objective - unagg) / unagg:.1f} % above the un-aggregated optimum; greedy "
        f"on the un-aggregated offers {base:.0f} "
        f"(improvement {100 * (base - r.objective) / base:.1f} %)"
    )


def sample_values(offers, target, *, share: float) -> dict[int, float]:
    """The slot values of a plan of every ``1/share``-th offer (a stride prime to the
    portfolio's cycle of kinds) against the target scaled to the sample."""
    stride = int(1 / share)
    stride += stride % 2 == 0  # odd, so it does not keep a single kind of a cycle of 4
    sample = offers[::stride]
    scale = len(sample) / len(offers)
    r = OrToolsPlanner().plan(
        PlanRequest(
            offers=sample,
            target_kwh={t: v * scale for t, v in target.items()},
            relative_gap=0.001,
            time_limit_s=60,
        )
    )
    return dict(r.slot_values)


def bench_direct(n: int, limit: float) -> None:
    """The same portfolio as ``bench_large`` planned without aggregation."""
    offers = portfolio(n, seed=21)
    t = time.perf_counter()
    r = OrToolsPlanner().plan(
        PlanRequest(offers=offers, target_kwh=solar_target(offers), time_limit_s=limit)
    )
    print(
        f"{n:,} offers planned without aggregation, time limit {limit:g} s: objective "
        f"{r.objective:.0f}, bound {r.bound:.0f} (gap "
        f"{100 * (r.objective - r.bound) / r.objective:.2f} %, {r.status}) in "
        f"{time.perf_counter() - t:.1f} s"
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
    parser.add_argument(
        "--part",
        choices=("1000", "scale", "throughput", "loss", "large", "direct"),
        action="append",
        help="run only these figures (repeatable); all by default",
    )
    args = parser.parse_args()
    parts = set(args.part or ("1000", "scale", "throughput", "loss", "large", "direct"))
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"warm-up (loads or compiles the planner's kernels): {warm_up():.1f} s")
    runs = 1 if args.quick else 3
    if "1000" in parts:
        bench_1000(2 if args.quick else 6, 10.0)
    if "scale" in parts:
        bench_scale((2_000, 5_000) if args.quick else (2_000, 5_000, 10_000, 20_000), 30.0)
    if "throughput" in parts:
        bench_throughput((20_000,) if args.quick else (20_000, 100_000), runs)
    if "loss" in parts:
        bench_loss(200, 60.0)
    if "large" in parts:
        bench_large(20_000 if args.quick else 100_000, 20.0)
    if "direct" in parts:
        bench_direct(20_000 if args.quick else 100_000, 55.0)


if __name__ == "__main__":
    main()
