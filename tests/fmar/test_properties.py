"""Property tests: whatever the book, every award passes ``protocol.check_schedule`` and no
accepted request pays more than its limit (nor any seller receives less than its asks)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from cloud.fmar import clear

from .books import book
from .checks import check_result

_SETTINGS = settings(
    max_examples=int(os.environ.get("FMAR_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@_SETTINGS
@given(
    seed=st.integers(0, 10**6),
    kind=st.sampled_from(["one-sided", "two-sided", "network"]),
    pricing=st.sampled_from(["uniform", "pay-as-bid"]),
    orders=st.integers(1, 6),
    requests=st.integers(0, 4),
)
def test_every_award_is_feasible_and_nobody_pays_above_their_bid(
    seed, kind, pricing, orders, requests
):
    b = book(seed, kind=kind, orders=orders, requests=requests)
    result = clear(b, pricing=pricing, time_limit_s=20)
    check_result(b, result)
    by_id = {o.id: o.offer for o in b.sell}
    for a in result.awards:
        schedule = protocol.Schedule(
            offer_id=a.offer_id,
            version=1,
            start=a.start,
            profile=a.profile,
            energy_kwh=list(a.energy_kwh),
        )
        assert protocol.is_feasible(by_id[a.offer_id], schedule)
    for r in result.requests:
        assert r.paid_eur <= r.value_eur + 1e-6


@_SETTINGS
@given(
    seed=st.integers(0, 10**6),
    kind=st.sampled_from(["one-sided", "two-sided", "network"]),
    orders=st.integers(1, 10),
)
def test_the_decomposition_keeps_the_same_rules(seed, kind, orders):
    b = book(seed, kind=kind, orders=orders, requests=3, batteries_only=True)
    result = clear(b, time_limit_s=5, exact_vars=0, relative_gap=1e-3)
    check_result(b, result)
