"""Import and export of the GOFLEX / FlexOffer-specification JSON.

Earlier Flex-Offer systems (MIRABEL, TotalFlex, GOFLEX) exchange offers as JSON documents with
``…Interval`` fields (counts of ``numSecondsPerInterval`` since the epoch), ``…Time`` fields
(the same instants as ISO 8601), and ``flexOfferProfileConstraints``: a list of slices, each
``minDuration``…``maxDuration`` intervals long with an ``energyConstraintList`` whose
``lower``/``upper`` are either scalars (one value for the whole slice) or arrays (one value per
interval). Both variants are read.

Mapping decisions, so that a round trip keeps the meaning:

- ``…Time`` fields win over ``…Interval`` fields when both are present: they are exact, while an
  interval count rounds a deadline to the grid. Both are written.
- A slice is expanded to one slot per interval. A slice whose duration may vary
  (``minDuration < maxDuration``) has no equivalent here and is refused.
- Per-slice ``tariffConstraint {minTariff, maxTariff}`` or ``priceConstraint {minPrice,
  maxPrice}`` become per-slot price bounds, and an offer that carries them is a direct-mode
  offer. ``totalEnergyConstraint {lower, upper}`` is the total energy bound.
- ``DependencyEnergyConstraintList`` rows ``[a, b, c]`` are dependency rows of each slot of
  the slice; a slice given only by such rows takes its slot bounds from its ``a = 0`` rows.
- What the specification cannot express (more than one profile, polytopes, per-profile
  windows, two-mode operation, device, load type, revision, the exact state) travels in an
  ``atpExtensions`` object that other systems ignore and this importer reads back.
- A document without an ``id`` (the GOFLEX sample has ``null``) gets a stable one derived from
  its content, so importing the same file twice yields the same offer.
- ``flexOfferSchedule.updateId`` is the schedule version (at least 1).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ._codec import from_builtins, to_builtins
from ._errors import ConversionError, FieldError
from ._feasibility import align_up, start_window
from ._models import (
    Bounds,
    DefaultSchedule,
    Dependency,
    FlexOffer,
    PriceBounds,
    Prices,
    Profile,
    Schedule,
    TwoMode,
)

_TO_GOFLEX_STATE = {
    "offered": "Offered",
    "accepted": "Accepted",
    "rejected": "Rejected",
    "assigned": "Assigned",
    "executing": "Assigned",
    "executed": "Executed",
    "settled": "Executed",
    "withdrawn": "Canceled",
    "expired": "Canceled",
}
_FROM_GOFLEX_STATE = {
    "initial": "offered",
    "offered": "offered",
    "adaptation": "offered",
    "accepted": "accepted",
    "rejected": "rejected",
    "invalid": "rejected",
    "assigned": "assigned",
    "executed": "executed",
    "canceled": "withdrawn",
    "cancelled": "withdrawn",
}


# -- export --------------------------------------------------------------------------------


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _instant(doc: dict[str, Any], name: str, ts: int, r: int) -> None:
    doc[f"{name}Interval"] = ts // r
    doc[f"{name}Time"] = _iso(ts)


def _schedule_json(start: int, energy: list[float], *, update_id: int) -> dict[str, Any]:
    return {
        "scheduleId": 0,
        "updateId": update_id,
        "scheduleSlices": [{"duration": 1, "energyAmount": e, "tariff": 0} for e in energy],
        "startTime": _iso(start),
    }


def to_goflex(offer: FlexOffer, schedule: Schedule | None = None) -> dict[str, Any]:
    """``offer`` (and optionally its current schedule) as a GOFLEX JSON document."""
    r = offer.resolution_s
    lo, hi = start_window(offer)
    first = offer.profiles[0]
    n = first.n_slots
    slots = offer.prices.slots if offer.prices is not None else []
    deps: dict[int, list[list[float]]] = {}
    for d in first.dependencies:
        deps.setdefault(d.slot, []).append([d.a, d.b, d.c])
    constraints = []
    for j, (lower, upper) in enumerate(zip(first.lower_kwh, first.upper_kwh, strict=True)):
        c: dict[str, Any] = {
            "energyConstraintList": [{"lower": lower, "upper": upper}],
            "minDuration": 1,
            "maxDuration": 1,
        }
        if j < len(slots):
            c["tariffConstraint"] = {"minTariff": slots[j].min, "maxTariff": slots[j].max}
        if j in deps:
            c["DependencyEnergyConstraintList"] = deps[j]
        constraints.append(c)

    doc: dict[str, Any] = {
        "id": offer.id,
        "state": _TO_GOFLEX_STATE[offer.state],
        "offeredById": offer.issuer,
        "locationId": {"gridNode": offer.grid_node} if offer.grid_node else {},
        "numSecondsPerInterval": r,
        "assignment": "obligatory",
    }
    _instant(doc, "creation", offer.created_at, r)
    _instant(doc, "acceptanceBefore", offer.acceptance_before, r)
    _instant(doc, "assignmentBefore", offer.assignment_before, r)
    _instant(doc, "startAfter", lo, r)
    _instant(doc, "startBefore", hi, r)
    _instant(doc, "endAfter", lo + n * r, r)
    _instant(doc, "endBefore", hi + n * r, r)
    doc["flexOfferProfileConstraints"] = constraints
    if first.total is not None:
        doc["totalEnergyConstraint"] = {"lower": first.total.lower, "upper": first.total.upper}
    doc["flexOfferTariffConstraint"] = None
    doc["defaultSchedule"] = _schedule_json(
        offer.default.start, offer.default.energy_kwh, update_id=0
    )
    doc["flexOfferSchedule"] = (
        None
        if schedule is None
        else _schedule_json(schedule.start, schedule.energy_kwh, update_id=schedule.version)
    )

    ext: dict[str, Any] = {
        "device": offer.device,
        "loadType": offer.load_type,
        "tradingMode": offer.mode,
        "revision": offer.revision,
        "state": offer.state,
    }
    needs_profiles = len(offer.profiles) > 1 or any(
        p.polytope is not None or p.start_after is not None or p.start_before is not None
        for p in offer.profiles
    )
    if needs_profiles:
        ext["profiles"] = [to_builtins(p) for p in offer.profiles]
    if offer.two_mode is not None:
        ext["twoMode"] = to_builtins(offer.two_mode)
    if offer.default.profile:
        ext["defaultProfile"] = offer.default.profile
    if offer.prices is not None and offer.prices.deviation_eur_per_kwh is not None:
        ext["deviationPriceEurPerKwh"] = offer.prices.deviation_eur_per_kwh
    if len(slots) > n:
        ext["priceSlots"] = [[p.min, p.max] for p in slots]
    if schedule is not None:
        ext["scheduleProfile"] = schedule.profile
        if schedule.issued_at is not None:
            ext["scheduleIssuedAt"] = schedule.issued_at
        if schedule.offer_revision:
            ext["scheduleOfferRevision"] = schedule.offer_revision
    doc["atpExtensions"] = ext
    return doc


# -- import --------------------------------------------------------------------------------


class _Reader:
    """Collects every mapping problem with its path instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number, got {type(value).__name__}")
            return 0.0
        return float(value)

    def numbers(self, value: Any, count: int, path: str) -> list[float]:
        """A scalar applies to all ``count`` intervals; an array gives one value each."""
        if isinstance(value, list):
            if len(value) == 1 and count != 1:
                return [self.number(value[0], f"{path}[0]")] * count
            if len(value) != count:
                self.fail(path, f"{len(value)} values for a slice of {count} intervals")
                return [0.0] * count
            return [self.number(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return [self.number(value, path)] * count

    def integer(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {type(value).__name__}")
            return 0
        return value

    def instant(self, doc: Mapping[str, Any], name: str, r: int) -> int | None:
        """``{name}Time`` if present, else ``{name}Interval`` × r, else ``None``."""
        text = doc.get(f"{name}Time")
        if text is not None:
            if not isinstance(text, str):
                self.fail(f"{name}Time", "expected an ISO 8601 string")
                return None
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                self.fail(f"{name}Time", f"{text!r} is not an ISO 8601 time")
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp())
        interval = doc.get(f"{name}Interval")
        if interval is not None:
            return self.integer(interval, f"{name}Interval") * r
        return None


def _price_pair(rd: _Reader, c: Mapping[str, Any], n: int, path: str) -> list[PriceBounds] | None:
    if c.get("tariffConstraint") is not None:
        t, lo_key, hi_key, key = c["tariffConstraint"], "minTariff", "maxTariff", "tariffConstraint"
    elif c.get("priceConstraint") is not None:
        t, lo_key, hi_key, key = c["priceConstraint"], "minPrice", "maxPrice", "priceConstraint"
    else:
        return None
    if not isinstance(t, Mapping):
        rd.fail(f"{path}.{key}", "expected an object")
        return None
    lows = rd.numbers(t.get(lo_key), n, f"{path}.{key}.{lo_key}")
    highs = rd.numbers(t.get(hi_key), n, f"{path}.{key}.{hi_key}")
    return [PriceBounds(a, b) for a, b in zip(lows, highs, strict=True)]


def _slices(
    rd: _Reader, constraints: Any
) -> tuple[list[float], list[float], list[Dependency], list[PriceBounds] | None]:
    path = "flexOfferProfileConstraints"
    if not isinstance(constraints, list) or not constraints:
        rd.fail(path, "expected a non-empty list of slices")
        return [], [], [], None
    all_lows: list[float] = []
    all_highs: list[float] = []
    deps: list[Dependency] = []
    prices: list[PriceBounds] = []
    priced = unpriced = 0
    for k, c in enumerate(constraints):
        p = f"{path}[{k}]"
        if not isinstance(c, Mapping):
            rd.fail(p, "expected an object")
            continue
        min_d = rd.integer(c.get("minDuration", 1), f"{p}.minDuration")
        max_d = rd.integer(c.get("maxDuration", min_d), f"{p}.maxDuration")
        if min_d != max_d:
            rd.fail(
                f"{p}.maxDuration",
                f"variable slice duration ({min_d} to {max_d} intervals) is not supported; "
                "give one slice per possible duration as separate offers",
            )
            continue
        if not 1 <= max_d <= 672:
            rd.fail(f"{p}.minDuration", f"slice duration {max_d} outside 1..672")
            continue
        rows = c.get("DependencyEnergyConstraintList") or []
        first_slot = len(all_lows)
        if not isinstance(rows, list):
            rd.fail(f"{p}.DependencyEnergyConstraintList", "expected a list of [a, b, c] rows")
            rows = []
        parsed_rows = []
        for q, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == 3):
                rd.fail(f"{p}.DependencyEnergyConstraintList[{q}]", "expected [a, b, c]")
                continue
            parsed_rows.append(
                [
                    rd.number(v, f"{p}.DependencyEnergyConstraintList[{q}][{i}]")
                    for i, v in enumerate(row)
                ]
            )
        for j in range(max_d):
            deps.extend(Dependency(first_slot + j, a, b, cc) for a, b, cc in parsed_rows)
        ecl = c.get("energyConstraintList")
        if ecl:
            if not isinstance(ecl, list) or len(ecl) != 1 or not isinstance(ecl[0], Mapping):
                rd.fail(f"{p}.energyConstraintList", "expected exactly one {lower, upper} entry")
                continue
            lows = rd.numbers(ecl[0].get("lower"), max_d, f"{p}.energyConstraintList[0].lower")
            highs = rd.numbers(ecl[0].get("upper"), max_d, f"{p}.energyConstraintList[0].upper")
        else:
            lo_b, hi_b = _bounds_from_rows(parsed_rows)
            if lo_b is None or hi_b is None:
                rd.fail(
                    f"{p}.energyConstraintList",
                    "missing, and the dependency rows do not bound the slot energy",
                )
                continue
            lows, highs = [lo_b] * max_d, [hi_b] * max_d
        all_lows.extend(lows)
        all_highs.extend(highs)
        pair = _price_pair(rd, c, max_d, p)
        if pair is None:
            unpriced += 1
        else:
            priced += 1
            prices.extend(pair)
    if priced and unpriced:
        rd.fail(path, f"{priced} slices carry prices and {unpriced} do not; give all or none")
    return all_lows, all_highs, deps, prices if priced and not unpriced else None


def _bounds_from_rows(rows: list[list[float]]) -> tuple[float | None, float | None]:
    """Slot bounds implied by rows ``0*x + b*y <= c``."""
    lo = hi = None
    for a, b, c in rows:
        if a == 0 and b > 0:
            hi = c / b if hi is None else min(hi, c / b)
        elif a == 0 and b < 0:
            lo = c / b if lo is None else max(lo, c / b)
    return lo, hi


def _total(rd: _Reader, doc: Mapping[str, Any]) -> Bounds | None:
    for key in ("totalEnergyConstraint", "totalEnergyConstraints", "TotalEnergyConstraints"):
        t = doc.get(key)
        if t is None:
            continue
        if isinstance(t, list) and len(t) == 1:
            t = t[0]
        if not isinstance(t, Mapping):
            rd.fail(key, "expected {lower, upper}")
            return None
        lower = rd.numbers(t.get("lower"), 1, f"{key}.lower")[0]
        upper = rd.numbers(t.get("upper"), 1, f"{key}.upper")[0]
        return Bounds(lower, upper)
    return None


def _schedule_energy(rd: _Reader, sched: Any, path: str) -> tuple[int | None, list[float], int]:
    if not isinstance(sched, Mapping):
        rd.fail(path, "expected an object")
        return None, [], 0
    energy: list[float] = []
    slices = sched.get("scheduleSlices")
    if not isinstance(slices, list) or not slices:
        rd.fail(f"{path}.scheduleSlices", "expected a non-empty list")
        return None, [], 0
    for k, s in enumerate(slices):
        p = f"{path}.scheduleSlices[{k}]"
        if not isinstance(s, Mapping):
            rd.fail(p, "expected an object")
            continue
        d = rd.integer(s.get("duration", 1), f"{p}.duration")
        if not 1 <= d <= 672:
            rd.fail(f"{p}.duration", f"{d} outside 1..672")
            continue
        energy.extend(rd.numbers(s.get("energyAmount"), d, f"{p}.energyAmount"))
    start = rd.instant(sched, "start", 1)
    if start is None:
        rd.fail(f"{path}.startTime", "missing")
    update = sched.get("updateId", 0)
    return start, energy, rd.integer(update, f"{path}.updateId") if update is not None else 0


def from_goflex(document: Mapping[str, Any]) -> tuple[FlexOffer, Schedule | None]:
    """The offer (and its ``flexOfferSchedule``, if any) of a GOFLEX JSON document.

    Raises :class:`ConversionError` listing every field that cannot be mapped, or
    :class:`DecodeError` when the mapped offer breaks a validation rule."""
    doc: Mapping[str, Any] = document
    if set(doc) == {"flexOffer"} and isinstance(doc["flexOffer"], Mapping):
        doc = doc["flexOffer"]
    rd = _Reader()
    ext = doc.get("atpExtensions") or {}
    if not isinstance(ext, Mapping):
        rd.fail("atpExtensions", "expected an object")
        ext = {}
    r = rd.integer(doc.get("numSecondsPerInterval", 900), "numSecondsPerInterval")
    if r <= 0:
        rd.fail("numSecondsPerInterval", f"{r} is not a positive number of seconds")
        r = 900

    created = rd.instant(doc, "creation", r)
    if created is None:
        rd.fail("creationTime", "missing (and no creationInterval)")
    start_after = rd.instant(doc, "startAfter", r)
    start_before = rd.instant(doc, "startBefore", r)
    if start_before is None:
        rd.fail("startBeforeTime", "missing (and no startBeforeInterval)")
    assignment = rd.instant(doc, "assignmentBefore", r)
    acceptance = rd.instant(doc, "acceptanceBefore", r)
    if acceptance is None:
        acceptance = rd.instant(doc, "acceptBefore", r)
    lows, highs, deps, prices = _slices(rd, doc.get("flexOfferProfileConstraints"))
    total = _total(rd, doc)

    issuer = doc.get("offeredById")
    if issuer is None or isinstance(issuer, Mapping | list):
        rd.fail("offeredById", "missing")
        issuer = "unknown"
    issuer = str(issuer)

    default = doc.get("defaultSchedule")
    if default is not None:
        d_start, d_energy, _ = _schedule_energy(rd, default, "defaultSchedule")
    else:  # the specification makes it optional: the least-energy run at the earliest start
        d_start = (
            start_after
            if start_after is not None
            else (align_up(created, r) if created is not None else None)
        )
        d_energy = [min(max(0.0, lo), hi) for lo, hi in zip(lows, highs, strict=True)]

    schedule_doc = doc.get("flexOfferSchedule")
    sched_parts = (
        _schedule_energy(rd, schedule_doc, "flexOfferSchedule")
        if schedule_doc is not None
        else None
    )
    if rd.errors:
        raise ConversionError(rd.errors, context="GOFLEX")

    offer_id = doc.get("id")
    if not offer_id:
        digest = hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        offer_id = f"goflex-{digest[:16]}"
    grid_node = ""
    location = doc.get("locationId")
    if isinstance(location, Mapping) and isinstance(location.get("gridNode"), str):
        grid_node = location["gridNode"]
    elif isinstance(location, str):
        grid_node = location
    state = ext.get("state") or _FROM_GOFLEX_STATE.get(str(doc.get("state", "")).lower(), "offered")
    assert start_before is not None and created is not None and d_start is not None
    if assignment is None:
        assignment = start_before
    if acceptance is None:
        acceptance = assignment

    profiles: list[Any]
    if "profiles" in ext:
        profiles = list(ext["profiles"])
    else:
        profiles = [
            to_builtins(Profile(lower_kwh=lows, upper_kwh=highs, total=total, dependencies=deps))
        ]
    price_slots = prices
    if "priceSlots" in ext:
        price_slots = [PriceBounds(a, b) for a, b in ext["priceSlots"]]
    deviation = ext.get("deviationPriceEurPerKwh")
    offer_prices = (
        Prices(deviation_eur_per_kwh=deviation, slots=price_slots or [])
        if price_slots or deviation is not None
        else None
    )
    raw = {
        "id": str(offer_id),
        "issuer": issuer,
        "device": ext.get("device", issuer),
        "load_type": ext.get("loadType", "generic"),
        "grid_node": grid_node,
        "mode": ext.get("tradingMode", "direct" if price_slots else "delegated"),
        "revision": ext.get("revision", 0),
        "state": state,
        "created_at": created,
        "resolution_s": r,
        "acceptance_before": acceptance,
        "assignment_before": assignment,
        "start_after": start_after,
        "start_before": start_before,
        "profiles": profiles,
        "default": to_builtins(
            DefaultSchedule(
                start=d_start, profile=ext.get("defaultProfile", 0), energy_kwh=d_energy
            )
        ),
    }
    if offer_prices is not None:
        raw["prices"] = to_builtins(offer_prices)
    if "twoMode" in ext:
        raw["two_mode"] = to_builtins(from_builtins(ext["twoMode"], TwoMode))
    offer = from_builtins(raw, FlexOffer)
    schedule = None
    if sched_parts is not None:
        s_start, s_energy, update = sched_parts
        schedule = from_builtins(
            {
                "offer_id": offer.id,
                "version": max(update, 1),
                "start": s_start,
                "profile": ext.get("scheduleProfile", 0),
                "energy_kwh": s_energy,
                "issued_at": ext.get("scheduleIssuedAt"),
                "offer_revision": ext.get("scheduleOfferRevision", 0),
            },
            Schedule,
        )
    return offer, schedule


def is_goflex(document: Any) -> bool:
    """Whether a parsed JSON document looks like GOFLEX rather than the project's form."""
    if isinstance(document, Mapping) and set(document) == {"flexOffer"}:
        return True
    return isinstance(document, Mapping) and "flexOfferProfileConstraints" in document
