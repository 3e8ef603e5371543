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

from .blocks import Block, default_block
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
    #: energy flexibility of the member's own profile: the sum of (upper - lower) for a box,
    #: the area of its running-sum tube for a shape (see :func:`tube_kwh`)
    own_flex_kwh: float
    profiles_dropped: int
    #: for a generalised battery (bounds on slots and running sums only): its profile divided
    #: by ``scale``, so that members of one shape aggregate exactly (see the module docstring)
    shape: Battery | None = None
    scale: float = 0.0
    #: what members sharing a group must agree on, whatever the tolerances: the kind (box or
    #: shape), the grid node, and for a shape its load type and coarse buckets of the shape
    #: (lowest slot bound, total range, comfort band); computed once, at ingest
    traits: tuple[object, ...] = ()
    #: end of the member's last slot (epoch s)
    end: int = 0
    #: the arrays grouping reads, as rows of one matrix (a box: lower, upper, point; a shape:
    #: the shape's lower, upper, run_lo, run_hi) and the numbers it reads (see ``_FACTS``):
    #: laid out once so that a group of hundreds is summed or intersected in a few numpy calls
    data: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    facts: np.ndarray = field(default_factory=lambda: np.zeros(0))


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
    block, usable = default_block(offer)
    if block is None or block.point is None:
        raise OptimError(f"offer {offer.id}: its default profile cannot start in its window")
    # shapes for offers with running-sum rows (heat pumps, batteries): they share shapes
    # widely; an offer with a total alone (an EV) has a shape of its own need and would make
    # many small groups, so it takes the box path
    bat = as_battery(block) if shapes and block.deps is not None else None
    dropped = usable - 1
    if bat is not None:
        scale = float(max(np.abs(block.lower).max(), np.abs(block.upper).max(), 1e-9))
        data = np.stack((bat.lower, bat.upper, bat.run_lo, bat.run_hi)) / scale
        shape = Battery(lower=data[0], upper=data[1], run_lo=data[2], run_hi=data[3])
        own = tube_kwh(shape) * scale
        return Member(
            offer=offer,
            profile=block.profile,
            earliest=block.first_start,
            flexibility_s=block.last_start - block.first_start,
            lower=block.lower,
            upper=block.upper,
            point=block.point,
            own_flex_kwh=own,
            profiles_dropped=dropped,
            shape=shape,
            scale=scale,
            traits=("shape", offer.grid_node, offer.load_type, *_features(shape)),
            end=block.first_start + block.n * offer.resolution_s,
            data=data,
            facts=_facts(offer, block, scale, own, dropped),
        )
    data = np.stack((*inner_box(block), block.point))
    own = float((block.upper - block.lower).sum())
    return Member(
        offer=offer,
        profile=block.profile,
        earliest=block.first_start,
        flexibility_s=block.last_start - block.first_start,
        lower=data[0],
        upper=data[1],
        point=data[2],
        own_flex_kwh=own,
        profiles_dropped=dropped,
        data=data,
        facts=_facts(offer, block, 0.0, own, dropped),
        traits=("box", offer.grid_node),
        end=block.first_start + block.n * offer.resolution_s,
    )


#: the columns of ``Member.facts``
_EARLIEST, _FLEX, _SCALE, _OWN, _CREATED, _ASSIGN, _ACCEPT, _DROPPED, _SLOTS = range(9)


def _facts(offer: FlexOffer, b: Block, scale: float, own: float, dropped: int) -> np.ndarray:
    return np.array(
        (
            b.first_start,
            b.last_start - b.first_start,
            scale,
            own,
            offer.created_at,
            offer.assignment_before,
            offer.acceptance_before,
            dropped,
            b.n,
        ),
        dtype=float,
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


def tube_kwh(b: Battery) -> float:
    """Energy flexibility of a shape: the summed width of its reachable running sums (the
    area of its cumulative-energy tube, in kWh x slots). It counts what a total or a comfort
    band takes away, which a sum of slot widths would not."""
    lo, hi = reach(b)
    return float(np.maximum(hi - lo, 0.0).sum())


def _features(b: Battery) -> tuple[int, ...]:
    """Members that may share a shape agree on these buckets of the normalised values: the
    lowest slot bound, the total range per slot and the comfort band's width."""
    n = len(b.lower)
    band = b.run_hi - b.run_lo
    finite = band[np.isfinite(band)]
    mid = len(finite) // 2  # the median band (the upper middle), without np.median's overhead
    width = float(np.partition(finite, mid)[mid]) if len(finite) else 0.0
    total_lo = b.run_lo[-1] / n if np.isfinite(b.run_lo[-1]) else -9.0
    total_hi = b.run_hi[-1] / n if np.isfinite(b.run_hi[-1]) else 9.0
    return (
        round(4 * float(b.lower.min())),
        round(20 * total_lo),
        round(20 * total_hi),
        round(np.log2(max(width, 1e-3))),
    )


def _nonempty_rows(
    lower: np.ndarray, upper: np.ndarray, run_lo: np.ndarray, run_hi: np.ndarray
) -> np.ndarray:
    """For each row of shapes (one per row of the matrices), whether some schedule meets it:
    the running sums reachable after each slot form an interval, computed forward (a prefix
    maximum and a prefix minimum, see :func:`~cloud.optim.oracle.reach`)."""
    lc = np.cumsum(lower, axis=1)
    hc = np.cumsum(upper, axis=1)
    zero = np.zeros((len(lower), 1))
    lo = lc + np.maximum.accumulate(np.hstack((zero, run_lo - lc)), axis=1)[:, 1:]
    hi = hc + np.minimum.accumulate(np.hstack((zero, run_hi - hc)), axis=1)[:, 1:]
    return np.all(lower <= upper + 1e-12, axis=1) & np.all(lo <= hi + 1e-9, axis=1)


def _in_window(b: Battery, off: int, size: int) -> Battery:
    """Shape ``b`` started ``off`` slots into a window of ``size`` slots (see
    :meth:`Aggregator._window`)."""
    n = len(b.lower)
    if off == 0 and n == size:
        return b
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


def _layout(members: Sequence[Member]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every member's ``data`` side by side, the members' ``facts`` as one matrix, and for
    each value its member (row) and its slot within the member: one numpy scatter then
    places a whole group, not a loop over its members."""
    facts = np.concatenate([m.facts for m in members]).reshape(len(members), -1)
    n = facts[:, _SLOTS].astype(np.int64)
    within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    rows = np.repeat(np.arange(len(members)), n)
    return np.concatenate([m.data for m in members], axis=1), facts, rows, within


#: A group: the members' traits, then earliest-start, end and flexibility buckets.
_Key = tuple[tuple[object, ...], int, int, int]


class Aggregator:
    """Incremental start-alignment aggregation (see the module docstring).

    ``add`` and ``remove`` only file a member under its group key (node, earliest-start and
    flexibility buckets, and for shapes the shape's buckets); :meth:`aggregates` rebuilds the
    groups of the keys that changed, each key's members at once with numpy: boxes are
    summed with one scatter per key, shapes intersected with running maxima and minima down
    the members, a group closing where the next member would leave the intersection empty
    or the group is full. Members are taken in the order they were added."""

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
        self._key_of: dict[str, _Key] = {}
        self._members: dict[_Key, dict[str, Member]] = {}
        self._built: dict[_Key, list[Aggregate]] = {}
        self._dirty: set[_Key] = set()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._key_of)

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
        oid = m.offer.id
        if oid in self._key_of:
            self.remove(oid)
        est = self.est_tolerance_s
        # shapes must also end together (their window); boxes are summed at any length
        key = (
            m.traits,
            m.earliest // est,
            m.end // est if m.shape is not None else 0,
            m.flexibility_s // self.tf_tolerance_s,
        )
        self._members.setdefault(key, {})[oid] = m
        self._key_of[oid] = key
        self._dirty.add(key)

    def remove(self, offer_id: str) -> None:
        """Take ``offer_id`` out of its aggregate; unknown ids are ignored (idempotent)."""
        key = self._key_of.pop(offer_id, None)
        if key is None:
            return
        group = self._members[key]
        del group[offer_id]
        if not group:
            del self._members[key]
        self._dirty.add(key)

    def aggregates(self) -> list[Aggregate]:
        """One aggregate per group, rebuilt for the keys whose members changed."""
        for key in self._dirty:
            members = self._members.get(key)
            if not members:
                self._built.pop(key, None)
            elif key[0][0] == "shape":
                self._built[key] = self._shape_groups(key, list(members.values()))
            else:
                self._built[key] = self._box_groups(key, list(members.values()))
        self._dirty.clear()
        return [a for key in self._members for a in self._built[key]]

    def _next_id(self) -> str:
        self._seq += 1
        return f"agg.{self._seq}"

    # -- boxes ------------------------------------------------------------------------

    def _box_groups(self, key: _Key, members: list[Member]) -> list[Aggregate]:
        res = self.resolution_s
        anchor = int(key[1]) * self.est_tolerance_s
        data, facts, rows, within = _layout(members)
        offsets = (facts[:, _EARLIEST].astype(np.int64) - anchor) // res
        cols = offsets[rows] + within
        size = self.max_group_size
        chunk = np.arange(len(members)) // size
        width = int(cols.max()) + 1
        flat = chunk[rows] * width + cols
        count = (int(chunk[-1]) + 1) * width
        lower, upper, point = (
            np.bincount(flat, weights=d, minlength=count).reshape(-1, width) for d in data
        )
        out = []
        for c in range(int(chunk[-1]) + 1):
            part = slice(c * size, (c + 1) * size)
            off = offsets[part]
            first = int(off.min())
            end = int((off + facts[part, _SLOTS]).max())
            earliest = anchor + first * res
            flex = int(facts[part, _FLEX].min())
            lo = lower[c, first:end]
            up = np.maximum(upper[c, first:end], lo)
            profile = Profile(lower_kwh=lo.tolist(), upper_kwh=up.tolist())
            kept = float((up - lo).sum())
            out.append(
                self._aggregate(
                    members[part],
                    facts[part],
                    off - first,
                    self._offer(
                        facts[part],
                        members[part][0],
                        earliest,
                        flex,
                        "aggregate",
                        profile,
                        np.clip(point[c, first:end], lo, up),
                    ),
                    kept,
                )
            )
        return out

    def _aggregate(
        self,
        members: list[Member],
        facts: np.ndarray,
        offsets: np.ndarray,
        offer: FlexOffer,
        kept_kwh: float,
    ) -> Aggregate:
        """The aggregate and its loss: time flexibility its members give up to the smallest
        one, energy flexibility outside what the aggregate keeps (``kept_kwh``), profiles."""
        assert offer.start_after is not None and offer.start_before is not None
        flex = offer.start_before - offer.start_after
        loss = Loss(
            time_flexibility_s=int(facts[:, _FLEX].sum()) - flex * len(members),
            energy_flexibility_kwh=max(float(facts[:, _OWN].sum()) - kept_kwh, 0.0),
            profiles_dropped=int(facts[:, _DROPPED].sum()),
        )
        return Aggregate(
            offer=offer, members=tuple(members), offsets=tuple(offsets.tolist()), loss=loss
        )

    # -- shapes -----------------------------------------------------------------------

    def _shape_groups(self, key: _Key, members: list[Member]) -> list[Aggregate]:
        """Members' shapes over the key's window of slots, then groups cut where the running
        intersection would become empty or the group full."""
        res = self.resolution_s
        est = self.est_tolerance_s
        first_slot = int(key[1]) * est // res
        size = (int(key[2]) + 1) * est // res - first_slot
        k = len(members)
        facts = np.concatenate([m.facts for m in members]).reshape(k, -1)
        offsets = facts[:, _EARLIEST].astype(np.int64) // res - first_slot
        n = facts[:, _SLOTS].astype(np.int64)
        if (offsets == offsets[0]).all() and (n == n[0]).all():
            # the usual case (heat pumps, batteries of a day): members side by side as they
            # are; only the intersection is placed in the window
            off = int(offsets[0])
            stacked = np.stack([m.data for m in members])
            lower, upper, run_lo, run_hi = (stacked[:, f] for f in range(4))
        else:
            off = 0
            lower, upper, run_lo, run_hi = self._window(members, offsets, size)
        out = []
        p = 0
        while p < k:
            q = min(p + self.max_group_size, k)
            # the usual case, all of them fit: one reduction; else find where it breaks
            meet = (
                np.maximum.reduce(lower[p:q])[None],
                np.minimum.reduce(upper[p:q])[None],
                np.maximum.reduce(run_lo[p:q])[None],
                np.minimum.reduce(run_hi[p:q])[None],
            )
            r = q - p
            last = 0
            if not _nonempty_rows(*meet)[0]:
                meet = (
                    np.maximum.accumulate(lower[p:q], axis=0),
                    np.minimum.accumulate(upper[p:q], axis=0),
                    np.maximum.accumulate(run_lo[p:q], axis=0),
                    np.minimum.accumulate(run_hi[p:q], axis=0),
                )
                r = int(np.argmin(_nonempty_rows(*meet)))
                if r == 0:
                    raise OptimError(
                        f"offer {members[p].offer.id}: its own shape admits no schedule"
                    )
                last = r - 1
            shape = _in_window(Battery(*(m[last] for m in meet)), off, size)
            out.append(
                self._shape_aggregate(members[p : p + r], facts[p : p + r], first_slot, shape)
            )
            p += r
        return out

    @staticmethod
    def _window(
        members: list[Member], offsets: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Members' shapes placed at their offsets in a window of ``size`` slots: idle
        outside their own slots, the running sum free before them and held after them."""
        k = len(members)
        data, facts, rows, within = _layout(members)
        cols = offsets[rows] + within
        lower = np.zeros((k, size))
        upper = np.zeros((k, size))
        run_lo = np.full((k, size), -np.inf)
        run_hi = np.full((k, size), np.inf)
        for mat, d in zip((lower, upper, run_lo, run_hi), data, strict=True):
            mat[rows, cols] = d
        end = offsets + facts[:, _SLOTS].astype(np.int64)
        after = np.arange(size) >= end[:, None]
        run_lo = np.where(after, run_lo[np.arange(k), end - 1][:, None], run_lo)
        run_hi = np.where(after, run_hi[np.arange(k), end - 1][:, None], run_hi)
        return lower, upper, run_lo, run_hi

    def _shape_aggregate(
        self, members: list[Member], facts: np.ndarray, first_slot: int, q: Battery
    ) -> Aggregate:
        res = self.resolution_s
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
        total_scale = float(facts[:, _SCALE].sum())
        found = cheapest(q, np.zeros(len(q.lower)))
        if found is None:  # cannot happen: every addition kept the shape non-empty
            raise OptimError("an aggregate's shape admits no schedule")
        deps = []
        for j in range(len(q.lower)):
            if np.isfinite(q.run_hi[j]):
                deps.append(Dependency(j, 1.0, 1.0, float(total_scale * q.run_hi[j])))
            if np.isfinite(q.run_lo[j]):
                deps.append(Dependency(j, -1.0, -1.0, float(-total_scale * q.run_lo[j])))
        lower = total_scale * q.lower
        upper = np.maximum(total_scale * q.upper, lower)
        point = np.clip(total_scale * found[1], lower, upper)
        earliest = (first_slot + lead) * res
        flex = int(facts[:, _FLEX].min())
        profile = Profile(lower_kwh=lower.tolist(), upper_kwh=upper.tolist(), dependencies=deps)
        offer = self._offer(
            facts, members[0], earliest, flex, members[0].offer.load_type, profile, point
        )
        offsets = (facts[:, _EARLIEST].astype(np.int64) - earliest) // res
        return self._aggregate(members, facts, offsets, offer, total_scale * tube_kwh(q))

    def _offer(
        self,
        facts: np.ndarray,
        first: Member,
        earliest: int,
        flex: int,
        load_type: str,
        profile: Profile,
        point: np.ndarray,
    ) -> FlexOffer:
        """The aggregate as a Flex-Offer: the members' earliest deadlines, the smallest time
        flexibility, the summed profile."""
        assignment = min(int(facts[:, _ASSIGN].min()), earliest + flex)
        acceptance = min(int(facts[:, _ACCEPT].min()), assignment)
        return FlexOffer(
            id=self._next_id(),
            issuer=self.issuer,
            device="aggregate",
            load_type=load_type,
            grid_node=first.offer.grid_node,
            created_at=int(facts[:, _CREATED].min()),
            resolution_s=self.resolution_s,
            acceptance_before=acceptance,
            assignment_before=assignment,
            start_after=earliest,
            start_before=earliest + flex,
            profiles=[profile],
            default=DefaultSchedule(start=earliest, energy_kwh=point.tolist()),
        )


def aggregate(offers: Iterable[FlexOffer], **options: int) -> list[Aggregate]:
    """Aggregate ``offers`` in one go (see :class:`Aggregator` for the options)."""
    agg = Aggregator(**options)  # type: ignore[arg-type]  # typed int, but issuer and shapes are str, bool
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
