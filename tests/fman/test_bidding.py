"""Market bidding's pure rules (cloud.fman.bidding): what is bid, at what ask, and how an
award cleared by FMAR's own clearing splits into member schedules, exactly."""

from __future__ import annotations

import numpy as np
import pytest

import protocol
from cloud.fman import bidding
from cloud.fman.bidding import Candidate
from cloud.fmar import clear
from cloud.fmar._parse import book_from_builtins
from protocol import Bounds, DefaultSchedule, FlexOffer, GateTimes, PriceBounds, Prices, Profile

Q = 900
T0 = 1_767_225_600  # 2026-01-01T00:00Z
GATE = GateTimes(
    gate="20260101T0100Z",
    opens_at=T0 - 2700,
    closes_at=T0 + 2700,
    delivery_start=T0 + 3600,
    slots=4,
    resolution_s=Q,
)


def offer(
    oid: str,
    *,
    node: str = "feeder-1",
    start: int = T0 + 3600,
    default: list[float] | None = None,
    lower: float = 0.0,
    upper: float = 1.0,
    total: Bounds | None = None,
    mode: str = "delegated",
    prices: Prices | None = None,
    window_s: int = 1800,
) -> FlexOffer:
    d = default or [0.5, 0.5]
    return FlexOffer(
        id=oid,
        issuer=oid.split(".")[0],
        device="hp",
        load_type="heat_pump",
        grid_node=node,
        created_at=T0 - 3600,
        acceptance_before=T0,
        assignment_before=start,
        start_after=start,
        start_before=start + window_s,
        profiles=[Profile(lower_kwh=[lower] * len(d), upper_kwh=[upper] * len(d), total=total)],
        default=DefaultSchedule(start=start, energy_kwh=d),
        mode=mode,
        prices=prices,
    )


def accepted(*offers: FlexOffer) -> list[Candidate]:
    return [Candidate(state="accepted", offer=o) for o in offers]


def test_biddable_keeps_offers_inside_the_gate_at_its_nodes_and_pins_their_start():
    inside = offer("a1.hp", start=T0 + 3600 + Q)
    outside = offer("a2.hp", start=T0 + 3600 + 3 * Q)  # its default runs past the gate
    other_node = offer("a3.hp", node="feeder-2")
    too_late = offer("a4.hp", start=T0 + 3600)  # assignment_before at delivery start
    got = bidding.biddable(
        [*accepted(inside, outside, other_node), Candidate(state="executing", offer=too_late)],
        gate=GATE,
        deliver_by=GATE.closes_at + 60,
        nodes=["feeder-1"],
    )
    assert [o.id for o in got] == ["a1.hp"]
    assert got[0].start_after == got[0].start_before == inside.default.start


def test_asks_are_the_contract_reward_or_the_offers_own_prices_worst_case_per_slot():
    cheap = offer("a1.hp", start=T0 + 3600)  # slots 0-1, delegated, reward 0.05
    dear = offer(
        "a2.hp",
        start=T0 + 3600 + Q,  # slots 1-2, direct, its own price 0.30
        mode="direct",
        prices=Prices(slots=[PriceBounds(0.30, 1.0), PriceBounds(0.30, 1.0)]),
    )
    bids = bidding.build_bids(
        bidding.biddable(accepted(cheap, dear), gate=GATE, deliver_by=GATE.closes_at),
        gate=GATE,
        rewards={"a1.hp": 0.05},
        default_ask=0.5,
    )
    assert len(bids) == 1
    (bid,) = bids
    assert bid.ask_up == pytest.approx([0.05, 0.30, 0.30, 0.0])
    assert bid.ask_down == bid.ask_up
    assert sorted(bid.members) == [("a1.hp", 0), ("a2.hp", 0)]
    # the aggregate's default is the members' defaults summed: deviations add up
    agg = bid.aggregate.offer
    assert agg.start_after == agg.start_before == T0 + 3600
    assert agg.default.energy_kwh == pytest.approx([0.5, 1.0, 0.5])


def test_an_award_cleared_by_fmar_splits_exactly_into_feasible_member_schedules():
    rng = np.random.default_rng(7)
    offers = [
        offer(
            f"a{i}.hp",
            start=T0 + 3600 + int(rng.integers(0, 3)) * Q,
            default=[round(float(v), 3) for v in rng.uniform(0.3, 0.9, 2)],
            lower=0.1,
            upper=1.2,
            total=Bounds(0.2, 2.4) if i % 3 == 0 else None,
        )
        for i in range(30)
    ]
    pinned = bidding.biddable(accepted(*offers), gate=GATE, deliver_by=GATE.closes_at)
    bids = bidding.build_bids(pinned, gate=GATE, rewards={}, default_ask=0.02)
    assert bids
    # a DSO's congestion: 4 kWh less in the middle slots, at up to 0.2 EUR/kWh
    book = book_from_builtins(
        {
            "market": {"start": GATE.delivery_start, "slots": 4, "resolution_s": Q},
            "sell": [
                {
                    "offer": protocol.to_builtins(b.aggregate.offer),
                    "node": b.node,
                    "ask_up_eur_per_kwh": b.ask_up,
                    "ask_down_eur_per_kwh": b.ask_down,
                }
                for b in bids
            ],
            "requests": [
                {
                    "id": "dso-1",
                    "node": "feeder-1",
                    "start": GATE.delivery_start + Q,
                    "kwh": [-4.0, -4.0],
                    "limit_eur_per_kwh": 0.2,
                    "partial": True,
                }
            ],
        }
    )
    result = clear(book, time_limit_s=5)
    assert result.awards
    by_id = {b.id: b for b in bids}
    originals = {o.id: o for o in offers}
    pinned_by_id = {o.id: o for o in pinned}
    market = bidding.market_of(GATE)
    for award in result.awards:
        bid = by_id[award.offer_id]
        line = protocol.AwardLine(
            offer_id=award.offer_id,
            node=award.node,
            start=award.start,
            profile=award.profile,
            energy_kwh=list(award.energy_kwh),
            deviation_kwh=list(award.deviation_kwh),
            paid_eur=award.paid_eur,
        )
        parts = bidding.member_parts(
            bid.aggregate.offer, [pinned_by_id[m] for m, _ in bid.members], line, market=market
        )
        assert len(parts) == len(bid.members)
        total = np.zeros(market.slots)
        dev = np.zeros(market.slots)
        for p in parts:
            s = p.schedule
            schedule = protocol.Schedule(
                offer_id=s.offer_id,
                version=1,
                start=s.start,
                profile=s.profile,
                energy_kwh=list(s.energy_kwh),
                issued_at=T0,
            )
            assert protocol.check_schedule(originals[p.offer_id], schedule) == []
            first = market.slot_of(s.start)
            total[first : first + len(s.energy_kwh)] += s.energy_kwh
            dev += p.deviation_kwh
        first = market.slot_of(award.start)
        want = np.zeros(market.slots)
        want[first : first + len(award.energy_kwh)] = award.energy_kwh
        assert np.abs(total - want).max() <= 1e-6
        assert np.abs(dev - np.asarray(award.deviation_kwh)).max() <= 1e-6
    # the request was served: the middle slots went down
    (req,) = result.requests
    assert sum(req.accepted_kwh) < -1.0


def test_a_subset_of_members_gets_the_same_parts_as_with_all():
    offers = [offer(f"a{i}.hp", default=[0.4 + 0.1 * i, 0.6]) for i in range(4)]
    pinned = bidding.biddable(accepted(*offers), gate=GATE, deliver_by=GATE.closes_at)
    (bid,) = bidding.build_bids(pinned, gate=GATE, rewards={}, default_ask=0.0)
    agg = bid.aggregate.offer
    line = protocol.AwardLine(
        offer_id=agg.id,
        node="feeder-1",
        start=agg.start_after or 0,
        profile=0,
        energy_kwh=[1.0, 1.5],
        deviation_kwh=[],
        paid_eur=0.0,
    )
    market = bidding.market_of(GATE)
    every = {p.offer_id: p for p in bidding.member_parts(agg, pinned, line, market=market)}
    some = bidding.member_parts(agg, pinned[1:3], line, market=market)
    for p in some:
        assert p.schedule.energy_kwh == pytest.approx(every[p.offer_id].schedule.energy_kwh)
    assert sum(p.schedule.energy_kwh[0] for p in every.values()) == pytest.approx(1.0, abs=1e-9)
