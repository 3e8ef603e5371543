"""Electrochemical storage: a home battery and the battery of an electric car.

The state of charge ``soc_kwh`` is the energy stored in the cells. Energy metered at the grid
side, ``e`` (kWh, positive charging), changes it by ``eta_charge * e`` when charging and by
``e / eta_discharge`` when discharging: the converter loses energy in both directions, so a
round trip returns ``eta_charge * eta_discharge`` of what went in.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.params import Params


def soc_after(soc_kwh: float, grid_kwh: float, *, eta_charge: float, eta_discharge: float) -> float:
    """The state of charge after ``grid_kwh`` went in (positive) or came out (negative)."""
    if grid_kwh >= 0.0:
        return soc_kwh + eta_charge * grid_kwh
    return soc_kwh + grid_kwh / eta_discharge


def soc_range_after(
    low_soc_kwh: float,
    high_soc_kwh: float,
    *,
    low_kwh: float,
    high_kwh: float,
    charge_kwh: float,
    eta_charge: float,
    eta_discharge: float,
) -> tuple[float, float]:
    """The range of the state of charge, from anywhere in ``[low_soc_kwh, high_soc_kwh]``,
    after any sequence of grid energies that adds up to ``low_kwh .. high_kwh`` and charges
    at most ``charge_kwh`` in all.

    With ``S`` the sum and ``P`` the energy charged, the charge moves by
    ``S / eta_discharge - (1/eta_discharge - eta_charge) * P``: at most by ``soc_after`` of
    ``S`` (nothing charged that is discharged again), at least when ``S`` is least and ``P``
    most (charging, then discharging it again, loses energy both ways)."""
    loss = 1.0 / eta_discharge - eta_charge
    charged = max(charge_kwh, low_kwh, 0.0)
    low = low_soc_kwh + low_kwh / eta_discharge - loss * charged
    high = soc_after(high_soc_kwh, high_kwh, eta_charge=eta_charge, eta_discharge=eta_discharge)
    return low, high


@dataclass(frozen=True, slots=True)
class BatterySpec:
    """A stationary battery behind a bidirectional inverter.

    ``soc_min``/``soc_max`` are fractions of ``capacity_kwh`` that the agent keeps to (the
    battery management system has harder limits of its own beyond them)."""

    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    eta_charge: float
    eta_discharge: float
    soc_min_kwh: float
    soc_max_kwh: float

    @classmethod
    def from_params(cls, p: Params) -> BatterySpec:
        capacity = p.number("capacity_kwh", 10.0, min=0.1, max=10_000)
        soc_min = p.number("soc_min", 0.1, min=0.0, max=1.0)
        soc_max = p.number("soc_max", 0.95, min=0.0, max=1.0)
        if soc_max - soc_min < 0.05:
            raise p.error("soc_max", f"{soc_max:g} must be at least 0.05 above soc_min")
        return cls(
            capacity_kwh=capacity,
            max_charge_kw=p.number("max_charge_kw", 5.0, min=0.01, max=10_000),
            max_discharge_kw=p.number("max_discharge_kw", 5.0, min=0.01, max=10_000),
            eta_charge=p.number("eta_charge", 0.95, min=0.5, max=1.0),
            eta_discharge=p.number("eta_discharge", 0.95, min=0.5, max=1.0),
            soc_min_kwh=soc_min * capacity,
            soc_max_kwh=soc_max * capacity,
        )


@dataclass(frozen=True, slots=True)
class EvSpec:
    """An electric car at a charger that can only charge it.

    ``max_power_kw`` is what the charger and the car agree on (11 kW: three phases at 16 A).
    ``target_soc`` is what the driver wants at departure, ``min_soc`` what the driver must
    have; between the two lies the energy flexibility of the session."""

    battery_kwh: float
    max_power_kw: float
    efficiency: float
    target_soc: float
    min_soc: float
    dwell_h: float

    @classmethod
    def from_params(cls, p: Params) -> EvSpec:
        target = p.number("target_soc", 0.9, min=0.05, max=1.0)
        return cls(
            battery_kwh=p.number("battery_kwh", 60.0, min=1, max=500),
            max_power_kw=p.number("max_power_kw", 11.0, min=0.5, max=400),
            efficiency=p.number("efficiency", 0.9, min=0.5, max=1.0),
            target_soc=target,
            min_soc=p.number("min_soc", 0.5 * target, min=0.0, max=target),
            dwell_h=p.number("dwell_h", 10.0, min=0.25, max=7 * 24),
        )
