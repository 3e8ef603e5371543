"""Which keys of a device table the local page lets a person change, by generator.

Prices (every built-in generator reads them through ``agent.generators._common.Pricing``)
and the limits a household sets for its comfort: the room's band of a heat pump, the
freezer's, the hot water's temperature and ready-by hours, the car's state of charge, the
battery's band, how long a wet appliance may wait. The physics (building, tank, battery
size) and the device's wiring stay in the file, where an installer set them.

The defaults shown are the generators' own; ``tests/web`` checks each against what the
generator does when the key is absent. The values are checked by the same code as
``foa config check`` (the generator's ``Params``), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    label: str
    unit: str
    default: float | tuple[float, ...] | None
    kind: Literal["number", "numbers"] = "number"


def _prices(lo: float = 0.0, hi: float = 0.5, deviation: float | None = None) -> tuple[Field, ...]:
    return (
        Field("price_min_eur_per_kwh", "lowest price (direct trading)", "EUR/kWh", lo),
        Field("price_max_eur_per_kwh", "highest price (direct trading)", "EUR/kWh", hi),
        Field(
            "deviation_eur_per_kwh", "price of a deviation from the schedule", "EUR/kWh", deviation
        ),
    )


def _band(lo: float, hi: float, setpoint: float) -> tuple[Field, ...]:
    return (
        Field("t_min_c", "coldest allowed", "°C", lo),
        Field("t_max_c", "warmest allowed", "°C", hi),
        Field("setpoint_c", "set-point", "°C", setpoint),
    )


#: generator name -> the keys the page edits, in the order it shows them
FIELDS: dict[str, tuple[Field, ...]] = {
    "heat_pump": (*_band(20.0, 23.0, 21.0), *_prices()),
    "freezer": (*_band(-25.0, -15.0, -18.0), *_prices()),
    "boiler": (
        Field("t_target_c", "hot water at least", "°C", 55.0),
        Field("t_max_c", "hottest allowed", "°C", 65.0),
        Field("ready_by_h", "hot by (local hours)", "h", (6.0, 18.0), kind="numbers"),
        *_prices(),
    ),
    "ev": (
        Field("target_soc", "charge wanted at departure", "share of the battery", 0.9),
        Field("min_soc", "charge needed at departure", "share of the battery", 0.45),
        *_prices(),
    ),
    "battery": (
        Field("soc_min", "lowest charge kept", "share of the battery", 0.1),
        Field("soc_max", "highest charge", "share of the battery", 0.95),
        *_prices(),
    ),
    "wet_appliance": (
        Field("max_delay_h", "longest wait before the programme starts", "h", 10.0),
        *_prices(),
    ),
    "pv": _prices(-0.5, 0.5),
    "doms": _prices(0.0, 1.0, deviation=0.10),
}


def fields_for(generator: str | None) -> tuple[Field, ...]:
    return FIELDS.get(generator or "", ())
