"""One clock for the whole agent, so the same code runs in real time and in simulated time.

Nothing in the agent calls ``time.time()`` or ``asyncio.sleep()`` for scheduling decisions: it
asks the clock it was given. :class:`SimClock` runs a simulated day in minutes (the fleet,
the demo and the tests), :class:`RealClock` is wall time.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Protocol


def parse_instant(text: str) -> float:
    """Epoch seconds or ISO 8601 (a date, or a date and time; UTC unless the text names an
    offset): how every ``--sim-start`` of the agent's commands reads a simulated start.
    ``ValueError`` with the text otherwise."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is neither epoch seconds nor ISO 8601") from None
        value = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r} is not a time after 1970")
    return value


class Clock(Protocol):
    def now(self) -> float:
        """UTC epoch seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class RealClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimClock:
    """Time that runs ``speed`` times faster than the wall clock from ``start``.

    ``speed=900`` turns a 15-minute slot into one second. Every instance started from the same
    ``start`` and ``speed`` at the same moment reads the same time, so a fleet in several
    processes stays in step with the FMAN worker when they share ``start`` and ``epoch``."""

    def __init__(self, *, start: float, speed: float = 1.0, epoch: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = float(start)
        self.speed = float(speed)
        self.epoch = time.monotonic() if epoch is None else epoch

    @classmethod
    def anchored(cls, *, start: float, speed: float, anchor: float) -> SimClock:
        """A clock that read ``start`` at wall-clock time ``anchor`` (UNIX seconds).

        Processes started at different moments with the same three numbers read the same
        simulated time (the fleet, FMAN and a restarted agent stay in step)."""
        return cls(start=start, speed=speed, epoch=time.monotonic() - (time.time() - anchor))

    def now(self) -> float:
        return self.start + (time.monotonic() - self.epoch) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
