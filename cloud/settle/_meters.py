"""Meter readings per slot: an offer's metered energy, a device's history, and the check of
sub-meters against a main meter.

Readings are summed per slot as FMAN's execution check does: a reading that spans several
slots is spread over them in proportion to the overlap. An offer's metered energy in a slot is
the sum of its device's readings tagged with the offer or untagged (readings tagged with
another offer belong to that one). Each slot's sum is rounded once to whole Wh.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import msgspec

from ._inputs import Reading
from ._money import wh

#: ``{slot start: Wh}``
SlotWh = dict[int, int]


class MeterIndex:
    """Readings grouped by agent and device, summed per slot on demand (and cached)."""

    def __init__(self, readings: Iterable[Reading]) -> None:
        by_device: dict[tuple[str, str], list[Reading]] = defaultdict(list)
        for r in readings:
            by_device[(r.agent, r.device)].append(r)
        self._by_device = dict(by_device)
        self._devices_of: dict[str, list[str]] = defaultdict(list)
        for agent, device in self._by_device:
            self._devices_of[agent].append(device)
        self._tags: dict[tuple[str, str, int], dict[str, SlotWh]] = {}
        self._totals: dict[tuple[str, str, int], SlotWh] = {}
        self._subs: dict[tuple[str, str, int], SlotWh] = {}

    def devices(self, agent: str) -> list[str]:
        return list(self._devices_of.get(agent, ()))

    def _by_tag(self, agent: str, device: str, res: int) -> dict[str, SlotWh]:
        key = (agent, device, res)
        found = self._tags.get(key)
        if found is None:
            sums: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
            for r in self._by_device.get((agent, device), ()):
                _spread(sums[r.offer_id], r.start, r.duration_s, r.energy_kwh, res)
            found = {tag: {t: wh(e) for t, e in s.items()} for tag, s in sums.items()}
            self._tags[key] = found
        return found

    def offer(
        self, agent: str, device: str, offer_id: str, res: int, slots: Iterable[int]
    ) -> SlotWh:
        """The offer's metered Wh in ``slots``: its device's readings tagged with it or
        untagged; a slot is present if some such reading covers part of it."""
        tags = self._by_tag(agent, device, res)
        own, untagged = tags.get(offer_id, {}), tags.get("", {})
        out: SlotWh = {}
        for t in slots:
            a, b = own.get(t), untagged.get(t)
            if a is not None or b is not None:
                out[t] = (a or 0) + (b or 0)
        return out

    def submeters(self, agent: str, main_meter: str, res: int) -> SlotWh:
        """Per slot, the sum of the readings of every device of ``agent`` but its main meter
        (slots where none has a reading are absent)."""
        key = (agent, main_meter, res)
        found = self._subs.get(key)
        if found is None:
            found = {}
            for d in self.devices(agent):
                if d == main_meter:
                    continue
                for t, e in self.device(agent, d, res).items():
                    found[t] = found.get(t, 0) + e
            self._subs[key] = found
        return found

    def device(self, agent: str, device: str, res: int) -> SlotWh:
        """All of a device's readings per slot, whatever their tag."""
        key = (agent, device, res)
        found = self._totals.get(key)
        if found is None:
            tags = self._by_tag(agent, device, res)
            if len(tags) == 1:
                found = next(iter(tags.values()))
            else:
                found = {}
                for s in tags.values():
                    for t, e in s.items():
                        found[t] = found.get(t, 0) + e
            self._totals[key] = found
        return found


def _spread(out: dict[int, float], start: int, duration: int, energy: float, res: int) -> None:
    if duration == res and start % res == 0:
        out[start] += energy
        return
    end = start + duration
    slot = start // res * res
    while slot < end:
        overlap = min(end, slot + res) - max(start, slot)
        if overlap > 0:
            out[slot] += energy * overlap / duration
        slot += res


class SubMeterFailure(msgspec.Struct, frozen=True, kw_only=True):
    """The first slot where the sub-meters exceed the main meter beyond the tolerance."""

    slot: int
    sub_wh: int
    main_wh: int | None

    def reason(self) -> str:
        if self.main_wh is None:
            return f"submeter_check: no main meter reading at {self.slot}"
        return (
            f"submeter_check: sub-meters {self.sub_wh} Wh exceed the main meter "
            f"{self.main_wh} Wh at {self.slot}"
        )


def check_submeters(
    meters: MeterIndex,
    *,
    agent: str,
    main_meter: str,
    slots: Sequence[int],
    res: int,
    tolerance_kwh: float,
    tolerance_rel: float,
) -> SubMeterFailure | None:
    """Check ``slots`` of ``agent``: the sum of every other device's readings may exceed the
    main meter's by at most ``tolerance_kwh + tolerance_rel * |main|``. A slot where some
    sub-meter has a reading and the main meter has none fails too (nothing to check against).
    ``None``: every slot passed."""
    main = meters.device(agent, main_meter, res)
    subs = meters.submeters(agent, main_meter, res)
    tol_wh = tolerance_kwh * 1000
    for t in slots:
        sub = subs.get(t)
        if sub is None:
            continue
        m = main.get(t)
        if m is None:
            return SubMeterFailure(slot=t, sub_wh=sub, main_wh=None)
        if sub - m > tol_wh + tolerance_rel * abs(m):
            return SubMeterFailure(slot=t, sub_wh=sub, main_wh=m)
    return None
