"""Codec throughput: encode, and decode + validate, per message kind, on one core.

Prints messages per second (median of several runs) and bytes per message for a 96-slot
heat-pump offer with dependency constraints (one row per slot, and two rows per slot), a
2-slot offer and a 96-reading meter batch. The baseline is the plain ``msgpack`` package
unpacking the same bytes into dicts and lists with no type or rule checked at all: the
ratio says what typed decoding plus every validation rule costs over parsing alone.

    python bench/codec.py [--runs 7] [--seconds 0.5] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import msgpack

import protocol
from protocol.samples import NOW, heat_pump_offer, meter_batch, two_slot_offer

TARGETS = {"offer-96-slot": 20_000, "offer-2-slot": 100_000}


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n = 1
    while True:  # calibrate a batch size that takes ~10 ms
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt > 0.01:
            break
        n *= 2
    batches = max(1, int(seconds / dt))
    t = time.perf_counter()
    for _ in range(batches * n):
        fn()
    return batches * n / (time.perf_counter() - t)


def median_rate(fn: Callable[[], object], runs: int, seconds: float) -> float:
    return statistics.median(rate(fn, seconds) for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()

    cases = {
        "offer-96-slot": heat_pump_offer(rows_per_slot=1),
        "offer-96-slot-2-rows": heat_pump_offer(rows_per_slot=2),
        "offer-2-slot": two_slot_offer(),
        "meter-96-readings": meter_batch(readings=96),
    }
    rows = []
    for name, body in cases.items():
        data = protocol.encode(body, ts=NOW, msg_id="bench")
        protocol.decode(data)  # must be valid
        enc = median_rate(
            lambda b=body: protocol.encode(b, ts=NOW, msg_id="bench"), args.runs, args.seconds
        )
        dec = median_rate(lambda d=data: protocol.decode(d), args.runs, args.seconds)
        base = median_rate(lambda d=data: msgpack.unpackb(d), args.runs, args.seconds)
        rows.append(
            {
                "message": name,
                "bytes": len(data),
                "encode_per_s": round(enc),
                "decode_validate_per_s": round(dec),
                "msgpack_unpackb_per_s": round(base),
                "ratio_to_baseline": round(dec / base, 2),
                "target_per_s": TARGETS.get(name),
            }
        )
    if args.json:
        print(
            json.dumps(
                {"machine": platform.platform(), "python": platform.python_version(), "rows": rows}
            )
        )
        return
    print(
        f"codec benchmark, one core, median of {args.runs} runs; "
        f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"
    )
    head = (
        f"{'message':<22}{'bytes':>7}{'encode/s':>11}{'decode+validate/s':>19}"
        f"{'msgpack/s':>11}{'ratio':>7}{'target':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        target = f"{r['target_per_s']:,}" if r["target_per_s"] else "-"
        print(
            f"{r['message']:<22}{r['bytes']:>7}{r['encode_per_s']:>11,}{r['decode_validate_per_s']:>19,}"
            f"{r['msgpack_unpackb_per_s']:>11,}{r['ratio_to_baseline']:>7}{target:>9}"
        )


if __name__ == "__main__":
    main()
