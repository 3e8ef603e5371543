"""What the EMS needs from a device, whatever protocol it speaks.

A driver is registered in the ``atp.drivers`` entry-point group under its ``name`` and built
from its config table (``[devices.<id>]`` in ``foa.toml``). Drivers wrap their protocol's
errors in :class:`~agent.errors.DeviceFault`, never return a stale value as fresh (a value that
could not be read is a fault, not the last good value), and accept set-points only within
their :class:`Limits` (the EMS clips first; a driver refuses what is left over).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agent.clock import Clock
from agent.errors import DeviceFault
from agent.params import Params


@dataclass(frozen=True, slots=True)
class Limits:
    """The power range a device may be driven in, W (negative: production or discharge).

    ``modulating=False`` marks an on/off load (a plug, a boiler element): the EMS drives it by
    duty cycle within each slot, at ``max_power_w`` when on."""

    max_power_w: float
    min_power_w: float = 0.0
    modulating: bool = True

    def clip(self, power_w: float) -> float:
        return min(self.max_power_w, max(self.min_power_w, power_w))


@dataclass(frozen=True, slots=True)
class Measurement:
    """One fresh reading of a device.

    ``energy_kwh`` is the device's cumulative energy register (consumption positive) when it
    has one; ``energy_wrap_kwh`` the amount after which that register wraps to zero, when the
    driver knows it (an unsigned Modbus register's range times its scale), so the EMS can
    tell a wrap from a reset; ``state`` carries device-specific quantities the generators use
    (``soc_kwh``, ``temp_c``, ``plugged``, …)."""

    ts: float
    power_w: float | None = None
    energy_kwh: float | None = None
    on: bool | None = None
    state: Mapping[str, float] = field(default_factory=dict)
    energy_wrap_kwh: float | None = None


class Driver(ABC):
    """Base of every device driver."""

    #: Entry-point name, used as ``driver = "..."`` in the config.
    name: ClassVar[str]
    version: ClassVar[str] = "1"

    def __init__(
        self,
        *,
        device_id: str,
        params: Mapping[str, Any],
        clock: Clock,
        key_prefix: str | None = None,
    ) -> None:
        self.device_id = device_id
        self.params = params
        self.clock = clock
        #: Put in front of a parameter's name in a ConfigError (``devices.<id>.``).
        self.key_prefix = f"devices.{device_id}." if key_prefix is None else key_prefix
        self.setup(Params(params, prefix=self.key_prefix))

    def setup(self, p: Params) -> None:  # noqa: B027 - optional hook
        """Read and check the driver's own parameters; ``p.error(key, …)`` makes the
        :class:`~agent.errors.ConfigError`. Called at the end of ``__init__``."""

    @property
    @abstractmethod
    def limits(self) -> Limits: ...

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect to the device (the EMS calls it once, before the first read)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection; the device is left as :meth:`safe_state` put it."""

    @abstractmethod
    async def read(self) -> Measurement:
        """A fresh measurement, or :class:`DeviceFault`."""

    @abstractmethod
    async def set_power(self, power_w: float) -> None:
        """Drive a modulating device at ``power_w`` (already within :attr:`limits`)."""

    @abstractmethod
    async def set_on(self, on: bool) -> None:
        """Switch an on/off device."""

    def check_set_point(self, power_w: float) -> float:
        """``power_w`` within :attr:`limits` (rounding errors clipped away), or
        :class:`DeviceFault` when it lies outside them: the EMS clips first, so what is left
        is a bug that must not reach the device."""
        lim = self.limits
        slack = 1e-6 * max(1.0, abs(lim.max_power_w), abs(lim.min_power_w))
        if not lim.min_power_w - slack <= power_w <= lim.max_power_w + slack:
            raise DeviceFault(
                self.device_id,
                f"set-point {power_w:g} W outside [{lim.min_power_w:g}, {lim.max_power_w:g}] W",
            )
        return lim.clip(power_w)

    async def set_programme(self, index: int) -> None:  # noqa: B027 - optional hook
        """Select programme ``index`` (the schedule's profile index) before :meth:`set_on`.

        Only devices with programmes (wet appliances) act on it; for the others, and for a
        machine whose programme the user picks at its panel, it does nothing."""

    async def safe_state(self) -> None:
        """Leave the device in its safe state on shutdown: the default is off / zero power."""
        if self.limits.modulating:
            await self.set_power(self.limits.clip(0.0))
        else:
            await self.set_on(False)
