"""What every clearing result must satisfy, checked from the book alone."""

from __future__ import annotations

import math

import protocol
from cloud.fmar import Book, Clearing, order_asks
from cloud.fmar._book import nodes_of, order_node, request_limits, request_node

TOL = 1e-6


def check_result(book: Book, result: Clearing, *, voll: float = 10.0) -> None:
    """Feasibility of every award (``protocol.check_schedule``), deviations that match the
    schedules, accepted kWh within the requests (all or nothing where asked), flows within
    capacity, balance per node and slot, the welfare recomputed, the bound above it, and
    the payment rules (nobody worse off than their bid)."""
    mk = book.market
    h = mk.slots
    nodes = nodes_of(book)
    by_id = {o.id: o for o in book.sell}
    assert len({a.offer_id for a in result.awards}) == len(result.awards)
    balance = {(n, t): 0.0 for n in nodes for t in range(h)}
    cost = 0.0
    awarded = {a.offer_id: a for a in result.awards}
    for oid, order in by_id.items():
        offer = order.offer
        d = [0.0] * h
        for j, e in enumerate(offer.default.energy_kwh):
            d[mk.slot_of(offer.default.start) + j] = e
        a = awarded.get(oid)
        if a is None:
            continue  # runs its default: no deviation, nothing paid
        schedule = protocol.Schedule(
            offer_id=oid, version=1, start=a.start, profile=a.profile, energy_kwh=list(a.energy_kwh)
        )
        assert protocol.check_schedule(offer, schedule) == [], (oid, a)
        x = [0.0] * h
        for j, e in enumerate(a.energy_kwh):
            x[mk.slot_of(a.start) + j] = e
        assert len(a.deviation_kwh) == h
        up, down = order_asks(mk, order)
        node = order_node(book, order)
        assert a.node == node
        ask = 0.0
        for t in range(h):
            dev = x[t] - d[t]
            assert math.isclose(a.deviation_kwh[t], dev, abs_tol=TOL), (oid, t)
            balance[(node, t)] += dev
            ask += up[t] * max(dev, 0.0) + down[t] * max(-dev, 0.0)
        assert math.isclose(a.ask_eur, ask, abs_tol=TOL)
        cost += ask
        # a seller never receives less than its asks cost
        assert a.paid_eur >= ask - TOL, (oid, a.paid_eur, ask)
    value = 0.0
    reqs = {r.id: r for r in book.requests}
    assert {r.id for r in result.requests} == set(reqs)
    for acc in result.requests:
        req = reqs[acc.id]
        node = request_node(book, req)
        limits = request_limits(req, voll)
        s0 = mk.slot_of(req.start)
        asked = [0.0] * h
        lim = [0.0] * h
        for j, q in enumerate(req.kwh):
            asked[s0 + j] = q
            lim[s0 + j] = limits[j]
        share = None
        v = 0.0
        for t in range(h):
            got = acc.accepted_kwh[t]
            q = asked[t]
            assert min(q, 0.0) - TOL <= got <= max(q, 0.0) + TOL, (acc.id, t, got, q)
            if not req.partial and abs(q) > TOL:
                s = got / q
                assert share is None or math.isclose(s, share, abs_tol=1e-6)
                share = s
            balance[(node, t)] -= got
            v += lim[t] * abs(got)
        if share is not None:
            assert math.isclose(share, 0.0, abs_tol=1e-6) or math.isclose(share, 1.0, abs_tol=1e-6)
        assert math.isclose(acc.value_eur, v, abs_tol=TOL)
        value += v
        # no accepted request pays more than its limit value (partial ones in every slot)
        assert acc.paid_eur <= v + TOL, (acc.id, acc.paid_eur, v)
        if result.pricing == "uniform":
            # the node's price per kWh, capped per slot (partial) or in total at the limit
            prices = result.prices[node]
            slot_pay = [prices[t] * acc.accepted_kwh[t] for t in range(h)]
            if req.partial:
                want = sum(
                    min(p, lim[t] * abs(acc.accepted_kwh[t])) for t, p in enumerate(slot_pay)
                )
            else:
                want = min(sum(slot_pay), v)
            assert math.isclose(acc.paid_eur, want, abs_tol=1e-6), (acc.id, acc.paid_eur, want)
    transport = 0.0
    links = {(k.source, k.target): k for k in (book.network.links if book.network else ())}
    assert len(result.flows) == len(links)
    for f in result.flows:
        link = links[(f.source, f.target)]
        for t in range(h):
            assert -TOL <= f.kwh[t] <= link.capacity_kwh + TOL
            balance[(f.source, t)] -= f.kwh[t]
            balance[(f.target, t)] += f.kwh[t]
            transport += link.cost_eur_per_kwh * f.kwh[t]
    worst = max((abs(v) for v in balance.values()), default=0.0)
    assert worst <= 1e-5, worst
    welfare = value - cost - transport
    assert math.isclose(result.welfare_eur, welfare, abs_tol=1e-5), (result.welfare_eur, welfare)
    assert math.isclose(result.transport_eur, transport, abs_tol=1e-6)
    if result.bound_eur is not None:
        assert result.bound_eur >= result.welfare_eur - 1e-6
    assert result.welfare_eur >= -1e-6  # never worse than running every default
    assert set(result.prices) == set(nodes)
    assert all(len(p) == h for p in result.prices.values())
    paid_in = sum(r.paid_eur for r in result.requests)
    paid_out = sum(a.paid_eur for a in result.awards)
    assert math.isclose(result.surplus_eur, paid_in - paid_out, abs_tol=1e-5)
    assert math.isclose(
        result.uplift_eur, max(result.transport_eur - result.surplus_eur, 0.0), abs_tol=1e-5
    )
