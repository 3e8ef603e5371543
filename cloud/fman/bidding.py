"""Market bidding, as pure functions: which offers FMAN bids in a gate, the aggregates it
bids and their asks, and an award turned back into member schedules.

No clock, no store, no bus: the trader (:mod:`.trader`) reads the offers, contracts and the
gate, hands them here, and stores and sends what comes back (docs/trading.md).

Why bids are built so:

- **Around the default, at the default's start.** The market trades deviation from each
  offer's default schedule (docs/market.md). A member is bid with its start fixed at its
  default's start, and its energy free within the *box* around its default that the
  aggregation keeps (:func:`cloud.optim.aggregate.inner_box`), so the aggregate's default is
  exactly the sum of its members' defaults and its deviation the sum of theirs. Time
  flexibility stays with FMAN's own planning.
- **Boxes, not shapes.** Box aggregates split into member schedules by one share per slot
  (:mod:`cloud.optim.disaggregate`), exactly and without the other members: a member's part
  of an award depends on the aggregate's bounds and its own box alone. So an award can be
  honoured for the members that are unchanged when some changed since bidding, and a worker
  that takes over rebuilds any member's part from the stored offer.
- **Worst case over members.** An aggregate's ask in a slot is the highest ask of the members
  present in that slot, so no member is moved below its own price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from msgspec.structs import replace

import protocol
from protocol import AwardLine, FlexOffer, GateTimes

from ..fmar._book import Market, offer_asks
from ..optim import PlannedSchedule
from ..optim.aggregate import Aggregate, Aggregator, member_of
from ..optim.errors import OptimError

#: Offer states FMAN may still bid: accepted, with no schedule running yet.
BIDDABLE_STATES = frozenset({"accepted", "assigned"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """An offer FMAN holds: the stored row's state and the decoded offer."""

    state: str
    offer: FlexOffer


@dataclass(frozen=True, slots=True, kw_only=True)
class Bid:
    """One sell order: the aggregate, its node, its asks per market slot."""

    aggregate: Aggregate
    node: str
    ask_up: list[float]
    ask_down: list[float]

    @property
    def id(self) -> str:
        return self.aggregate.offer.id

    @property
    def members(self) -> list[tuple[str, int]]:
        return [(m.offer.id, m.offer.revision) for m in self.aggregate.members]

    @property
    def flexibility_kwh(self) -> float:
        p = self.aggregate.offer.profiles[0]
        return float(sum(u - lo for lo, u in zip(p.lower_kwh, p.upper_kwh, strict=True)))


def pinned(offer: FlexOffer) -> FlexOffer | None:
    """``offer`` with its start fixed at its default's start (``None`` if that is not a
    valid offer, e.g. a default outside its own window)."""
    d = offer.default
    fixed = replace(offer, start_after=d.start, start_before=d.start)
    return None if protocol.validate_offer(fixed, types_checked=True) else fixed


def market_of(gate: GateTimes) -> Market:
    return Market(start=gate.delivery_start, slots=gate.slots, resolution_s=gate.resolution_s)


def biddable(
    candidates: Iterable[Candidate],
    *,
    gate: GateTimes,
    deliver_by: float,
    nodes: Sequence[str] = (),
    exclude: Iterable[str] = (),
) -> list[FlexOffer]:
    """The offers to bid in ``gate``, pinned to their default's start: accepted and not yet
    scheduled to run, at one of ``nodes`` (any, if empty), on the gate's slot grid, with the
    default wholly inside the gate's delivery, and whose schedule may still reach the agent
    after the result (``assignment_before`` after ``deliver_by``). Offers in ``exclude`` (in
    a bid already) are left out."""
    skip = set(exclude)
    end = gate.delivery_start + gate.slots * gate.resolution_s
    out = []
    for c in candidates:
        o = c.offer
        d = o.default
        if (
            c.state not in BIDDABLE_STATES
            or o.id in skip
            or (nodes and o.grid_node not in nodes)
            or o.resolution_s != gate.resolution_s
            or d.start < gate.delivery_start
            or d.start + len(d.energy_kwh) * o.resolution_s > end
            or (o.assignment_before or 0) <= deliver_by
        ):
            continue
        p = pinned(o)
        if p is not None:
            out.append(p)
    return out


def member_asks(
    offer: FlexOffer,
    market: Market,
    *,
    reward: float | None,
    default: float,
) -> list[float]:
    """One member's ask per market slot, the same up and down: its contract's reward per kWh
    when it trades delegated under one (``reward``), its own prices in direct mode (or when
    it states prices and has no contract), else ``default``."""
    if offer.mode == "delegated" and reward is not None:
        return [reward] * market.slots
    own = offer_asks(market, offer)
    if own is not None:
        return own
    return [reward if reward is not None else default] * market.slots


def build_bids(
    offers: Sequence[FlexOffer],
    *,
    gate: GateTimes,
    rewards: Mapping[str, float | None],
    default_ask: float,
    max_group_size: int = 500,
    min_bid_kwh: float = 0.0,
) -> list[Bid]:
    """The gate's sell orders: ``offers`` (pinned) aggregated by grid node, each aggregate
    priced at the worst case over its members. ``rewards`` maps an offer id to its
    contract's reward per kWh (``None``: no delegated contract in force)."""
    market = market_of(gate)
    agg = Aggregator(
        resolution_s=gate.resolution_s,
        est_tolerance_s=max(gate.slots * gate.resolution_s, gate.resolution_s),
        max_group_size=max_group_size,
        shapes=False,
    )
    for o in offers:
        try:
            agg.add(o)
        except OptimError:
            continue  # no default to build a box around: not bid, planned as usual
    bids = []
    per_node: dict[str, int] = {}
    for a in sorted(agg.aggregates(), key=lambda a: (a.offer.grid_node, a.offer.start_after)):
        node = a.offer.grid_node
        k = per_node[node] = per_node.get(node, 0) + 1
        a = _renamed(a, f"{gate.gate}.{node}.{k}")
        up = np.zeros(market.slots)
        for m, off in zip(a.members, a.offsets, strict=True):
            ask = np.asarray(
                member_asks(m.offer, market, reward=rewards.get(m.offer.id), default=default_ask)
            )
            first = market.slot_of(a.offer.start_after or 0) + off
            mask = np.zeros(market.slots, dtype=bool)
            mask[first : first + len(m.lower)] = True
            up = np.where(mask, np.maximum(up, ask), up)
        bid = Bid(aggregate=a, node=node, ask_up=up.tolist(), ask_down=up.tolist())
        if bid.flexibility_kwh > max(min_bid_kwh, 1e-9):
            bids.append(bid)
    return bids


def _renamed(a: Aggregate, aid: str) -> Aggregate:
    return Aggregate(
        offer=replace(a.offer, id=aid), members=a.members, offsets=a.offsets, loss=a.loss
    )


def sell_order(bid: Bid, *, market: str, party: str, gate: str) -> protocol.SellOrder:
    return protocol.SellOrder(
        market=market,
        party=party,
        offer=bid.aggregate.offer,
        node=bid.node,
        ask_up_eur_per_kwh=bid.ask_up,
        ask_down_eur_per_kwh=bid.ask_down,
        gate=gate,
    )


# -- awards ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberPart:
    """A member's part of an award: its schedule and its deviation per market slot."""

    offer_id: str
    schedule: PlannedSchedule
    deviation_kwh: list[float]


def member_parts(
    aggregate: FlexOffer,
    members: Sequence[FlexOffer],
    award: AwardLine,
    *,
    market: Market,
) -> list[MemberPart]:
    """Each of ``members``' (pinned offers') parts of ``award`` to ``aggregate``: in each slot
    the award sits at some share of the way from the aggregate's lower to its upper bound,
    and each member takes that share of its own box (:mod:`cloud.optim.disaggregate`). The
    parts of all members sum to the award exactly; any subset can be computed alone."""
    res = aggregate.resolution_s
    prof = aggregate.profiles[0]
    lower = np.asarray(prof.lower_kwh)
    upper = np.asarray(prof.upper_kwh)
    energy = np.asarray(award.energy_kwh, dtype=float)
    if len(energy) != len(lower) or award.start != aggregate.start_after:
        raise OptimError(
            f"award to {aggregate.id}: {len(energy)} slots from {award.start}, the aggregate "
            f"has {len(lower)} from {aggregate.start_after}"
        )
    width = upper - lower
    share = np.clip(
        np.divide(energy - lower, width, out=np.zeros_like(energy), where=width > 1e-12), 0.0, 1.0
    )
    out = []
    for offer in members:
        m = member_of(offer, shapes=False)
        off = (m.earliest - award.start) // res
        x = m.lower + share[off : off + len(m.lower)] * (m.upper - m.lower)
        dev = np.zeros(market.slots)
        first = market.slot_of(m.earliest)
        dev[first : first + len(x)] = x - m.point
        out.append(
            MemberPart(
                offer_id=offer.id,
                schedule=PlannedSchedule(
                    offer_id=offer.id, start=m.earliest, profile=m.profile, energy_kwh=x.tolist()
                ),
                deviation_kwh=dev.tolist(),
            )
        )
    return out


def award_prices(
    award: AwardLine,
    *,
    node_prices: Sequence[float],
    pricing: str,
    bid_up: Sequence[float],
    bid_down: Sequence[float],
) -> list[float]:
    """The price per kWh of the award's deviation in each market slot: the node's uniform
    price, or under pay-as-bid the ask of the direction moved."""
    if pricing != "pay-as-bid":
        return [float(p) for p in node_prices]
    return [float(bid_up[j] if d >= 0 else bid_down[j]) for j, d in enumerate(award.deviation_kwh)]
