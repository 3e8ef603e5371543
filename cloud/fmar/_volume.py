"""The volume algorithm on the clearing's Lagrangian dual: many cheap rounds, no master.

On a network the dual of the node balance has a price per node and slot (1,920 on the
20-node benchmark book). Pricing every order at given prices is one compiled programme per
order (46 ms for the benchmark's 5,000 orders), but the cutting-plane master of
:mod:`cloud.fmar._decompose` over that many rows re-solves in seconds, so within a clearing's
time the cutting planes make a dozen rounds. The volume algorithm (Barahona and Anbil 2000)
needs no master: a subgradient step from the best prices so far along an *average* of the
subgradients, the average's weights chosen to make it short. It makes about 150 rounds in
the time the master makes four or five, and gives two things:

- *a bound*: every round's ``U(lam)`` bounds the welfare of any clearing, so the least of
  them is still a proven bound (the search keeps it as its best, with its prices);
- *an averaged primal*: the same weights applied to each order's responses give each
  order a convex combination of its choices (its weight per item, and per item the
  weighted sum of its schedules), which approaches the LP relaxation's solution as the
  averaged subgradient (that mix's imbalance) goes to zero.

The cutting planes then start from the best prices, with the averaged primal and the last
rounds' responses as columns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._decompose import _Search

#: A step moves the best prices this far (EUR/kWh, Euclidean over every node and slot)
#: times a factor, against the averaged subgradient. Polyak's step (the bound's distance to
#: a target over the squared norm) grows without limit as the averaged subgradient shrinks:
#: on the 20-node benchmark book it stalled 60 rounds at a time; this length did not.
LENGTH = 0.2
#: The factor: its start, and how it changes after an improving round whose subgradient
#: agrees with the averaged one ("green"), and after ``RED`` rounds in a row without one.
FACTOR = 1.0
GREEN = 1.1
RED = 5
SHRINK = 0.66
#: The newest round's weight in the average lies between a tenth of this and this.
ALPHA_MAX = 0.1
#: The last rounds' responses kept as columns for the master.
KEEP = 8
#: Progress every this many rounds.
SAY_EVERY = 500

Say = Callable[[str], None]


@dataclass(slots=True)
class Averaged:
    """What the volume algorithm found (the best prices and bound stay in the search)."""

    #: per item (the catalogue's), its weight in the averaged primal (per order they sum to 1)
    mass: np.ndarray
    #: per item, the weighted sum of its schedules (the catalogue's item layout)
    xsum: np.ndarray
    #: the averaged primal's imbalance per node and slot (kWh)
    imbalance: np.ndarray
    rounds: int
    #: the last rounds' responses: items and their schedules (per-offer layout)
    recent: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def heaviest(self, search: _Search) -> tuple[np.ndarray, np.ndarray]:
        """Per order the item of most weight, and the weighted mean of its schedules there
        (a schedule of that item: each item's schedules form a convex set)."""
        cat = search.cat
        pick = np.lexsort((np.arange(len(self.mass)), -np.round(self.mass, 12), search.owner))[
            cat.offer_items[:-1]
        ]
        n = cat.lengths(pick)
        within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        src = np.repeat(cat.item_x[pick], n) + within
        dst = np.repeat(cat.offer_x0[:-1], n) + within
        layout = np.zeros(int(cat.offer_x0[-1]))
        layout[dst] = self.xsum[src] / np.repeat(np.maximum(self.mass[pick], 1e-300), n)
        return pick, layout


def volume(search: _Search, start: np.ndarray, *, deadline: float, say: Say) -> Averaged:
    """The volume algorithm from prices ``start`` until ``deadline``; the search's best
    bound and prices are updated by every round."""
    cat = search.cat
    lam_bar = np.clip(start, -search.wide, search.wide)
    u_bar, chosen, g_bar = search.price(lam_bar)
    mass = np.zeros(len(cat.item_blk))
    mass[chosen] = 1.0
    xsum = np.zeros_like(cat.x)
    src = _spans(search, chosen)
    xsum[src] = cat.x[src]
    recent: list[tuple[np.ndarray, np.ndarray]] = []
    factor = FACTOR
    red = 0
    rounds = 1
    while time.monotonic() < deadline:
        norm = float(np.sum(g_bar * g_bar))
        if norm <= 1e-18:
            break  # the averaged primal balances: the bound is the LP's
        step = factor * LENGTH / math.sqrt(norm)
        lam = np.clip(lam_bar - step * g_bar, -search.wide, search.wide)
        u, chosen, g = search.price(lam)
        rounds += 1
        # the newest round's weight: the one that makes the averaged subgradient shortest
        diff = g_bar - g
        dd = float(np.sum(diff * diff))
        alpha = float(np.sum(g_bar * diff)) / dd if dd > 0 else ALPHA_MAX
        alpha = min(max(alpha, ALPHA_MAX / 10), ALPHA_MAX)
        g_bar = alpha * g + (1 - alpha) * g_bar
        mass *= 1 - alpha
        mass[chosen] += alpha
        xsum *= 1 - alpha
        src = _spans(search, chosen)
        xsum[src] += alpha * cat.x[src]
        if u < u_bar:
            if float(np.sum(g * g_bar)) >= 0:
                factor = min(factor * GREEN, 2.0)
            lam_bar, u_bar = lam, u
            red = 0
        else:
            red += 1
            if red >= RED:
                factor *= SHRINK
                red = 0
        if rounds % SAY_EVERY == 0:
            say(
                f"volume round {rounds}: bound {search.best_bound:.6g}, averaged imbalance "
                f"{math.sqrt(float(np.sum(g_bar * g_bar))):.4g} kWh"
            )
        if rounds % max(1, KEEP) == 0 or time.monotonic() >= deadline:
            recent.append((chosen.copy(), cat.snapshot(chosen)))
            del recent[:-KEEP]
    say(f"volume: {rounds} rounds, bound {search.best_bound:.6g}")
    return Averaged(
        mass=mass,
        xsum=xsum,
        imbalance=g_bar,
        rounds=rounds,
        recent=recent,
    )


def _spans(search: _Search, chosen: np.ndarray) -> np.ndarray:
    """Indices in the catalogue's item layout of every slot of the chosen items."""
    cat = search.cat
    n = cat.lengths(chosen)
    within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return np.asarray(np.repeat(cat.item_x[chosen], n) + within)
