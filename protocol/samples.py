"""Ready-made valid messages for examples, benchmarks and tests.

Each builder takes the time it should pretend it is (``now``, epoch seconds), because this
package never reads a clock.
"""

from __future__ import annotations

from ._models import (
    Bounds,
    DefaultSchedule,
    Dependency,
    FlexOffer,
    MeterBatch,
    MeterReading,
    PriceBounds,
    Prices,
    Profile,
)

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z, on every slot grid


def heat_pump_offer(
    *, agent: str = "agent-1", now: int = NOW, slots: int = 96, rows_per_slot: int = 1
) -> FlexOffer:
    """A heat pump over ``slots`` quarter hours: 0 to 2 kWh per slot, a total heat demand,
    and per-slot dependency rows (the comfort band) on the heat taken so far.

    Row 1 caps what a slot may take given what came before (the room must not overheat):
    ``before + slot <= 3 + 0.5 * (i + 1)``; row 2 (with ``rows_per_slot=2``) asks for enough
    heat by the end of each slot to stay warm: ``-before - slot <= -(0.2 * (i + 1) - 2)``."""
    start = now + 3600
    deps = []
    for i in range(slots):
        deps.append(Dependency(i, 1.0, 1.0, 3.0 + 0.5 * (i + 1)))
        if rows_per_slot > 1:
            deps.append(Dependency(i, -1.0, -1.0, -(0.2 * (i + 1) - 2.0)))
    default = [0.3] * slots
    return FlexOffer(
        id=f"{agent}.hp.{now}",
        issuer=agent,
        device="hp",
        load_type="heat_pump",
        grid_node="node-1",
        created_at=now,
        acceptance_before=now + 900,
        assignment_before=now + 1800,
        start_after=start,
        start_before=start + 4 * 3600,
        profiles=[
            Profile(
                lower_kwh=[0.0] * slots,
                upper_kwh=[2.0] * slots,
                total=Bounds(0.25 * slots, 0.5 * slots),
                dependencies=deps,
            )
        ],
        default=DefaultSchedule(start=start, energy_kwh=default),
        prices=Prices(deviation_eur_per_kwh=0.05),
    )


def two_slot_offer(*, agent: str = "agent-1", now: int = NOW) -> FlexOffer:
    """A smart plug's half-hour run: 0.2 to 0.5 kWh in each of two slots, any time today."""
    start = now + 900
    return FlexOffer(
        id=f"{agent}.plug.{now}",
        issuer=agent,
        device="plug",
        load_type="wet_appliance",
        mode="direct",
        created_at=now,
        acceptance_before=now + 600,
        assignment_before=now + 900,
        start_after=start,
        start_before=start + 8 * 3600,
        profiles=[Profile(lower_kwh=[0.2, 0.2], upper_kwh=[0.5, 0.5])],
        default=DefaultSchedule(start=start, energy_kwh=[0.4, 0.4]),
        prices=Prices(slots=[PriceBounds(0.0, 0.30), PriceBounds(0.0, 0.30)]),
    )


def meter_batch(*, agent: str = "agent-1", now: int = NOW, readings: int = 96) -> MeterBatch:
    """A day of quarter-hour readings of one device."""
    return MeterBatch(
        agent=agent,
        seq=1,
        readings=[
            MeterReading("hp", now + 900 * i, 900, 0.25 + 0.01 * (i % 7), f"{agent}.hp.{now}")
            for i in range(readings)
        ],
    )
