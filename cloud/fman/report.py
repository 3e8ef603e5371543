"""What operators ask the store: offers, schedules, agents and the portfolio per slot.

Read-only queries shared by the ``atp`` commands and the demo's summary; each returns plain
dicts (rows a table or ``--json`` prints). The indexes they rely on are created with the
schema in :mod:`.store`: offers by ``(issuer, state)``, ``(state, assignment_before)`` and
``start_after``; schedules by ``status``; readings by ``offer_id`` and ``start``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import protocol

from . import execution
from .store import ACCEPTED_STATES, Store

_LIST_COLUMNS = (
    "id, issuer, device, load_type, grid_node, state, revision, start_after, start_before, "
    "assignment_before, schedule_version, metered_slots, flagged_slots, reason"
)


def list_offers(
    store: Store,
    *,
    agent: str | None = None,
    states: Sequence[str] = (),
    start_from: int | None = None,
    start_to: int | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Offers, newest window first; ``start_from``/``start_to`` keep offers whose start
    window overlaps ``[start_from, start_to]``."""
    where, params = ["revision >= 0"], []
    if agent:
        where.append("issuer = ?")
        params.append(agent)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        params.extend(states)
    if start_from is not None:
        where.append("start_before >= ?")
        params.append(start_from)
    if start_to is not None:
        where.append("start_after <= ?")
        params.append(start_to)
    sql = (
        f"SELECT {_LIST_COLUMNS} FROM offers WHERE {' AND '.join(where)} "
        "ORDER BY start_after DESC, id LIMIT ?"
    )
    return store.query(sql, [*params, limit])


def offer_detail(store: Store, offer_id: str) -> dict[str, Any] | None:
    """One offer with its body (project JSON form), every schedule version and the
    execution check per slot."""
    rows = store.query("SELECT * FROM offers WHERE id = ?", (offer_id,))
    if not rows:
        return None
    row = rows[0]
    payload = row.pop("payload")
    row["reason"] = json.loads(row["reason"]) if row["reason"].startswith("[") else row["reason"]
    if payload:
        row["offer"] = protocol.to_builtins(
            protocol.decode(payload, expect="offer", check=False).body
        )
    row["schedules"] = schedules(store, offer_id=offer_id, all_versions=True)
    row["execution"] = store.query(
        "SELECT slot, scheduled_kwh, baseline_kwh, metered_kwh, flagged FROM execution "
        "WHERE offer_id = ? ORDER BY slot",
        (offer_id,),
    )
    return row


def schedules(
    store: Store,
    *,
    offer_id: str | None = None,
    agent: str | None = None,
    status: str | None = None,
    all_versions: bool = False,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Schedules in force (or every version), with the agent's answer."""
    where, params = [], []
    if not all_versions:
        where.append("s.version = o.schedule_version")
    if offer_id:
        where.append("s.offer_id = ?")
        params.append(offer_id)
    if agent:
        where.append("s.issuer = ?")
        params.append(agent)
    if status:
        where.append("s.status = ?")
        params.append(status)
    sql = (
        "SELECT s.offer_id, s.version, s.issuer, s.start, s.profile, s.kind, s.status, "
        "s.energy_kwh, s.reason, s.version = o.schedule_version AS in_force "
        "FROM schedules s JOIN offers o ON o.id = s.offer_id"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY s.start, s.offer_id, s.version LIMIT ?"
    )
    out = store.query(sql, [*params, limit])
    for r in out:
        r["energy_kwh"] = json.loads(r["energy_kwh"])
        r["in_force"] = bool(r["in_force"])
    return out


def agents(store: Store) -> list[dict[str, Any]]:
    """Every agent seen, with its last retained status and its offers."""
    return store.query(
        "SELECT a.agent, a.state, a.since, a.seen_at, a.version, "
        "coalesce(json_array_length(a.devices), 0) AS devices, "
        "(SELECT count(*) FROM offers o WHERE o.issuer = a.agent AND o.revision >= 0) AS offers, "
        "(SELECT count(*) FROM offers o WHERE o.issuer = a.agent "
        " AND o.state IN ('accepted','assigned','executing')) AS active "
        "FROM agents a ORDER BY a.agent"
    )


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
    store: Store, *, start: int | None = None, end: int | None = None, resolution_s: int = 900
) -> Portfolio:
    """The portfolio per slot of ``resolution_s`` (the planning resolution; offers of another
    resolution are spread over it)."""
    marks = ",".join("?" * len(ACCEPTED_STATES))
    offers = store.query(
        "SELECT o.id, o.payload, s.start AS s_start, s.energy_kwh AS s_energy "
        "FROM offers o LEFT JOIN schedules s ON s.offer_id = o.id "
        f"AND s.version = o.schedule_version WHERE o.state IN ({marks})",
        ACCEPTED_STATES,
    )
    baseline: dict[int, float] = {}
    scheduled: dict[int, float] = {}
    shifted = 0.0
    grid = resolution_s
    for row in offers:
        o = protocol.decode(row["payload"], expect="offer", check=False).body
        res = o.resolution_s
        base = execution.per_slot(o.default.start, o.default.energy_kwh, res, grid)
        if row["s_start"] is not None:
            plan = execution.per_slot(row["s_start"], json.loads(row["s_energy"]), res, grid)
        else:
            plan = base
        for t, e in base.items():
            baseline[t] = baseline.get(t, 0.0) + e
        for t, e in plan.items():
            scheduled[t] = scheduled.get(t, 0.0) + e
        shifted += 0.5 * sum(abs(plan.get(t, 0.0) - base.get(t, 0.0)) for t in base.keys() | plan)
    metered = execution.metered_per_slot(_portfolio_readings(store), grid)
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


def _portfolio_readings(store: Store) -> list[tuple[int, int, float]]:
    """Readings of accepted offers: tagged with the offer, or of its device during the
    schedule in force."""
    marks = ",".join("?" * len(ACCEPTED_STATES))
    rows = store.query(
        "SELECT r.start, r.duration_s, r.energy_kwh FROM readings r JOIN offers o "
        f"ON o.id = r.offer_id WHERE o.state IN ({marks}) UNION ALL "
        "SELECT r.start, r.duration_s, r.energy_kwh FROM offers o "
        "JOIN schedules s ON s.offer_id = o.id AND s.version = o.schedule_version "
        "JOIN readings r ON r.agent = o.issuer AND r.device = o.device "
        "AND r.start >= s.start "
        "AND r.start < s.start + json_array_length(s.energy_kwh) * o.resolution_s "
        f"WHERE (r.offer_id IS NULL OR r.offer_id = '') AND o.state IN ({marks})",
        [*ACCEPTED_STATES, *ACCEPTED_STATES],
    )
    return [(r["start"], r["duration_s"], r["energy_kwh"]) for r in rows]


def counts(store: Store) -> dict[str, Any]:
    """Headline numbers: offers per state, schedules per status, readings, agents."""
    offers = {
        r["state"]: r["n"]
        for r in store.query(
            "SELECT state, count(*) AS n FROM offers WHERE revision >= 0 GROUP BY state"
        )
    }
    scheds = {
        r["status"]: r["n"]
        for r in store.query(
            "SELECT s.status, count(*) AS n FROM schedules s JOIN offers o ON o.id = s.offer_id "
            "AND s.version = o.schedule_version GROUP BY s.status"
        )
    }
    one = store.query(
        "SELECT (SELECT count(*) FROM readings) AS readings, "
        "(SELECT count(*) FROM schedules) AS schedule_versions, "
        "(SELECT count(*) FROM agents) AS agents, "
        "(SELECT count(*) FROM agents WHERE state = 'online') AS online, "
        "(SELECT count(*) FROM messages WHERE outcome = 'reject' AND channel = 'offer') "
        "AS offer_rejects"
    )[0]
    return {"offers": offers, "schedules_in_force": scheds, **one}
