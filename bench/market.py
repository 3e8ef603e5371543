"""Market clearing figures, side by side with plain HiGHS on the same MIP in the same run.

Books from ``cloud.fmar.instances`` (a fixed generator; a seed is a book): a day of 96 quarter
hours, half the sell orders time-flexible, 20 requests.

- ``1000``: two-sided, 1,000 sell orders at one node; target 0.5 % of the proven bound in 10 s.
- ``10000``: 10,000 sell orders at one node; target 1 % in 30 s.
- ``network``: 5,000 sell orders at 20 nodes of a radial network; target 1 % in 30 s.

For each book, ``atp market clear``'s method (``cloud.fmar.clear`` with the target as its gap
and the target time as its limit) and then the compact MIP that method builds, solved by
HiGHS alone (through OR-Tools, in a child process so that memory and a stalled presolve stay
there) with the same time limit. The gap is ``(bound - welfare) / bound`` against each
method's own bound, and against the better of the two.

Run: ``.venv/bin/python bench/market.py [--part 1000|10000|network] [--seeds N] [--quick]``.
``--quick`` clears one seed of each with HiGHS left out. Times are wall-clock and noisy on a
shared machine: the load average is printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

PARTS = {
    # name: (orders, nodes, target gap, time limit s, seeds)
    "1000": (1000, 1, 0.005, 10.0, 5),
    "10000": (10000, 1, 0.01, 30.0, 2),
    "network": (5000, 20, 0.01, 30.0, 2),
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load}"


def warm_up() -> None:
    """Clear a small book once, so that the compiled kernels are loaded (compiled on the
    first use after an install, then cached on disk)."""
    from cloud.fmar import clear
    from cloud.fmar.instances import book

    clear(book(40, seed=99, requests=4), time_limit_s=5, exact_vars=0, check=False)


def ours(orders: int, nodes: int, seed: int, gap: float, limit: float) -> dict:
    from cloud.fmar import clear
    from cloud.fmar.instances import book

    b = book(orders, seed=seed, nodes=nodes)
    t = time.perf_counter()
    r = clear(b, time_limit_s=limit, relative_gap=gap, exact_vars=0, check=False)
    return {
        "time": time.perf_counter() - t,
        "welfare": r.welfare_eur,
        "bound": r.bound_eur,
        "status": r.status,
        "method": r.method,
    }


def highs(orders: int, nodes: int, seed: int, limit: float) -> dict:
    """The compact MIP by HiGHS in a child process (``--highs-child``)."""
    args = [
        sys.executable,
        __file__,
        "--highs-child",
        str(orders),
        str(nodes),
        str(seed),
        str(limit),
    ]
    t = time.perf_counter()
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=3 * limit + 120)
    except subprocess.TimeoutExpired:
        return {"time": time.perf_counter() - t, "welfare": None, "bound": None, "note": "hung"}
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["?"]
        return {"time": time.perf_counter() - t, "welfare": None, "bound": None, "note": tail[0]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def highs_child(orders: int, nodes: int, seed: int, limit: float) -> None:
    import numpy as np

    from cloud.fmar._exact import build
    from cloud.fmar._numeric import numeric
    from cloud.fmar.instances import book
    from cloud.optim import solver

    num = numeric(book(orders, seed=seed, nodes=nodes), voll=10.0)
    t = time.perf_counter()
    model = build(num)
    built = time.perf_counter() - t
    sol = solver.solve(model.problem, time_limit_s=limit, relative_gap=1e-4)
    print(
        json.dumps(
            {
                "time": time.perf_counter() - t,
                "build": built,
                "vars": model.problem.n_vars,
                "welfare": None if sol.values is None else -sol.objective,
                "bound": -sol.bound if np.isfinite(sol.bound) else None,
                "note": sol.outcome,
            }
        )
    )


def gap(welfare: float | None, bound: float | None) -> float | None:
    if welfare is None or bound is None:
        return None
    return max(bound - welfare, 0.0) / max(abs(bound), 1e-12)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.3f} %"


def run_part(name: str, seeds: int, with_highs: bool) -> None:
    orders, nodes, target, limit, _ = PARTS[name]
    print(
        f"{name}: {orders:,} sell orders at {nodes} node(s), 20 requests, 96 slots; target "
        f"{100 * target:g} % of the proven bound in {limit:g} s",
        flush=True,
    )
    gaps, times, met = [], [], 0
    for seed in range(seeds):
        a = ours(orders, nodes, seed, target, limit)
        g = gap(a["welfare"], a["bound"])
        line = (
            f"  seed {seed}: clearing {a['welfare']:.2f} EUR, bound {a['bound']:.2f}, gap "
            f"{pct(g)} in {a['time']:.2f} s ({a['status']}, {a['method']})"
        )
        if with_highs:
            h = highs(orders, nodes, seed, limit)
            hw = "none" if h["welfare"] is None else f"{h['welfare']:.2f}"
            hb = "none" if h["bound"] is None else f"{h['bound']:.2f}"
            best = min(b for b in (a["bound"], h["bound"]) if b is not None)
            line += (
                f"; HiGHS alone: {hw} EUR, bound {hb}, gap {pct(gap(h['welfare'], h['bound']))} "
                f"in {h['time']:.1f} s ({h.get('note', '')}); clearing against the better "
                f"bound {pct(gap(a['welfare'], best))}"
            )
        print(line, flush=True)
        if g is not None:
            gaps.append(g)
            times.append(a["time"])
            met += g <= target and a["time"] <= limit * 1.02
    if gaps:
        print(
            f"{name}: median gap {pct(statistics.median(gaps))} (worst {pct(max(gaps))}) in "
            f"median {statistics.median(times):.2f} s (worst {max(times):.2f} s); target met "
            f"on {met} of {len(gaps)} seeds",
            flush=True,
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--highs-child":
        orders, nodes, seed, limit = sys.argv[2:6]
        highs_child(int(orders), int(nodes), int(seed), float(limit))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), action="append")
    parser.add_argument("--seeds", type=int, help="seeds per part (default: each part's own)")
    parser.add_argument("--quick", action="store_true", help="one seed each, no HiGHS")
    parser.add_argument("--no-highs", action="store_true", help="leave plain HiGHS out")
    args = parser.parse_args()
    print(machine(), flush=True)
    t = time.perf_counter()
    warm_up()
    print(f"warm-up (loading the compiled kernels): {time.perf_counter() - t:.1f} s", flush=True)
    for name in args.part or list(PARTS):
        seeds = 1 if args.quick else (args.seeds or PARTS[name][4])
        run_part(name, seeds, with_highs=not (args.quick or args.no_highs))


if __name__ == "__main__":
    main()
