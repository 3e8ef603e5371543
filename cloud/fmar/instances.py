"""Realistic order books from a seed: what the tests and ``bench/market.py`` clear.

Sell orders are a day (96 quarter hours) of household flexibility from
:mod:`cloud.optim.instances`, a quarter each of EV chargers, wet appliances, heat pumps and
home batteries; the first two kinds may shift their start (an EV by 1 to 3 slots, a wet
appliance within a window of hours) and the other two may not, so exactly half the orders are
time-flexible. Asks are 1 to 10 cents per kWh each way, three in ten varying over the day.

Requests are sized against the flexibility at their node (the room between each order's
default and its bounds, per slot): a DSO's congestion relief (down, in the evening peak), a
BRP's imbalance (up or down, an hour or three anywhere), an aggregator's solar absorption (up,
around noon); limits of 4 to 30 cents per kWh, one in four all-or-nothing. Several nodes form
a radial grid (each node hangs off an earlier one) with a link each way, of a capacity of 10 to
40 % of the mean room per slot at its two ends and a transport cost of 0.2 to 2 cents per kWh.
"""

from __future__ import annotations

import math
import random

import msgspec

import protocol
from cloud.optim import instances as homes
from protocol import FlexOffer

from ._book import Book, Link, Market, Network, Request, SellOrder

DAY_START = homes.DAY_START
SLOTS = homes.SLOTS
RES = homes.SLOT_S
KINDS = ("ev", "wet_appliance", "heat_pump", "battery")


def _offer(rng: random.Random, kind: str, index: int, node: str) -> FlexOffer:
    build = {
        "ev": homes.ev_offer,
        "wet_appliance": homes.wet_appliance_offer,
        "heat_pump": homes.heat_pump_offer,
        "battery": homes.battery_offer,
    }[kind]
    offer = build(rng, index=index, nodes=1)
    first = offer.start_after
    assert first is not None
    latest: int | None
    if kind == "ev":  # always time-flexible here; the builder leaves room for 3 slots
        latest = first + rng.randrange(1, 4) * RES
    elif kind in ("heat_pump", "battery"):  # a whole day: no room to shift within it
        latest = first
    else:
        latest = offer.start_before
    return msgspec.structs.replace(offer, grid_node=node, start_before=latest)


def _asks(rng: random.Random) -> tuple[float | tuple[float, ...], float | tuple[float, ...]]:
    up = round(rng.uniform(0.01, 0.10), 4)
    down = round(rng.uniform(0.01, 0.10), 4)
    if rng.random() >= 0.3:
        return up, down
    phase = rng.uniform(0, 2 * math.pi)
    shape = [1 + 0.5 * math.sin(2 * math.pi * t / SLOTS + phase) for t in range(SLOTS)]
    return tuple(round(up * s, 4) for s in shape), tuple(round(down * s, 4) for s in shape)


def _room(offers: list[FlexOffer]) -> tuple[list[float], list[float]]:
    """Per slot, the room above and below the defaults of ``offers`` (at their defaults'
    starts, within their bounds)."""
    up = [0.0] * SLOTS
    down = [0.0] * SLOTS
    for o in offers:
        d = o.default
        p = protocol.effective_profiles(o)[d.profile]
        s = (d.start - DAY_START) // RES
        for j, e in enumerate(d.energy_kwh):
            up[s + j] += max(p.upper_kwh[j] - e, 0.0)
            down[s + j] += max(e - p.lower_kwh[j], 0.0)
    return up, down


def book(
    orders: int,
    *,
    seed: int = 0,
    nodes: int = 1,
    requests: int = 20,
    one_sided: bool = False,
) -> Book:
    """A book of ``orders`` sell orders and ``requests`` requests over one day.

    ``nodes`` > 1 adds a network; ``one_sided`` makes it a one-sided pool: one fixed demand
    (no limit, up) that the orders cover as cheaply as they can."""
    rng = random.Random(seed)
    names = [f"n{k}" for k in range(nodes)]
    sell = []
    by_node: dict[str, list[FlexOffer]] = {n: [] for n in names}
    for i in range(orders):
        node = names[rng.randrange(nodes)]
        offer = _offer(rng, KINDS[i % len(KINDS)], i, node)
        up, down = _asks(rng)
        sell.append(SellOrder(offer=offer, ask_up_eur_per_kwh=up, ask_down_eur_per_kwh=down))
        by_node[node].append(offer)
    room = {n: _room(by_node[n]) for n in names}
    reqs: list[Request] = []
    if one_sided:
        node = max(names, key=lambda n: sum(room[n][0]))
        start = 40
        length = 24
        kwh = tuple(round(0.6 * room[node][0][start + t], 3) for t in range(length))
        reqs.append(
            Request(
                id="demand",
                node=node,
                start=DAY_START + start * RES,
                kwh=kwh,
                limit_eur_per_kwh=None,
                partial=True,
            )
        )
    else:
        for j in range(requests):
            reqs.append(_request(rng, j, names, room, requests))
    network = None
    if nodes > 1:
        network = _network(rng, names, room)
    return Book(
        market=Market(start=DAY_START, slots=SLOTS, resolution_s=RES),
        network=network,
        sell=tuple(sell),
        requests=tuple(reqs),
    )


def _request(
    rng: random.Random,
    j: int,
    names: list[str],
    room: dict[str, tuple[list[float], list[float]]],
    count: int,
) -> Request:
    node = names[rng.randrange(len(names))]
    kind = rng.choice(("congestion", "imbalance", "imbalance", "solar"))
    if kind == "congestion":
        start, length, sign = rng.randrange(66, 78), rng.randrange(8, 17), -1.0
    elif kind == "solar":
        start, length, sign = rng.randrange(36, 48), rng.randrange(12, 25), 1.0
    else:
        length = rng.randrange(4, 13)
        start, sign = rng.randrange(0, SLOTS - length), rng.choice((-1.0, 1.0))
    length = min(length, SLOTS - start)
    up, down = room[node]
    per_node = max(1.0, count / len(names))
    share = rng.uniform(0.5, 2.0) / per_node
    kwh = tuple(
        round(sign * share * (up if sign > 0 else down)[start + t], 3) for t in range(length)
    )
    flat = round(rng.uniform(0.04, 0.30), 3)
    limit: float | tuple[float, ...] = flat
    if rng.random() < 0.2:
        limit = tuple(round(flat * rng.uniform(0.8, 1.2), 3) for _ in range(length))
    return Request(
        id=f"req-{j:03d}",
        node=node,
        start=DAY_START + start * RES,
        kwh=kwh,
        limit_eur_per_kwh=limit,
        partial=rng.random() >= 0.25,
    )


def _network(
    rng: random.Random, names: list[str], room: dict[str, tuple[list[float], list[float]]]
) -> Network:
    pairs = set()
    n = len(names)
    for k in range(1, n):  # a radial grid: each node hangs off an earlier one
        parent = rng.randrange(k)
        pairs.add((parent, k))
        pairs.add((k, parent))
    links = []
    for a, b in sorted(pairs):
        flex = (sum(room[names[a]][0]) + sum(room[names[b]][0])) / (2 * SLOTS)
        links.append(
            Link(
                source=names[a],
                target=names[b],
                capacity_kwh=round(flex * rng.uniform(0.1, 0.4), 3),
                cost_eur_per_kwh=round(rng.uniform(0.002, 0.02), 4),
            )
        )
    return Network(nodes=tuple(names), links=tuple(links))
