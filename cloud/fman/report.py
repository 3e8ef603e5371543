"""What operators ask the store: offers, schedules, agents and the portfolio per slot.

Built on the store's named reads (a read-only reader is enough), shared by the ``atp``
commands and the demo's summary; each returns plain dicts (rows a table or ``--json`` prints)
or, for the portfolio, a value object. The indexes the reads rely on come with the schema
(:mod:`.store`): offers by ``(issuer, state)``, ``(state, assignment_before)`` and
``start_after``; schedules by ``status``; readings by ``offer_id`` and ``start``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import protocol

from . import execution
from .store import StoreReader


def list_offers(
    store: StoreReader,
    *,
    agent: str | None = None,
    states: Sequence[str] = (),
    start_from: int | None = None,
    start_to: int | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Offers, newest window first; ``start_from``/``start_to`` keep offers whose start
    window overlaps ``[start_from, start_to]``."""
    rows = store.list_offers(
        agent=agent, states=states, start_from=start_from, start_to=start_to, limit=limit
    )
    return [asdict(r) for r in rows]


def offer_detail(store: StoreReader, offer_id: str) -> dict[str, Any] | None:
    """One offer with its body (project JSON form), every schedule version and the
    execution check per slot."""
    stored = store.offer(offer_id)
    if stored is None:
        return None
    row = asdict(stored)
    payload = row.pop("payload")
    row["reason"] = json.loads(row["reason"]) if row["reason"].startswith("[") else row["reason"]
    if payload:
        row["offer"] = protocol.to_builtins(
            protocol.decode(payload, expect="offer", check=False).body
        )
    row["schedules"] = schedules(store, offer_id=offer_id, all_versions=True)
    row["execution"] = [asdict(r) for r in store.execution_of(offer_id)]
    return row


def schedules(
    store: StoreReader,
    *,
    offer_id: str | None = None,
    agent: str | None = None,
    status: str | None = None,
    all_versions: bool = False,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Schedules in force (or every version), with the agent's answer."""
    rows = store.schedules(
        offer_id=offer_id, agent=agent, status=status, all_versions=all_versions, limit=limit
    )
    keys = ("offer_id", "version", "issuer", "start", "profile", "kind", "status", "energy_kwh")
    return [
        {**{k: getattr(r, k) for k in keys}, "reason": r.reason, "in_force": r.in_force}
        for r in rows
    ]


def agents(store: StoreReader) -> list[dict[str, Any]]:
    """Every agent seen, with its last retained status and its offers."""
    return [asdict(a) for a in store.agents()]


@dataclass(frozen=True, slots=True)
class Slot:
    start: int
    baseline_kwh: float
    scheduled_kwh: float
    metered_kwh: float | None
    target_kwh: float | None


@dataclass(frozen=True, slots=True)
class Portfolio:
    """The accepted offers per slot: baseline (their defaults), scheduled (the schedules in
    force), metered (readings of their devices), and the target where one is set."""

    slots: list[Slot]
    offers: int
    #: ``sum |x - target|`` over the slots with a target, for the baseline, the schedules and
    #: the meter readings (a slot without readings counts as 0 once any reading exists).
    imbalance_baseline_kwh: float
    imbalance_scheduled_kwh: float
    imbalance_metered_kwh: float | None
    #: Energy moved in time: per offer, half the absolute difference schedule vs. default.
    shifted_kwh: float
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def portfolio(
    store: StoreReader,
    *,
    start: int | None = None,
    end: int | None = None,
    resolution_s: int = 900,
) -> Portfolio:
    """The portfolio per slot of ``resolution_s`` (the planning resolution; offers of another
    resolution are spread over it)."""
    offers = store.portfolio_offers()
    baseline: dict[int, float] = {}
    scheduled: dict[int, float] = {}
    shifted = 0.0
    grid = resolution_s
    for row in offers:
        o = protocol.decode(row.payload, expect="offer", check=False).body
        res = o.resolution_s
        base = execution.per_slot(o.default.start, o.default.energy_kwh, res, grid)
        if row.schedule_start is not None and row.schedule_energy_kwh is not None:
            plan = execution.per_slot(row.schedule_start, row.schedule_energy_kwh, res, grid)
        else:
            plan = base
        for t, e in base.items():
            baseline[t] = baseline.get(t, 0.0) + e
        for t, e in plan.items():
            scheduled[t] = scheduled.get(t, 0.0) + e
        shifted += 0.5 * sum(abs(plan.get(t, 0.0) - base.get(t, 0.0)) for t in base.keys() | plan)
    metered = execution.metered_per_slot(
        ((r.start, r.duration_s, r.energy_kwh) for r in store.portfolio_readings()), grid
    )
    target = store.series("target")
    slots_all = sorted(baseline.keys() | scheduled.keys() | metered.keys() | target.keys())
    if start is not None:
        slots_all = [t for t in slots_all if t >= start]
    if end is not None:
        slots_all = [t for t in slots_all if t < end]
    slots = [
        Slot(t, baseline.get(t, 0.0), scheduled.get(t, 0.0), metered.get(t), target.get(t))
        for t in slots_all
    ]
    with_target = [s for s in slots if s.target_kwh is not None]
    any_metered = any(s.metered_kwh is not None for s in slots)
    return Portfolio(
        slots=slots,
        offers=len(offers),
        imbalance_baseline_kwh=sum(abs(s.baseline_kwh - s.target_kwh) for s in with_target),  # type: ignore[operator]
        imbalance_scheduled_kwh=sum(abs(s.scheduled_kwh - s.target_kwh) for s in with_target),  # type: ignore[operator]
        imbalance_metered_kwh=(
            sum(abs((s.metered_kwh or 0.0) - s.target_kwh) for s in with_target)  # type: ignore[operator]
            if any_metered
            else None
        ),
        shifted_kwh=shifted,
        summary=counts(store),
    )


def counts(store: StoreReader) -> dict[str, Any]:
    """Headline numbers: offers per state, schedules per status, readings, agents."""
    return asdict(store.counts())
