"""Realistic planning instances: a day of households' flexible loads, a target and prices.

The benchmark, the tests and operators trying ``atp plan`` need portfolios that look like what
FMAN sees, without running agents: EV chargers (energy-flexible: a charge need within a plug-in
period), heat pumps (a comfort band as dependency rows on the heat taken so far), home batteries
(state-of-charge limits as dependency rows, charge and discharge), and wet appliances (a fixed
programme that may start any time in a window, some with an eco programme as an exclusive-or
alternative). Sizes and times are drawn from a seeded generator, so a seed is an instance.

Every offer is a day of quarter hours (96 slots): heat pumps and batteries span the whole day,
EVs their plug-in period, wet appliances their programme, placed within the day.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from protocol import Bounds, DefaultSchedule, Dependency, FlexOffer, Profile

#: 2026-01-01T00:00:00Z, on every slot grid.
DAY_START = 1_767_225_600
SLOT_S = 900
SLOTS = 96
KINDS = ("ev", "heat_pump", "battery", "wet_appliance")


def _offer(
    rng: random.Random,
    *,
    kind: str,
    index: int,
    day: int,
    earliest: int,
    latest: int,
    profiles: list[Profile],
    default: DefaultSchedule,
    nodes: int,
) -> FlexOffer:
    agent = f"home-{index:06d}"
    created = day - 3600
    return FlexOffer(
        id=f"{agent}.{kind}",
        issuer=agent,
        device=kind,
        load_type=kind,
        grid_node=f"node-{rng.randrange(nodes)}",
        created_at=created,
        acceptance_before=created + 900,
        assignment_before=min(earliest, created + 1800),
        start_after=earliest,
        start_before=latest,
        profiles=profiles,
        default=default,
    )


def ev_offer(rng: random.Random, *, index: int, day: int = DAY_START, nodes: int = 4) -> FlexOffer:
    """Plugged in for 4 to 14 hours, charging at up to 3.7, 7.4 or 11 kW; needs 80 to 100 % of
    a charge of 5 to 40 kWh by departure. A plug-in registered late may start up to 3 slots
    later than announced."""
    arrive = rng.randrange(0, 56)
    stay = min(rng.randrange(16, 57), SLOTS - arrive - 3)
    per_slot = rng.choice((3.7, 7.4, 11.0)) * SLOT_S / 3600
    need = round(min(rng.uniform(5.0, 40.0), 0.85 * stay * per_slot), 3)
    slack = rng.randrange(0, 4)
    start = day + arrive * SLOT_S
    # default: charge at full power from plug-in until the need is met
    full, rest = divmod(need, per_slot)
    energy = [per_slot] * int(full) + [rest] + [0.0] * (stay - int(full) - 1)
    profile = Profile(
        lower_kwh=[0.0] * stay,
        upper_kwh=[per_slot] * stay,
        total=Bounds(round(0.8 * need, 3), need),
    )
    return _offer(
        rng,
        kind="ev",
        index=index,
        day=day,
        earliest=start,
        latest=start + slack * SLOT_S,
        profiles=[profile],
        default=DefaultSchedule(start=start, energy_kwh=energy[:stay]),
        nodes=nodes,
    )


def heat_pump_offer(
    rng: random.Random, *, index: int, day: int = DAY_START, nodes: int = 4
) -> FlexOffer:
    """A heat pump of 2 to 6 kW electric over the day. The building needs its daily heat
    (within ±10 %), and a comfort band bounds the heat taken by the end of each slot: never
    more than ``buffer`` ahead of a steady run, never more than ``buffer`` behind. Its
    flexibility is in that band; one in five may also shift its day by a quarter hour."""
    per_slot = rng.uniform(2.0, 6.0) * SLOT_S / 3600
    steady = per_slot * rng.uniform(0.3, 0.6)  # the mean draw of a cold day
    buffer = per_slot * rng.uniform(3.0, 10.0)  # thermal mass, in kWh of electricity
    deps = []
    for i in range(SLOTS):
        deps.append(Dependency(i, 1.0, 1.0, round(steady * (i + 1) + buffer, 6)))
        deps.append(Dependency(i, -1.0, -1.0, round(buffer - steady * (i + 1), 6)))
    total = steady * SLOTS
    start = day
    profile = Profile(
        lower_kwh=[0.0] * SLOTS,
        upper_kwh=[round(per_slot, 6)] * SLOTS,
        total=Bounds(round(0.9 * total, 6), round(1.1 * total, 6)),
        dependencies=deps,
    )
    return _offer(
        rng,
        kind="heat_pump",
        index=index,
        day=day,
        earliest=start,
        latest=start + (SLOT_S if rng.random() < 0.2 else 0),
        profiles=[profile],
        default=DefaultSchedule(start=start, energy_kwh=[round(steady, 6)] * SLOTS),
        nodes=nodes,
    )


def battery_offer(
    rng: random.Random, *, index: int, day: int = DAY_START, nodes: int = 4
) -> FlexOffer:
    """A home battery of 5 to 15 kWh and 3 to 5 kW over the day, starting between 20 and 80 %
    charged; it must end the day at least as charged as it started and stay within 10 to 95 %.
    Dependency rows bound the state of charge after each slot."""
    capacity = rng.uniform(5.0, 15.0)
    per_slot = round(rng.uniform(3.0, 5.0) * SLOT_S / 3600, 6)
    soc0 = capacity * rng.uniform(0.2, 0.8)
    up = round(0.95 * capacity - soc0, 6)  # energy that may still go in
    down = round(soc0 - 0.10 * capacity, 6)  # energy that may still come out
    deps = []
    for i in range(SLOTS):
        deps.append(Dependency(i, 1.0, 1.0, up))
        deps.append(Dependency(i, -1.0, -1.0, down))
    profile = Profile(
        lower_kwh=[-per_slot] * SLOTS,
        upper_kwh=[per_slot] * SLOTS,
        total=Bounds(0.0, up),
        dependencies=deps,
    )
    return _offer(
        rng,
        kind="battery",
        index=index,
        day=day,
        earliest=day,
        latest=day,
        profiles=[profile],
        default=DefaultSchedule(start=day, energy_kwh=[0.0] * SLOTS),
        nodes=nodes,
    )


def wet_appliance_offer(
    rng: random.Random, *, index: int, day: int = DAY_START, nodes: int = 4
) -> FlexOffer:
    """A washing machine, dryer or dishwasher: a programme of 1 to 3 hours with a fixed energy
    curve (±5 %), startable anywhere in a window of 2 to 12 hours. Half of them offer an eco
    programme as an alternative: 1.5 times as long, 80 % of the energy."""
    length = rng.randrange(4, 13)
    peak = rng.uniform(0.3, 0.6)
    curve = [
        round(peak * (0.5 + 0.5 * math.sin(math.pi * (j + 0.5) / length)), 4) for j in range(length)
    ]
    earliest = rng.randrange(0, SLOTS - length - 8)
    window = min(rng.randrange(8, 49), SLOTS - length - earliest)
    start = day + earliest * SLOT_S
    profiles = [_programme(curve)]
    if rng.random() < 0.5:
        eco_len = min(int(length * 1.5), SLOTS - earliest - window)
        eco_curve = [sum(curve) * 0.8 / eco_len] * eco_len
        if eco_len >= 1:
            profiles.append(_programme(eco_curve))
    return _offer(
        rng,
        kind="wet_appliance",
        index=index,
        day=day,
        earliest=start,
        latest=start + window * SLOT_S,
        profiles=profiles,
        default=DefaultSchedule(start=start, energy_kwh=curve),
        nodes=nodes,
    )


def _programme(curve: Sequence[float]) -> Profile:
    return Profile(
        lower_kwh=[round(0.95 * v, 6) for v in curve],
        upper_kwh=[round(1.05 * v, 6) for v in curve],
    )


_BUILDERS = {
    "ev": ev_offer,
    "heat_pump": heat_pump_offer,
    "battery": battery_offer,
    "wet_appliance": wet_appliance_offer,
}


def portfolio(
    n: int,
    *,
    seed: int = 0,
    day: int = DAY_START,
    mix: Sequence[str] = KINDS,
    nodes: int = 4,
) -> list[FlexOffer]:
    """``n`` offers cycling through ``mix`` (a quarter of each kind by default)."""
    rng = random.Random(seed)
    return [_BUILDERS[mix[i % len(mix)]](rng, index=i, day=day, nodes=nodes) for i in range(n)]


def solar_target(
    offers: Sequence[FlexOffer], *, day: int = DAY_START, surplus: float = 0.3
) -> dict[int, float]:
    """A balancing target for the portfolio: the energy its defaults consume over the day plus
    a ``surplus`` share of solar energy to absorb, shaped like solar production (a bell from
    7:00 to 19:00, peaking at noon) on top of a small flat base. The portfolio can shift its
    load into the day but cannot absorb the whole surplus: the optimum leaves a deviation, so
    a relative gap means something."""
    total = (1 + surplus) * sum(sum(o.default.energy_kwh) for o in offers)
    shape = []
    for t in range(SLOTS):
        hour = (t + 0.5) * SLOT_S / 3600
        sun = max(0.0, math.sin(math.pi * (hour - 7.0) / 12.0)) if 7.0 <= hour <= 19.0 else 0.0
        shape.append(0.1 + sun**3)
    norm = sum(shape)
    return {day + t * SLOT_S: total * s / norm for t, s in enumerate(shape)}


def day_ahead_prices(*, day: int = DAY_START, seed: int = 0) -> dict[int, float]:
    """EUR/kWh per slot: a morning and an evening peak, a midday solar dip, a little noise."""
    rng = random.Random(seed)
    prices = {}
    for t in range(SLOTS):
        hour = (t + 0.5) * SLOT_S / 3600
        p = (
            0.10
            + 0.08 * math.exp(-((hour - 8) ** 2) / 3)
            + 0.12 * math.exp(-((hour - 19) ** 2) / 4)
        )
        p -= 0.06 * math.exp(-((hour - 13) ** 2) / 6)
        prices[day + t * SLOT_S] = round(p + rng.uniform(-0.005, 0.005), 5)
    return prices
