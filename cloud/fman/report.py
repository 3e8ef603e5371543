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
from cloud.optim.series import step_of

from . import execution
from .objective import OBJECTIVE_SERIES, objective_from
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
    force), metered (readings of their devices), and the target where one is set. Every
    figure is for the slots listed (the window asked for, if any)."""

    slots: list[Slot]
    #: accepted offers with energy (default or scheduled) in the slots
    offers: int
    #: what the imbalances are measured against: the target series, or zero without one
    #: (what FMAN balances to when it has no target)
    objective: str
    #: ``sum |x - target|`` over the slots (with a target, those that have a value; without,
    #: every slot against 0), for the baseline, the schedules and the meter readings (a slot
    #: without readings counts as 0 once any reading exists).
    imbalance_baseline_kwh: float
    imbalance_scheduled_kwh: float
    imbalance_metered_kwh: float | None
    #: Energy moved in time within the slots: half the absolute difference schedule vs.
    #: default, summed per offer and slot.
    shifted_kwh: float
    summary: dict[str, Any] = field(default_factory=dict)
    #: Under the profit objective (docs/optim.md), the schedules' value (the price series
    #: times their deviation from the defaults), the asks of the offers that carry them, and
    #: the profit, value minus asks: EUR over the slots, the defaults' being 0 by definition.
    value_scheduled_eur: float | None = None
    asks_scheduled_eur: float | None = None
    profit_scheduled_eur: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BALANCE_TO_TARGET = "balance to the target series"
BALANCE_TO_ZERO = "balance to zero (no target series in the store)"
COST = "cost at the price series"
PROFIT = "profit at the price series (value of the deviation from the defaults minus asks)"


def portfolio(
    store: StoreReader,
    *,
    start: int | None = None,
    end: int | None = None,
    resolution_s: int = 900,
) -> Portfolio:
    """The portfolio per slot of ``resolution_s`` (the planning resolution; offers, readings
    and the target of another resolution are spread over it or summed into it), between
    ``start`` and ``end`` if given."""

    def inside(t: int) -> bool:
        return (start is None or t >= start) and (end is None or t < end)

    # only the offers and readings that can meet the window (a slot of the coarser grid
    # may begin before what it sums up: hence the window's end one slot later)
    window = (start, None if end is None else end + resolution_s)
    offers = store.portfolio_offers(window=window)
    baseline: dict[int, float] = {}
    scheduled: dict[int, float] = {}
    shifted = 0.0
    counted = 0
    grid = resolution_s
    recorded = objective_from(store.series(OBJECTIVE_SERIES))
    profit = recorded is not None and recorded.profit
    prices = store.series("prices") if profit else {}
    value = asks = 0.0
    for row in offers:
        o = protocol.decode(row.payload, expect="offer", check=False).body
        res = o.resolution_s
        base = execution.per_slot(o.default.start, o.default.energy_kwh, res, grid)
        if row.schedule_start is not None and row.schedule_energy_kwh is not None:
            plan = execution.per_slot(row.schedule_start, row.schedule_energy_kwh, res, grid)
            if profit and recorded is not None:
                v, a = _profit_of(
                    o,
                    row.schedule_start,
                    row.schedule_energy_kwh,
                    prices,
                    priced=o.mode == "direct" or recorded.price_delegated,
                    inside=inside,
                )
                value += v
                asks += a
        else:
            plan = base
        touched = [t for t in base.keys() | plan if inside(t)]
        counted += bool(touched)
        for t, e in base.items():
            baseline[t] = baseline.get(t, 0.0) + e
        for t, e in plan.items():
            scheduled[t] = scheduled.get(t, 0.0) + e
        shifted += 0.5 * sum(abs(plan.get(t, 0.0) - base.get(t, 0.0)) for t in touched)
    metered = execution.metered_per_slot(
        ((r.start, r.duration_s, r.energy_kwh) for r in store.portfolio_readings(window=window)),
        grid,
    )
    target = on_grid(store.series("target"), grid)
    slots_all = sorted(baseline.keys() | scheduled.keys() | metered.keys() | target.keys())
    slots = [
        Slot(t, baseline.get(t, 0.0), scheduled.get(t, 0.0), metered.get(t), target.get(t))
        for t in slots_all
        if inside(t)
    ]
    if target:
        against = [(s, s.target_kwh or 0.0) for s in slots if s.target_kwh is not None]
    else:
        against = [(s, 0.0) for s in slots]
    any_metered = any(s.metered_kwh is not None for s in slots)
    if profit:
        stated = PROFIT
    elif recorded is not None and recorded.cost and not recorded.weights.get("balance"):
        stated = COST
    else:
        stated = BALANCE_TO_TARGET if target else BALANCE_TO_ZERO
    return Portfolio(
        slots=slots,
        offers=counted,
        objective=stated,
        value_scheduled_eur=value if profit else None,
        asks_scheduled_eur=asks if profit else None,
        profit_scheduled_eur=value - asks if profit else None,
        imbalance_baseline_kwh=sum(abs(s.baseline_kwh - x) for s, x in against),
        imbalance_scheduled_kwh=sum(abs(s.scheduled_kwh - x) for s, x in against),
        imbalance_metered_kwh=(
            sum(abs((s.metered_kwh or 0.0) - x) for s, x in against) if any_metered else None
        ),
        shifted_kwh=shifted,
        summary=counts(store),
    )


def _profit_of(
    o: protocol.FlexOffer,
    start: int,
    energy: Sequence[float],
    prices: dict[int, float],
    *,
    priced: bool,
    inside: Any,
) -> tuple[float, float]:
    """An offer's value (prices times its deviation from its default) and asks, on its own
    slots within the window, as the planner counts them (a slot without a price is worth 0)."""
    res = o.resolution_s
    d = o.default
    lo = min(start, d.start)
    hi = max(start + len(energy) * res, d.start + len(d.energy_kwh) * res)
    n = (hi - lo) // res
    x = [0.0] * n
    base = [0.0] * n
    for j, e in enumerate(energy):
        x[(start - lo) // res + j] = e
    for j, e in enumerate(d.energy_kwh):
        base[(d.start - lo) // res + j] = e
    ask = protocol.offer_asks(o, start=lo, slots=n) if priced else None
    value = cost = 0.0
    for t in range(n):
        ts = lo + t * res
        if not inside(ts):
            continue
        dev = x[t] - base[t]
        value += prices.get(ts, 0.0) * dev
        if ask is not None:
            cost += ask[t] * abs(dev)
    return value, cost


def on_grid(series: dict[int, float], grid_s: int) -> dict[int, float]:
    """A per-slot series (kWh per slot, a target) on slots of ``grid_s``: quarter-hours
    summed into an hour, an hour split evenly over its quarter-hours. Its own step is the
    smallest gap between its times."""
    if not series:
        return {}
    step = step_of(series) or grid_s
    if step == grid_s and all(t % grid_s == 0 for t in series):
        return dict(series)
    return execution.metered_per_slot(((t, step, v) for t, v in series.items()), grid_s)


def counts(store: StoreReader) -> dict[str, Any]:
    """Headline numbers: offers per state, schedules per status, readings, agents."""
    return asdict(store.counts())
