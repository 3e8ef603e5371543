"""Offers as foreign JSON documents: the mapping that GOFLEX and the FlexOffer specification share.

Both forms describe an offer as ``flexOfferProfileConstraints``, a list of slices each
``minDuration``…``maxDuration`` intervals long with an ``energyConstraintList``, instants as
``…Time`` (ISO 8601) and ``…Interval`` (counts of ``numSecondsPerInterval`` since the epoch)
fields, and ``defaultSchedule``/``flexOfferSchedule`` objects of ``scheduleSlices``. They differ
in a :class:`Form`: what a bound is called (``lower``/``upper`` or ``lowerBound``/
``upperBound``) and which sign means what (GOFLEX: positive is consumption, like this project;
the specification's form: positive is production). :mod:`protocol._goflex` and
:mod:`protocol._spec` add what is their own.

Mapping decisions, so that a round trip keeps the meaning:

- ``…Time`` fields win over ``…Interval`` fields when both are present: they are exact, while an
  interval count rounds a deadline to the grid.
- A slice is expanded to one slot per interval; ``lower``/``upper`` are either scalars (one
  value for every interval of the slice) or arrays (one value per interval). A slice whose
  duration may vary (``minDuration < maxDuration``) has no equivalent here and is refused.
- Several entries in one slice's ``energyConstraintList`` are parts of that slice's energy
  (the specification calls them the constraints "for one time unit"; GOFLEX's own code sums
  the flexibility of all entries): the slot is bounded by their sums. Each entry's bounds must
  be ordered in the document's own sign (``lowerBound <= upperBound``); a pair in the wrong
  order is refused, not swapped.
- Per-slice ``tariffConstraint {minTariff, maxTariff}`` or ``priceConstraint {minPrice,
  maxPrice}`` become per-slot price bounds, and an offer that carries them is a direct-mode
  offer. Prices are per kWh whatever the energy's sign, so they are never negated.
  ``totalEnergyConstraint {lower, upper}`` is the total energy bound.
- ``DependencyEnergyConstraintList`` rows ``[a, b, c]`` are dependency rows of each slot of
  the slice; a slice given only by such rows takes its slot bounds from its ``a = 0`` rows.
  Where positive is production, ``a`` and ``b`` change sign.
- Energies may be written as numbers or as decimal strings (the specification's response
  example writes ``"energyAmount": "-13342.6"``); ``unit`` ``Wh`` with ``multiplier`` ``k``
  (the default), ``1`` or ``M`` scales them to kWh; reactive energy or voltage profiles are
  refused.
- What the forms cannot express (more than one profile, polytopes, per-profile windows,
  two-mode operation, device, load type, revision, the exact state) travels in an
  ``atpExtensions`` object that other systems ignore and this importer reads back. It holds
  the project's own form, whatever the document's sign.
- A document without an ``id`` (the GOFLEX samples have ``null``) gets a stable one derived
  from its content, so importing the same file twice yields the same offer.
- ``flexOfferSchedule.updateId`` is the schedule version (at least 1, so ``0`` reads as 1);
  ``scheduleId`` and per-slice tariffs of a schedule have no equivalent and are not kept.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Form:
    """How a foreign form writes energy: the names of a bound and the sign of consumption."""

    name: str
    lower: str
    upper: str
    #: +1 when positive energy is consumption (as in this project), -1 when it is production.
    sign: int
    #: Lower-case states (``"offered"``) rather than capitalised ones (``"Offered"``).
    lower_case_states: bool


GOFLEX = Form("GOFLEX", "lower", "upper", 1, False)
SPEC = Form("FlexOffer", "lowerBound", "upperBound", -1, True)

_TO_STATE = {
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
_FROM_STATE = {
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
_MULTIPLIERS = {"k": 1.0, "1": 1e-3, "M": 1e3}


def _flip(form: Form, value: float) -> float:
    """``value`` between this project's sign and the form's (``0.0 - v`` keeps zero positive)."""
    return value if form.sign > 0 else 0.0 - value


# -- export --------------------------------------------------------------------------------


def iso(ts: int, form: Form) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if form is GOFLEX:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_json(form: Form, start: int, energy: list[float], *, update_id: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"scheduleId": 0} if form is GOFLEX else {}
    doc["updateId"] = update_id
    # GOFLEX writes a tariff per slice; its 0 has always meant "none given"
    extra = {"tariff": 0} if form is GOFLEX else {}
    doc["scheduleSlices"] = [
        {"duration": 1, "energyAmount": _flip(form, e), **extra} for e in energy
    ]
    doc["startTime"] = iso(start, form)
    return doc


def offer_to_document(offer: FlexOffer, schedule: Schedule | None, form: Form) -> dict[str, Any]:
    """``offer`` (and its schedule) as one offer document of ``form``."""
    r = offer.resolution_s
    lo, hi = start_window(offer)
    first = offer.profiles[0]
    n = first.n_slots
    slots = offer.prices.slots if offer.prices is not None else []
    deps: dict[int, list[list[float]]] = {}
    for d in first.dependencies:
        deps.setdefault(d.slot, []).append([_flip(form, d.a), _flip(form, d.b), d.c])
    constraints = []
    for j, (lower, upper) in enumerate(zip(first.lower_kwh, first.upper_kwh, strict=True)):
        if form.sign > 0:
            entry = {form.lower: lower, form.upper: upper}
        else:
            entry = {form.lower: _flip(form, upper), form.upper: _flip(form, lower)}
        c: dict[str, Any] = {"energyConstraintList": [entry], "minDuration": 1, "maxDuration": 1}
        if j < len(slots):
            c["tariffConstraint"] = {"minTariff": slots[j].min, "maxTariff": slots[j].max}
        if j in deps:
            c["DependencyEnergyConstraintList"] = deps[j]
        constraints.append(c)

    state = _TO_STATE[offer.state]
    if form.lower_case_states:
        state = state.lower()
    doc: dict[str, Any] = {"id": offer.id, "state": state, "offeredById": offer.issuer}
    if form is GOFLEX:
        doc["locationId"] = {"gridNode": offer.grid_node} if offer.grid_node else {}
    elif offer.grid_node:
        doc["locationId"] = {"gridNode": offer.grid_node}
    doc["numSecondsPerInterval"] = r
    if form is GOFLEX:
        doc["assignment"] = "obligatory"
    acceptance = "acceptanceBefore" if form is GOFLEX else "acceptBefore"
    for name, ts in (
        ("creation", offer.created_at),
        (acceptance, offer.acceptance_before),
        ("assignmentBefore", offer.assignment_before),
        ("startAfter", lo),
        ("startBefore", hi),
        ("endAfter", lo + n * r),
        ("endBefore", hi + n * r),
    ):
        if form is GOFLEX:
            doc[f"{name}Interval"] = ts // r
        doc[f"{name}Time"] = iso(ts, form)
    doc["flexOfferProfileConstraints"] = constraints
    if first.total is not None:
        t = first.total
        if form.sign > 0:
            doc["totalEnergyConstraint"] = {"lower": t.lower, "upper": t.upper}
        else:
            doc["totalEnergyConstraint"] = {
                "lower": _flip(form, t.upper),
                "upper": _flip(form, t.lower),
            }
    if form is GOFLEX:
        doc["flexOfferTariffConstraint"] = None
    doc["defaultSchedule"] = schedule_json(
        form, offer.default.start, offer.default.energy_kwh, update_id=0
    )
    if schedule is not None:
        doc["flexOfferSchedule"] = schedule_json(
            form, schedule.start, schedule.energy_kwh, update_id=schedule.version
        )
    elif form is GOFLEX:
        doc["flexOfferSchedule"] = None

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
        ext |= schedule_extensions(schedule)
    doc["atpExtensions"] = ext
    return doc


def schedule_extensions(schedule: Schedule) -> dict[str, Any]:
    ext: dict[str, Any] = {"scheduleProfile": schedule.profile}
    if schedule.issued_at is not None:
        ext["scheduleIssuedAt"] = schedule.issued_at
    if schedule.offer_revision:
        ext["scheduleOfferRevision"] = schedule.offer_revision
    return ext


# -- import --------------------------------------------------------------------------------


class Reader:
    """Collects every mapping problem with its path instead of stopping at the first."""

    def __init__(self, form: Form, prefix: str = "") -> None:
        self.form = form
        self.prefix = prefix
        self.scale = 1.0
        self.errors: list[FieldError] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(self.prefix + path, message))

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, str):
            try:
                parsed = float(value)
            except ValueError:
                parsed = math.nan
            if math.isfinite(parsed):
                return parsed
            self.fail(path, f"{value[:32]!r} is not a number")
            return 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number, got {_kind(value)}")
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

    def energy(self, value: Any, count: int, path: str) -> list[float]:
        """Energies in kWh and this project's sign."""
        k = self.scale * self.form.sign
        return [0.0 + k * v for v in self.numbers(value, count, path)]

    def integer(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {_kind(value)}")
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
                self.fail(f"{name}Time", f"{text[:40]!r} is not an ISO 8601 time")
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp())
        interval = doc.get(f"{name}Interval")
        if interval is not None:
            return self.integer(interval, f"{name}Interval") * r
        return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _units(rd: Reader, doc: Mapping[str, Any]) -> None:
    """``unit``/``multiplier`` scale energies to kWh; only active energy is read."""
    kind = doc.get("flexOfferProfilType", doc.get("flexOfferProfileType"))
    if kind not in (None, "activeEnergy"):
        rd.fail("flexOfferProfileType", f"{kind!r}: only active energy ('activeEnergy') is read")
    unit = doc.get("unit")
    if unit not in (None, "Wh"):
        rd.fail("unit", f"{unit!r}: only energy in Wh (with a multiplier) is read")
    multiplier = doc.get("multiplier", "k")
    if multiplier not in _MULTIPLIERS:
        rd.fail("multiplier", f"{multiplier!r} is not one of 'k', '1', 'M'")
    else:
        rd.scale = _MULTIPLIERS[multiplier]


def _price_pair(rd: Reader, c: Mapping[str, Any], n: int, path: str) -> list[PriceBounds] | None:
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


def _entries(rd: Reader, ecl: Any, n: int, path: str) -> tuple[list[float], list[float]] | None:
    """The slot bounds of one slice: the sums of its energy entries, in this project's sign."""
    form = rd.form
    if not isinstance(ecl, list) or not all(isinstance(e, Mapping) for e in ecl):
        rd.fail(path, f"expected a list of {{{form.lower}, {form.upper}}} entries")
        return None
    lows, highs = [0.0] * n, [0.0] * n
    for q, entry in enumerate(ecl):
        p = f"{path}[{q}]"
        if form.lower not in entry or form.upper not in entry:
            other = SPEC if form is GOFLEX else GOFLEX
            if other.lower in entry or other.upper in entry:
                rd.fail(
                    p,
                    f"{other.lower}/{other.upper} belong to the {other.name} form "
                    f"({_sign_text(other)}); this document is in the {form.name} form, "
                    f"which names them {form.lower}/{form.upper} ({_sign_text(form)})",
                )
            else:
                rd.fail(p, f"expected {form.lower} and {form.upper}")
            continue
        a = rd.numbers(entry[form.lower], n, f"{p}.{form.lower}")
        b = rd.numbers(entry[form.upper], n, f"{p}.{form.upper}")
        for j, (x, y) in enumerate(zip(a, b, strict=True)):
            if x > y:
                where = f"{p}.{form.lower}" + (f"[{j}]" if n > 1 else "")
                rd.fail(
                    where,
                    f"{form.lower} {x:g} > {form.upper} {y:g}: the slice allows no energy "
                    f"({_sign_text(form)} in this form)",
                )
        k = rd.scale
        if form.sign > 0:
            lows = [s + k * x for s, x in zip(lows, a, strict=True)]
            highs = [s + k * y for s, y in zip(highs, b, strict=True)]
        else:
            lows = [s - k * y for s, y in zip(lows, b, strict=True)]
            highs = [s - k * x for s, x in zip(highs, a, strict=True)]
    return [0.0 + v for v in lows], [0.0 + v for v in highs]


def _sign_text(form: Form) -> str:
    return "positive is consumption" if form.sign > 0 else "positive is production"


def _slices(
    rd: Reader, constraints: Any
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
    sign = rd.form.sign
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
            a, b, cc = (
                rd.number(v, f"{p}.DependencyEnergyConstraintList[{q}][{i}]")
                for i, v in enumerate(row)
            )
            parsed_rows.append([0.0 + sign * a, 0.0 + sign * b, cc * rd.scale])
        for j in range(max_d):
            deps.extend(Dependency(first_slot + j, a, b, cc) for a, b, cc in parsed_rows)
        ecl = c.get("energyConstraintList")
        if ecl:
            bounds = _entries(rd, ecl, max_d, f"{p}.energyConstraintList")
            if bounds is None:
                continue
            lows, highs = bounds
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


def _total(rd: Reader, doc: Mapping[str, Any]) -> Bounds | None:
    for key in ("totalEnergyConstraint", "totalEnergyConstraints", "TotalEnergyConstraints"):
        t = doc.get(key)
        if t is None:
            continue
        if isinstance(t, list) and len(t) == 1:
            t = t[0]
        if not isinstance(t, Mapping):
            rd.fail(key, "expected {lower, upper}")
            return None
        lo_key, hi_key = ("lower", "upper") if "lower" in t else (rd.form.lower, rd.form.upper)
        lower = rd.energy(t.get(lo_key), 1, f"{key}.{lo_key}")[0]
        upper = rd.energy(t.get(hi_key), 1, f"{key}.{hi_key}")[0]
        # where positive is production, the document's upper bound is our lower one
        return Bounds(lower, upper) if rd.form.sign > 0 else Bounds(upper, lower)
    return None


def read_schedule(
    rd: Reader, sched: Any, path: str, r: int | None = None
) -> tuple[int | None, list[float], int]:
    """``(start, energy per slot, updateId)`` of a ``defaultSchedule``/``flexOfferSchedule``."""
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
        energy.extend(rd.energy(s.get("energyAmount"), d, f"{p}.energyAmount"))
    own_r = sched.get("numSecondsPerInterval")
    if r is not None and own_r is not None and own_r != r:
        rd.fail(f"{path}.numSecondsPerInterval", f"{own_r!r} differs from the offer's interval {r}")
    start = rd.instant(sched, "start", 1)
    if start is None:
        rd.fail(f"{path}.startTime", "missing")
    update = sched.get("updateId", 0)
    return start, energy, rd.integer(update, f"{path}.updateId") if update is not None else 0


def schedule_from(
    offer_id: str, parts: tuple[int | None, list[float], int], ext: Mapping[str, Any]
) -> Schedule:
    start, energy, update = parts
    return from_builtins(
        {
            "offer_id": offer_id,
            "version": max(update, 1),
            "start": start,
            "profile": ext.get("scheduleProfile", 0),
            "energy_kwh": energy,
            "issued_at": ext.get("scheduleIssuedAt"),
            "offer_revision": ext.get("scheduleOfferRevision", 0),
        },
        Schedule,
    )


def extensions(rd: Reader, doc: Mapping[str, Any]) -> Mapping[str, Any]:
    ext = doc.get("atpExtensions") or {}
    if not isinstance(ext, Mapping):
        rd.fail("atpExtensions", "expected an object")
        return {}
    return ext


def offer_from_document(
    document: Mapping[str, Any], form: Form, *, prefix: str = ""
) -> tuple[FlexOffer, Schedule | None]:
    """The offer (and its ``flexOfferSchedule``, if any) of one offer document of ``form``.

    Raises :class:`ConversionError` listing every field that cannot be mapped, or
    :class:`DecodeError` when the mapped offer breaks a validation rule; paths start with
    ``prefix``."""
    doc = document
    rd = Reader(form, prefix)
    ext = extensions(rd, doc)
    _units(rd, doc)
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
        d_start, d_energy, _ = read_schedule(rd, default, "defaultSchedule", r)
    else:  # the specification makes it optional: the least-energy run at the earliest start
        d_start = (
            start_after
            if start_after is not None
            else (align_up(created, r) if created is not None else None)
        )
        d_energy = [min(max(0.0, lo), hi) for lo, hi in zip(lows, highs, strict=True)]

    schedule_doc = doc.get("flexOfferSchedule")
    sched_parts = (
        read_schedule(rd, schedule_doc, "flexOfferSchedule", r)
        if schedule_doc is not None
        else None
    )
    if rd.errors:
        raise ConversionError(rd.errors, context=form.name)

    offer_id = doc.get("id")
    if offer_id is None or offer_id == "":
        digest = hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        offer_id = f"{form.name.lower()}-{digest[:16]}"
    grid_node = ""
    location = doc.get("locationId")
    if isinstance(location, Mapping) and isinstance(location.get("gridNode"), str):
        grid_node = location["gridNode"]
    elif isinstance(location, str):
        grid_node = location
    state = ext.get("state") or _FROM_STATE.get(str(doc.get("state", "")).lower(), "offered")
    assert start_before is not None and created is not None and d_start is not None
    if assignment is None:
        # GOFLEX: the latest start; the specification: "the default value is startAfterTime"
        if form is GOFLEX:
            assignment = start_before
        else:
            assignment = start_after if start_after is not None else align_up(created, r)
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
    schedule = None if sched_parts is None else schedule_from(offer.id, sched_parts, ext)
    return offer, schedule
