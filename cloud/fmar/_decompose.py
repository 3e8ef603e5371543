"""Clearing a large book: cutting planes on the Lagrangian dual of the node balance.

Moving the balance rows (one per node and slot) into the objective at prices ``lam`` splits
the clearing into independent parts whose best answers are closed forms or one compiled
programme per order:

    U(lam) = sum_orders max_x [lam . (x - d) - asks(x - d)]           (every choice, exact)
           + sum_{partial r, t} |q_rt| max(0, limit_rt - sign(q_rt) lam_rt)
           + sum_{all-or-nothing r} max(0, sum_t |q_rt| limit_rt - lam_rt q_rt)
           + sum_{links, t} capacity max(0, lam_to - lam_from - cost)

is an upper bound on the welfare of any clearing, for any prices: the proven bound. It is
convex in ``lam``, so this module minimises it as the planner does its own dual
(:mod:`cloud.optim.cutting_plane`): every pricing of the orders
(:func:`cloud.optim.deviation.price_deviations`, the planner's compiled dynamic programme)
gives one column per cluster of orders (by node and load type) to a small master LP
(:mod:`cloud.fmar._master`), whose duals, smoothed towards the best prices so far (Wentges),
are the next prices.

On a network (two nodes or more) the master's many balance rows make each re-solve take
seconds while a pricing takes tens of milliseconds, so each phase first runs the volume
algorithm (:mod:`cloud.fmar._volume`): master-free rounds that lower the bound and average
the responses into a mix, whose prices, last responses and averaged schedules then start the
cutting planes close to the optimum.

Two phases:

1. *Choices.* Every order may take any profile and start. When the master is within half
   the asked gap of the bound, its mix is rounded: each order takes the choice (profile and
   start) with most weight, and the weighted mean of its schedules there (itself a schedule
   of that choice); all-or-nothing requests are taken when more than half is.
2. *Energies and prices, choices fixed.* The same method on the orders restricted to their
   rounded choices is a linear programme (its Lagrangian dual has no gap): it converges to
   the best energies for those choices, and its master's duals to the balance rows' marginal
   prices, the uniform prices of docs/market.md. Slack on the balance rows (at a high price)
   keeps the master feasible whatever the rounding did; if any remains, the orders and
   requests that rounding moved at those nodes and slots fall back to their default (and
   nothing), which is always feasible, and the phase runs again.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cloud.optim.blocks import OfferView
from cloud.optim.catalogue import Catalogue, catalogue
from cloud.optim.deviation import deviation_columns, price_deviations
from cloud.optim.terms import Terms

from ._master import IPM_NODES, SIMPLEX_OVER_IPM, MarketMaster, MasterSolution
from ._numeric import Numeric
from ._rounding import round_choices
from ._volume import Averaged, volume

#: Load types mixed apart in the master, per node (the planner's clusters).
MAX_CLUSTERS = 8
#: Each load type's orders split into this many clusters (by their position in the book).
SPLIT = 1
#: A column unused this many rounds leaves the master.
FORGET_AFTER = 40
#: Wentges smoothing: next prices are ``ALPHA`` of the best so far, the rest the master's.
ALPHA = 0.5
#: The second phase stops when its LP is proven within this share of the welfare.
LP_TOLERANCE = 1e-5
#: Books of more orders first take prices from a sample of about ``SAMPLE`` orders,
#: cleared in at most ``SAMPLE_TIME`` of the time.
SAMPLE_ABOVE = 3000
SAMPLE = 1000
SAMPLE_TIME = 0.25
#: Phase one stops at this many times the asked gap (its bound is improved after phase two,
#: from phase two's prices): the few orders the master splits are known long before.
COARSE = 0.5
#: The rounding MIP may take this share of the time left.
ROUNDING_TIME = 0.25
#: Books of at least this many nodes first run the volume algorithm (:mod:`._volume`)
#: until this share of the time, instead of the sample search (a network's master re-solves
#: in seconds), and again in phase two for this share of the time left.
VOLUME_NODES = 2
VOLUME_TIME = 0.4
VOLUME_TWO = 0.3
#: Half-width of the box step around the best prices so far, EUR/kWh (widened as needed).
STEP = 0.05
#: Slack on a balance row costs this many times the dearest price in the book: more than
#: any kWh is worth, yet of the book's scale (a far larger cost makes HiGHS's master LP
#: badly scaled: measured ten times slower, and failing).
SLACK_FACTOR = 2.0

Say = Callable[[str], None]


@dataclass(slots=True)
class _Column:
    items: np.ndarray
    x: np.ndarray
    cluster: int
    used: int


@dataclass(slots=True)
class Decomposed:
    """What the decomposition found: per order its item in the phase-one catalogue's terms
    (block index, start, energies), the outcome arrays, the prices and the bound."""

    blocks: list[int]
    starts: list[int]
    energies: list[np.ndarray]
    accepted: np.ndarray
    flows: np.ndarray
    prices: np.ndarray
    bound: float
    #: the phase-two LP's own gap (its upper bound minus its value), in EUR
    lp_gap: float


def terms_for_market(num: Numeric) -> Terms:
    """A catalogue's frame: the market's horizon (the planner's objective fields unused)."""
    h = num.slots
    return Terms(
        t0=num.market.start,
        resolution_s=num.market.resolution_s,
        slots=h,
        target=np.zeros(h),
        prices=np.zeros(h),
        w_balance=0.0,
        w_cost=0.0,
        w_peak=0.0,
        groups=("",),
        limits=None,
        offset=0.0,
    )


def applies(num: Numeric) -> Catalogue | None:
    """The catalogue of every order's choices when each profile is a generalised battery
    (what the compiled programme prices); ``None`` otherwise."""
    if not num.n_orders:
        return None
    return catalogue(num.views, terms_for_market(num))


def clusters_of(num: Numeric) -> tuple[np.ndarray, np.ndarray]:
    """Each order's cluster (node and load type) and each cluster's node."""
    keys: dict[tuple[int, str], int] = {}
    per_node: dict[int, dict[str, int]] = {}
    cluster = np.empty(num.n_orders, dtype=np.int64)
    for i, o in enumerate(num.orders):
        n = int(num.order_node[i])
        kinds = per_node.setdefault(n, {})
        kind = kinds.setdefault(o.offer.load_type, len(kinds)) % MAX_CLUSTERS
        first = (
            min(b.first_start for b in num.views[i].blocks) - num.market.start
        ) // num.market.resolution_s
        part = min(first * SPLIT // num.slots, SPLIT - 1)
        cluster[i] = keys.setdefault((n, f"{kind}.{part}"), len(keys))
    node = np.empty(len(keys), dtype=np.int64)
    for (n, _), c in keys.items():
        node[c] = n
    return cluster, node


class _Search:
    """One phase: the master, where its columns came from, the best prices and bound."""

    def __init__(
        self,
        num: Numeric,
        cat: Catalogue,
        *,
        aon: np.ndarray,
        wide: float,
        step: float,
        deadline: float,
        say: Say,
    ) -> None:
        self.num = num
        self.cat = cat
        self.deadline = deadline
        self.say = say
        self.aon = aon.copy()
        self.wide = wide
        self.step = step
        self.cluster, self.cluster_node = clusters_of(num)
        self.k = len(self.cluster_node)
        self.master = MarketMaster(num, cluster_node=self.cluster_node, aon=aon, wide=wide)
        self.columns: list[_Column] = []
        self.weight = np.ascontiguousarray((num.ask_up + num.ask_down) / 2)
        self.half = (num.ask_up - num.ask_down) / 2
        self.negd = np.ascontiguousarray(-num.default)
        self.owner = np.repeat(np.arange(cat.n_offers), np.diff(cat.offer_items))
        self.x_len = np.diff(cat.offer_x0)
        self.best_bound = math.inf
        self.subgradient = np.zeros((num.n_nodes, num.slots))
        self.center = np.zeros((num.n_nodes, num.slots))
        part = num.req_partial
        self.q_abs = np.abs(num.req_kwh)
        self.sign = np.sign(num.req_kwh)
        self.part = part
        self.aon_value = (num.req_limit * self.q_abs).sum(axis=1)

    # -- the bound ----------------------------------------------------------------------

    def lagrangian(self, lam: np.ndarray, rnd: int) -> float:
        """Price every order at ``lam`` (``[node, slot]``), add the responses as columns,
        return ``U(lam)``."""
        lam = np.clip(lam, -self.wide, self.wide)
        num = self.num
        cat = self.cat
        n = num.n_orders
        chosen = np.empty(n, dtype=np.int64)
        values = np.empty(n)
        price = np.ascontiguousarray(self.half - lam[num.order_node])
        total = price_deviations(cat.layout, price, self.weight, self.negd, cat.x, chosen, values)
        value = -float(total) + self._others(lam)
        others = self._others_response(lam)
        dev = self._add(chosen, rnd)
        node_dev = np.zeros_like(lam)
        np.add.at(node_dev, self.cluster_node, dev)
        self.subgradient = node_dev + others
        if value < self.best_bound:
            self.best_bound = value
            self.center = lam
        return value

    def price(self, lam: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """``U(lam)`` (``lam`` clipped to the box), the item each order chose and a
        subgradient ``[node, slot]``, without touching the master: what a master-free
        method (:mod:`cloud.fmar._volume`) needs of a round."""
        lam = np.clip(lam, -self.wide, self.wide)
        num = self.num
        cat = self.cat
        n = num.n_orders
        chosen = np.empty(n, dtype=np.int64)
        values = np.empty(n)
        price = np.ascontiguousarray(self.half - lam[num.order_node])
        total = price_deviations(cat.layout, price, self.weight, self.negd, cat.x, chosen, values)
        value = -float(total) + self._others(lam)
        dev = np.zeros((self.k, num.slots))
        cost = np.zeros(self.k)
        deviation_columns(
            cat.layout,
            chosen,
            cat.x,
            num.default,
            num.ask_up,
            num.ask_down,
            self.cluster,
            dev,
            cost,
        )
        grad = np.zeros_like(lam)
        np.add.at(grad, self.cluster_node, dev)
        grad += self._others_response(lam)
        if value < self.best_bound:
            self.best_bound = value
            self.center = lam
        return value, chosen, grad

    def _others(self, lam: np.ndarray) -> float:
        """The requests' and links' part of ``U(lam)``."""
        num = self.num
        lam_r = lam[num.req_node]  # [request, slot]
        gain = self.q_abs * (num.req_limit - self.sign * lam_r)
        value = float(np.maximum(gain[self.part], 0.0).sum())
        whole = gain[~self.part].sum(axis=1)
        fixed = self.aon[~self.part]
        value += float(np.where(np.isnan(fixed), np.maximum(whole, 0.0), fixed * whole).sum())
        if num.n_links:
            spread = lam[num.link_dst] - lam[num.link_src] - num.link_cost[:, None]
            value += float((num.link_cap[:, None] * np.maximum(spread, 0.0)).sum())
        return value

    def _others_response(self, lam: np.ndarray) -> np.ndarray:
        """The requests' and links' part of a subgradient of ``U`` at ``lam``: inflows minus
        outflows minus accepted kWh per node and slot, as the closed forms answer."""
        num = self.num
        lam_r = lam[num.req_node]
        gain = self.q_abs * (num.req_limit - self.sign * lam_r)
        take = np.where(gain > 0, num.req_kwh, 0.0)
        whole = gain[~self.part].sum(axis=1)
        fixed = self.aon[~self.part]
        share = np.where(np.isnan(fixed), (whole > 0).astype(float), fixed)
        take[~self.part] = share[:, None] * num.req_kwh[~self.part]
        out = np.zeros_like(lam)
        np.subtract.at(out, num.req_node, take)
        if num.n_links:
            spread = lam[num.link_dst] - lam[num.link_src] - num.link_cost[:, None]
            f = np.where(spread > 0, num.link_cap[:, None], 0.0)
            np.add.at(out, num.link_dst, f)
            np.subtract.at(out, num.link_src, f)
        return out

    def _add(self, chosen: np.ndarray, rnd: int) -> np.ndarray:
        dev = np.zeros((self.k, self.num.slots))
        cost = np.zeros(self.k)
        num = self.num
        deviation_columns(
            self.cat.layout,
            chosen,
            self.cat.x,
            num.default,
            num.ask_up,
            num.ask_down,
            self.cluster,
            dev,
            cost,
        )
        self.master.add(dev, cost)
        items = chosen.copy()
        x = self.cat.snapshot(chosen)
        for c in range(self.k):
            self.columns.append(_Column(items=items, x=x, cluster=c, used=rnd))
        return dev

    def fix(
        self,
        request: int,
        share: float,
        *,
        bound: float = math.inf,
        center: np.ndarray | None = None,
    ) -> None:
        """Fix an all-or-nothing request's share (``nan``: relax it). The bound proven so far
        no longer holds for the new problem: it starts again from the best prices (or from
        ``bound`` and ``center``, known for this problem)."""
        self.aon[request] = share
        self.master.fix(request, share)
        self.best_bound = bound
        if center is not None:
            self.center = center
        else:
            self.lagrangian(self.center, 0)

    def add_placement(self, chosen: np.ndarray, layout: np.ndarray) -> None:
        """A known outcome (items and their schedules in the per-offer layout) as columns."""
        self.cat.write(chosen, layout)
        self._add(chosen, 0)

    # -- the primal ---------------------------------------------------------------------

    def recover(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per order the item with most weight, and the weighted mean of its schedules for
        that item (in the per-offer layout)."""
        cat = self.cat
        act = np.flatnonzero(weights > 1e-12)
        cols = [self.columns[k] for k in act]
        items = np.stack([c.items for c in cols])
        mine = np.array([c.cluster for c in cols])[:, None] == self.cluster[None, :]
        share = weights[act][:, None] * mine
        mass = np.bincount(items.ravel(), weights=share.ravel(), minlength=len(cat.item_blk))
        # most weight; on a tie the lowest item (earliest block and start): reproducible
        pick = np.lexsort((np.arange(len(mass)), -np.round(mass, 12), self.owner))[
            cat.offer_items[:-1]
        ]
        layout = np.zeros(int(cat.offer_x0[-1]))
        for col, w in zip(cols, share, strict=True):
            layout += np.repeat(w * (col.items == pick), self.x_len) * col.x
        layout /= np.repeat(np.maximum(mass[pick], 1e-300), self.x_len)
        return pick, layout

    def split(self, weights: np.ndarray, pick: np.ndarray) -> np.ndarray:
        """Per order, whether the master's mix ``weights`` gives it other choices than
        ``pick`` too."""
        act = np.flatnonzero(weights > 1e-12)
        cols = [self.columns[k] for k in act]
        items = np.stack([c.items for c in cols])
        mine = np.array([c.cluster for c in cols])[:, None] == self.cluster[None, :]
        share = weights[act][:, None] * mine
        mass = np.bincount(items.ravel(), weights=share.ravel(), minlength=len(self.cat.item_blk))
        return np.asarray(mass[pick] < 1 - 1e-6)

    # -- the loop -----------------------------------------------------------------------

    def run(
        self,
        *,
        goal: float,
        scale: Callable[[], float],
        guesses: Sequence[np.ndarray] = (),
        stop_below: float = -math.inf,
    ) -> MasterSolution:
        """Cutting planes until the master is within ``goal`` times ``scale()`` of the best
        bound, the bound is below ``stop_below``, or the time is up; returns the master's
        solution with the box wide open."""
        for lam in guesses:
            self.lagrangian(lam, 0)
        rnd = 0
        alpha = ALPHA
        step = self.step
        while True:
            rnd += 1
            self.master.set_box(
                np.maximum(self.center - step, -self.wide),
                np.minimum(self.center + step, self.wide),
            )
            sol = self.master.solve()
            for k in np.flatnonzero(sol.weights > 1e-12).tolist():
                self.columns[k].used = rnd
            free = float(np.abs(sol.slack).max(initial=0.0)) <= 1e-9
            value = -sol.objective
            gap = self.best_bound - value
            tight = max(goal * scale(), 1e-9 * max(1.0, abs(self.best_bound)))
            done = (free and gap <= tight) or self.best_bound <= stop_below
            if done or time.monotonic() > self.deadline:
                break
            if not free and gap <= tight:
                # the box holds the best the columns allow: prices beyond it are needed (or,
                # at its widest, the balance cannot be met without slack)
                if step >= self.wide:
                    break
                step = min(2 * step, self.wide)
            if rnd % 25 == 0:
                pct = 100 * gap / max(abs(self.best_bound), 1e-9)
                self.say(
                    f"round {rnd}: master {value:.6g}{'' if free else ' (in a box)'}, bound "
                    f"{self.best_bound:.6g} (gap {pct:.3g} %)"
                )
            inner = self.center
            before = self.best_bound
            sep = alpha * inner + (1 - alpha) * sol.prices
            self.lagrangian(sep, rnd)
            # automatic smoothing (Pessoa et al. 2018): towards the master's prices while
            # the subgradient says the bound falls that way, towards the best ones if not
            if float(np.sum(self.subgradient * (sol.prices - inner))) < 0:
                alpha = max(0.0, alpha - 0.1)
            else:
                alpha = min(0.99, alpha + 0.1 * (1 - alpha))
            if self.best_bound < before and not free:
                step = min(2 * step, self.wide)  # a better point at the box's edge: widen
            if rnd % 10 == 0:
                self._forget(rnd)
        self.master.set_box(
            np.full_like(self.center, -self.wide), np.full_like(self.center, self.wide)
        )
        sol = self.master.solve()
        value = -sol.objective
        self.say(
            f"round {rnd}: master {value:.6g}, bound {self.best_bound:.6g} "
            f"(gap {100 * (self.best_bound - value) / max(abs(self.best_bound), 1e-9):.3g} %)"
        )
        return sol

    def _forget(self, rnd: int) -> None:
        old = [k for k, c in enumerate(self.columns) if rnd - c.used > FORGET_AFTER]
        if old:
            self.master.drop(np.asarray(old))
            gone = set(old)
            self.columns = [c for k, c in enumerate(self.columns) if k not in gone]


def _sample_prices(num: Numeric, *, wide: float, deadline: float, gap: float) -> np.ndarray:
    """The best prices of a sample of the orders (every k-th of each cluster) against the
    requests and links scaled to the sample's share: a book drawn from the same population
    has nearly the same prices, found in a fraction of the time (the planner does the same,
    :func:`cloud.optim.cutting_plane._sample_values`). Any prices give a valid bound; these
    start the whole book's search near its optimum."""
    cluster, _ = clusters_of(num)
    pick: list[int] = []
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        step = max(1, round(num.n_orders / SAMPLE))
        pick.extend(members[::step].tolist())
    pick.sort()
    share = len(pick) / num.n_orders
    sub = dataclasses.replace(
        num,
        orders=tuple(num.orders[i] for i in pick),
        views=[num.views[i] for i in pick],
        order_node=num.order_node[pick],
        ask_up=num.ask_up[pick],
        ask_down=num.ask_down[pick],
        default=num.default[pick],
        req_kwh=num.req_kwh * share,
        link_cap=num.link_cap * share,
    )
    cat = applies(sub)
    assert cat is not None  # a part of a catalogue is one
    search = _Search(
        sub,
        cat,
        aon=np.where(num.req_partial, 1.0, np.nan),
        wide=wide,
        step=STEP,
        deadline=deadline,
        say=lambda _: None,
    )
    search.add_placement(*_defaults(sub, cat))
    search.run(
        goal=gap / 4,
        scale=lambda: max(abs(search.best_bound), 1e-6),
        guesses=[np.zeros((num.n_nodes, num.slots))],
    )
    return search.center


def _defaults(num: Numeric, cat: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """Every order's default item and schedule (the per-offer layout of ``cat``)."""
    n = num.n_orders
    items = np.array([cat.item_of(i, *num.default_item(i)) for i in range(n)], dtype=np.int64)
    layout = np.zeros(int(cat.offer_x0[-1]))
    for i in range(n):
        d = num.orders[i].offer.default.energy_kwh
        layout[cat.offer_x0[i] : cat.offer_x0[i] + len(d)] = d
    return items, layout


def _branch(
    one: _Search, sol: MasterSolution, *, goal: float, scale: float, say: Say
) -> tuple[MasterSolution, list[float]]:
    """Decide the all-or-nothing requests the LP takes in part, one at a time (the most
    valuable fraction first): a dive of a branch and bound. The branch the LP leans to is
    solved first; the other runs only until its bound falls below the first's value (then
    it cannot be better) or it proves better. Returns the last master solution and the
    bounds of the branches left behind: the problem's bound is the largest of those and the
    followed branch's own."""
    num = one.num
    whole = (num.req_limit * np.abs(num.req_kwh)).sum(axis=1)
    left: list[float] = []
    while time.monotonic() < one.deadline:
        z = sol.aon
        frac = [
            int(r)
            for r in np.flatnonzero(~num.req_partial)
            if np.isnan(one.aon[r]) and 1e-6 < z[r] < 1 - 1e-6
        ]
        if not frac:
            break
        r = max(frac, key=lambda r: (whole[r] * min(z[r], 1 - z[r]), -r))
        likely = 1.0 if z[r] >= 0.5 else 0.0
        one.fix(r, likely)
        first = one.run(goal=goal, scale=lambda: scale)
        kept = (first, one.best_bound, one.center)
        one.fix(r, 1.0 - likely)
        other = one.run(goal=goal, scale=lambda: scale, stop_below=-first.objective)
        better = -other.objective > -first.objective
        say(
            f"{num.requests[r].id}: {'all' if likely else 'nothing'} {-first.objective:.6g} "
            f"(bound {kept[1]:.6g}), {'nothing' if likely else 'all'} {-other.objective:.6g} "
            f"(bound {one.best_bound:.6g})"
        )
        if better:
            left.append(kept[1])
            sol = other
            continue
        left.append(one.best_bound)
        one.fix(r, likely, bound=kept[1], center=kept[2])
        sol = one.run(goal=goal, scale=lambda: scale)
    return sol, left


def _fixed_views(num: Numeric, cat: Catalogue, pick: np.ndarray) -> list[OfferView]:
    """Every order restricted to its picked item (one block, one start)."""
    out = []
    res = num.market.resolution_s
    for i, it in enumerate(pick.tolist()):
        b = int(cat.blk_block[cat.item_blk[it]])
        start = num.market.start + int(cat.item_slot[it]) * res
        blk = dataclasses.replace(num.views[i].blocks[b], first_start=start, last_start=start)
        out.append(OfferView(offer=num.views[i].offer, blocks=[blk]))
    return out


def decompose(
    num: Numeric,
    cat: Catalogue,
    *,
    deadline: float,
    relative_gap: float,
    say: Say,
) -> Decomposed:
    """Clear ``num`` (laid out as ``cat``) by the two phases of the module docstring."""
    started = time.monotonic()
    # phase 1 gets most of the time; what it leaves, phase 2 uses
    share = 0.5
    dearest = float(
        max(
            num.ask_up.max(initial=0.0),
            num.ask_down.max(initial=0.0),
            num.req_limit.max(initial=0.0),
        )
    )
    wide = SLACK_FACTOR * max(dearest, 1.0)
    free = np.where(num.req_partial, 1.0, np.nan)
    one = _Search(
        num,
        cat,
        aon=free,
        wide=wide,
        step=STEP,
        deadline=started + share * (deadline - started),
        say=say,
    )
    n = num.n_orders
    default, default_layout = _defaults(num, cat)
    one.add_placement(default, default_layout.copy())  # every order at its default: always feasible
    guesses = [np.zeros((num.n_nodes, num.slots))]
    averaged: Averaged | None = None
    if num.n_nodes >= VOLUME_NODES:
        # a network's master re-solves in seconds, a pricing in tens of milliseconds: the
        # volume algorithm's many rounds find the prices and a mix to start the master from
        averaged = volume(
            one,
            guesses[0],
            deadline=started + VOLUME_TIME * (deadline - started),
            say=say,
        )
        for items, x in averaged.recent:
            one.add_placement(items, x)
        one.add_placement(*averaged.heaviest(one))
        guesses = [one.center]
    elif n > SAMPLE_ABOVE:
        left_s = deadline - time.monotonic()
        guesses.append(
            _sample_prices(
                num, wide=wide, deadline=time.monotonic() + SAMPLE_TIME * left_s, gap=relative_gap
            )
        )
        say(f"prices from a sample of about {SAMPLE} orders")
    coarse = max(COARSE * relative_gap, relative_gap / 2)
    sol = one.run(goal=coarse, scale=lambda: max(abs(one.best_bound), 1e-6), guesses=guesses)
    bound = one.best_bound
    say(f"phase 1: bound {bound:.6g}, master {-sol.objective:.6g}")
    sol, left = _branch(one, sol, goal=coarse, scale=max(abs(bound), 1e-6), say=say)
    pick, layout = one.recover(sol.weights)
    aon = np.where(sol.aon > 0.5, 1.0, 0.0)
    aon[num.req_partial] = 1.0
    left_t = deadline - time.monotonic()
    budget = ROUNDING_TIME * max(left_t, 0)
    rounded = None
    if num.n_nodes < IPM_NODES or budget >= SIMPLEX_OVER_IPM * one.master.last_solve_s:
        rounded = round_choices(one, sol.weights, pick, layout, deadline=time.monotonic() + budget)
    else:
        # the MIP would not finish its root LP (by dual simplex) in its time: that time
        # goes to phase two
        say("no time for the rounding MIP on this network")
    if rounded is not None:
        away = int((rounded.pick != pick).sum())
        pick, layout, aon = rounded.pick, rounded.layout, rounded.aon
        say(f"rounded the split choices together ({away} orders away from their heaviest)")
    elif num.n_nodes > 1 and (
        one.split(sol.weights, pick).any() or np.abs(aon - sol.aon).max(initial=0.0) > 1e-6
    ):
        # A network's rounding MIP found nothing in time, or had no time for its root LP,
        # and the choice of most weight leaves the balance to phase two,
        # which on a network rarely restores it in time: every all-or-nothing request must
        # be met exactly at each of its slots, and whole-cluster columns tie every slot of
        # a cluster together. Phase two starts instead from what always balances: every
        # order at its default's choice (its energies still free), no all-or-nothing
        # request (or, after the volume algorithm, those the master takes whole); the
        # partial requests and the flows stay open.
        pick = default.copy()
        layout = default_layout.copy()
        if averaged is not None:
            # after the volume algorithm the master is near the LP's optimum: the requests
            # it takes whole kept the balance on the benchmark books (those it splits,
            # taken when more than half, did not)
            say(
                "no rounding in time: phase two from the default choices and the "
                "all-or-nothing requests the master takes whole"
            )
            aon[~num.req_partial & (sol.aon < 1 - 1e-6)] = 0.0
        else:
            say(
                "no rounding in time: phase two from the default choices, no all-or-nothing request"
            )
            aon[~num.req_partial] = 0.0
    say("fixing the choices")
    while True:
        views = _fixed_views(num, cat, pick)
        fixed = catalogue(views, terms_for_market(num))
        assert fixed is not None  # a restriction of a catalogue is one
        two = _Search(
            num,
            fixed,
            aon=aon,
            wide=wide,
            step=STEP,
            deadline=max(deadline, time.monotonic()),
            say=say,
        )
        own = np.arange(n, dtype=np.int64)
        into = _into_fixed(cat, fixed)
        # the phase-one master's columns, each order at its picked choice (where a column
        # had another, the rounded schedule): the new master starts where the old one was
        for items, x in _active(one, sol.weights):
            same = np.repeat(items == pick, one.x_len)
            two.add_placement(own, np.where(same, x, layout)[into])
        two.add_placement(own, layout[into])
        # and every order at its default's choice running its default: with nothing
        # accepted, this one always balances
        home = np.repeat(pick == default, one.x_len)
        two.add_placement(own, np.where(home, default_layout, layout)[into])
        start2 = [one.center]
        if averaged is not None and VOLUME_TWO > 0:
            # the same on the fixed choices: its averaged primal nearly balances, a column
            # the master would take many re-solves to build from single responses
            left2 = max(deadline - time.monotonic(), 0.0)
            fixed_avg = volume(
                two, one.center, deadline=time.monotonic() + VOLUME_TWO * left2, say=say
            )
            for items, x in fixed_avg.recent:
                two.add_placement(items, x)
            two.add_placement(*fixed_avg.heaviest(two))
            start2 = [two.center]
        sol2 = two.run(
            goal=max(LP_TOLERANCE, relative_gap / 5),
            scale=lambda: max(abs(bound), 1e-6),
            guesses=start2,
        )
        assert sol2 is not None
        short = np.abs(sol2.slack) > 1e-7
        everything = bool(np.all(pick == default)) and not (aon[~num.req_partial] > 0).any()
        if not short.any() and -sol2.objective >= 0:
            break
        if short.any() and (everything or time.monotonic() >= deadline):
            # no time to let the prices repair the balance (or nothing left to move back):
            # the best mix of the columns found that balances exactly. With every order at
            # its default's choice one always exists (every default, nothing accepted).
            balanced = two.master.solve_balanced()
            if balanced is not None and -balanced.objective >= 0:
                say("out of time with slack on the balance: the best balanced mix of the columns")
                sol2 = balanced
                break
            if everything:  # never seen: the result's check falls back to every default
                break
            short[:] = True
        elif everything:
            break
        if not short.any():  # balanced, but worse than every default: start from those
            say("the rounded choices clear below the defaults' welfare: back to the defaults")
            short[:] = True
        # rounding broke the balance: orders and requests it moved there go back to default
        moved = _moved(num, cat, pick, default, short)
        dropped = [
            r
            for r in np.flatnonzero(~num.req_partial & (aon > 0))
            if (short[num.req_node[r]] & (num.req_kwh[r] != 0)).any()
        ]
        say(
            f"rounding left {int(short.sum())} node-slots unbalanced: "
            f"{len(moved)} orders back to default, {len(dropped)} requests dropped"
        )
        if (not moved and not dropped) or time.monotonic() >= deadline:
            # the search ran out of time: every order to its default's choice
            moved = [i for i in range(n) if pick[i] != default[i]]
            dropped = [r for r in np.flatnonzero(~num.req_partial) if aon[r] > 0]
        for i in moved:
            pick[i] = default[i]
            d = num.orders[i].offer.default.energy_kwh
            layout[cat.offer_x0[i] : cat.offer_x0[i + 1]] = 0.0
            layout[cat.offer_x0[i] : cat.offer_x0[i] + len(d)] = d
        aon[dropped] = 0.0
    # the phase-two prices are near the dual optimum too: they may prove a better bound;
    # with time left, the cutting planes go on for the bound alone
    for lam in (two.center, sol2.prices):
        one.lagrangian(lam, 0)
    value = -sol2.objective
    target = value / (1 - relative_gap) if value > 0 else value + relative_gap
    one.deadline = deadline
    if max([one.best_bound, *left]) > target and time.monotonic() < deadline:
        one.run(goal=0.0, scale=lambda: 1.0, stop_below=target)
    # the problem's bound: the root's, or (after branching) the largest of the branches'
    bound = min(bound, max([one.best_bound, *left]))
    say(f"bound {bound:.6g}, clearing {value:.6g}")
    # the orders' schedules: the phase-two master's mix of each order's schedules
    _, final = two.recover(sol2.weights)
    res = num.market.resolution_s
    blocks, starts, energies = [], [], []
    for i in range(n):
        it = int(pick[i])
        b = int(cat.blk_block[cat.item_blk[it]])
        blocks.append(b)
        starts.append(num.market.start + int(cat.item_slot[it]) * res)
        ln = num.views[i].blocks[b].n
        energies.append(final[fixed.offer_x0[i] : fixed.offer_x0[i] + ln].copy())
    return Decomposed(
        blocks=blocks,
        starts=starts,
        energies=energies,
        accepted=sol2.accepted,
        flows=sol2.flows,
        prices=sol2.prices,
        bound=bound,
        lp_gap=max(two.best_bound - (-sol2.objective), 0.0),
    )


def _into_fixed(cat: Catalogue, fixed: Catalogue) -> np.ndarray:
    """Indices into ``cat``'s per-offer layout of each slot of ``fixed``'s (an order's
    picked block starts at the same place in both)."""
    n = np.diff(fixed.offer_x0)
    within = np.arange(int(n.sum())) - np.repeat(fixed.offer_x0[:-1], n)
    return np.repeat(cat.offer_x0[:-1], n) + within


def _active(search: _Search, weights: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The pricings (items and schedules) behind the columns the master uses."""
    seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in np.flatnonzero(weights > 1e-12).tolist():
        col = search.columns[k]
        seen.setdefault(id(col.x), (col.items, col.x))
    return list(seen.values())


def _moved(
    num: Numeric, cat: Catalogue, pick: np.ndarray, default: np.ndarray, short: np.ndarray
) -> list[int]:
    """Orders away from their default choice whose schedule or default touches an
    unbalanced node-slot."""
    out = []
    res = num.market.resolution_s
    for i in np.flatnonzero(pick != default).tolist():
        node = int(num.order_node[i])
        it = int(pick[i])
        s = int(cat.item_slot[it])
        n = int(cat.lengths(np.array([it]))[0])
        d = num.orders[i].offer.default
        ds = (d.start - num.market.start) // res
        if short[node, s : s + n].any() or short[node, ds : ds + len(d.energy_kwh)].any():
            out.append(i)
    return out
