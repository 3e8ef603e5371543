"""Time for the cloud workers: the real clock, or a simulated one that runs faster.

A worker never reads the system clock directly; it asks its clock. The demo and the tests run
a simulated day in a minute or two, and the fleet simulator must agree with the worker on what
time it is, so a simulated clock is defined by three numbers every process can be given:
the simulated time ``start`` at the wall-clock instant ``anchor`` (epoch seconds), and the
``speed`` at which simulated time runs from there. Two processes started with the same three
numbers agree however late either of them starts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """What a worker needs from time."""

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second (1 for the real clock)."""
        ...

    def now(self) -> float:
        """Current time, epoch seconds."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep ``seconds`` of this clock's time or until ``stop`` is set; ``True`` if stopped."""
        ...


class RealClock:
    """The system's UTC clock."""

    speed = 1.0

    def now(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))


@dataclass(frozen=True, slots=True, kw_only=True)
class SimClock:
    """Simulated time: ``start`` at wall instant ``anchor``, running ``speed`` times faster.

    ``anchor`` defaults to the moment of construction; pass the same anchor to every process
    of a simulation (the demo does) so that they share one timeline."""

    start: float
    speed: float = 1.0
    anchor: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")

    def now(self) -> float:
        return self.start + (time.time() - self.anchor) * self.speed

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds) / self.speed)

    def wall_at(self, sim_time: float) -> float:
        """The wall-clock instant at which simulated time reaches ``sim_time``."""
        return self.anchor + (sim_time - self.start) / self.speed
