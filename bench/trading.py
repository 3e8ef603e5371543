"""One market gate with 10,000 accepted offers, end to end: FMAN aggregates and bids them,
FMAR clears the gate against a DSO's congestion request, FMAN splits the awards into member
schedules and sends them to the agents.

Real parts, each its own process: a Mosquitto, ``atp fmar run``, ``atp fman run`` (SQLite
store) and a fleet publisher that speaks for 1,000 agents (10 offers each, two or three
quarter hours of a heat pump, at one feeder) and acknowledges every schedule. All run on one
simulated clock, 30 times real speed. Printed, as the median of ``--runs`` runs:

- *closure to last ack*: wall seconds from the gate's closure (the instant the shared clock
  reaches ``closes_at``) to the moment FMAN's store holds the agents' acknowledgements of
  every schedule it issued from the awards: FMAR's clearing, the result on the wire, FMAN's
  split and its delivery to 10,000 agents, and their answers (target: under 30 s);
- FMAR's own clearing time (closure to result published, from its log), and how many
  aggregates FMAN bid;
- beside it, the wall time of planning the same offers without a market: the planner chain
  FMAN uses for that many offers (OR-Tools through aggregation, ``planning.aggregate_above``),
  in this process.

    .venv/bin/python bench/trading.py             # three runs
    .venv/bin/python bench/trading.py --runs 1

Figures taken while other work shares the machine are noisy; say so beside them.
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import protocol  # noqa: E402
from cloud.broker import Mosquitto  # noqa: E402
from cloud.clock import SimClock  # noqa: E402
from cloud.fman import StoreError, open_reader  # noqa: E402
from cloud.fman.config import dump_toml  # noqa: E402
from protocol import DefaultSchedule, FlexOffer, MarketRequest, Profile, topics  # noqa: E402
from tests.fman.minifleet import MiniFleet, Tracked  # noqa: E402

ATP = str(Path(sys.executable).with_name("atp"))
Q = 900
T0 = 1_767_225_600  # 2026-01-01T00:00Z
DELIVERY = T0 + 3600
CLOSES = T0 + 1800  # FMAR's gate_lead_s is 1800
SPEED = 30.0
SIM_START = T0 + 1200  # 20 wall seconds before closure


def offers(n: int, agents: int, seed: int = 1) -> list[FlexOffer]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        agent = f"tb-{i % agents}"
        slots = rng.choice([2, 3])
        start = DELIVERY + rng.randrange(0, 5 - slots) * Q
        default = round(rng.uniform(0.4, 0.9), 3)
        out.append(
            FlexOffer(
                id=f"{agent}.hp.{i // agents}",
                issuer=agent,
                device=f"hp-{i // agents}",
                load_type="heat_pump",
                grid_node="feeder-1",
                created_at=T0,
                acceptance_before=T0 + 1500,
                assignment_before=start,
                start_after=start,
                start_before=start + 1800,
                profiles=[Profile(lower_kwh=[0.1] * slots, upper_kwh=[1.2] * slots)],
                default=DefaultSchedule(start=start, energy_kwh=[default] * slots),
            )
        )
    return out


def _wait(what: str, cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _count(db: Path, sql_state: str) -> int:
    try:
        with open_reader(db) as r:
            return r.count_offers(states=[sql_state]) if sql_state else 0
    except StoreError:
        return 0


def one_run(n: int, agents: int, tmp: Path) -> dict:
    fleet_offers = offers(n, agents)
    with Mosquitto(workdir=tmp / "mq") as broker:
        anchor = time.time() + 3.0
        clock = SimClock(start=SIM_START, speed=SPEED, anchor=anchor)
        (tmp / "fmar.toml").write_text(
            dump_toml(
                {
                    "service": {
                        "id": "fmar-bench",
                        "broker": broker.url,
                        "store": str(tmp / "fmar.db"),
                        "calendar_gates": 1,
                    },
                    "clock": {"sim_start": str(SIM_START), "speed": SPEED, "anchor": anchor},
                    "markets": {
                        "feeder-1": {
                            "kind": "two-sided",
                            "nodes": ["feeder-1"],
                            "horizon_s": 3600,
                            "gate_period_s": 3600,
                            "gate_lead_s": 1800,
                            "time_limit_s": 10.0,
                        }
                    },
                }
            )
        )
        db = tmp / "fman.db"
        (tmp / "fman.toml").write_text(
            dump_toml(
                {
                    "worker": {"id": "fman-bench", "broker": broker.url, "store": str(db)},
                    "clock": {"sim_start": str(SIM_START), "speed": SPEED, "anchor": anchor},
                    "planning": {"planner": "default"},
                    "market": [
                        {
                            "id": "feeder-1",
                            "party": "fman-1",
                            "nodes": ["feeder-1"],
                            "bid_before_close_s": 60.0,
                            "bid_before_close_wall_s": 1.0,
                            "default_ask_eur_per_kwh": 0.05,
                        }
                    ],
                }
            )
        )
        logs = [(tmp / "fmar.log").open("w"), (tmp / "fman.log").open("w")]
        procs = [
            subprocess.Popen(
                [ATP, "fmar", "run", "--config", str(tmp / "fmar.toml")],
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [ATP, "fman", "run", "-c", str(tmp / "fman.toml")],
                stdout=logs[1],
                stderr=subprocess.STDOUT,
            ),
        ]
        fleet = None
        try:
            _wait("FMAN's store", lambda: db.exists(), 30)
            time.sleep(1.0)  # FMAN's subscriptions (the fleet's offers must find them)
            fleet = MiniFleet(
                broker=broker,
                clock=clock,
                agents=0,
                offers_per_agent=0,
                span_s=0,
                meter=False,
                prefix="tb",
            )
            fleet.agents = sorted({o.issuer for o in fleet_offers})
            fleet.offers = {o.id: Tracked(o) for o in fleet_offers}
            fleet.start()
            # the DSO takes 30 % of the feeder's load off in every slot of the gate
            load = [0.0] * 4
            for o in fleet_offers:
                k = (o.default.start - DELIVERY) // Q
                for j, e in enumerate(o.default.energy_kwh):
                    load[k + j] += e
            congestion = MarketRequest(
                market="feeder-1",
                party="dso-1",
                id="dso-1.bench",
                start=DELIVERY,
                kwh=[round(-0.3 * v, 3) for v in load],
                limit_eur_per_kwh=0.3,
                node="feeder-1",
            )
            _wait("the gate to open", lambda: clock.now() >= T0 + 1200, 30)
            fleet.c.publish(
                topics.market_topic("feeder-1", "bid"),
                protocol.encode(congestion, ts=int(clock.now())),
                qos=1,
            ).wait_for_publish(10)
            _wait(
                "every offer accepted",
                lambda: _count(db, "assigned") + _count(db, "accepted") >= n,
                60,
            )
            closure_wall = anchor + (CLOSES - SIM_START) / SPEED

            def applied() -> bool:
                try:
                    with open_reader(db) as r:
                        return any(
                            g.result_state not in (None, "new") for g in r.market_gates("feeder-1")
                        )
                except StoreError:
                    return False

            _wait("the result applied", applied, 120)
            with open_reader(db) as r:
                carriers = {a.offer_id for a in r.market_awards(0, 2**62)}
                bids = len(r.market_bids("feeder-1"))
                won = r.market_won("feeder-1")
            if not carriers:
                raise SystemExit("nothing was awarded")

            def all_acked() -> bool:
                with open_reader(db) as r:
                    cur = r.current_schedules(list(carriers))
                return all(s.status == "acked" and s.version >= 2 for s in cur.values()) and len(
                    cur
                ) == len(carriers)

            _wait("every award schedule acknowledged", all_acked, 120)
            done = time.time()
        finally:
            if fleet is not None:
                fleet.close()
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
            for f in logs:
                f.close()
        fmar_log = (tmp / "fmar.log").read_text()
        m = re.search(r"closure to result published ([0-9.]+) s", fmar_log)
        return {
            "closure_to_ack_s": done - closure_wall,
            "clearing_s": float(m.group(1)) if m else float("nan"),
            "bids": bids,
            "carriers": len(carriers),
            "down_kwh": sum(w.down_kwh for w in won),
        }


def plan_without_market(n: int, agents: int) -> float:
    from cloud.fman.planners import load_planner
    from cloud.optim import AggregatingPlanner, FallbackPlanner, GreedyPlanner, PlanRequest

    fleet_offers = offers(n, agents)
    load: dict[int, float] = {}
    for o in fleet_offers:
        for j, e in enumerate(o.default.energy_kwh):
            t = o.default.start + j * Q
            load[t] = load.get(t, 0.0) + e
    request = PlanRequest(
        offers=fleet_offers,
        resolution_s=Q,
        objective="balance",
        target_kwh={t: 0.7 * v for t, v in load.items()},
        time_limit_s=5.0,
    )
    chain = FallbackPlanner(
        stages=[AggregatingPlanner(inner=load_planner("ortools")), GreedyPlanner()]
    )
    t = time.perf_counter()
    chain.plan_chain(request)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--offers", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{platform.node()}: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    runs = []
    for k in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="atp-trading-") as tmp:
            r = one_run(args.offers, args.agents, Path(tmp))
        runs.append(r)
        print(
            f"run {k + 1}: closure to last ack {r['closure_to_ack_s']:.1f} s, FMAR clearing "
            f"{r['clearing_s']:.2f} s, {r['bids']} aggregate(s) bid, {r['carriers']} member(s) "
            f"awarded, {r['down_kwh']:.0f} kWh down",
            flush=True,
        )
    plans = [plan_without_market(args.offers, args.agents) for _ in range(args.runs)]
    med = statistics.median(r["closure_to_ack_s"] for r in runs)
    print(
        f"\n{args.offers} offers, one gate: closure to last award schedule acknowledged "
        f"{med:.1f} s (median of {len(runs)}; target < 30 s); FMAR clearing "
        f"{statistics.median(r['clearing_s'] for r in runs):.2f} s"
    )
    print(
        f"planning the same offers without a market (OR-Tools through aggregation): "
        f"{statistics.median(plans):.1f} s (median of {len(plans)})"
    )


if __name__ == "__main__":
    main()
