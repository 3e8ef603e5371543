"""Delivered deviation, per offer and slot.

For each slot of an executed offer (the slots of its schedule and of its baseline), in Wh:

    requested  s = scheduled - baseline
    metered    m = metered - baseline
    delivered  d = s                          if |metered - scheduled| <= tol + rel * |s| + 1 Wh
                 = clamp(m, 0, s)             otherwise (0 when s = 0 or no reading)

where ``clamp(m, 0, s)`` keeps ``m`` only in the direction of ``s`` and at most ``|s|``: a
device that overshoots is paid for what was asked, one that moved the wrong way delivered
nothing, and one that moved part of the way delivered that part. The undelivered deviation of
a slot is ``|s| - |d|``. The tolerance (``tol``, ``rel``) is the contract's; the extra watt-hour
absorbs rounding (metered and scheduled energy are each rounded to whole Wh).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from ._contract import Delivery
from ._money import wh

#: Energies are rounded to whole Wh one by one, so a delivery exact in kWh can differ from its
#: schedule by a watt-hour; that much is always within tolerance.
ROUNDING_WH = 1


class SlotRecord(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One slot of one settled offer; the row the KPIs are computed from."""

    offer_id: str
    start: int
    resolution_s: int
    #: The offer's default schedule here (what a market counts deviation from).
    default_wh: int
    #: The contract's baseline here (the default, or the characteristic consumption).
    baseline_wh: int
    scheduled_wh: int
    #: ``None``: no reading covers the slot.
    metered_wh: int | None
    #: Signed, in the direction of ``scheduled_wh - baseline_wh`` and at most as large.
    delivered_wh: int

    @property
    def requested_wh(self) -> int:
        return self.scheduled_wh - self.baseline_wh


def delivered(
    *, scheduled: int, baseline: int, metered: int | None, tol_wh: float, tol_rel: float
) -> int:
    """The delivered deviation (Wh, signed) of one slot; see the module's rule."""
    s = scheduled - baseline
    if s == 0 or metered is None:
        return 0
    if abs(metered - scheduled) <= tol_wh + tol_rel * abs(s) + ROUNDING_WH:
        return s
    m = metered - baseline
    return min(max(m, 0), s) if s > 0 else max(min(m, 0), s)


def profile_wh(start: int, energy_kwh: tuple[float, ...], res: int) -> dict[int, int]:
    return {start + i * res: wh(e) for i, e in enumerate(energy_kwh)}


def offer_slots(
    offer_id: str,
    res: int,
    *,
    default: Mapping[int, int],
    scheduled: Mapping[int, int],
    baseline: Mapping[int, int] | None,
    metered: Mapping[int, int],
    rule: Delivery,
) -> tuple[list[SlotRecord], list[int]]:
    """An offer's slot records from its default and schedule (Wh per slot), its metered
    energy and, where the contract says so, its characteristic ``baseline`` (``None``: the
    default is the baseline); and the slots that should deviate but have no reading (they
    delivered nothing; the caller decides whether that holds the offer)."""
    base = default if baseline is None else baseline
    tol_wh, tol_rel = rule.tolerance_kwh * 1000, rule.tolerance_rel
    rows: list[SlotRecord] = []
    missing: list[int] = []
    for t in sorted(default.keys() | scheduled.keys() | base.keys()):
        s, b, m = scheduled.get(t, 0), base.get(t, 0), metered.get(t)
        if m is None and s != b:
            missing.append(t)
        d = delivered(scheduled=s, baseline=b, metered=m, tol_wh=tol_wh, tol_rel=tol_rel)
        rows.append(SlotRecord(offer_id, t, res, default.get(t, 0), b, s, m, d))
    return rows, missing
