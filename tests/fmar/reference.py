"""An independent reference for the clearing: the market's MIP written directly for HiGHS.

It reads the book through the protocol only (effective profiles, start windows), models every
order with a binary per choice and slot energies per choice (no running sums, no shared code
with ``cloud.optim`` or ``cloud.fmar``'s solvers), and returns the optimal welfare. The tests
compare the clearing's welfare and proven bound with it, and check outcomes against the book
with the protocol's ``check_schedule``.
"""

from __future__ import annotations

import math

import highspy

import protocol
from cloud.fmar import Book
from cloud.fmar import order_asks as asks_of
from cloud.fmar._book import nodes_of, order_node, request_limits, request_node


class _Model:
    def __init__(self) -> None:
        self.h = highspy._Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("mip_rel_gap", 1e-7)
        self.n = 0

    def var(self, lb: float, ub: float, cost: float = 0.0, integer: bool = False) -> int:
        self.h.addVar(lb, ub)
        k = self.n
        self.n += 1
        if cost:
            self.h.changeColCost(k, cost)
        if integer:
            self.h.changeColIntegrality(k, highspy.HighsVarType.kInteger)
        return k

    def row(self, lb: float, ub: float, terms: dict[int, float]) -> None:
        idx = list(terms)
        self.h.addRow(lb, ub, len(idx), idx, [terms[k] for k in idx])


def reference_welfare(book: Book, *, voll: float = 10.0, time_limit_s: float = 120.0) -> float:
    """The optimal welfare of clearing ``book`` (maximised; HiGHS minimises its negative)."""
    m = _Model()
    m.h.setOptionValue("time_limit", time_limit_s)
    mk = book.market
    res = mk.resolution_s
    nodes = nodes_of(book)
    inf = math.inf
    # balance[node][slot]: terms of deviations + inflows - outflows - accepted
    balance: dict[tuple[str, int], dict[int, float]] = {
        (n, t): {} for n in nodes for t in range(mk.slots)
    }
    for order in book.sell:
        offer = order.offer
        up, down = asks_of(mk, order)
        energy: dict[int, dict[int, float]] = {t: {} for t in range(mk.slots)}
        selectors = {}
        for k, prof in enumerate(protocol.effective_profiles(offer)):
            lo, hi = protocol.profile_window(offer, prof)
            lo = protocol.align_up(lo, res)
            hi -= hi % res
            for start in range(lo, hi + 1, res):
                y = m.var(0, 1, integer=True)
                selectors[(k, start)] = y
                xs = []
                for j in range(prof.n_slots):
                    x = m.var(-inf, inf)
                    xs.append(x)
                    m.row(-inf, 0, {x: 1, y: -prof.upper_kwh[j]})
                    m.row(0, inf, {x: 1, y: -prof.lower_kwh[j]})
                    energy[mk.slot_of(start) + j][x] = 1.0
                if prof.total is not None:
                    terms = dict.fromkeys(xs, 1.0)
                    m.row(-inf, 0, {**terms, y: -prof.total.upper})
                    m.row(0, inf, {**terms, y: -prof.total.lower})
                for slot, a, b, c in prof.dependencies:
                    terms: dict[int, float] = {}
                    for i in range(slot):
                        terms[xs[i]] = terms.get(xs[i], 0.0) + a
                    terms[xs[slot]] = terms.get(xs[slot], 0.0) + b
                    terms[y] = terms.get(y, 0.0) - c
                    m.row(-inf, 0, terms)
                if prof.polytope is not None:
                    for row, rhs in zip(prof.polytope.a, prof.polytope.b, strict=True):
                        terms = {x: v for x, v in zip(xs, row, strict=True) if v}
                        terms[y] = -rhs
                        m.row(-inf, 0, terms)
        m.row(1, 1, dict.fromkeys(selectors.values(), 1.0))
        d = offer.default
        default = [0.0] * mk.slots
        for j, e in enumerate(d.energy_kwh):
            default[mk.slot_of(d.start) + j] = e
        node = order_node(book, order)
        for t in range(mk.slots):
            u = m.var(0, inf, up[t])
            v = m.var(0, inf, down[t])
            m.row(default[t], default[t], {**energy[t], u: -1.0, v: 1.0})
            balance[(node, t)][u] = 1.0
            balance[(node, t)][v] = -1.0
    for req in book.requests:
        node = request_node(book, req)
        limits = request_limits(req, voll)
        s0 = mk.slot_of(req.start)
        z = None if req.partial else m.var(0, 1, integer=True)
        value = 0.0
        for j, q in enumerate(req.kwh):
            if q == 0:
                continue
            if z is None:
                a = m.var(min(q, 0), max(q, 0), -limits[j] * (1 if q > 0 else -1))
                balance[(node, s0 + j)][a] = -1.0
            else:
                value += limits[j] * abs(q)
                balance[(node, s0 + j)][z] = balance[(node, s0 + j)].get(z, 0.0) - q
        if z is not None:
            m.h.changeColCost(z, -value)
    if book.network is not None:
        for link in book.network.links:
            for t in range(mk.slots):
                f = m.var(0, link.capacity_kwh, link.cost_eur_per_kwh)
                balance[(link.source, t)][f] = -1.0
                balance[(link.target, t)][f] = 1.0
    for terms in balance.values():
        if terms:
            m.row(0, 0, terms)
    m.h.run()
    status = m.h.getModelStatus()
    assert status == highspy.HighsModelStatus.kOptimal, m.h.modelStatusToString(status)
    return -m.h.getInfo().objective_function_value
