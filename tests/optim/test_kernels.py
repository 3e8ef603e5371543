"""The compiled cheapest-schedule programme against an LP solver, on random batteries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linprog

from cloud.optim.kernels import cheapest_schedule


def _random_battery(rng: np.random.Generator, n: int):
    lower = np.round(rng.uniform(-1.0, 0.5, n) * (rng.random(n) < 0.6), 3)
    upper = lower + np.round(rng.uniform(0.0, 1.5, n), 3)
    run_lo = np.full(n, -np.inf)
    run_hi = np.full(n, np.inf)
    # running-sum bounds around a feasible path, on some slots
    path = np.cumsum(lower + rng.uniform(0, 1, n) * (upper - lower))
    for j in np.flatnonzero(rng.random(n) < 0.4):
        run_lo[j] = path[j] - rng.uniform(0, 1)
        run_hi[j] = path[j] + rng.uniform(0, 1)
    return lower, upper, run_lo, run_hi


def _lp(lower, upper, run_lo, run_hi, price, weight, resid) -> float:
    """min price.x + weight.|resid + x| as an LP in x and u >= |resid + x|."""
    n = len(lower)
    eye, tri, zero = np.eye(n), np.tril(np.ones((n, n))), np.zeros((n, n))
    a_ub = np.block([[eye, -eye], [-eye, -eye], [tri, zero], [-tri, zero]])
    b_ub = np.concatenate(
        (-resid, resid, np.where(np.isfinite(run_hi), run_hi, 1e9), -np.maximum(run_lo, -1e9))
    )
    res = linprog(
        np.concatenate((price, weight)),
        A_ub=a_ub,
        b_ub=b_ub,
        bounds=list(zip(lower, upper, strict=True)) + [(None, None)] * n,
        method="highs",
    )
    return res.fun if res.status == 0 else math.nan


@pytest.mark.parametrize("l1", [False, True])
def test_matches_the_lp_and_returns_a_schedule_of_that_cost(l1):
    rng = np.random.default_rng(7 if l1 else 3)
    for _ in range(60):
        n = int(rng.integers(1, 30))
        lower, upper, run_lo, run_hi = _random_battery(rng, n)
        price = rng.uniform(-1, 1, n)
        weight = rng.uniform(0.2, 2.0, n) if l1 else np.zeros(n)
        resid = rng.uniform(-3, 3, n) if l1 else np.zeros(n)
        x = np.zeros(n)
        value = cheapest_schedule(lower, upper, run_lo, run_hi, price, weight, resid, x)
        assert value == pytest.approx(
            _lp(lower, upper, run_lo, run_hi, price, weight, resid), abs=1e-6
        )
        assert price @ x + weight @ np.abs(resid + x) == pytest.approx(value, abs=1e-6)
        assert np.all(x >= lower - 1e-9) and np.all(x <= upper + 1e-9)
        run = np.cumsum(x)
        assert np.all(run >= run_lo - 1e-6) and np.all(run <= run_hi + 1e-6)


def test_no_schedule_is_nan():
    n = 3
    x = np.zeros(n)
    value = cheapest_schedule(
        np.zeros(n),
        np.ones(n),
        np.array([-np.inf, -np.inf, 3.5]),  # more than three slots of 1 kWh can give
        np.full(n, np.inf),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        x,
    )
    assert math.isnan(value)
