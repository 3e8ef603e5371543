"""Which devices each simulated agent has: a reproducible mix of households and grid assets.

The shares are loose figures for a North-European suburb with an active energy community:
about two homes in five heat with a heat pump, a third of the others with an electric water
heater; a third have rooftop PV, a third of those a home battery (a few without PV too); a
quarter charge an electric car; most have a freezer and a dishwasher or washing machine.
Every fiftieth agent is a DSO's grid asset (a substation feeder or a controllable plant) that
bids up and down regulation (the ``doms`` generator).

Everything agent ``i`` gets is drawn from ``random.Random(f"{seed}:{i}")``: the same seed
gives the same fleet, and agent ``i`` is the same whether the fleet has ten agents or ten
thousand. Each device is driven by the ``sim`` driver with the physical model matching its
generator, and its own seed for the day-to-day randomness of its use.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

#: Every ``GRID_EVERY``-th agent is a grid asset rather than a household.
GRID_EVERY = 50
#: Households are spread over this many grid nodes (feeders), for FMAN's grid-node limits.
GRID_NODES = 20


def site(seed: int, index: int) -> dict[str, dict[str, Any]]:
    """The device tables (as in ``[devices.<id>]`` of ``foa.toml``) of agent ``index``."""
    rng = random.Random(f"{seed}:{index}")
    if index % GRID_EVERY == GRID_EVERY - 1:
        return {
            "feeder": _device(
                seed,
                index,
                "feeder",
                "grid_asset",
                "doms",
                up_kw=round(rng.uniform(20, 200), 1),
                down_kw=round(rng.uniform(20, 200), 1),
                direction=rng.choice(["both", "both", "up", "down"]),
            )
        }
    devices: dict[str, dict[str, Any]] = {}

    def add(name: str, model: str, generator: str, **params: Any) -> None:
        devices[name] = _device(seed, index, name, model, generator, **params)

    if rng.random() < 0.40:
        add("heat_pump", "heat_pump", "heat_pump", max_power_kw=round(rng.uniform(1.5, 4.5), 1))
    elif rng.random() < 0.35:
        add(
            "boiler",
            "boiler",
            "boiler",
            volume_l=rng.choice([150, 200, 300]),
            power_kw=rng.choice([2.0, 3.0, 4.5]),
        )
    pv = rng.random() < 0.33
    if pv:
        add("pv", "pv", "pv", peak_kw=round(rng.uniform(3.0, 10.0), 1))
    if rng.random() < (0.33 if pv else 0.04):
        add(
            "battery",
            "battery",
            "battery",
            capacity_kwh=rng.choice([5.0, 7.5, 10.0, 13.5]),
            max_charge_kw=3.0,
            max_discharge_kw=3.0,
        )
    if rng.random() < 0.25:
        add(
            "ev",
            "ev",
            "ev",
            battery_kwh=rng.choice([40.0, 58.0, 77.0, 100.0]),
            max_power_kw=rng.choice([3.7, 7.4, 11.0]),
        )
    if rng.random() < 0.55:
        add("freezer", "freezer", "freezer")
    if rng.random() < 0.70:
        add("dishwasher", "wet_appliance", "wet_appliance", appliance="dishwasher")
    if rng.random() < 0.45:
        add("washer", "wet_appliance", "wet_appliance", appliance="washing_machine")
    if not devices:
        add("freezer", "freezer", "freezer")
    return devices


def grid_node(index: int) -> str:
    return f"node-{index % GRID_NODES:02d}"


def _device(
    seed: int, index: int, name: str, model: str, generator: str, **params: Any
) -> dict[str, Any]:
    return {
        "driver": "sim",
        "model": model,
        "generator": generator,
        "seed": zlib.crc32(f"{seed}:{index}:{name}".encode()),
        **params,
    }


def census(sites: Iterable[dict[str, dict[str, Any]]]) -> Counter[str]:
    """How many devices of each generator a fleet has (for the summary and the docs)."""
    return Counter(d["generator"] for devices in sites for d in devices.values())
