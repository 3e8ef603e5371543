"""Start-alignment aggregation: many offers become one Flex-Offer that any planner can plan.

Offers are grouped by grid node, by earliest start and by time flexibility, each within a
tolerance on a coarse grid (``est_tolerance_s``, ``tf_tolerance_s``), and groups hold at most
``max_group_size`` members. Within a group every member is aligned at its earliest start: the
aggregate starts at the members' earliest start, keeps the smallest time flexibility of its
members, and slot ``t`` of the aggregate is bounded by the sum of what the members may take in
their slot ``t - offset``. Scheduling the aggregate ``d`` seconds after its earliest start
starts every member ``d`` seconds after its own, which is inside its window.

Each member contributes a *box*, per-slot bounds that lie wholly inside its own feasible set:
its profile's bounds when it has no other constraint, else the largest box around its default
schedule, ``[m - g (m - lower), m + g (upper - m)]``, that keeps every total, dependency and
polytope row (each row's worst case over the box is linear in ``g``). A sum of boxes is a box,
so any schedule of the aggregate splits into member schedules that are feasible
(:mod:`cloud.optim.disaggregate`): the guarantee costs the flexibility outside the boxes, which
:class:`Loss` reports together with the time flexibility given up by alignment and the
exclusive-or profiles not used (a member is aggregated with its default's profile).

Offers whose profile is per-slot bounds plus running-sum rows (heat pumps, batteries: every
dependency row has ``a == b``) keep far more: such a member divided by its scale (its largest
slot bound) is a *shape*; members of similar shapes share a group whose aggregate is the summed
scale times the intersection of their shapes (members idle outside their own slots). The
intersection lies inside every member's shape, so each member can run the aggregate's energy
times its share of the scale, and totals, comfort bands and states of charge survive as the
aggregate's dependency rows.

The :class:`Aggregator` is incremental: ``add`` and ``remove`` update a group in place;
aggregates are rebuilt only for groups that changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

import protocol
from protocol import DefaultSchedule, Dependency, FlexOffer, Profile

from .blocks import Block, view
from .errors import OptimError
from .oracle import Battery, as_battery, cheapest, reach


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One offer inside an aggregate: its profile, window and box (kWh per slot)."""

    offer: FlexOffer
    profile: int
    earliest: int
    flexibility_s: int
    lower: np.ndarray
    upper: np.ndarray
    point: np.ndarray
    #: energy flexibility of the member's own profile, sum of (upper - lower)
    own_flex_kwh: float
    profiles_dropped: int
    #: for a generalised battery (bounds on slots and running sums only): its profile divided
    #: by ``scale``, so that members of one shape aggregate exactly (see the module docstring)
    shape: Battery | None = None
    scale: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Loss:
    """Flexibility that aggregation gave up, summed over the members."""

    time_flexibility_s: int
    energy_flexibility_kwh: float
    profiles_dropped: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregate:
    """An aggregate offer, its members with their offsets in slots, and what it lost."""

    offer: FlexOffer
    members: tuple[Member, ...]
    offsets: tuple[int, ...]
    loss: Loss


def member_of(offer: FlexOffer, *, shapes: bool = True) -> Member:
    """The member record of a valid offer: the block of its default's profile and its box, or
    (with ``shapes``, for a generalised battery) its normalised shape."""
    v = view(offer)
    block = next((b for b in v.blocks if b.profile == offer.default.profile), None)
    if block is None or block.point is None:
        raise OptimError(f"offer {offer.id}: its default profile cannot start in its window")
    # shapes for offers with running-sum rows (heat pumps, batteries): they share shapes
    # widely; an offer with a total alone (an EV) has a shape of its own need and would make
    # many small groups, so it takes the box path
    bat = as_battery(block) if shapes and block.deps is not None else None
    if bat is not None:
        scale = float(max(np.abs(block.lower).max(), np.abs(block.upper).max(), 1e-9))
        shape = Battery(
            lower=bat.lower / scale,
            upper=bat.upper / scale,
            run_lo=bat.run_lo / scale,
            run_hi=bat.run_hi / scale,
        )
        return Member(
            offer=offer,
            profile=block.profile,
            earliest=block.first_start,
            flexibility_s=block.last_start - block.first_start,
            lower=block.lower,
            upper=block.upper,
            point=block.point,
            own_flex_kwh=float((block.upper - block.lower).sum()),
            profiles_dropped=len(v.blocks) - 1,
            shape=shape,
            scale=scale,
        )
    lo, hi = inner_box(block)
    return Member(
        offer=offer,
        profile=block.profile,
        earliest=block.first_start,
        flexibility_s=block.last_start - block.first_start,
        lower=lo,
        upper=hi,
        point=block.point,
        own_flex_kwh=float((block.upper - block.lower).sum()),
        profiles_dropped=len(v.blocks) - 1,
    )


def inner_box(b: Block) -> tuple[np.ndarray, np.ndarray]:
    """Per-slot bounds inside the block's feasible set (see the module docstring)."""
    if not b.coupled:
        return b.lower, b.upper
    m = b.point if b.point is not None else b.lower
    up = np.maximum(b.upper - m, 0.0)
    dn = np.maximum(m - b.lower, 0.0)
    slack: list[np.ndarray] = []
    grow: list[np.ndarray] = []
    if b.total is not None:
        total = float(m.sum())
        slack += [np.array([b.total[1] - total, total - b.total[0]])]
        grow += [np.array([up.sum(), dn.sum()])]
    if b.deps is not None:
        slot = b.deps[:, 0].astype(np.int64)
        a, bb, c = b.deps[:, 1], b.deps[:, 2], b.deps[:, 3]
        cum_m = np.concatenate(([0.0], np.cumsum(m)))[slot]
        cum_up = np.concatenate(([0.0], np.cumsum(up)))[slot]
        cum_dn = np.concatenate(([0.0], np.cumsum(dn)))[slot]
        slack.append(c - (a * cum_m + bb * m[slot]))
        grow.append(
            np.where(a > 0, a * cum_up, -a * cum_dn)
            + np.where(bb > 0, bb * up[slot], -bb * dn[slot])
        )
    if b.poly_a is not None and b.poly_b is not None:
        slack.append(b.poly_b - b.poly_a @ m)
        grow.append(np.maximum(b.poly_a, 0) @ up + np.maximum(-b.poly_a, 0) @ dn)
    s = np.concatenate(slack)
    g = np.concatenate(grow)
    gamma = 1.0
    limited = g > 1e-12
    if limited.any():
        gamma = float(np.min(np.maximum(s[limited], 0.0) / g[limited]))
    gamma = min(max(gamma * (1 - 1e-9), 0.0), 1.0)
    return m - gamma * dn, m + gamma * up


@dataclass(slots=True)
class _Group:
    key: tuple[str, int, int, int]
    anchor: int
    seq: int
    members: dict[str, tuple[Member, int]] = field(default_factory=dict)  # id -> (member, offset)
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0))
    point: np.ndarray = field(default_factory=lambda: np.zeros(0))
    built: Aggregate | None = None

    def _grow(self, size: int) -> None:
        if size > len(self.lower):
            extra = size - len(self.lower)
            self.lower = np.concatenate((self.lower, np.zeros(extra)))
            self.upper = np.concatenate((self.upper, np.zeros(extra)))
            self.point = np.concatenate((self.point, np.zeros(extra)))

    def add(self, m: Member, resolution_s: int) -> None:
        off = (m.earliest - self.anchor) // resolution_s
        n = len(m.lower)
        self._grow(off + n)
        self.lower[off : off + n] += m.lower
        self.upper[off : off + n] += m.upper
        self.point[off : off + n] += m.point
        self.members[m.offer.id] = (m, off)
        self.built = None

    def remove(self, offer_id: str) -> None:
        m, off = self.members.pop(offer_id)
        n = len(m.lower)
        self.lower[off : off + n] -= m.lower
        self.upper[off : off + n] -= m.upper
        self.point[off : off + n] -= m.point
        self.built = None


def _meet(shapes: Sequence[Battery]) -> Battery:
    """The intersection of normalised shapes: tightest bound of every slot and running sum."""
    return Battery(
        lower=np.max([b.lower for b in shapes], axis=0),
        upper=np.min([b.upper for b in shapes], axis=0),
        run_lo=np.max([b.run_lo for b in shapes], axis=0),
        run_hi=np.min([b.run_hi for b in shapes], axis=0),
    )


def tube_kwh(b: Battery) -> float:
    """Energy flexibility of a shape: the summed width of its reachable running sums (the
    area of its cumulative-energy tube, in kWh x slots). It counts what a total or a comfort
    band takes away, which a sum of slot widths would not."""
    lo, hi = reach(b)
    return float(np.maximum(hi - lo, 0.0).sum())


def _meet2(a: Battery, b: Battery) -> Battery:
    return Battery(
        lower=np.maximum(a.lower, b.lower),
        upper=np.minimum(a.upper, b.upper),
        run_lo=np.maximum(a.run_lo, b.run_lo),
        run_hi=np.minimum(a.run_hi, b.run_hi),
    )


def _nonempty(b: Battery) -> bool:
    """Whether some schedule meets ``b``: the running sums reachable after each slot form an
    interval, computed forward (a prefix maximum and a prefix minimum)."""
    if np.any(b.lower > b.upper + 1e-12):
        return False
    lo, hi = reach(b)
    return bool(np.all(lo <= hi + 1e-9))


def _shape_key(m: Member, est_tolerance_s: int, tf_tolerance_s: int) -> tuple[object, ...]:
    """Members that may share a shape: same node and load type, earliest start and end within
    a tolerance, similar time flexibility, total and comfort band (coarse buckets of the
    normalised values)."""
    b = m.shape
    assert b is not None
    n = len(b.lower)
    band = b.run_hi - b.run_lo
    finite = band[np.isfinite(band)]
    width = float(np.median(finite)) if len(finite) else 0.0
    total_lo = b.run_lo[-1] / n if np.isfinite(b.run_lo[-1]) else -9.0
    total_hi = b.run_hi[-1] / n if np.isfinite(b.run_hi[-1]) else 9.0
    end = m.earliest + n * m.offer.resolution_s
    return (
        "shape",
        m.offer.grid_node,
        m.offer.load_type,
        m.earliest // est_tolerance_s,
        end // est_tolerance_s,
        m.flexibility_s // tf_tolerance_s,
        round(4 * float(b.lower.min())),
        round(20 * total_lo),
        round(20 * total_hi),
        round(np.log2(max(width, 1e-3))),
    )


def _in_window(m: Member, first_slot: int, size: int) -> Battery:
    """``m``'s shape over a group's window of ``size`` slots from ``first_slot``: no energy
    outside its own slots, its running sum unbounded before them (it is 0 there) and held to
    its final bounds after them (it no longer moves)."""
    b = m.shape
    assert b is not None
    n = len(b.lower)
    off = m.earliest // m.offer.resolution_s - first_slot
    lower = np.zeros(size)
    upper = np.zeros(size)
    run_lo = np.full(size, -np.inf)
    run_hi = np.full(size, np.inf)
    lower[off : off + n] = b.lower
    upper[off : off + n] = b.upper
    run_lo[off : off + n] = b.run_lo
    run_hi[off : off + n] = b.run_hi
    run_lo[off + n :] = b.run_lo[-1]
    run_hi[off + n :] = b.run_hi[-1]
    return Battery(lower=lower, upper=upper, run_lo=run_lo, run_hi=run_hi)


@dataclass(slots=True)
class _ShapeGroup:
    """Members of one normalised shape over a window of slots: the aggregate is their summed
    scale times the intersection of their shapes, which lies inside every member's shape."""

    seq: int
    first_slot: int
    size: int
    members: dict[str, Member] = field(default_factory=dict)
    meet: Battery | None = None
    built: Aggregate | None = None

    def fits(self, m: Member) -> Battery | None:
        """The group's shape with ``m`` added, or ``None`` when ``m`` does not fit."""
        first = m.earliest // m.offer.resolution_s
        if first < self.first_slot or first + len(m.lower) > self.first_slot + self.size:
            return None
        shape = _in_window(m, self.first_slot, self.size)
        meet = shape if self.meet is None else _meet2(self.meet, shape)
        return meet if _nonempty(meet) else None

    def add(self, m: Member, meet: Battery) -> None:
        self.meet = meet
        self.members[m.offer.id] = m
        self.built = None

    def remove(self, offer_id: str) -> None:
        del self.members[offer_id]
        shapes = [_in_window(m, self.first_slot, self.size) for m in self.members.values()]
        self.meet = _meet(shapes) if shapes else None
        self.built = None


class Aggregator:
    """Incremental start-alignment aggregation (see the module docstring)."""

    def __init__(
        self,
        *,
        resolution_s: int = 900,
        est_tolerance_s: int = 3600,
        tf_tolerance_s: int = 3600,
        max_group_size: int = 500,
        issuer: str = "fman",
        shapes: bool = True,
    ) -> None:
        if est_tolerance_s < resolution_s or tf_tolerance_s < resolution_s:
            raise OptimError("tolerances must be at least one slot")
        if max_group_size < 1:
            raise OptimError("max_group_size must be at least 1")
        self.resolution_s = resolution_s
        self.est_tolerance_s = est_tolerance_s
        self.tf_tolerance_s = tf_tolerance_s
        self.max_group_size = max_group_size
        self.issuer = issuer
        self.shapes = shapes
        self._groups: dict[tuple[str, int, int, int], _Group] = {}
        self._open: dict[tuple[str, int, int], _Group] = {}
        self._where: dict[str, _Group | _ShapeGroup] = {}
        self._shapes: dict[int, _ShapeGroup] = {}
        self._open_shapes: dict[tuple[object, ...], _ShapeGroup] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._where)

    def add(self, offer: FlexOffer) -> None:
        """Add or replace ``offer`` (an update with the same id moves it)."""
        if offer.resolution_s != self.resolution_s:
            raise OptimError(
                f"offer {offer.id}: resolution {offer.resolution_s} s, "
                f"the aggregator's is {self.resolution_s} s"
            )
        self.add_member(member_of(offer, shapes=self.shapes))

    def add_member(self, m: Member) -> None:
        """Add an offer whose member record is already known (cached at ingest)."""
        if m.offer.id in self._where:
            self.remove(m.offer.id)
        if m.shape is not None:
            self._add_shaped(m)
            return
        bucket = m.earliest // self.est_tolerance_s
        base = (m.offer.grid_node, bucket, m.flexibility_s // self.tf_tolerance_s)
        group = self._open.get(base)
        if group is None or len(group.members) >= self.max_group_size:
            self._seq += 1
            group = _Group(
                key=(*base, self._seq), anchor=bucket * self.est_tolerance_s, seq=self._seq
            )
            self._groups[group.key] = group
            self._open[base] = group
        group.add(m, self.resolution_s)
        self._where[m.offer.id] = group

    def _add_shaped(self, m: Member) -> None:
        key = _shape_key(m, self.est_tolerance_s, self.tf_tolerance_s)
        group = self._open_shapes.get(key)
        meet = None
        if group is not None and len(group.members) < self.max_group_size:
            meet = group.fits(m)
        if group is None or meet is None:
            self._seq += 1
            res = self.resolution_s
            first = key[3] * self.est_tolerance_s // res  # type: ignore[operator]
            last = (key[4] + 1) * self.est_tolerance_s // res  # type: ignore[operator]
            group = _ShapeGroup(seq=self._seq, first_slot=first, size=last - first)
            self._shapes[group.seq] = group
            self._open_shapes[key] = group
            meet = group.fits(m)
            if meet is None:
                raise OptimError(f"offer {m.offer.id}: its own shape admits no schedule")
        group.add(m, meet)
        self._where[m.offer.id] = group

    def remove(self, offer_id: str) -> None:
        """Take ``offer_id`` out of its aggregate; unknown ids are ignored (idempotent)."""
        group = self._where.pop(offer_id, None)
        if group is None:
            return
        if isinstance(group, _ShapeGroup):
            group.remove(offer_id)
            if not group.members:
                del self._shapes[group.seq]
                for key, g in list(self._open_shapes.items()):
                    if g is group:
                        del self._open_shapes[key]
            return
        group.remove(offer_id)
        if not group.members:
            del self._groups[group.key]
            if self._open.get(group.key[:3]) is group:
                del self._open[group.key[:3]]

    def aggregates(self) -> list[Aggregate]:
        """One aggregate per non-empty group, rebuilt where members changed."""
        out = []
        for group in self._groups.values():
            if group.built is None:
                group.built = self._build(group)
            out.append(group.built)
        for shaped in self._shapes.values():
            if shaped.built is None:
                shaped.built = self._build_shaped(shaped)
            out.append(shaped.built)
        return out

    def _build_shaped(self, group: _ShapeGroup) -> Aggregate:
        res = self.resolution_s
        members = list(group.members.values())
        q = group.meet
        assert q is not None
        # the aggregate runs over the slots some member may use; outside them every member
        # is idle, which the shape's zero bounds already say
        live = np.flatnonzero((q.upper != 0) | (q.lower != 0))
        lead = int(live[0]) if len(live) else 0
        tail = int(live[-1]) + 1 if len(live) else 1
        # after the last live slot the running sum no longer moves: it must already meet
        # every later bound (a member's total may sit beyond the trimmed slots)
        run_lo = q.run_lo[lead:tail].copy()
        run_hi = q.run_hi[lead:tail].copy()
        run_lo[-1] = q.run_lo[tail - 1 :].max()
        run_hi[-1] = q.run_hi[tail - 1 :].min()
        q = Battery(
            lower=q.lower[lead:tail], upper=q.upper[lead:tail], run_lo=run_lo, run_hi=run_hi
        )
        total_scale = sum(m.scale for m in members)
        found = cheapest(q, np.zeros(len(q.lower)))
        if found is None:  # cannot happen: every addition kept the shape non-empty
            raise OptimError(f"aggregate {group.seq}: empty shape")
        deps = []
        for j in range(len(q.lower)):
            if np.isfinite(q.run_hi[j]):
                deps.append(Dependency(j, 1.0, 1.0, float(total_scale * q.run_hi[j])))
            if np.isfinite(q.run_lo[j]):
                deps.append(Dependency(j, -1.0, -1.0, float(-total_scale * q.run_lo[j])))
        lower = total_scale * q.lower
        upper = np.maximum(total_scale * q.upper, lower)
        point = np.clip(total_scale * found[1], lower, upper)
        first = members[0]
        earliest = (group.first_slot + lead) * res
        flex = min(m.flexibility_s for m in members)
        assignment = min(min(m.offer.assignment_before for m in members), earliest + flex)
        acceptance = min(min(m.offer.acceptance_before for m in members), assignment)
        offer = FlexOffer(
            id=f"agg.{group.seq}",
            issuer=self.issuer,
            device="aggregate",
            load_type=first.offer.load_type,
            grid_node=first.offer.grid_node,
            created_at=min(m.offer.created_at for m in members),
            resolution_s=res,
            acceptance_before=acceptance,
            assignment_before=assignment,
            start_after=earliest,
            start_before=earliest + flex,
            profiles=[
                Profile(lower_kwh=lower.tolist(), upper_kwh=upper.tolist(), dependencies=deps)
            ],
            default=DefaultSchedule(start=earliest, energy_kwh=point.tolist()),
        )
        own = sum(tube_kwh(m.shape) * m.scale for m in members if m.shape is not None)
        loss = Loss(
            time_flexibility_s=sum(m.flexibility_s for m in members) - flex * len(members),
            energy_flexibility_kwh=max(own - total_scale * tube_kwh(q), 0.0),
            profiles_dropped=sum(m.profiles_dropped for m in members),
        )
        offsets = tuple((m.earliest - earliest) // res for m in members)
        return Aggregate(offer=offer, members=tuple(members), offsets=offsets, loss=loss)

    def _build(self, group: _Group) -> Aggregate:
        res = self.resolution_s
        members = [m for m, _ in group.members.values()]
        offsets = [off for _, off in group.members.values()]
        first = min(offsets)
        end = max(off + len(m.lower) for m, off in group.members.values())
        earliest = group.anchor + first * res
        flex = min(m.flexibility_s for m in members)
        lower = group.lower[first:end].copy()
        upper = np.maximum(group.upper[first:end], lower)
        point = np.clip(group.point[first:end], lower, upper)
        created = min(m.offer.created_at for m in members)
        assignment = min(min(m.offer.assignment_before for m in members), earliest + flex)
        acceptance = min(min(m.offer.acceptance_before for m in members), assignment)
        node = members[0].offer.grid_node
        offer = FlexOffer(
            id=f"agg.{group.seq}",
            issuer=self.issuer,
            device="aggregate",
            load_type="aggregate",
            grid_node=node,
            created_at=created,
            resolution_s=res,
            acceptance_before=acceptance,
            assignment_before=assignment,
            start_after=earliest,
            start_before=earliest + flex,
            profiles=[Profile(lower_kwh=lower.tolist(), upper_kwh=upper.tolist())],
            default=DefaultSchedule(start=earliest, energy_kwh=point.tolist()),
        )
        own = sum(m.own_flex_kwh for m in members)
        loss = Loss(
            time_flexibility_s=sum(m.flexibility_s for m in members) - flex * len(members),
            energy_flexibility_kwh=max(own - float((upper - lower).sum()), 0.0),
            profiles_dropped=sum(m.profiles_dropped for m in members),
        )
        return Aggregate(
            offer=offer,
            members=tuple(members),
            offsets=tuple(off - first for off in offsets),
            loss=loss,
        )


def aggregate(offers: Iterable[FlexOffer], **options: int) -> list[Aggregate]:
    """Aggregate ``offers`` in one go (see :class:`Aggregator` for the options)."""
    agg = Aggregator(**options)  # type: ignore[arg-type]
    for o in offers:
        agg.add(o)
    return agg.aggregates()


def total_loss(aggregates: Sequence[Aggregate]) -> Loss:
    return Loss(
        time_flexibility_s=sum(a.loss.time_flexibility_s for a in aggregates),
        energy_flexibility_kwh=sum(a.loss.energy_flexibility_kwh for a in aggregates),
        profiles_dropped=sum(a.loss.profiles_dropped for a in aggregates),
    )


def is_valid(aggregate_offer: FlexOffer) -> bool:
    """The aggregate is itself a valid Flex-Offer."""
    return not protocol.validate_offer(aggregate_offer)
