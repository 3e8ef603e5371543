"""The store's offers, schedules and series in the files the other commands read.

``atp plan --offers`` and ``atp offer validate`` read a JSON list of offers (and schedules);
``atp plan --target``/``--prices`` read CSV ``time,value`` rows. Each function here turns
the store's rows into one of those forms (bytes), so an operator exports once instead of
calling ``atp offers show --json`` per offer. Reads only: a read-only reader is enough.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, TypedDict

import protocol

from .store import StoreReader

#: offers a plan can still place or has placed (what ``--what offers`` exports by default)
PLANNABLE_STATES = ("offered", "accepted", "assigned")


class OfferFilter(TypedDict):
    """Which offers an export takes (besides the latest start, which callers set apart)."""

    agent: str | None
    states: Collection[str]
    start_from: int | None


def offer_bodies(
    store: StoreReader,
    *,
    agent: str | None = None,
    states: Collection[str] = (),
    start_from: int | None = None,
    start_to: int | None = None,
) -> list[dict[str, Any]]:
    """Every offer that matches, in the project's JSON form, latest start window first."""
    filters = OfferFilter(agent=agent, states=states, start_from=start_from)
    n = store.count_offers(**filters, start_to=start_to)
    ids = [o.id for o in store.list_offers(**filters, start_to=start_to, limit=max(1, n))]
    payloads = store.offer_payloads(ids)
    return [offer_body(payloads[i]) for i in ids if i in payloads]


def schedule_bodies(
    store: StoreReader,
    *,
    agent: str | None = None,
    offer_ids: Collection[str] | None = None,
    all_versions: bool = False,
) -> list[dict[str, Any]]:
    """The schedules in force (or every version), as the protocol's schedule messages carry
    them: what an agent was sent, and what ``atp offer validate`` checks against its offer."""
    n = store.count_schedules(agent=agent, all_versions=all_versions)
    wanted = None if offer_ids is None else set(offer_ids)
    return [
        protocol.to_builtins(
            protocol.Schedule(
                offer_id=s.offer_id,
                version=s.version,
                start=s.start,
                profile=s.profile,
                energy_kwh=list(s.energy_kwh),
                issued_at=int(s.created_at) if s.created_at else None,
                offer_revision=s.offer_revision,
            )
        )
        for s in store.schedules(agent=agent, all_versions=all_versions, limit=max(1, n))
        if wanted is None or s.offer_id in wanted
    ]


def series_csv(values: dict[int, float]) -> str:
    """CSV ``time,value`` rows (epoch seconds), the form ``atp plan --target`` reads."""
    return "time,value\n" + "".join(f"{t},{values[t]!r}\n" for t in sorted(values))


def to_json(items: list[dict[str, Any]]) -> bytes:
    return json.dumps(items, indent=1).encode() + b"\n"


def offer_body(payload: bytes) -> dict[str, Any]:
    return protocol.to_builtins(protocol.decode(payload, expect="offer", check=False).body)


def unwrap_listing(data: bytes) -> bytes | None:
    """The offers of an ``atp offers list --json`` listing (rows with the offer's body under
    ``offer``) or of ``atp offers show --json``, as a JSON list of offers; ``None`` if
    ``data`` is neither (an offer file, say, read as it is)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    rows = doc if isinstance(doc, list) else [doc]
    if not rows or not all(isinstance(r, dict) and _is_listing_row(r) for r in rows):
        return None
    return json.dumps([r["offer"] for r in rows]).encode()


def _is_listing_row(row: dict[str, Any]) -> bool:
    return isinstance(row.get("offer"), dict) and "state" in row and "issuer" in row
