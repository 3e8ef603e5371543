"""Small random books of every auction kind, with offers of every constraint kind.

A seed is a book: offers of 1 to 4 slots on an 8-slot horizon with per-slot bounds and maybe
a total, a running-sum dependency row, a general dependency row, a polytope row, a second
(exclusive-or) profile and a start window; asks as one figure or per slot; requests partial
or all-or-nothing, with limits or (one-sided) without; a network of 2 to 3 nodes.
"""

from __future__ import annotations

import random

from cloud.fmar import Book, Link, Market, Network, Request, SellOrder
from protocol import Bounds, DefaultSchedule, Dependency, FlexOffer, Polytope, Profile

T0 = 1_767_225_600
RES = 900
SLOTS = 8


def _profile(rng: random.Random, n: int, kind: str) -> tuple[Profile, list[float]]:
    lo = [round(rng.uniform(-1.0, 1.0), 3) for _ in range(n)]
    up = [round(a + rng.uniform(0.0, 2.0), 3) for a in lo]
    point = [round((a + b) / 2, 4) for a, b in zip(lo, up, strict=True)]
    extra: dict = {}
    if kind == "total":
        s = sum(point)
        extra["total"] = Bounds(round(s - rng.uniform(0, 1), 3), round(s + rng.uniform(0, 1), 3))
    elif kind == "dep":
        j = rng.randrange(n)
        used = sum(point[: j + 1])
        extra["dependencies"] = [Dependency(j, 1.0, 1.0, round(used + rng.uniform(0, 0.5), 3))]
    elif kind == "general":
        j = rng.randrange(n)
        a, b = round(rng.uniform(-1, 1), 2), round(rng.uniform(0.5, 1.5), 2)
        c = a * sum(point[:j]) + b * point[j] + rng.uniform(0, 0.5)
        extra["dependencies"] = [Dependency(j, a, b, round(c, 3) + 0.001)]
    elif kind == "poly":
        row = [round(rng.uniform(-1, 1), 2) for _ in range(n)]
        rhs = sum(a * x for a, x in zip(row, point, strict=True)) + rng.uniform(0, 0.5)
        extra["polytope"] = Polytope(a=[row], b=[round(rhs, 3) + 0.001])
    return Profile(lower_kwh=lo, upper_kwh=up, **extra), point


def _offer(rng: random.Random, i: int, node: str, kinds: tuple[str, ...]) -> FlexOffer:
    n = rng.randrange(1, 5)
    window = rng.randrange(0, 4)
    first = rng.randrange(0, SLOTS - n - window + 1)
    prof, point = _profile(rng, n, rng.choice(kinds))
    profiles = [prof]
    if rng.random() < 0.3:
        profiles.append(_profile(rng, rng.randrange(1, n + 1), "box")[0])
    start = T0 + first * RES
    return FlexOffer(
        id=f"o{i}",
        issuer="agent",
        device=f"d{i}",
        grid_node=node,
        created_at=T0 - 3600,
        acceptance_before=T0 - 1800,
        assignment_before=T0 - 900,
        start_after=start,
        start_before=start + window * RES,
        profiles=profiles,
        default=DefaultSchedule(start=start + rng.randrange(window + 1) * RES, energy_kwh=point),
    )


def _ask(rng: random.Random) -> float | tuple[float, ...]:
    if rng.random() < 0.3:
        return tuple(round(rng.uniform(0.0, 0.3), 3) for _ in range(SLOTS))
    return round(rng.uniform(0.0, 0.3), 3)


def book(
    seed: int,
    *,
    kind: str = "two-sided",
    orders: int = 6,
    requests: int = 3,
    batteries_only: bool = False,
) -> Book:
    """A book of ``kind`` ``one-sided`` (one fixed demand), ``two-sided`` (one node) or
    ``network`` (2 or 3 nodes and links); ``batteries_only`` leaves out polytopes and general
    dependency rows (what the decomposition's compiled pricing takes)."""
    rng = random.Random(seed)
    kinds = (
        ("box", "total", "dep") if batteries_only else ("box", "total", "dep", "general", "poly")
    )
    nodes = ["a"] if kind != "network" else ["a", "b", "c"][: rng.randrange(2, 4)]
    sell = []
    for i in range(orders):
        node = rng.choice(nodes)
        offer = _offer(rng, i, node if rng.random() < 0.5 else "", kinds)
        sell.append(
            SellOrder(
                offer=offer,
                node=None if offer.grid_node else node,
                ask_up_eur_per_kwh=_ask(rng),
                ask_down_eur_per_kwh=_ask(rng),
            )
        )
    reqs = []
    if kind == "one-sided":
        length = rng.randrange(2, SLOTS + 1)
        s0 = rng.randrange(0, SLOTS - length + 1)
        sign = rng.choice((-1.0, 1.0))
        reqs.append(
            Request(
                id="demand",
                node="a",
                start=T0 + s0 * RES,
                kwh=tuple(round(sign * rng.uniform(0.2, 2.0), 3) for _ in range(length)),
                limit_eur_per_kwh=None,
                partial=True,
            )
        )
    else:
        for j in range(requests):
            length = rng.randrange(1, 5)
            s0 = rng.randrange(0, SLOTS - length + 1)
            sign = rng.choice((-1.0, 1.0))
            limit: float | tuple[float, ...] = round(rng.uniform(0.05, 0.6), 3)
            if rng.random() < 0.3:
                limit = tuple(round(rng.uniform(0.05, 0.6), 3) for _ in range(length))
            reqs.append(
                Request(
                    id=f"r{j}",
                    node=rng.choice(nodes),
                    start=T0 + s0 * RES,
                    kwh=tuple(round(sign * rng.uniform(0.1, 2.0), 3) for _ in range(length)),
                    limit_eur_per_kwh=limit,
                    partial=rng.random() < 0.7,
                )
            )
    network = None
    if kind == "network":
        links = []
        for a in nodes:
            for b in nodes:
                if a != b and rng.random() < 0.7:
                    links.append(
                        Link(
                            source=a,
                            target=b,
                            capacity_kwh=round(rng.uniform(0.0, 1.5), 3),
                            cost_eur_per_kwh=round(rng.uniform(0.0, 0.05), 3),
                        )
                    )
        network = Network(nodes=tuple(nodes), links=tuple(links))
    return Book(
        market=Market(start=T0, slots=SLOTS, resolution_s=RES),
        network=network,
        sell=tuple(sell),
        requests=tuple(reqs),
    )
