"""The contract between the simulated-device driver and one physical model.

A model owns a device's state and integrates it over time. The driver steps it: at the start
of each step it asks :meth:`SimModel.power_w` what the device draws given the last command and
its state (its BMS, a programme in progress), then calls :meth:`SimModel.integrate`, which
returns the energy actually drawn: thermostats and battery management switch at their exact
crossing times within the step, so results do not depend on how often the device is read.
Discrete events (a car arriving, a shower) happen in :meth:`SimModel.at`, and
:meth:`SimModel.next_event` lets the driver end a step exactly on them.

Randomness comes only from :func:`day_rng`: one generator per (seed, model, day), so a
model's behaviour on a day does not depend on how often it was read, and two devices with
the same seed behave identically.
"""

from __future__ import annotations

import functools
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, ClassVar

from agent.drivers.base import Limits
from agent.params import Params


def day_rng(seed: int, kind: str, day: date) -> random.Random:
    """A random generator for one model on one (local) day; string seeds hash stably."""
    return random.Random(f"{seed}:{kind}:{day.isoformat()}")


class DailyEvents:
    """Per-day draws of one model, made on first use and kept for a few days."""

    KEEP_DAYS = 4

    def __init__(self, make: Callable[[date], Any]) -> None:
        self.make = make
        self.days: dict[date, Any] = {}

    def __call__(self, day: date) -> Any:
        if day not in self.days:
            if len(self.days) >= self.KEEP_DAYS:
                del self.days[min(self.days)]
            self.days[day] = self.make(day)
        return self.days[day]


class SimModel(ABC):
    """One simulated device. Subclasses read their physics from ``params`` (the same keys as
    the matching generator), start their state at ``start`` and draw events from ``seed``."""

    kind: ClassVar[str]

    def __init__(self, params: Params, *, seed: int, start: float) -> None:
        self.seed = seed
        self.zone = params.timezone()
        self.command_w: float | None = None  # None: the device runs on its own
        self.command_on: bool | None = None

    @property
    @abstractmethod
    def limits(self) -> Limits: ...

    @abstractmethod
    def power_w(self, t: float) -> float:
        """What the device draws from ``t`` on (negative: produces), given its state."""

    @abstractmethod
    def integrate(self, t: float, dt_s: float, power_w: float) -> float:
        """Advance the state by ``dt_s`` seconds drawing ``power_w``; return the energy
        actually drawn, kWh (less than ``power_w * dt_s`` where a thermostat or a battery
        management system cut the power within the step)."""

    @abstractmethod
    def state(self, t: float) -> dict[str, float]:
        """The quantities a generator reads (``temp_c``, ``soc_kwh``, ``plugged``, …)."""

    def at(self, t: float) -> None:  # noqa: B027 - optional hook
        """Apply the discrete events due at or before ``t``."""

    def next_event(self, t: float) -> float:
        """The time of the next discrete event after ``t`` (``inf``: none)."""
        return math.inf

    def set_programme(self, index: int) -> None:  # noqa: B027 - optional hook
        """Select a programme (wet appliances)."""

    def commanded(self, t: float) -> None:  # noqa: B027 - optional hook
        """A command just arrived at ``t`` (for devices that react to the edge, not the level:
        a dishwasher starts when switched on)."""

    def commanded_w(self, max_w: float, min_w: float = 0.0) -> float | None:
        """The last command as a power within ``[min_w, max_w]`` (switching on means full
        power), or ``None`` while nobody has commanded the device."""
        if self.command_w is not None:
            return min(max_w, max(min_w, self.command_w))
        if self.command_on is not None:
            return max_w if self.command_on else max(min_w, 0.0)
        return None

    def relay(self) -> bool:
        """For on/off devices: is the supply switched on (on until told otherwise)."""
        if self.command_on is not None:
            return self.command_on
        if self.command_w is not None:
            return self.command_w > 0.0
        return True

    def local(self, day: date, hours: float) -> float:
        """Epoch seconds of ``hours`` after local midnight of ``day``."""
        return _local(self.zone, day, hours)

    def local_day(self, t: float) -> date:
        return datetime.fromtimestamp(t, self.zone).date()


@functools.lru_cache(maxsize=4096)
def _local(zone: tzinfo, day: date, hours: float) -> float:
    """Time-zone arithmetic is slow and every model asks for the same few instants (noon,
    the day's events) again at every step: cached, shared by the models of a fleet."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    return (midnight + timedelta(hours=hours)).timestamp()
