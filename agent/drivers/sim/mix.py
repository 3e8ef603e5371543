"""Reproducible device mixes for simulated households and grid sites (the fleet simulator's
devices), as ``[devices.<id>]`` tables for the ``sim`` driver.

The shares are round numbers in the range of recent northern-European surveys, not a
statistic of any one country: about 60 % of homes heat with a heat pump, half have an electric
water heater, 70 % a separate freezer, a third an electric car, a quarter a home battery, 45 %
PV, 60 % a dishwasher and 40 % a washing machine on a smart plug. Sizes vary within what is
sold. Everything follows from ``seed``: the same seed, the same household.
"""

from __future__ import annotations

import random
from typing import Any

Tables = dict[str, dict[str, Any]]


def household(seed: int) -> Tables:
    """The devices of one simulated household, by device id."""
    rng = random.Random(f"household:{seed}")
    devices: Tables = {}

    def add(device: str, generator: str, model: str, **params: Any) -> None:
        devices[device] = {
            "driver": "sim",
            "generator": generator,
            "model": model,
            "seed": rng.randrange(2**31),
            **params,
        }

    if rng.random() < 0.6:
        add(
            "heat_pump",
            "heat_pump",
            "heat_pump",
            r_k_per_kw=round(rng.uniform(3.0, 8.0), 2),
            c_kwh_per_k=round(rng.uniform(6.0, 20.0), 1),
            max_power_kw=rng.choice([2.0, 3.0, 4.5]),
            setpoint_c=rng.choice([20.5, 21.0, 21.5]),
            outdoor_mean_c=round(rng.uniform(0.0, 8.0), 1),
        )
    if rng.random() < 0.5:
        add("boiler", "boiler", "boiler", volume_l=rng.choice([120, 150, 200, 300]))
    if rng.random() < 0.7:
        add("freezer", "freezer", "freezer", compressor_w=rng.choice([80, 100, 150]))
    if rng.random() < 0.35:
        add(
            "ev",
            "ev",
            "ev",
            battery_kwh=rng.choice([40.0, 58.0, 77.0]),
            max_power_kw=rng.choice([3.7, 7.4, 11.0]),
        )
    if rng.random() < 0.25:
        capacity = rng.choice([5.0, 10.0, 13.5])
        add(
            "battery",
            "battery",
            "battery",
            capacity_kwh=capacity,
            max_charge_kw=capacity / 2,
            max_discharge_kw=capacity / 2,
        )
    if rng.random() < 0.45:
        add("pv", "pv", "pv", peak_kw=round(rng.uniform(3.0, 10.0), 1))
    if rng.random() < 0.6:
        add("dishwasher", "wet_appliance", "wet_appliance", appliance="dishwasher")
    if rng.random() < 0.4 or not devices:
        add(
            "washing_machine",
            "wet_appliance",
            "wet_appliance",
            appliance="washing_machine",
            use_probability=0.5,
        )
    return devices


def grid_site(seed: int) -> Tables:
    """A distribution operator's flexible asset bidding into a DOMS market."""
    rng = random.Random(f"grid_site:{seed}")
    base = rng.uniform(30.0, 300.0)
    evening = [base * (1.3 if 17 <= h <= 21 else 0.9 if h < 6 else 1.0) for h in range(24)]
    return {
        "grid_asset": {
            "driver": "sim",
            "generator": "doms",
            "model": "grid_asset",
            "seed": rng.randrange(2**31),
            "baseline_kw": [round(v, 1) for v in evening],
            "up_kw": round(base * 0.2, 1),
            "down_kw": round(base * 0.3, 1),
            "hours": [17, 18, 19, 20],
            "resolution_s": rng.choice([900, 3600]),
        }
    }
