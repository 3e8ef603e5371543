"""What the agent's store says about it, as plain data: ``foa status``, ``foa offers`` and
``foa devices`` print it, and the local page (:mod:`agent.web`) shows the same figures.

One home for these reports keeps the command line and the page from disagreeing: a test
compares the page with ``foa status --json``, which is :func:`status_report` printed.
"""

from __future__ import annotations

from typing import Any

from agent.store import Store

#: The states of an offer that is not finished (``foa offers`` without ``--all``).
LIVE = ("offered", "accepted", "assigned", "executing")


def status_report(store: Store, *, running: bool) -> dict[str, Any]:
    """Connection, outbox, offers by state, plans in force, last readings and faults.

    ``running`` says whether the daemon that writes the store is alive (the CLI checks its
    pid; the daemon itself knows)."""
    meta = store.meta()
    live = store.offers(states=(*LIVE, "rejected"))
    plans = store.plans(o.offer.id for o in live)

    def num(key: str) -> int | None:
        return int(meta[key]) if meta.get(key, "").lstrip("-").isdigit() else None

    connected = meta.get("connected") == "1"
    return {
        "agent": meta.get("agent", ""),
        "store": str(store.path),
        "daemon": {"pid": num("pid"), "running": running},
        "connection": {
            "connected": connected and running,
            "broker": meta.get("broker", ""),
            # a daemon that died connected has no disconnection time: its last heartbeat
            "since": num("connected_since")
            if connected and running
            else num("heartbeat" if connected else "disconnected_since"),
        },
        "heartbeat": num("heartbeat"),
        "outbox": {
            "waiting": store.outbox_size(),
            "by_kind": store.outbox_kinds(),
            "unanswered": store.outbox_awaiting(),
            "resent": int(meta.get("resent") or 0),
            "dead_letters": store.dead_letter_count(),
            "quarantined": len(store.quarantined()),
        },
        "offers": store.offer_counts(),
        "in_force": [
            {
                "device": p.device,
                "offer_id": p.offer_id,
                "state": o.state,
                "source": p.source,
                "version": p.version,
                "start": p.start,
                "end": p.end,
                "energy_kwh": sum(p.energy_kwh),
            }
            for o in live
            if (p := plans.get(o.offer.id)) is not None
        ],
        "last_readings": [
            {
                "device": r.device,
                "start": r.start,
                "duration_s": r.duration_s,
                "energy_kwh": r.energy_kwh,
                "offer_id": r.offer_id,
            }
            for r in store.last_readings()
        ],
        "faults": [
            {"device": d.id, "fault": d.fault, "since": d.fault_since}
            for d in store.devices()
            if d.fault
        ],
        "dropped_meter_batches": num("dropped_meter_batches") or 0,
        # where the daemon serves its local page ([web] of foa.toml), empty when it does not
        "web": meta.get("web_url", "") if running else "",
    }


def offers_report(store: Store, *, show_all: bool = False) -> list[dict[str, Any]]:
    """The offers (live ones, or all with ``show_all``), oldest first, with the plan in
    force of each."""
    rows = store.offers(states=None if show_all else LIVE)
    plans = store.plans(o.offer.id for o in rows)
    items = []
    for s in rows:
        o, p = s.offer, plans.get(s.offer.id)
        items.append(
            {
                "id": o.id,
                "device": o.device,
                "load_type": o.load_type,
                "revision": o.revision,
                "state": s.state,
                "start_after": o.start_after,
                "start_before": o.start_before,
                "assignment_before": o.assignment_before,
                "slots": o.profiles[0].n_slots,
                "plan": None
                if p is None
                else {"source": p.source, "version": p.version, "start": p.start, "end": p.end},
            }
        )
    return items


def devices_report(store: Store) -> list[dict[str, Any]]:
    """Each device as last measured: power, energy register, set-point, fault."""
    return [
        {
            "device": d.id,
            "driver": d.driver,
            "generator": d.generator,
            "ts": d.last_ts,
            "power_w": d.power_w,
            "energy_kwh": d.energy_kwh,
            "setpoint": d.setpoint,
            "fault": d.fault,
        }
        for d in store.devices()
    ]
