"""Small helpers shared by the device tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import accumulate

from agent.generators._corridor import default_path
from protocol import FlexOffer, Profile

#: 2026-01-01T00:00:00Z
T0 = 1_767_225_600


class ManualClock:
    """A clock that moves only when told: deterministic simulated time for the tests."""

    def __init__(self, start: float = T0) -> None:
        self.t = float(start)

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


def corridor_of(profile: Profile) -> tuple[list[float], list[float]]:
    """The cumulative corridor ``(lower, upper)`` written in ``profile``'s dependency rows."""
    n = profile.n_slots
    lower, upper = [float("-inf")] * n, [float("inf")] * n
    for slot, a, b, c in profile.dependencies:
        assert abs(a) == 1.0 and a == b, "corridor rows have a == b == +-1"
        if a > 0:
            upper[slot] = min(upper[slot], c)
        else:
            lower[slot] = max(lower[slot], -c)
    return lower, upper


def random_feasible(profile: Profile, fractions: Sequence[float]) -> list[float]:
    """A schedule inside ``profile``'s corridor that follows a random wish: ``fractions``
    (in [0, 1], one per slot) place each slot's wish between its bounds."""
    lows, highs = profile.lower_kwh, profile.upper_kwh
    wish = [lo + f * (hi - lo) for lo, hi, f in zip(lows, highs, fractions, strict=False)]
    lower, upper = corridor_of(profile)
    return default_path(lower, upper, lows, highs, list(accumulate(wish)))


def block_start(offer: FlexOffer) -> int:
    assert offer.start_after is not None
    return offer.start_after
