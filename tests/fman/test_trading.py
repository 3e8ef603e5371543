"""Trading end to end against the real broker: ``atp fman run`` bidding for a small fleet on
``atp fmar run``, a DSO's congestion request at the fleet's feeder, and the awards back at the
agents as schedules (docs/trading.md).

The fleet's defaults load the feeder above the DSO's limit in two slots; the DSO asks for
the excess down at a limit price above FMAN's asks. FMAN bids the fleet as an aggregate
before the gate closes, FMAR clears it, and FMAN turns the award into member schedules: each
passes ``check_schedule``, they sum to the awarded aggregate exactly, and the energy the
agents are scheduled to use at the feeder stays within the limit in the congested slots.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import protocol
from cloud.cli import main as cli_main
from cloud.clock import SimClock
from cloud.fman import open_reader
from protocol import DefaultSchedule, FlexOffer, MarketRequest, Profile, topics
from tests.fmar.test_service import Fmar, Listener
from tests.waiting import wait_for

from .harness import WorkerProc, wait_ready, write_config
from .minifleet import MiniFleet, Tracked

Q = 900
T0 = 1_767_225_600  # 2026-01-01T00:00Z
SPEED = 300.0
#: The gate delivering T0+1h: closes at T0+30min (FMAR's gate_lead_s 1800).
DELIVERY = T0 + 3600
AGENTS = 8
DEFAULT_KWH = 0.8
LIMIT_KWH = 4.0  # per slot at the feeder; the defaults put 8 x 0.8 = 6.4 kWh there
CONGESTED = [DELIVERY + Q, DELIVERY + 2 * Q]


def fleet_offers() -> list[FlexOffer]:
    out = []
    for i in range(AGENTS):
        agent = f"tr-{i}"
        out.append(
            FlexOffer(
                id=f"{agent}.hp.0",
                issuer=agent,
                device="hp",
                load_type="heat_pump",
                grid_node="feeder-1",
                created_at=T0 - 1800,
                acceptance_before=T0 + 600,
                assignment_before=DELIVERY,
                start_after=DELIVERY,
                start_before=DELIVERY + 1800,
                profiles=[Profile(lower_kwh=[0.1] * 4, upper_kwh=[1.2] * 4)],
                default=DefaultSchedule(start=DELIVERY, energy_kwh=[DEFAULT_KWH] * 4),
            )
        )
    return out


def fmar_config(tmp_path: Path, broker, anchor: float) -> Path:
    path = tmp_path / "fmar.toml"
    path.write_text(
        f"""
[service]
id = "fmar-trading"
broker = "{broker.url}"
store = "{tmp_path / "fmar.db"}"
calendar_gates = 1

[clock]
sim_start = "{T0}"
speed = {SPEED}
anchor = {anchor}

[markets.feeder-1]
kind = "two-sided"
nodes = ["feeder-1"]
resolution_s = 900
horizon_s = 3600
gate_period_s = 3600
gate_lead_s = 1800
time_limit_s = 2.0
"""
    )
    return path


def atp_json(*args: str):
    result = CliRunner().invoke(cli_main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.timeout(60)
def test_a_congestion_request_is_met_by_awards_scheduled_at_the_agents(broker, tmp_path, request):
    anchor = time.time() + 2.0
    clock = SimClock(start=T0, speed=SPEED, anchor=anchor)
    db = tmp_path / "fman.db"
    config = write_config(
        tmp_path / "fman.toml",
        broker,
        db,
        clock={"sim_start": str(T0), "speed": SPEED, "anchor": anchor},
        worker={"group": "trading"},  # a share group no other test's session is in
        planning={"planner": "default"},
    )
    # [[market]]: FMAN bids the feeder's offers on market feeder-1 as party fman-1
    config.write_text(
        config.read_text()
        + '\n[[market]]\nid = "feeder-1"\nparty = "fman-1"\nnodes = ["feeder-1"]\n'
        + "default_ask_eur_per_kwh = 0.05\n"
    )
    listener = Listener(broker, [f"{topics.PREFIX}/m/feeder-1/#"])
    request.addfinalizer(listener.close)
    fmar = Fmar(fmar_config(tmp_path, broker, anchor), tmp_path / "fmar.log").start()
    request.addfinalizer(fmar.stop)
    worker = WorkerProc(config=config, worker_id="fman-tr", log_dir=tmp_path).start()
    request.addfinalizer(worker.stop)
    wait_ready(db, "fman-tr")
    fleet = MiniFleet(
        broker=broker, clock=clock, agents=0, offers_per_agent=0, span_s=0, meter=False
    )
    fleet.agents = sorted({o.issuer for o in fleet_offers()})
    fleet.offers = {o.id: Tracked(o) for o in fleet_offers()}
    fleet.start()
    request.addfinalizer(fleet.close)
    # the DSO's congestion request for the gate delivering T0+1h
    congestion = MarketRequest(
        market="feeder-1",
        party="dso-1",
        id="dso-1.congestion",
        start=CONGESTED[0],
        kwh=[LIMIT_KWH - AGENTS * DEFAULT_KWH] * 2,
        limit_eur_per_kwh=0.30,
        node="feeder-1",
        partial=True,
    )
    wait_for(lambda: any(t.endswith("/gate") for t, _, _ in listener.messages), 15, "the gate")
    listener.publish(topics.market_topic("feeder-1", "bid"), protocol.encode(congestion, ts=T0))
    wait_for(lambda: any(b.body.accepted for b in listener.bodies("/ack/dso-1")), 15, "DSO ack")
    # FMAN bids before the gate closes, and FMAR accepts the bid
    wait_for(
        lambda: any(b.body.accepted for b in listener.bodies("/ack/fman-1")),
        20,
        "FMAN's bid accepted",
    )
    wait_for(lambda: listener.bodies("/result"), 20, "the result")
    (result,) = [m.body for m in listener.bodies("/result")]
    assert result.gate == "20260101T0100Z"
    awards = [a for a in result.awards if a.offer_id.startswith(result.gate)]
    assert awards, result

    def scheduled_at_agents() -> bool:
        snap = fleet.snapshot()
        return all(tr.schedule is not None and tr.schedule.version >= 2 for tr in snap.values())

    wait_for(scheduled_at_agents, 20, "the awards' schedules at every agent")
    snap = fleet.snapshot()
    per_slot: dict[int, float] = {}
    for tr in snap.values():
        s = tr.schedule
        assert s is not None
        assert protocol.check_schedule(tr.offer, s) == []
        for i, e in enumerate(s.energy_kwh):
            per_slot[s.start + i * Q] = per_slot.get(s.start + i * Q, 0.0) + e
    # the feeder's scheduled energy is within the limit where it was congested
    for t in CONGESTED:
        assert per_slot[t] <= LIMIT_KWH + 1e-6, (t, per_slot)
    # the member schedules sum to the awarded aggregate exactly
    (award,) = awards
    for k, e in enumerate(award.energy_kwh):
        assert abs(per_slot.get(award.start + k * Q, 0.0) - e) <= 1e-6

    # what was bid and won, and who carries it, as the operator sees it
    bids = atp_json("market", "bids", "--db", str(db))
    assert [b["gate"] for b in bids] == [result.gate]
    assert bids[0]["status"] == "accepted" and len(bids[0]["members"]) == AGENTS
    won = atp_json("market", "awards", "--db", str(db))
    assert len(won["aggregates"]) == 1 and won["aggregates"][0]["state"] == "applied"
    assert won["aggregates"][0]["down_kwh"] == pytest.approx(
        -sum(d for d in award.deviation_kwh if d < 0)
    )
    members = won["members"]
    assert {m["offer_id"] for m in members} == set(snap)
    for t in CONGESTED:
        assert sum(m["kwh"] for m in members if m["slot_start"] == t) == pytest.approx(
            LIMIT_KWH - AGENTS * DEFAULT_KWH, abs=1e-6
        )
    with open_reader(db) as r:
        (gate,) = [g for g in r.market_gates() if g.gate == result.gate]
        assert gate.result_state == "applied"
