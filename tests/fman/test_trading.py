"""Trading end to end against the real broker: ``atp fman run`` bidding for a small fleet on
``atp fmar run``, a DSO's congestion request at the fleet's feeder, and the awards back at the
agents as schedules (docs/trading.md).

The fleet's defaults load the feeder above the DSO's limit in two slots; the DSO asks for
the excess down at a limit price above FMAN's asks. FMAN bids the fleet as an aggregate
before the gate closes, FMAR clears it, and FMAN turns the award into member schedules: each
passes ``check_schedule``, they sum to the awarded aggregate exactly, and the energy the
agents are scheduled to use at the feeder, and then meter, stays within the limit in the
congested slots.

Other offers at the feeder are not in the bid (their windows reach past the gate), and
FMAN's target asks for much more load in the congested slots: planned towards it alone,
they would fill the slots the award emptied. They must not (``planning.award_bands``).
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

from .harness import WorkerProc, stats, wait_ready, write_config
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


#: Offers at the feeder outside the bid: they may start within two hours of the delivery.
OTHERS = 4
#: FMAN's target in the congested slots (kWh), far above what the feeder can take.
TARGET_KWH = 30.0


def other_offers() -> list[FlexOffer]:
    return [
        FlexOffer(
            id=f"tr-other-{i}.boiler.0",
            issuer=f"tr-other-{i}",
            device="boiler",
            load_type="boiler",
            grid_node="feeder-1",
            created_at=T0 - 1800,
            acceptance_before=T0 + 600,
            assignment_before=DELIVERY,
            start_after=DELIVERY,
            start_before=DELIVERY + 7200,
            profiles=[Profile(lower_kwh=[0.0] * 4, upper_kwh=[1.5] * 4)],
            default=DefaultSchedule(start=DELIVERY + 7200, energy_kwh=[0.5] * 4),
        )
        for i in range(OTHERS)
    ]


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
sellers = ["fman-1"]
buyers = ["dso-1"]
"""
    )
    return path


def atp_json(*args: str):
    result = CliRunner().invoke(cli_main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.timeout(90)
def test_a_congestion_request_is_met_by_awards_scheduled_and_metered_at_the_agents(
    broker, tmp_path, request
):
    anchor = time.time() + 2.0
    clock = SimClock(start=T0, speed=SPEED, anchor=anchor)
    db = tmp_path / "fman.db"
    target = tmp_path / "target.csv"
    target.write_text(
        "time,value\n"
        + "".join(
            f"{t},{TARGET_KWH if t in CONGESTED else 0.0}\n" for t in range(T0, T0 + 5 * 3600, Q)
        )
    )
    config = write_config(
        tmp_path / "fman.toml",
        broker,
        db,
        clock={"sim_start": str(T0), "speed": SPEED, "anchor": anchor},
        worker={"group": "trading"},  # a share group no other test's session is in
        planning={"planner": "greedy"},
        objective={"kind": "balance", "target": {"file": str(target)}},
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
    fleet = MiniFleet(broker=broker, clock=clock, agents=0, offers_per_agent=0, span_s=0)
    offers = fleet_offers() + other_offers()
    fleet.agents = sorted({o.issuer for o in offers})
    fleet.offers = {o.id: Tracked(o) for o in offers}
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
    listener.publish(
        topics.market_bid_topic("feeder-1", "dso-1"), protocol.encode(congestion, ts=T0)
    )
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

    bidders = {o.id for o in fleet_offers()}

    def scheduled_at_agents() -> bool:
        snap = fleet.snapshot()
        return all(
            tr.schedule is not None and tr.schedule.version >= 2
            for oid, tr in snap.items()
            if oid in bidders
        )

    def per_slot(which: set[str]) -> dict[int, float]:
        out: dict[int, float] = {}
        for oid, tr in fleet.snapshot().items():
            s = tr.schedule
            if oid not in which or s is None:
                continue
            assert protocol.check_schedule(tr.offer, s) == []
            for i, e in enumerate(s.energy_kwh):
                out[s.start + i * Q] = out.get(s.start + i * Q, 0.0) + e
        return out

    wait_for(scheduled_at_agents, 20, "the awards' schedules at every agent")
    # the member schedules sum to the awarded aggregate exactly
    members = per_slot(bidders)
    (award,) = awards
    for k, e in enumerate(award.energy_kwh):
        assert abs(members.get(award.start + k * Q, 0.0) - e) <= 1e-6
    # the feeder's scheduled energy, every offer there, is within the limit where it was
    # congested: the others, planned again around the award, do not fill those slots
    everyone = set(fleet.snapshot())
    wait_for(
        lambda: (
            all(per_slot(everyone).get(t, 0.0) <= LIMIT_KWH + 1e-6 for t in CONGESTED)
            and clock.now() >= CONGESTED[0]
        ),
        30,
        "the feeder within the DSO's limit as scheduled at the start of the congestion",
        explain=lambda: {
            oid: (tr.schedule.start, tr.schedule.version, tr.schedule.energy_kwh)
            for oid, tr in fleet.snapshot().items()
            if tr.schedule is not None
        },
    )
    scheduled = per_slot(everyone)
    for t in CONGESTED:
        assert scheduled[t] <= LIMIT_KWH + 1e-6, (t, scheduled)
    # and as metered: every offer's readings of the congested slots, as FMAN stored them
    agents = sorted({o.issuer for o in offers})

    def metered() -> dict[int, float]:
        with open_reader(db) as r:
            rows = r.readings_between(start=CONGESTED[0], end=CONGESTED[-1] + Q, agents=agents)
        out: dict[int, float] = {}
        for x in rows:
            out[x.start] = out.get(x.start, 0.0) + x.energy_kwh
        return out

    def metered_whole() -> bool:
        due = {
            (oid, t)
            for oid, tr in fleet.snapshot().items()
            if tr.schedule is not None
            for t in CONGESTED
            if tr.schedule.start <= t < tr.schedule.start + len(tr.schedule.energy_kwh) * Q
        }
        with open_reader(db) as r:
            rows = r.readings_between(start=CONGESTED[0], end=CONGESTED[-1] + Q, agents=agents)
        return due <= {(x.offer_id, x.start) for x in rows}

    wait_for(metered_whole, 30, "the congested slots metered")
    got = metered()
    for t in CONGESTED:
        assert got[t] <= LIMIT_KWH + 1e-6, (t, got, scheduled)

    # what was bid and won, and who carries it, as the operator sees it
    bids = atp_json("market", "bids", "--db", str(db))
    assert [b["gate"] for b in bids] == [result.gate]
    assert bids[0]["status"] == "accepted" and len(bids[0]["members"]) == AGENTS
    won = atp_json("market", "awards", "--db", str(db))
    assert len(won["aggregates"]) == 1 and won["aggregates"][0]["state"] == "applied"
    assert won["aggregates"][0]["down_kwh"] == pytest.approx(
        -sum(d for d in award.deviation_kwh if d < 0)
    )
    carried = won["members"]
    assert {m["offer_id"] for m in carried} == bidders
    for t in CONGESTED:
        assert sum(m["kwh"] for m in carried if m["slot_start"] == t) == pytest.approx(
            LIMIT_KWH - AGENTS * DEFAULT_KWH, abs=1e-6
        )
    with open_reader(db) as r:
        (gate,) = [g for g in r.market_gates() if g.gate == result.gate]
        assert gate.result_state == "applied"


def _offer(agent: str, node: str, revision: int = 0) -> FlexOffer:
    return FlexOffer(
        id=f"{agent}.hp.0",
        issuer=agent,
        device="hp",
        load_type="heat_pump",
        grid_node=node,
        revision=revision,
        created_at=T0 - 1800,
        # the revision comes after bidding (at T0 + 15 min), and before its own deadline
        acceptance_before=T0 + 600 + 1800 * revision,
        assignment_before=DELIVERY,
        start_after=DELIVERY,
        start_before=DELIVERY + 1800,
        profiles=[Profile(lower_kwh=[0.1] * 4, upper_kwh=[1.2 - 0.1 * revision] * 4)],
        default=DefaultSchedule(start=DELIVERY, energy_kwh=[DEFAULT_KWH] * 4),
    )


def _versions(db: Path) -> dict[str, int]:
    with open_reader(db) as r:
        return {oid: s.version for oid, s in r.current_schedules().items()}


@pytest.mark.timeout(60)
def test_changed_members_a_duplicated_result_and_a_late_result_make_no_wrong_schedule(
    broker, tmp_path, request
):
    """The test is the market here: it announces two gates, answers FMAN's bids, and sends
    the results itself, so it can send one twice and one after delivery began."""
    anchor = time.time() + 2.0
    clock = SimClock(start=T0, speed=SPEED, anchor=anchor)
    db = tmp_path / "fman.db"
    config = write_config(
        tmp_path / "fman.toml",
        broker,
        db,
        clock={"sim_start": str(T0), "speed": SPEED, "anchor": anchor},
        worker={"group": "trading-faults"},
        planning={"planner": "default"},
    )
    config.write_text(
        config.read_text()
        + '\n[[market]]\nid = "tf-ontime"\nparty = "fman-1"\nnodes = ["n1"]\n'
        + '\n[[market]]\nid = "tf-late"\nparty = "fman-1"\nnodes = ["n2"]\n'
    )
    listener = Listener(broker, [f"{topics.PREFIX}/m/tf-ontime/#", f"{topics.PREFIX}/m/tf-late/#"])
    request.addfinalizer(listener.close)
    gate = protocol.GateTimes(
        gate="20260101T0100Z",
        opens_at=T0 - 1800,
        closes_at=T0 + 1800,
        delivery_start=DELIVERY,
        slots=4,
        resolution_s=Q,
    )
    for market in ("tf-ontime", "tf-late"):
        notice = protocol.GateNotice(market=market, current=gate, state="open")
        listener.client.publish(
            topics.market_topic(market, "gate"), protocol.encode(notice, ts=T0), qos=1, retain=True
        ).wait_for_publish(10)
        request.addfinalizer(
            lambda m=market: listener.client.publish(
                topics.market_topic(m, "gate"), b"", qos=1, retain=True
            ).wait_for_publish(10)
        )
    worker = WorkerProc(config=config, worker_id="fman-tf", log_dir=tmp_path).start()
    request.addfinalizer(worker.stop)
    wait_ready(db, "fman-tf")
    offers = [_offer(f"tf-{i}", "n1") for i in range(5)] + [
        _offer(f"tl-{i}", "n2") for i in range(3)
    ]
    fleet = MiniFleet(
        broker=broker,
        clock=clock,
        agents=0,
        offers_per_agent=0,
        span_s=0,
        meter=False,
        prefix="tf",
    )
    fleet.agents = sorted({o.issuer for o in offers})
    fleet.offers = {o.id: Tracked(o) for o in offers}
    fleet.start()
    request.addfinalizer(fleet.close)

    # FMAN bids each market's offers as one aggregate; the market accepts both bids
    def bids() -> dict[str, protocol.SellOrder]:
        with listener._lock:
            raw = [p for t, p, _ in listener.messages if t.endswith("/bid/fman-1")]
        return {m.body.market: m.body for m in map(protocol.decode, raw)}

    wait_for(lambda: len(bids()) == 2, 20, "a bid in each market")
    for market, order in bids().items():
        answer = protocol.OrderAnswer(
            market=market,
            ref_kind="market.sell",
            ref_id=order.offer.id,
            accepted=True,
            gate=gate.gate,
        )
        listener.publish(
            topics.market_answer_topic(market, "fman-1"), protocol.encode(answer, ts=T0)
        )
    on_time, late = bids()["tf-ontime"].offer, bids()["tf-late"].offer

    # one member of the on-time aggregate changes after bidding: a new revision
    changed = offers[0]
    revised = _offer(changed.issuer, "n1", revision=1)
    with fleet.lock:
        fleet.offers[revised.id] = Tracked(revised, published=True)
    fleet.publish(revised.issuer, "offer", revised)

    def revision_seen() -> bool:
        with open_reader(db) as r:
            row = r.offer(revised.id)
        return row is not None and row.revision == 1

    wait_for(revision_seen, 15, "the revised offer at FMAN")

    def result_for(market: str, agg: FlexOffer) -> protocol.MarketResult:
        energy = [e - 0.2 * len(offers) / 8 for e in agg.default.energy_kwh]
        dev = [e - d for e, d in zip(energy, agg.default.energy_kwh, strict=True)]
        return protocol.MarketResult(
            market=market,
            gate=gate.gate,
            status="optimal",
            welfare_eur=1.0,
            delivery_start=DELIVERY,
            resolution_s=Q,
            prices={agg.grid_node: [0.1] * 4},
            awards=[
                protocol.AwardLine(
                    offer_id=agg.id,
                    node=agg.grid_node,
                    start=agg.start_after or 0,
                    profile=0,
                    energy_kwh=energy,
                    deviation_kwh=dev,
                    paid_eur=0.1 * sum(map(abs, dev)),
                )
            ],
        )

    on_time_result = protocol.encode(result_for("tf-ontime", on_time), ts=T0)
    listener.publish(topics.market_topic("tf-ontime", "result"), on_time_result)

    def state_of(market: str) -> str | None:
        with open_reader(db) as r:
            return next((g.result_state for g in r.market_gates(market)), None)

    wait_for(lambda: state_of("tf-ontime") == "applied", 15, "the on-time result applied")
    unchanged = [o.id for o in offers[1:5]]

    def awards_at_agents() -> bool:
        snap = fleet.snapshot()
        return all(
            snap[o].schedule is not None and snap[o].schedule.version >= 2 for o in unchanged
        )

    wait_for(awards_at_agents, 15, "the award's schedules at the unchanged members")
    snap = fleet.snapshot()
    for oid in unchanged:
        s = snap[oid].schedule
        assert protocol.check_schedule(snap[oid].offer, s) == []
        assert max(s.energy_kwh) < DEFAULT_KWH - 1e-3  # moved down, as awarded
    with open_reader(db) as r:
        (won,) = r.market_won("tf-ontime")
        carriers = {a.offer_id for a in r.market_awards(0, 2**62) if a.market == "tf-ontime"}
        in_force = r.current_schedules()
    assert won.state == "changed" and changed.id in won.note
    assert carriers == set(unchanged)  # the changed member carries nothing...
    s = in_force[changed.id]  # ...and keeps a schedule that fits its new revision
    assert s.energy_kwh == [DEFAULT_KWH] * 4
    assert not protocol.check_assignment(
        revised, start=s.start, profile=s.profile, energy_kwh=s.energy_kwh
    )

    # the same result again: recognised, and nothing changes
    before = _versions(db)
    listener.publish(topics.market_topic("tf-ontime", "result"), on_time_result)
    wait_for(
        lambda: any(v.get("market.result_duplicate", 0) >= 1 for v in stats(db).values()),
        10,
        "the duplicate result recognised",
    )
    assert {o: v for o, v in _versions(db).items() if o in unchanged} == {
        o: v for o, v in before.items() if o in unchanged
    }

    # the other market's result comes after delivery began: no member gets it
    while clock.now() < DELIVERY - 200:
        time.sleep(0.05)
    late_before = {o.id: before.get(o.id) for o in offers[5:]}
    listener.publish(
        topics.market_topic("tf-late", "result"),
        protocol.encode(result_for("tf-late", late), ts=int(clock.now())),
    )
    wait_for(lambda: state_of("tf-late") == "late", 15, "the late result recorded as late")
    with open_reader(db) as r:
        (late_won,) = r.market_won("tf-late")
        late_carriers = [a for a in r.market_awards(0, 2**62) if a.market == "tf-late"]
    assert late_won.state == "late" and late_carriers == []
    assert {o.id: _versions(db).get(o.id) for o in offers[5:]} == late_before
