"""The decisions of the planning cycle, as pure functions: what to plan, the load already
fixed, and what to publish.

No clock, no files, no store: the cycle (:mod:`.cycle`) reads the offers, the schedules in
force and the time, hands them here, and stores and sends what comes back. So every rule
below is tested on plain values (``tests/fman/test_planning.py``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from msgspec.structs import replace

import protocol
from protocol import FlexOffer, check_assignment, start_window

from ..optim import PlannedSchedule, PlanRequest, PlanResult
from . import execution, stability
from .config import ObjectiveSection
from .store import NewSchedule, StoredOffer, StoredSchedule

#: Refusal codes a new plan can cure (see ``agent.core``).
CURABLE = frozenset({"stale_revision", "infeasible", "start_passed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The open offers to plan (narrowed to starts the schedule can still reach), the load
    of every other active offer per slot (in total and per grid node), and the defaults due
    for offers too close to their deadline to plan."""

    plannable: list[FlexOffer] = field(default_factory=list)
    originals: dict[str, FlexOffer] = field(default_factory=dict)
    in_force: dict[str, PlannedSchedule] = field(default_factory=dict)
    fixed: dict[int, float] = field(default_factory=dict)
    fixed_by_node: dict[str, dict[int, float]] = field(default_factory=dict)
    defaults: list[NewSchedule] = field(default_factory=list)


def select(
    offers: Iterable[tuple[StoredOffer, FlexOffer]],
    current: Mapping[str, StoredSchedule],
    *,
    now: float,
    earliest: int,
    horizon_s: float,
    full: bool,
    resolution_s: int,
    locked: Collection[str] = frozenset(),
) -> Selection:
    """Plan the open offers whose deadline lies within the horizon and at or after
    ``earliest`` (the first start a schedule can reach). ``full``: every such offer;
    otherwise only those with no fitting planned schedule, the others counted at theirs.
    An open offer too close to its deadline with nothing valid in force gets its default.
    ``locked`` offers (carrying market awards) keep the schedule in force, counted as fixed."""
    sel = Selection()
    for row, offer in offers:
        sched = current.get(offer.id)
        open_ = row.state in ("accepted", "assigned")
        deadline = row.assignment_before or 0
        if (
            open_
            and (sched is None or offer.id not in locked)
            and earliest <= deadline <= now + horizon_s
            and (sched is None or sched.start > earliest)
            and start_window(offer)[1] >= earliest
        ):
            settled = sched is not None and sched.kind == "planned" and fits(offer, sched)
            narrowed = narrow(offer, earliest)
            if (full or not settled) and narrowed is not None:
                sel.plannable.append(narrowed)
                sel.originals[offer.id] = offer
                if settled and sched is not None:
                    sel.in_force[offer.id] = planned(sched)
                continue
        elif (
            open_
            and now < deadline <= now + horizon_s
            and (sched is None or not fits(offer, sched))
        ):
            # too close to its deadline (or its start) to plan, and nothing valid in force:
            # the default. Offers beyond the horizon wait, counted at their default.
            sel.defaults.append(default_row(offer))
            sched = None
        if sched is not None:
            start, energy = sched.start, sched.energy_kwh
        else:
            start, energy = offer.default.start, list(offer.default.energy_kwh)
        for t, e in execution.per_slot(start, energy, offer.resolution_s, resolution_s).items():
            sel.fixed[t] = sel.fixed.get(t, 0.0) + e
            node = sel.fixed_by_node.setdefault(offer.grid_node, {})
            node[t] = node.get(t, 0.0) + e
    return sel


#: A net award below this (kWh per slot and node) binds nothing.
AWARD_EPS_KWH = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeBands:
    """Per grid node and slot start (kWh), what the planned offers' load there must stay at
    or below (``upper``) and at or above (``lower``)."""

    upper: dict[str, dict[int, float]] = field(default_factory=dict)
    lower: dict[str, dict[int, float]] = field(default_factory=dict)


def award_bands(
    sel: Selection, awarded: Mapping[tuple[str, int], float], *, resolution_s: int
) -> NodeBands:
    """What the rest of the portfolio must keep so as not to undo what FMAN sold.

    ``awarded`` is the signed deviation FMAN sold per (grid node, slot start), carried by
    offers whose schedules are the awards' (locked, counted as fixed). A market buys a
    deviation from the defaults of the whole node: a DSO's congestion is relieved only if the
    node's load falls. Planned towards the target alone, the other offers at that node could
    fill the very slots the award emptied. So where FMAN sold down, the planned offers at that
    node stay at or below their defaults' load in the slot; where it sold up, at or above.
    Where no offer can keep that, the planner pays the peak weight per kWh and breaks it
    (:class:`cloud.optim.terms.NodeLimits`)."""
    base: dict[str, dict[int, float]] = {}
    for offer in sel.plannable:
        d = sel.originals.get(offer.id, offer).default
        loads = base.setdefault(offer.grid_node, {})
        for t, e in execution.per_slot(
            d.start, d.energy_kwh, offer.resolution_s, resolution_s
        ).items():
            loads[t] = loads.get(t, 0.0) + e
    out = NodeBands()
    for (node, t), kwh in sorted(awarded.items()):
        if node not in base or abs(kwh) <= AWARD_EPS_KWH:
            continue
        side = out.upper if kwh < 0 else out.lower
        side.setdefault(node, {})[t] = base[node].get(t, 0.0)
    return out


def awarded_per_node(
    awards: Iterable[tuple[str, int, float]],
    offers: Mapping[str, FlexOffer],
    *,
    resolution_s: int,
) -> dict[tuple[str, int], float]:
    """The signed awarded deviation per (grid node, slot start on the planning grid), from
    ``(offer id, market slot start, kWh)`` rows. A market slot is its member offer's slot
    (FMAN bids only offers on the gate's grid); an award of an offer no longer active has
    run, and binds nothing."""
    out: dict[tuple[str, int], float] = {}
    for offer_id, slot, kwh in awards:
        offer = offers.get(offer_id)
        if offer is None:
            continue
        for t, e in execution.per_slot(slot, [kwh], offer.resolution_s, resolution_s).items():
            key = (offer.grid_node, t)
            out[key] = out.get(key, 0.0) + e
    return out


def request_for(
    sel: Selection,
    *,
    objective: ObjectiveSection,
    target: Mapping[int, float],
    prices: Mapping[int, float],
    resolution_s: int,
    time_limit_s: float,
    bands: NodeBands | None = None,
) -> PlanRequest:
    """The planning problem net of the fixed load: the target less what is fixed per slot,
    each node's peak limit less its highest fixed load, and ``bands``
    (:func:`award_bands`)."""
    residual = {t: v - sel.fixed.get(t, 0.0) for t, v in target.items()}
    peak = {
        node: max(
            0.0, kw - max(sel.fixed_by_node.get(node, {0: 0.0}).values()) * 3600 / resolution_s
        )
        for node, kw in objective.peak_kw.items()
    }
    return PlanRequest(
        offers=sel.plannable,
        resolution_s=resolution_s,
        objective=objective.kind,
        target_kwh=residual,
        prices_eur_per_kwh=prices,
        peak_kw_by_node=peak,
        node_max_kwh=bands.upper if bands is not None else {},
        node_min_kwh=bands.lower if bands is not None else {},
        weights=objective.weights,
        price_delegated=objective.price_delegated,
        time_limit_s=time_limit_s,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The schedules to store (new versions only), and how stability chose them."""

    rows: list[NewSchedule]
    changes_offered: int
    changed: int
    infeasible: int
    defaulted: int


def decide(
    sel: Selection,
    request: PlanRequest,
    result: PlanResult,
    *,
    current: Mapping[str, StoredSchedule],
    change_cost: float,
    tolerance_kwh: float,
) -> Decision:
    """Every planned offer's schedule: the planner's where it passes the protocol's check,
    else its default, explicitly; a schedule in force is replaced only where that pays
    (:mod:`.stability`), and a new version only where it differs from the one in force."""
    chosen = {s.offer_id: s for s in result.schedules}
    defaulted: set[str] = set()
    infeasible = 0
    for offer in (sel.originals[o.id] for o in sel.plannable):
        s = chosen.get(offer.id)
        if s is not None and check_assignment(
            offer, start=s.start, profile=s.profile, energy_kwh=list(s.energy_kwh)
        ):
            infeasible += 1
            s = None
        if s is None:  # the planner could not place it: its default, explicitly
            d = offer.default
            defaulted.add(offer.id)
            chosen[offer.id] = PlannedSchedule(
                offer_id=offer.id, start=d.start, profile=d.profile, energy_kwh=list(d.energy_kwh)
            )
    choice = stability.choose(
        request,
        in_force=sel.in_force,
        planned={oid: chosen[oid] for oid in sel.originals},
        change_cost=change_cost,
        tolerance_kwh=tolerance_kwh,
    )
    rows = []
    for oid, s in choice.adopted.items():
        offer = sel.originals[oid]
        new = NewSchedule(
            offer_id=oid,
            issuer=offer.issuer,
            offer_revision=offer.revision,
            start=s.start,
            profile=s.profile,
            energy_kwh=[float(e) for e in s.energy_kwh],
            kind="default" if oid in defaulted else "planned",
        )
        old = current.get(oid)
        if old is None or not same(old, new):
            rows.append(new)
    return Decision(
        rows=rows,
        changes_offered=choice.changes_offered,
        changed=choice.changed,
        infeasible=infeasible,
        defaulted=len(defaulted),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Publication:
    """New schedules split by whether they can still reach their agent in time."""

    send: list[NewSchedule]
    #: defaults that cannot: recorded as what the agent runs by itself
    implicit: list[NewSchedule]
    #: planned schedules that cannot: dropped
    too_late: int


def publication(
    rows: Sequence[NewSchedule], deadlines: Mapping[str, int], *, in_time: float
) -> Publication:
    """Never issue a schedule that can no longer reach its agent before the deadline."""
    send = [r for r in rows if deadlines.get(r.offer_id, 0) > in_time]
    late = [r for r in rows if deadlines.get(r.offer_id, 0) <= in_time]
    return Publication(
        send=send,
        implicit=[r for r in late if r.kind == "default"],
        too_late=sum(1 for r in late if r.kind != "default"),
    )


def curable(reason_json: str) -> bool:
    """Whether every refusal code of a schedule answer is one a new plan can cure."""
    try:
        codes = {r.get("code") for r in json.loads(reason_json or "[]")}
    except (ValueError, AttributeError):
        return False
    return bool(codes) and codes <= CURABLE


def default_row(offer: FlexOffer) -> NewSchedule:
    d = offer.default
    return NewSchedule(
        offer_id=offer.id,
        issuer=offer.issuer,
        offer_revision=offer.revision,
        start=d.start,
        profile=d.profile,
        energy_kwh=list(d.energy_kwh),
        kind="default",
    )


def same(old: StoredSchedule, new: NewSchedule) -> bool:
    return (
        old.start == new.start
        and old.profile == new.profile
        and len(old.energy_kwh) == len(new.energy_kwh)
        and all(abs(a - b) <= 1e-6 for a, b in zip(old.energy_kwh, new.energy_kwh, strict=True))
    )


def narrow(offer: FlexOffer, earliest: int) -> FlexOffer | None:
    """``offer`` as the planner may place it: never at a start before ``earliest`` (when the
    schedule could reach the agent). Its default moves along where the window's start does
    (the planner requires a valid offer, with a feasible default); ``None`` if the default
    cannot start that late."""
    lo = start_window(offer)[0]
    if lo >= earliest:
        return offer
    d = offer.default
    narrowed = replace(
        offer, start_after=earliest, default=replace(d, start=max(d.start, earliest))
    )
    # built from a decoded offer: its numbers are known to be finite
    return None if protocol.validate_offer(narrowed, types_checked=True) else narrowed


def planned(s: StoredSchedule) -> PlannedSchedule:
    return PlannedSchedule(
        offer_id=s.offer_id, start=s.start, profile=s.profile, energy_kwh=list(s.energy_kwh)
    )


def fits(offer: FlexOffer, s: StoredSchedule) -> bool:
    return not check_assignment(offer, start=s.start, profile=s.profile, energy_kwh=s.energy_kwh)
