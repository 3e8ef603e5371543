"""Every choice of every offer as flat arrays: what the compiled kernels work on.

A portfolio is priced thousands of times per plan, so the per-offer Python objects
(:class:`~cloud.optim.blocks.OfferView`) are laid out once into flat numpy arrays: one
*block* per exclusive-or profile (its slot bounds and running-sum bounds back to back), one
*item* per block and start (the block and the horizon slot it starts at), the items of an
offer side by side. :mod:`cloud.optim.kernels` prices all items under slot prices in one call
and re-optimises offers against the rest of the portfolio; this module turns their answers
back into placements.

Only generalised batteries fit (per-slot bounds, a total, dependency rows with ``a == b``:
EVs, heat pumps, batteries, wet appliances); :func:`catalogue` returns ``None`` for a portfolio
with other rows (a polytope, a general dependency), which the planner models as an LP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import kernels
from .blocks import OfferView
from .oracle import as_battery
from .placements import Placement
from .terms import Terms


@dataclass(frozen=True, slots=True)
class Priced:
    """An answer of :meth:`Catalogue.price`: per offer its cheapest item (-1 when it has no
    schedule) and that item's value, their sum, and the portfolio load they make."""

    total: float
    chosen: np.ndarray
    values: np.ndarray
    load: np.ndarray


@dataclass(slots=True, kw_only=True)
class Catalogue:
    """The flat layout (see the module docstring); ``x`` holds the latest schedule of every
    item, so an answer is only valid until the next call."""

    terms: Terms
    lower: np.ndarray
    upper: np.ndarray
    run_lo: np.ndarray
    run_hi: np.ndarray
    blk_off: np.ndarray
    #: the offer's block index (into ``OfferView.blocks``) of each flat block
    blk_block: np.ndarray
    item_blk: np.ndarray
    item_slot: np.ndarray
    offer_items: np.ndarray
    item_x: np.ndarray
    x: np.ndarray
    #: slot ranges of a fixed per-offer layout, long enough for any of the offer's blocks:
    #: :meth:`snapshot` copies the chosen schedules there
    offer_x0: np.ndarray

    @property
    def layout(self) -> kernels.Layout:
        """The arrays the kernels read, in their order."""
        return (
            self.lower,
            self.upper,
            self.run_lo,
            self.run_hi,
            self.blk_off,
            self.item_blk,
            self.item_slot,
            self.offer_items,
            self.item_x,
        )

    @property
    def n_offers(self) -> int:
        return len(self.offer_items) - 1

    def price(self, price: np.ndarray) -> Priced:
        """Every offer's cheapest choice under per-slot prices (EUR or any unit per kWh)."""
        chosen = np.empty(self.n_offers, dtype=np.int64)
        values = np.empty(self.n_offers)
        load = np.zeros(self.terms.slots)
        total = kernels.price_items(
            self.layout,
            np.ascontiguousarray(price, dtype=float),
            self.x,
            chosen,
            values,
            load,
        )
        return Priced(total=float(total), chosen=chosen, values=values, load=load)

    def improve(
        self,
        chosen: np.ndarray,
        load: np.ndarray,
        *,
        price: np.ndarray,
        weight: np.ndarray,
        target: np.ndarray,
        order: np.ndarray,
    ) -> int:
        """One best-response sweep over ``order`` (see :func:`kernels.best_response`);
        ``chosen`` and ``load`` are updated in place, the items' schedules in ``x``."""
        return int(
            kernels.best_response(
                self.layout,
                np.ascontiguousarray(price, dtype=float),
                np.ascontiguousarray(weight, dtype=float),
                np.ascontiguousarray(target, dtype=float),
                self.x,
                chosen,
                load,
                np.ascontiguousarray(order, dtype=np.int64),
            )
        )

    def lengths(self, items: np.ndarray) -> np.ndarray:
        blk = self.item_blk[items]
        return self.blk_off[blk + 1] - self.blk_off[blk]

    def _spans(self, items: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of every slot of ``items`` in ``x``, and the same slots from ``base``
        (one start per item) on."""
        n = self.lengths(items)
        within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        return np.repeat(self.item_x[items], n) + within, np.repeat(base, n) + within

    def snapshot(self, chosen: np.ndarray) -> np.ndarray:
        """The chosen items' schedules in the fixed per-offer layout (zeros after the end)."""
        out = np.zeros(int(self.offer_x0[-1]))
        src, dst = self._spans(chosen, self.offer_x0[:-1])
        out[dst] = self.x[src]
        return out

    def write(self, chosen: np.ndarray, layout: np.ndarray) -> np.ndarray:
        """Make schedules in the per-offer layout the items' current schedules in ``x``, and
        return the load they make."""
        src, dst = self._spans(chosen, self.offer_x0[:-1])
        self.x[src] = layout[dst]
        return self.load(chosen)

    def cluster_loads(self, chosen: np.ndarray, cluster: np.ndarray, count: int) -> np.ndarray:
        """The load of each cluster of offers (``cluster[i]`` is offer ``i``'s), ``[count,
        slots]``."""
        h = self.terms.slots
        src, slots = self._spans(chosen, self.item_slot[chosen])
        where = np.repeat(cluster, self.lengths(chosen)) * h + slots
        return np.bincount(where, weights=self.x[src], minlength=count * h).reshape(count, h)

    def load(self, chosen: np.ndarray) -> np.ndarray:
        src, slots = self._spans(chosen, self.item_slot[chosen])
        return np.bincount(slots, weights=self.x[src], minlength=self.terms.slots)

    def item_of(self, offer: int, block: int, start: int) -> int:
        """The item of ``offer``'s block ``block`` started at ``start`` (epoch s)."""
        slot = self.terms.slot_of(start)
        for it in range(self.offer_items[offer], self.offer_items[offer + 1]):
            if self.blk_block[self.item_blk[it]] == block and self.item_slot[it] == slot:
                return it
        raise KeyError((offer, block, start))

    def placements(self, chosen: np.ndarray) -> list[Placement | None]:
        out: list[Placement | None] = []
        t = self.terms
        for it in chosen.tolist():
            if it < 0:
                out.append(None)
                continue
            b = int(self.item_blk[it])
            a, e = int(self.blk_off[b]), int(self.blk_off[b + 1])
            x0 = int(self.item_x[it])
            out.append(
                Placement(
                    int(self.blk_block[b]),
                    t.t0 + int(self.item_slot[it]) * t.resolution_s,
                    self.x[x0 : x0 + e - a].copy(),
                )
            )
        return out


def catalogue(views: Sequence[OfferView], terms: Terms) -> Catalogue | None:
    """The flat layout of ``views``, or ``None`` when some profile is not a generalised
    battery (or when there is no offer)."""
    if not views:
        return None
    lower, upper, run_lo, run_hi = [], [], [], []
    blk_len, blk_block, item_blk, offer_items = [], [], [], [0]
    item_slot: list[int] = []
    x_len = []
    res = terms.resolution_s
    for v in views:
        for k, b in enumerate(v.blocks):
            bat = as_battery(b)
            if bat is None:
                return None
            lower.append(bat.lower)
            upper.append(bat.upper)
            run_lo.append(bat.run_lo)
            run_hi.append(bat.run_hi)
            blk_len.append(b.n)
            blk_block.append(k)
            first = terms.slot_of(b.first_start)
            count = (b.last_start - b.first_start) // res + 1
            item_blk.extend([len(blk_len) - 1] * count)
            item_slot.extend(range(first, first + count))
        offer_items.append(len(item_blk))
        x_len.append(max(b.n for b in v.blocks))
    blk_off = np.concatenate(([0], np.cumsum(blk_len, dtype=np.int64)))
    items = np.asarray(item_blk, dtype=np.int64)
    item_len = np.asarray(blk_len, dtype=np.int64)[items]
    item_x = np.concatenate(([0], np.cumsum(item_len)))
    return Catalogue(
        terms=terms,
        lower=np.concatenate(lower).astype(float),
        upper=np.concatenate(upper).astype(float),
        run_lo=np.concatenate(run_lo).astype(float),
        run_hi=np.concatenate(run_hi).astype(float),
        blk_off=blk_off,
        blk_block=np.asarray(blk_block, dtype=np.int64),
        item_blk=items,
        item_slot=np.asarray(item_slot, dtype=np.int64),
        offer_items=np.asarray(offer_items, dtype=np.int64),
        item_x=item_x[:-1],
        x=np.zeros(int(item_x[-1])),
        offer_x0=np.concatenate(([0], np.cumsum(x_len, dtype=np.int64))),
    )
