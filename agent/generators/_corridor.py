"""Cumulative-energy corridors: the common shape of every storage-like load.

A heat pump's building, a freezer's box, a battery's cells: each keeps its state within a band
as long as the energy taken *so far* stays between a lower and an upper curve. With ``S_k`` the
energy of slots ``0 .. k-1`` and ``e_k`` the energy of slot ``k``, the band at the end of slot
``k`` reads ``lower[k] <= S_k + e_k <= upper[k]``: exactly the dependency rows of the
Flex-Offer, ``-1*S_k - 1*e_k <= -lower[k]`` and ``1*S_k + 1*e_k <= upper[k]``.

:func:`default_path` finds the schedule a device would follow on its own (its ``target``)
kept inside the corridor, and :func:`dependency_rows` writes the corridor as rows, relaxed
just enough to contain that path where the state is already outside the band (a cold house
cannot be warm in the first slot): the offer then asks no more than physics allows, and its
default schedule is always feasible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate

from protocol import Dependency, Profile

#: Slack below which a row is treated as redundant, kWh.
_TINY = 1e-9


def reachable(
    lower: Sequence[float],
    upper: Sequence[float],
    e_min: Sequence[float],
    e_max: Sequence[float],
) -> tuple[list[float], list[float]]:
    """The corridor tightened backwards by what the slots after ``k`` can still do.

    After this pass any cumulative energy inside ``[lo[k], hi[k]]`` at the end of slot ``k``
    can be continued to the end of the horizon, so a forward walk never gets stuck."""
    n = len(lower)
    lo, hi = list(lower), list(upper)
    for k in range(n - 2, -1, -1):
        lo[k] = max(lo[k], lo[k + 1] - e_max[k + 1])
        hi[k] = min(hi[k], hi[k + 1] - e_min[k + 1])
    return lo, hi


def default_path(
    lower: Sequence[float],
    upper: Sequence[float],
    e_min: Sequence[float],
    e_max: Sequence[float],
    target: Sequence[float],
) -> list[float]:
    """Per-slot energies whose running sum follows ``target`` (cumulative, one value per slot)
    as closely as the corridor and the per-slot limits allow.

    Where the corridor cannot be kept at all (the state is already outside the band, or the
    band is narrower than the device can follow), the lower curve wins over the upper one:
    warm enough, cold enough, charged enough come before wasting a little energy."""
    lo, hi = reachable(lower, upper, e_min, e_max)
    out: list[float] = []
    s = 0.0
    for k, goal in enumerate(target):
        want = max(min(goal, hi[k]), lo[k])
        nxt = min(max(want, s + e_min[k]), s + e_max[k])
        e = nxt - s
        e = min(max(e, e_min[k]), e_max[k])  # guard the per-slot bounds against rounding
        out.append(e)
        s += e
    return out


def dependency_rows(
    lower: Sequence[float],
    upper: Sequence[float],
    e_min: Sequence[float],
    e_max: Sequence[float],
    path: Sequence[float],
) -> list[Dependency]:
    """The corridor as dependency rows, each relaxed to contain ``path``; rows that the per-slot
    bounds already imply are left out."""
    rows: list[Dependency] = []
    cum_path = list(accumulate(path))
    cum_min = list(accumulate(e_min))
    cum_max = list(accumulate(e_max))
    for k in range(len(path)):
        lo = lower[k]
        if math.isfinite(lo):
            lo = min(lo, cum_path[k])
            if lo > cum_min[k] + _TINY:
                rows.append(Dependency(k, -1.0, -1.0, -lo))
        hi = upper[k]
        if math.isfinite(hi):
            hi = max(hi, cum_path[k])
            if hi < cum_max[k] - _TINY:
                rows.append(Dependency(k, 1.0, 1.0, hi))
    return rows


def corridor_profile(
    lower: Sequence[float],
    upper: Sequence[float],
    e_min: Sequence[float],
    e_max: Sequence[float],
    target: Sequence[float],
) -> tuple[Profile, list[float]]:
    """The profile of a corridor load and its default schedule (``target`` kept inside)."""
    path = default_path(lower, upper, e_min, e_max, target)
    profile = Profile(
        lower_kwh=list(e_min),
        upper_kwh=list(e_max),
        dependencies=dependency_rows(lower, upper, e_min, e_max, path),
    )
    return profile, path
