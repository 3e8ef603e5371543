"""The EMS: drives devices slot by slot along the plan in force, and meters what they did.

Control. Each control step (``control_interval_s``, by default a minute) reads every device
and, for a device whose offer has a plan covering the current slot, sets it towards the
slot's energy. The controller is closed-loop on the energy already taken in the slot: a
modulating load is set to ``remaining energy / remaining time``; an on/off load is switched
on for ``remaining energy / its on-power`` and then off (a duty cycle at the start of the
slot, with the switch-off timed exactly rather than at the next step). A restart mid-slot, a
device that draws less than asked, or a late step therefore does not make the slot take its
energy twice or miss it. Every set-point is clipped to the device's :class:`Limits` first.
When a device's plan ends it is set idle (zero power, or off) once; devices that never had a
plan are not touched. On shutdown every device is put in its safe state.

Metering. A device with an energy register (``Measurement.energy_kwh``) is metered as the
register's difference between consecutive slot boundaries. The last boundary value is kept
in the store (``meter_cursor``), so after a restart or a device fault the next boundary
closes one reading that spans the whole gap: nothing is lost, nothing counted twice, and a
value that could not be read is never republished as fresh.

Counter resets and wraps. A register restarts at zero when its device restarts (a simulated
device when the fleet restarts, many meters after a power cut) and wraps past its largest
value. A difference the device could not have made in the time it covers (below
``min_power_w`` or above ``max_power_w`` of its :class:`Limits` over that time, with a small
slack) is never taken for energy: if the measurement names the register's wrap
(``Measurement.energy_wrap_kwh``, an unsigned Modbus register's range) and the difference
plus the wrap is plausible, the register wrapped and that is the energy; otherwise the
register was reset, and the reading is the register's value, the energy counted since the
reset (what the device took between the last boundary and the reset cannot be known and is
not invented), or no reading at all when even that is implausible. Either way the cursor moves
on to the new value, and the event is counted (``meter_resets``, ``meter_wraps``). So a
consumption-only register (``min_power_w >= 0``) never yields a negative reading.

A device without a register is metered by integrating its power samples; a slot in which a
sample failed gets no reading.
Readings are buffered in the store and published as :class:`protocol.MeterBatch` every
``meter_batch_slots`` slots, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import protocol
from agent.drivers.base import Limits, Measurement
from agent.errors import AgentError, DeviceFault
from agent.plugins import Device
from agent.store import DeviceStatus, Plan, Store
from protocol import MeterBatch, MeterReading, topics

log = logging.getLogger(__name__)

KWH_TO_WS = 3_600_000.0
#: A reading covers at most one day (protocol limit); longer gaps are split.
MAX_READING_S = 86_400
#: Readings per MeterBatch message (protocol limit is 10,000).
MAX_BATCH = 5_000
#: Slack when judging whether a register's change is one the device can make: absolute (kWh),
#: and relative to the most it can take or give over the interval (power limits are set-point
#: limits; a device's own draw may exceed them a little). None below zero for a device that
#: cannot produce: its register never goes down.
RESET_SLACK_KWH = 0.01
RESET_SLACK_REL = 0.1


@dataclass(slots=True)
class _Dev:
    """What the EMS tracks of one device between steps."""

    device: Device
    limits: Limits | None = None
    opened: bool = False
    measurement: Measurement | None = None
    fresh: bool = False
    fault: str = ""
    fault_since: int | None = None
    command: tuple[str, float] | None = None
    command_slot: int | None = None
    controlled: bool = False
    plan_key: tuple[str, int] | None = None
    off_at: float | None = None
    cursor: tuple[int, float] | None = None
    # power integration for devices without an energy register
    integ_slot: int | None = None
    integ_kwh: float = 0.0
    integ_ok: bool = False
    last_sample: tuple[float, float] | None = None

    @property
    def id(self) -> str:
        return self.device.id

    def status(self) -> DeviceStatus:
        m = self.measurement
        return DeviceStatus(
            id=self.id,
            driver=self.device.config.driver,
            generator=self.device.config.generator or "",
            last_ts=int(m.ts) if m is not None else None,
            power_w=m.power_w if m is not None else None,
            energy_kwh=m.energy_kwh if m is not None else None,
            fault=self.fault,
            fault_since=self.fault_since,
            setpoint=self.setpoint_text(),
        )

    def setpoint_text(self) -> str:
        if self.command is None:
            return ""
        kind, value = self.command
        if kind == "power":
            return f"{value:g} W"
        return "on" if value else "off"


class Ems:
    """Executes plans on the devices and meters them."""

    def __init__(
        self,
        *,
        agent_id: str,
        store: Store,
        devices: Sequence[Device],
        resolution_s: int = 900,
        meter_batch_slots: int = 1,
        offer_at: Callable[[str, int], str] = lambda _d, _t: "",
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.agent_id = agent_id
        self.store = store
        self.resolution_s = resolution_s
        self.meter_batch_slots = meter_batch_slots
        self.offer_at = offer_at
        self.on_outbox = on_outbox
        self.devs = [_Dev(device=d, cursor=store.cursor(d.id)) for d in devices]
        #: Readings stored but not yet in a batch (after a restart: those the store holds).
        self._pending = store.unbatched_readings()
        self._slot: int | None = None
        self.readings_made = 0
        self.commands_sent = 0
        self.meter_resets = 0
        self.meter_wraps = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self, now: float) -> None:
        """Open every device and read it once (the probe before READY=1); faults are kept,
        not raised: a device that does not answer yet is retried at every step."""
        await asyncio.gather(*(self._open(d, now) for d in self.devs))
        await asyncio.gather(*(self._read(d, now) for d in self.devs if d.opened))

    async def _open(self, d: _Dev, now: float) -> None:
        try:
            await d.device.driver.open()
            d.limits = d.device.driver.limits
            d.opened = True
        except Exception as exc:
            self._fault(d, now, exc)

    async def shutdown(self) -> None:
        """Leave every device in its safe state and close it."""
        for d in self.devs:
            if not d.opened:
                continue
            try:
                await d.device.driver.safe_state()
            except Exception as exc:
                log.error("%s: safe state of %s failed: %s", self.agent_id, d.id, exc)
            try:
                await d.device.driver.close()
            except Exception as exc:
                log.warning("%s: closing %s: %s", self.agent_id, d.id, exc)
            d.opened = False

    # -- reading and metering -------------------------------------------------------------------

    def measurements(self) -> dict[str, Measurement | None]:
        """The latest measurement of each device, ``None`` where the last read failed."""
        return {d.id: d.measurement if d.fresh else None for d in self.devs}

    async def sample(self, now: float) -> None:
        """Read every device; at a slot boundary, close the slot's readings."""
        await asyncio.gather(*(self._read(d, now) for d in self.devs))
        slot = int(now) // self.resolution_s * self.resolution_s
        boundary = self._slot is not None and slot > self._slot
        readings: list[MeterReading] = []
        cursors: list[_Dev] = []
        for d in self.devs:
            self._integrate(d, now, slot, readings)
            m = d.measurement
            if not (d.fresh and m is not None and m.energy_kwh is not None):
                continue
            if d.cursor is None:
                if boundary:
                    d.cursor = (slot, m.energy_kwh)
                    cursors.append(d)
            elif boundary and slot > d.cursor[0]:
                start, before = d.cursor
                # net register: it goes down while the device produces (PV, a battery)
                energy = self._metered(d, m, before, now - start)
                if energy is not None:
                    readings += self._split(d.id, start, slot, energy)
                d.cursor = (slot, m.energy_kwh)
                cursors.append(d)
        self._slot = slot
        if boundary or cursors:
            self._commit(now, slot, readings, cursors)

    def _metered(self, d: _Dev, m: Measurement, before: float, span_s: float) -> float | None:
        """The energy a register moving from ``before`` to ``m.energy_kwh`` over at most
        ``span_s`` seconds stands for, with resets and wraps told apart from energy."""
        assert m.energy_kwh is not None
        delta = m.energy_kwh - before
        limits = d.limits
        if limits is None:
            return delta

        def plausible(e: float) -> bool:
            return _plausible(limits, e, span_s)

        if plausible(delta):
            return delta
        wrap = m.energy_wrap_kwh
        if wrap and plausible(delta + wrap):
            self.meter_wraps += 1
            log.info("%s: energy register of %s wrapped", self.agent_id, d.id)
            return delta + wrap
        self.meter_resets += 1
        log.warning(
            "%s: energy register of %s went from %.3f to %.3f kWh, which the device cannot do "
            "in %.0f s: taken as a reset, counting from zero",
            self.agent_id, d.id, before, m.energy_kwh, span_s,
        )  # fmt: skip
        return m.energy_kwh if plausible(m.energy_kwh) else None

    async def _read(self, d: _Dev, now: float) -> None:
        if not d.opened:
            await self._open(d, now)
            if not d.opened:
                d.fresh = False
                return
        try:
            d.measurement = await d.device.driver.read()
            d.fresh = True
            if d.fault:
                log.info("%s: device %s answers again", self.agent_id, d.id)
                d.fault, d.fault_since = "", None
        except Exception as exc:
            d.fresh = False
            self._fault(d, now, exc)

    def _fault(self, d: _Dev, now: float, exc: Exception) -> None:
        text = exc.message if isinstance(exc, DeviceFault) else f"{type(exc).__name__}: {exc}"
        if not d.fault:
            log.warning("%s: device %s: %s", self.agent_id, d.id, text)
            d.fault_since = int(now)
        d.fault = text or "fault"

    def _integrate(self, d: _Dev, now: float, slot: int, out: list[MeterReading]) -> None:
        """Energy of a device without a register, integrated from its power samples (each
        sample's power held until the next). Only slots covered from start to end by good
        samples get a reading."""
        m = d.measurement
        if m is not None and m.energy_kwh is not None:
            return
        power = m.power_w if d.fresh and m is not None else None
        prev = d.last_sample
        d.last_sample = (now, power) if power is not None else None
        if d.integ_slot is None:  # the first slot is partial: no reading for it
            d.integ_slot, d.integ_kwh, d.integ_ok = slot, 0.0, False
            return
        if slot > d.integ_slot:
            end = d.integ_slot + self.resolution_s
            whole = prev is not None and power is not None and slot == end
            if whole and d.integ_ok:
                assert prev is not None
                d.integ_kwh += prev[1] * (end - prev[0]) / KWH_TO_WS
                out += self._split(d.id, d.integ_slot, end, d.integ_kwh)
            d.integ_slot, d.integ_ok = slot, whole
            d.integ_kwh = prev[1] * (now - slot) / KWH_TO_WS if whole and prev else 0.0
            return
        if power is None or prev is None:
            d.integ_ok = False
            return
        d.integ_kwh += prev[1] * (now - prev[0]) / KWH_TO_WS

    def _split(self, device: str, start: int, end: int, energy: float) -> list[MeterReading]:
        """Readings for ``[start, end)``; a gap longer than a day is split pro rata."""
        out = []
        total = end - start
        t = start
        while t < end:
            dur = min(MAX_READING_S, end - t)
            share = energy * dur / total
            out.append(MeterReading(device, t, dur, share, self.offer_at(device, t)))
            t += dur
        return out

    def _commit(
        self, now: float, slot: int, readings: list[MeterReading], cursors: list[_Dev]
    ) -> None:
        """One transaction: readings, cursors, device states, heartbeat, due meter batches."""
        with self.store.transaction():
            if readings:
                self.readings_made += self.store.add_readings(readings)
                self._pending += readings
            self.store.set_cursors([(d.id, *d.cursor) for d in cursors if d.cursor is not None])
            self.store.save_devices([d.status() for d in self.devs])
            self.store.set("heartbeat", int(now))
            sent = self._batch(slot, int(now))
        if sent:
            self.on_outbox()

    def _batch(self, slot: int, now: int) -> bool:
        """Publish the buffered readings once the oldest is ``meter_batch_slots`` old."""
        pending = self._pending
        if not pending:
            return False
        due = slot - self.meter_batch_slots * self.resolution_s
        if min(r.start for r in pending) > due and len(pending) < MAX_BATCH:
            return False
        for i in range(0, len(pending), MAX_BATCH):
            chunk = pending[i : i + MAX_BATCH]
            seq = self.store.next_counter("meter_seq")
            batch = MeterBatch(agent=self.agent_id, seq=seq, readings=chunk)
            msg_id = f"{self.agent_id}.m{seq}"
            self.store.enqueue(
                topic=topics.agent_topic(self.agent_id, "meter"),
                payload=protocol.encode(batch, ts=now, msg_id=msg_id),
                kind="meter",
                ref=str(seq),
                now=now,
                msg_id=msg_id,
                revision=seq,
            )
            self.store.mark_batched(chunk, seq)
        self._pending = []
        return True

    # -- control --------------------------------------------------------------------------------

    async def control(self, now: float, plans: Mapping[str, Plan]) -> float | None:
        """Drive every device for the slot containing ``now``; returns the earliest moment a
        duty cycle must switch something off (``None`` if nothing is due before the next step)."""
        slot = int(now) // self.resolution_s * self.resolution_s
        wake: float | None = None
        for d in self.devs:
            if not d.opened or d.limits is None:
                continue
            plan = plans.get(d.id)
            energy = plan.slot_energy(slot, self.resolution_s) if plan is not None else None
            try:
                if plan is None or energy is None:
                    if d.controlled:
                        await self._idle(d)
                    continue
                if d.plan_key != (plan.offer_id, plan.version):
                    # a machine with programmes (a dishwasher) runs the one the plan chose
                    await d.device.driver.set_programme(plan.profile)
                    d.plan_key = (plan.offer_id, plan.version)
                d.controlled = True
                off_at = await self._drive(d, d.limits, now, slot, energy)
                if off_at is not None and (wake is None or off_at < wake):
                    wake = off_at
            except AgentError as exc:
                self._fault(d, now, exc)
                d.command = None
        return wake

    def _consumed(self, d: _Dev, now: float, slot: int) -> float | None:
        """Energy the device has taken since ``slot`` began, if that can be known."""
        m = d.measurement
        if d.fresh and m is not None and m.energy_kwh is not None:
            if d.cursor is not None and d.cursor[0] == slot:
                taken = m.energy_kwh - d.cursor[1]
                # a register reset or wrapped within the slot: what it took is unknown
                if d.limits is not None and not _plausible(d.limits, taken, now - slot):
                    return None
                return taken
            return None
        if d.integ_slot == slot and d.integ_ok and d.last_sample is not None:
            t0, p0 = d.last_sample
            return d.integ_kwh + p0 * max(0.0, now - t0) / KWH_TO_WS
        return None

    async def _drive(
        self, d: _Dev, limits: Limits, now: float, slot: int, energy: float
    ) -> float | None:
        res = self.resolution_s
        left_s = slot + res - now
        consumed = self._consumed(d, now, slot)
        if limits.modulating:
            if consumed is None or left_s < 1.0:
                target = energy * KWH_TO_WS / res
            else:
                target = (energy - consumed) * KWH_TO_WS / left_s
            await self._command(d, "power", round(limits.clip(target), 1), slot)
            return None
        p_on = limits.max_power_w if energy >= 0 else limits.min_power_w
        if p_on == 0 or energy == 0:
            on_s = 0.0
        elif consumed is None:
            on_s = max(0.0, energy * KWH_TO_WS / p_on - (now - slot))
        else:
            on_s = max(0.0, (energy - consumed) * KWH_TO_WS / p_on)
        on_s = min(on_s, left_s)
        on = on_s >= 1.0
        await self._command(d, "on", float(on), slot)
        d.off_at = now + on_s if on and on_s < left_s else None
        return d.off_at

    async def _command(self, d: _Dev, kind: str, value: float, slot: int | None) -> None:
        """Send a set-point if it differs from the last one; the first of each slot is always
        sent, so a device that restarted and lost its set-point gets it back."""
        last = d.command
        if last is not None and last[0] == kind and slot == d.command_slot:
            if kind == "on" and last[1] == value:
                return
            if kind == "power" and abs(last[1] - value) < 1.0:
                return
        driver = d.device.driver
        if kind == "power":
            await driver.set_power(value)
        else:
            await driver.set_on(bool(value))
        d.command, d.command_slot = (kind, value), slot
        self.commands_sent += 1

    async def _idle(self, d: _Dev) -> None:
        assert d.limits is not None
        if d.limits.modulating:
            await self._command(d, "power", d.limits.clip(0.0), None)
        else:
            await self._command(d, "on", 0.0, None)
        d.controlled = False
        d.plan_key = None
        d.off_at = None

    def faults(self) -> dict[str, str]:
        return {d.id: d.fault for d in self.devs if d.fault}


def _plausible(limits: Limits, energy_kwh: float, span_s: float) -> bool:
    """Whether a device within ``limits`` can take (or give) ``energy_kwh`` in at most
    ``span_s`` seconds, with a little slack."""
    hours = max(span_s, 0.0) / 3600.0
    lo, hi = limits.min_power_w * hours / 1000.0, limits.max_power_w * hours / 1000.0
    # a register that only counts consumption never goes down, not even a little
    below = RESET_SLACK_KWH + RESET_SLACK_REL * abs(lo) if lo < 0 else 0.0
    above = RESET_SLACK_KWH + RESET_SLACK_REL * abs(hi)
    return lo - below <= energy_kwh <= hi + above
