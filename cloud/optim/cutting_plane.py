"""Planning a portfolio of generalised batteries: cutting planes on the Lagrangian dual.

Moving the slot rows ``sum_i x_i = E`` into the objective at prices ``pi`` splits the plan into
one cheapest-schedule problem per offer (:mod:`cloud.optim.kernels`, exact, microseconds) and
a closed form for the rest. For ``|pi_t| <= w_balance``

    L(pi) = offset + pi . target + sum_i min_{x_i} (w_cost * price - pi) . x_i

is a lower bound on the optimum of the convex-hull relaxation and so of the plan. ``L`` is
concave in only as many prices as slots (96 for a day), however many offers there are, so
this module maximises it by cutting planes over whole-portfolio responses: every pricing
gives, per load type, the summed load of those offers as one column of a small master LP
(:mod:`cloud.optim.master`, one row per slot and one per load type), and the master's duals,
smoothed towards the best prices so far (Wentges), are the next prices. One round costs a
pricing of every offer and a warm-started LP of about a hundred rows: milliseconds, so a few
hundred rounds fit in seconds. Column generation with one column per offer and round (the
disaggregated master) needs fewer rounds, but each costs a large LP; measured on 1,000
offers, the aggregated master reaches a 0.3 % gap about 40 times sooner (see docs/optim.md).
A large portfolio first plans a sample of about a thousand of its offers: the sample's best
prices are close to the portfolio's and start its search near the optimum.

The master's weights mix whole-portfolio responses; every offer's share of them is a convex
combination of its own schedules. Each offer takes the choice (profile and start) with most
weight and the weighted mean of its schedules for that choice, which is a schedule of that
choice (the feasible set of one choice is convex). Best-response sweeps then repair what
rounding lost: each offer in turn takes its cheapest schedule against the rest of the
portfolio under the true objective, which never makes the plan worse.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .blocks import OfferView
from .catalogue import Catalogue, catalogue
from .master import PortfolioMaster
from .placements import Placement
from .terms import Terms, evaluate

#: A column unused for this many rounds leaves the master.
FORGET_AFTER = 60
#: Best-response sweeps after each rounding, at most.
SWEEPS = 4
#: Offers are priced together but mixed in the master per cluster (one per load type, at
#: most this many): the master then chooses, say, the heat pumps' response apart from the
#: batteries', which halves the rounds on the benchmark's portfolios.
MAX_CLUSTERS = 8
#: Portfolios of more offers first take prices from a sample of about ``SAMPLE`` offers,
#: planned in at most ``SAMPLE_TIME`` of the time left.
SAMPLE_ABOVE = 3000
SAMPLE = 1000
SAMPLE_TIME = 0.3
#: Wentges smoothing: the next prices are ``alpha`` of the best so far and the rest of the
#: master's duals; closer to the best prices when they come from a sample (measured: 0.5
#: best from cold on 1,000 offers, 0.8 from a sample's prices on 10,000)
ALPHA = 0.5
ALPHA_FROM_SAMPLE = 0.8


@dataclass(slots=True)
class _Column:
    """A master column's origin: the pricing's item and schedule of every offer (per-offer
    layout, shared by the columns of one pricing), and the cluster the column stands for."""

    items: np.ndarray
    x: np.ndarray
    cluster: int
    used: int


@dataclass(slots=True)
class Answer:
    """Placements aligned with the views (``None``: the offer has no schedule at all), the
    best bound proven, and whether the placements came from the LP (not only heuristics)."""

    placements: list[Placement | None]
    bound: float
    solved: bool
    infeasible: list[int]
    #: the prices ``pi`` per horizon slot at which ``L(pi) = bound``
    duals: np.ndarray | None = None


def applies(views: Sequence[OfferView], terms: Terms) -> Catalogue | None:
    """The catalogue when this method applies: one node without peak limits, and every
    profile a generalised battery, and no offer with asks (a per-offer term the portfolio's
    columns do not carry)."""
    if len(terms.groups) != 1 or terms.limits is not None or terms.priced:
        return None
    return catalogue(views, terms)


def clusters_of(views: Sequence[OfferView]) -> tuple[np.ndarray, int]:
    """Each offer's cluster (by load type) and the number of clusters."""
    kinds: dict[str, int] = {}
    cluster = np.array(
        [kinds.setdefault(v.offer.load_type, len(kinds)) % MAX_CLUSTERS for v in views],
        dtype=np.int64,
    )
    return cluster, min(len(kinds), MAX_CLUSTERS)


class _Search:
    """One search: the master and where its columns came from, the best prices and bound so
    far, and the best plan (value, items, schedules)."""

    def __init__(
        self,
        views: Sequence[OfferView],
        cat: Catalogue,
        terms: Terms,
        *,
        deadline: float,
        relative_gap: float,
        say: Callable[[str], None],
    ) -> None:
        self.cat = cat
        self.terms = terms
        self.deadline = deadline
        self.relative_gap = relative_gap
        self.say = say
        h = terms.slots
        self.wb = terms.w_balance
        self.pc = terms.w_cost * terms.prices
        self.weight = np.full(h, self.wb)
        self.owner = np.repeat(np.arange(cat.n_offers), np.diff(cat.offer_items))
        self.x_len = np.diff(cat.offer_x0)
        self.rng = np.random.default_rng(0)
        self.best_bound = -math.inf
        self.center = np.zeros(h)
        self.incumbent: tuple[float, np.ndarray, np.ndarray] | None = None
        self.cluster, self.clusters = clusters_of(views)
        self.master = PortfolioMaster(
            target=terms.target, w_balance=self.wb, clusters=self.clusters
        )
        self.columns: list[_Column] = []

    # -- the two halves ---------------------------------------------------------------

    def lagrangian(self, pi: np.ndarray, rnd: int) -> float:
        """Price every offer at ``pi``, add the response as a column, return ``L(pi)``."""
        priced = self.cat.price(self.pc - pi)
        value = self.terms.offset + float(pi @ self.terms.target) + priced.total
        self._add(priced.chosen, rnd)
        if value > self.best_bound:
            self.best_bound = value
            self.center = pi
        return value

    def _add(self, chosen: np.ndarray, rnd: int) -> None:
        loads = self.cat.cluster_loads(chosen, self.cluster, self.clusters)
        self.master.add(loads, loads @ self.pc)
        items = chosen.copy()
        x = self.cat.snapshot(chosen)
        for c in range(self.clusters):
            self.columns.append(_Column(items=items, x=x, cluster=c, used=rnd))

    def value(self, load: np.ndarray) -> float:
        return evaluate(self.terms, load[None, :])

    def polish(self, chosen: np.ndarray, load: np.ndarray) -> float:
        """Best-response sweeps until none moves an offer (or the time is up)."""
        for _ in range(SWEEPS):
            if time.monotonic() > self.deadline:
                break
            moved = self.cat.improve(
                chosen,
                load,
                price=self.pc,
                weight=self.weight,
                target=self.terms.target,
                order=self.rng.permutation(self.cat.n_offers),
            )
            if not moved:
                break
        return self.value(load)

    def offer(self, chosen: np.ndarray, load: np.ndarray) -> float:
        """Keep the plan if it is the best so far; returns its value."""
        value = self.value(load)
        if self.incumbent is None or value < self.incumbent[0]:
            self.incumbent = (value, chosen.copy(), self.cat.snapshot(chosen))
        return value

    def recover(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Round the master's mix: per offer the choice with most weight, and the weighted
        mean of its schedules for that choice."""
        cat = self.cat
        act = np.flatnonzero(weights > 1e-12)
        cols = [self.columns[k] for k in act]
        items = np.stack([c.items for c in cols])
        # an offer's weight in a column: the column's, if the column stands for its cluster
        mine = np.array([c.cluster for c in cols])[:, None] == self.cluster[None, :]
        share = weights[act][:, None] * mine
        mass = np.bincount(items.ravel(), weights=share.ravel(), minlength=len(cat.item_blk))
        pick = np.lexsort((-mass, self.owner))[cat.offer_items[:-1]]
        layout = np.zeros(int(cat.offer_x0[-1]))
        for col, w in zip(cols, share, strict=True):
            layout += np.repeat(w * (col.items == pick), self.x_len) * col.x
        layout /= np.repeat(mass[pick], self.x_len)
        return pick, cat.write(pick, layout)

    def gap(self) -> float:
        if self.incumbent is None:
            return math.inf
        value = self.incumbent[0]
        return (value - self.best_bound) / max(abs(value), 1e-9)

    # -- the loop ---------------------------------------------------------------------

    def run(self, start: np.ndarray, guesses: Sequence[np.ndarray] = ()) -> bool:
        """Improve the plan from ``start`` (an item per offer, schedules in the catalogue)
        until the gap is reached or the time is up; returns whether the LP gave a plan.
        ``guesses`` are first prices to try (a sample's slot values)."""
        load = self.cat.load(start)
        chosen = start.copy()
        self.polish(chosen, load)
        self.offer(chosen, load)
        self._add(chosen, 0)
        wb = self.wb
        miss = np.sign(self.terms.target - load) * wb
        for pi in (np.zeros_like(miss), -miss, miss, np.full_like(miss, -wb), *guesses):
            self.lagrangian(np.clip(pi, -wb, wb), 0)
        alpha = ALPHA_FROM_SAMPLE if guesses else ALPHA
        lp_goal = self.relative_gap / 2
        solved = False
        weights: np.ndarray | None = None
        rnd = 0
        while time.monotonic() < self.deadline:
            rnd += 1
            objective, duals, weights = self.master.solve()
            objective += self.terms.offset
            for k in np.flatnonzero(weights > 1e-12).tolist():
                self.columns[k].used = rnd
            lp_gap = (objective - self.best_bound) / max(abs(objective), 1e-9)
            if lp_gap <= lp_goal or objective - self.best_bound <= 1e-9 * max(1.0, objective):
                chosen, load = self.recover(weights)
                value = self.polish(chosen, load)
                self.offer(chosen, load)
                solved = True
                self.say(
                    f"round {rnd}: LP {objective:.6g}, bound {self.best_bound:.6g}, "
                    f"rounded plan {value:.6g} (gap {100 * self.gap():.3g} %)"
                )
                if self.gap() <= self.relative_gap or lp_gap <= 1e-9:
                    break
                lp_goal = max(lp_goal / 4, 1e-7)
            elif rnd % 25 == 0:
                self.say(
                    f"round {rnd}: LP {objective:.6g}, bound {self.best_bound:.6g} "
                    f"(LP gap {100 * lp_gap:.3g} %)"
                )
            pi = np.clip(alpha * self.center + (1 - alpha) * duals, -wb, wb)
            self.lagrangian(pi, rnd)
            if rnd % 20 == 0:
                self._forget(rnd)
        else:
            if weights is not None and not solved:
                chosen, load = self.recover(weights)
                self.polish(chosen, load)
                self.offer(chosen, load)
                solved = True
        return solved

    def _forget(self, rnd: int) -> None:
        old = [k for k, c in enumerate(self.columns) if rnd - c.used > FORGET_AFTER]
        if old:
            self.master.drop(np.asarray(old))
            gone = set(old)
            self.columns = [c for k, c in enumerate(self.columns) if k not in gone]


def plan_portfolio(
    views: Sequence[OfferView],
    terms: Terms,
    cat: Catalogue,
    start: Sequence[Placement | None],
    *,
    deadline: float,
    relative_gap: float,
    say: Callable[[str], None],
) -> Answer:
    """Plan ``views`` (laid out as ``cat``) from the placements ``start`` (``None`` where
    none is known); see the module docstring."""
    first = cat.price(np.zeros(terms.slots))
    infeasible = np.flatnonzero(first.chosen < 0).tolist()
    if infeasible:  # plan the others; these have no schedule at all
        keep = [i for i in range(len(views)) if first.chosen[i] >= 0]
        sub = catalogue([views[i] for i in keep], terms)
        if sub is None:  # every offer is infeasible
            return Answer(
                placements=[None] * len(views), bound=-math.inf, solved=False, infeasible=infeasible
            )
        inner = plan_portfolio(
            [views[i] for i in keep],
            terms,
            sub,
            [start[i] for i in keep],
            deadline=deadline,
            relative_gap=relative_gap,
            say=say,
        )
        placements: list[Placement | None] = [None] * len(views)
        for i, p in zip(keep, inner.placements, strict=True):
            placements[i] = p
        return Answer(
            placements=placements,
            bound=inner.bound,
            solved=inner.solved,
            infeasible=infeasible,
            duals=inner.duals,
        )
    # the start: the given placements where known, else the cheapest schedule at price 0
    chosen = first.chosen.copy()
    for i, p in enumerate(start):
        if p is not None:
            it = cat.item_of(i, p.block, p.start)
            chosen[i] = it
            x0 = int(cat.item_x[it])
            cat.x[x0 : x0 + len(p.energy)] = p.energy
    guesses = []
    if cat.n_offers > SAMPLE_ABOVE:
        left = deadline - time.monotonic()
        guesses.append(
            _sample_values(views, terms, start, deadline=time.monotonic() + SAMPLE_TIME * left)
        )
        say(f"prices from a sample of {SAMPLE} offers")
    search = _Search(views, cat, terms, deadline=deadline, relative_gap=relative_gap, say=say)
    solved = search.run(chosen, guesses)
    assert search.incumbent is not None
    _, items, layout = search.incumbent
    cat.write(items, layout)
    return Answer(
        placements=cat.placements(items),
        bound=search.best_bound,
        solved=solved,
        infeasible=[],
        duals=search.center,
    )


def _sample_values(
    views: Sequence[OfferView],
    terms: Terms,
    start: Sequence[Placement | None],
    *,
    deadline: float,
) -> np.ndarray:
    """The best prices of a sample of the offers (every k-th of each load type) planned
    against the target scaled to the sample's share of the defaults' energy: a portfolio
    drawn from the same population has nearly the same prices, found in a fraction of the
    time. Any prices give a valid bound; these start the full problem near its optimum."""
    cluster, count = clusters_of(views)
    pick: list[int] = []
    for c in range(count):
        members = np.flatnonzero(cluster == c)
        step = max(1, round(len(members) * count / SAMPLE))
        pick.extend(members[::step].tolist())
    pick.sort()
    energy = np.array([abs(sum(v.offer.default.energy_kwh)) for v in views])
    share = energy[pick].sum() / max(energy.sum(), 1e-9)
    sub_terms = dataclasses.replace(terms, target=terms.target * share, offset=terms.offset * share)
    sub_views = [views[i] for i in pick]
    sub = catalogue(sub_views, sub_terms)
    assert sub is not None  # a part of a catalogue is one
    first = sub.price(np.zeros(terms.slots))
    chosen = first.chosen.copy()
    for k, i in enumerate(pick):
        p = start[i]
        if p is not None:
            it = sub.item_of(k, p.block, p.start)
            chosen[k] = it
            sub.x[int(sub.item_x[it]) : int(sub.item_x[it]) + len(p.energy)] = p.energy
    search = _Search(
        sub_views, sub, sub_terms, deadline=deadline, relative_gap=0.002, say=lambda _: None
    )
    search.run(chosen)
    return search.center


def lagrangian_bound(
    views: Sequence[OfferView], terms: Terms, slot_values: Mapping[int, float]
) -> float:
    """``L(pi)`` of the portfolio ``views`` at the prices ``slot_values`` (keyed by slot start,
    as :attr:`PlanResult.slot_values <cloud.optim.problem.PlanResult.slot_values>`; clipped
    to ``|pi| <= w_balance``): a lower bound on the portfolio's optimum, from one pricing of
    every offer. ``-inf`` where this method does not apply or an offer has no schedule."""
    cat = applies(views, terms)
    if cat is None:
        return -math.inf
    pi = np.zeros(terms.slots)
    for ts, v in slot_values.items():
        t = terms.slot_of(ts)
        if 0 <= t < terms.slots:
            pi[t] = v
    pi = np.clip(pi, -terms.w_balance, terms.w_balance)
    priced = cat.price(terms.w_cost * terms.prices - pi)
    if not math.isfinite(priced.total):
        return -math.inf
    return terms.offset + float(pi @ terms.target) + priced.total
