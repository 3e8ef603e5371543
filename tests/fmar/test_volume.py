"""The volume algorithm on a small network book: its bound is proven, its mix is a mix."""

from __future__ import annotations

import time

import numpy as np

from cloud.fmar._clear import DEFAULT_VOLL
from cloud.fmar._decompose import _Search, applies
from cloud.fmar._numeric import numeric
from cloud.fmar._volume import volume
from cloud.fmar.instances import book as generated

from .reference import reference_welfare


def test_the_volume_bound_holds_and_its_average_weighs_each_order_once():
    """Every round's ``U(lam)`` bounds the welfare, so the best of them must not fall below
    the optimum; the averaged primal gives each order weights summing to one, and its
    heaviest choice is one of that order's own."""
    b = generated(40, seed=3, nodes=3, requests=6)
    num = numeric(b, voll=DEFAULT_VOLL)
    cat = applies(num)
    assert cat is not None
    search = _Search(
        num,
        cat,
        aon=np.where(num.req_partial, 1.0, np.nan),
        wide=2.0 * max(float(num.req_limit.max()), float(num.ask_up.max()), 1.0),
        step=0.05,
        deadline=0.0,
        say=lambda _: None,
    )
    start = np.zeros((num.n_nodes, num.slots))
    first = search.price(start)[0]
    averaged = volume(search, start, deadline=time.monotonic() + 0.5, say=lambda _: None)
    assert averaged.rounds > 1
    assert search.best_bound <= first
    assert search.best_bound >= reference_welfare(b, voll=DEFAULT_VOLL) - 1e-6
    per_order = np.add.reduceat(averaged.mass, cat.offer_items[:-1])
    assert np.allclose(per_order, 1.0)
    pick, layout = averaged.heaviest(search)
    assert np.all((pick >= cat.offer_items[:-1]) & (pick < cat.offer_items[1:]))
    assert layout.shape == (int(cat.offer_x0[-1]),)
