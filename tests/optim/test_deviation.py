"""The market's view of offers: compiled pricing of deviations against an LP per choice."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.optimize import linprog

from cloud.optim.blocks import view
from cloud.optim.catalogue import catalogue
from cloud.optim.deviation import build_deviation, deviation_columns, price_deviations
from cloud.optim.instances import battery_offer, ev_offer, heat_pump_offer, wet_appliance_offer
from cloud.optim.oracle import as_battery
from cloud.optim.terms import Terms

T0 = 1_767_225_600
H = 96


def _terms() -> Terms:
    return Terms(
        t0=T0,
        resolution_s=900,
        slots=H,
        target=np.zeros(H),
        prices=np.zeros(H),
        w_balance=0.0,
        w_cost=0.0,
        w_peak=0.0,
        groups=("",),
        limits=None,
        offset=0.0,
    )


def _lp_value(offer, block, start, lam, up, down, d) -> float:
    """min sum_t up_t (x_t - d_t)+ + down_t (d_t - x_t)+ - lam_t (x_t - d_t) over the choice,
    by an LP in x (the block's slots) and the deviations' parts per horizon slot."""
    bat = as_battery(block)
    n = block.n
    s = (start - T0) // 900
    # variables: x (n), p (H), m (H); x placed at s..s+n; p - m = x_placed - d
    c = np.concatenate((-lam[s : s + n], up, down))
    a_eq = np.zeros((H, n + 2 * H))
    for j in range(n):
        a_eq[s + j, j] = 1.0
    a_eq[:, n : n + H] = -np.eye(H)
    a_eq[:, n + H :] = np.eye(H)
    b_eq = d.copy()
    tri = np.tril(np.ones((n, n)))
    a_ub, b_ub = [], []
    for k in range(n):
        if np.isfinite(bat.run_hi[k]):
            a_ub.append(np.concatenate((tri[k], np.zeros(2 * H))))
            b_ub.append(bat.run_hi[k])
        if np.isfinite(bat.run_lo[k]):
            a_ub.append(-np.concatenate((tri[k], np.zeros(2 * H))))
            b_ub.append(-bat.run_lo[k])
    bounds = [(lo, hi) for lo, hi in zip(block.lower, block.upper, strict=True)]
    bounds += [(0, None)] * (2 * H)
    res = linprog(
        c,
        A_ub=np.array(a_ub) if a_ub else None,
        b_ub=np.array(b_ub) if b_ub else None,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    assert res.status == 0, res.message
    return float(res.fun + lam @ d)


@pytest.mark.parametrize("seed", range(3))
def test_compiled_pricing_matches_an_lp_per_choice(seed):
    rng = random.Random(seed)
    builders = (ev_offer, heat_pump_offer, battery_offer, wet_appliance_offer)
    offers = [builders[i % 4](rng, index=i, nodes=1) for i in range(8)]
    views = [view(o) for o in offers]
    cat = catalogue(views, _terms())
    assert cat is not None
    nrng = np.random.default_rng(seed)
    lam = nrng.normal(0.0, 0.1, H)
    up = nrng.uniform(0.0, 0.1, (len(offers), H))
    down = nrng.uniform(0.0, 0.1, (len(offers), H))
    default = np.zeros((len(offers), H))
    for i, o in enumerate(offers):
        s = (o.default.start - T0) // 900
        default[i, s : s + len(o.default.energy_kwh)] = o.default.energy_kwh
    price = np.ascontiguousarray((up - down) / 2 - lam[None, :])
    weight = np.ascontiguousarray((up + down) / 2)
    chosen = np.empty(len(offers), dtype=np.int64)
    values = np.empty(len(offers))
    total = price_deviations(cat.layout, price, weight, -default, cat.x, chosen, values)
    assert total == pytest.approx(values.sum())
    for i, (o, v) in enumerate(zip(offers, views, strict=True)):
        best = min(
            _lp_value(o, b, start, lam, up[i], down[i], default[i])
            for b in v.blocks
            for start in range(b.first_start, b.last_start + 1, 900)
        )
        assert values[i] == pytest.approx(best, abs=1e-6), o.id
    # the columns: each offer's deviation and ask cost, summed per cluster
    dev = np.zeros((2, H))
    cost = np.zeros(2)
    cluster = np.arange(len(offers)) % 2
    deviation_columns(cat.layout, chosen, cat.x, default, up, down, cluster, dev, cost)
    lam_dev = np.zeros(2)
    for i, p in enumerate(cat.placements(chosen)):
        assert p is not None
        x = np.zeros(H)
        s = (p.start - T0) // 900
        x[s : s + len(p.energy)] = p.energy
        dv = x - default[i]
        lam_dev[i % 2] += lam @ dv
    assert cost - lam_dev == pytest.approx([values[0::2].sum(), values[1::2].sum()], abs=1e-6)


def test_the_compact_model_prices_the_same():
    """The compact model's LP with a choice fixed and the balance rows priced at ``lam``
    (moved into the objective) is the cheapest deviation, as the kernel says."""
    from cloud.optim import solver
    from cloud.optim.model import LinearProblem

    rng = random.Random(5)
    offers = [heat_pump_offer(rng, index=0, nodes=1), ev_offer(rng, index=1, nodes=1)]
    views = [view(o) for o in offers]
    nrng = np.random.default_rng(5)
    lam = nrng.normal(0.0, 0.1, H)
    up = nrng.uniform(0.0, 0.1, (2, H))
    down = nrng.uniform(0.0, 0.1, (2, H))
    default = np.zeros((2, H))
    for i, o in enumerate(offers):
        s = (o.default.start - T0) // 900
        default[i, s : s + len(o.default.energy_kwh)] = o.default.energy_kwh
    problem, layout = build_deviation(
        views,
        t0=T0,
        resolution_s=900,
        slots=H,
        node_of=np.zeros(2, dtype=np.int64),
        nodes=1,
        ask_up=up,
        ask_down=down,
        default=default,
        integer=False,
    )
    # price the balance rows: - lam * (up - down) in the objective, rows left free
    obj = problem.obj.copy()
    row0 = layout.balance_row0
    bal = (problem.rows >= row0) & (problem.rows < row0 + H)
    np.add.at(obj, problem.cols[bal], -lam[problem.rows[bal] - row0] * problem.vals[bal])
    row_lb = problem.row_lb.copy()
    row_ub = problem.row_ub.copy()
    row_lb[row0 : row0 + H] = -np.inf
    row_ub[row0 : row0 + H] = np.inf
    priced = LinearProblem(
        var_lb=problem.var_lb,
        var_ub=problem.var_ub,
        obj=obj,
        integer=problem.integer,
        row_lb=row_lb,
        row_ub=row_ub,
        rows=problem.rows,
        cols=problem.cols,
        vals=problem.vals,
    )
    sol = solver.solve(priced, time_limit_s=30, integer=False)
    cat = catalogue(views, _terms())
    assert cat is not None
    chosen = np.empty(2, dtype=np.int64)
    values = np.empty(2)
    price = np.ascontiguousarray((up - down) / 2 - lam[None, :])
    weight = np.ascontiguousarray((up + down) / 2)
    total = price_deviations(cat.layout, price, weight, -default, cat.x, chosen, values)
    # the LP relaxation may mix starts, so it is at most the kernel's value; both offers
    # here have windows whose best start the LP takes whole
    assert sol.objective <= total + 1e-6
    assert sol.objective == pytest.approx(total, abs=1e-5)
