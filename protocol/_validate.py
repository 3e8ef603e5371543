"""Semantic validation: the rules that relate fields to each other.

Types and single-value ranges are already checked by msgspec while decoding (see
:mod:`protocol._models`); what is left is every rule that needs two or more values: bounds
ordered, windows ordered and on the slot grid, deadlines before the window, sizes capped,
the default schedule feasible. Each function returns *every* problem it finds, each with its
field path, because a user fixing an offer wants the whole list at once.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from msgspec import Struct

from . import _market
from ._errors import FieldError
from ._feasibility import EPS, check_assignment, effective_profiles, start_window
from ._models import (
    ID_PATTERN,
    Ack,
    FlexOffer,
    MeterBatch,
    Prices,
    Profile,
    Reject,
    Schedule,
    Status,
)

#: Slots in one profile: a week at 15-minute resolution.
MAX_SLOTS = 672
#: Exclusive-or profiles in one offer (after two-mode expansion).
MAX_PROFILES = 16
#: Rows of a polytope ``A x <= b``.
MAX_POLYTOPE_ROWS = 256
#: Dependency rows per slot of the profile.
MAX_DEPENDENCIES_PER_SLOT = 8
#: Length of the start window.
MAX_WINDOW_S = 7 * 86_400
#: Readings in one meter batch.
MAX_READINGS = 10_000
#: Reasons in one reject, keys in one health summary.
MAX_ITEMS = 64
#: Devices one agent announces in its status (a factory's gateway may run hundreds).
MAX_DEVICES = 4096
MIN_RESOLUTION_S = 900
_ID = re.compile(ID_PATTERN)
MAX_RESOLUTION_S = 3600


def resolution_ok(resolution_s: int) -> bool:
    """15 minutes to one hour, and a whole number of slots per day (so grids line up)."""
    return MIN_RESOLUTION_S <= resolution_s <= MAX_RESOLUTION_S and 86_400 % resolution_s == 0


def validate_offer(offer: FlexOffer, *, types_checked: bool = False) -> list[FieldError]:
    """Every rule ``offer`` breaks; an empty list means the offer is valid.

    ``types_checked``: the offer comes from the decoder, whose types have already refused NaN
    and infinities, so the pass that looks for them (a tenth of a 96-slot offer's decoding
    time) is skipped. An offer built in memory (an aggregate, an import) gets it."""
    errors: list[FieldError] = []
    r = offer.resolution_s
    if not resolution_ok(r):
        errors.append(
            FieldError(
                "resolution_s",
                f"{r} s is not allowed: use {MIN_RESOLUTION_S} to {MAX_RESOLUTION_S} s "
                "dividing a day (900, 1200, 1800, 3600, …)",
            )
        )
        return errors  # every time rule below depends on the slot length

    # start window
    if (offer.start_before is None) == (offer.start_before_duration_s is None):
        errors.append(
            FieldError(
                "start_before", "give exactly one of start_before and start_before_duration_s"
            )
        )
    for name in ("start_after", "start_before", "start_before_duration_s"):
        value = getattr(offer, name)
        if value is not None and value % r:
            errors.append(FieldError(name, f"{value} is not a multiple of resolution_s ({r})"))
    lo, hi = start_window(offer)
    if lo > hi:
        errors.append(FieldError("start_before", f"start window [{lo}, {hi}] is empty"))
    elif hi - lo > MAX_WINDOW_S:
        errors.append(
            FieldError("start_before", f"start window of {hi - lo} s exceeds {MAX_WINDOW_S} s")
        )

    # deadlines come after the offer is made and before the window closes
    if offer.acceptance_before < offer.created_at:
        errors.append(
            FieldError(
                "acceptance_before",
                f"{offer.acceptance_before} is before created_at {offer.created_at}: "
                "the offer could never be answered in time",
            )
        )
    if offer.acceptance_before > offer.assignment_before:
        errors.append(
            FieldError(
                "acceptance_before",
                f"{offer.acceptance_before} is after assignment_before {offer.assignment_before}",
            )
        )
    if offer.assignment_before > hi:
        errors.append(
            FieldError(
                "assignment_before", f"{offer.assignment_before} is after the latest start {hi}"
            )
        )

    # profiles
    tm = offer.two_mode
    n_prof = len(offer.profiles) * (2 if tm is not None and tm.start_scaled else 1)
    if not offer.profiles:
        errors.append(FieldError("profiles", "at least one profile is required"))
    elif n_prof > MAX_PROFILES:
        errors.append(
            FieldError("profiles", f"{n_prof} profiles (after two-mode expansion) > {MAX_PROFILES}")
        )
    for i, p in enumerate(offer.profiles):
        _validate_profile(p, f"profiles[{i}]", lo, hi, r, errors, not types_checked)

    if tm is not None:
        if not types_checked:
            for name in ("prior_portion", "after_portion"):
                value = getattr(tm, name)
                if not (math.isfinite(value) and value >= 0):
                    errors.append(
                        FieldError(f"two_mode.{name}", f"{value} is not a non-negative number")
                    )
        if tm.start_scaled:
            _validate_start_scaled(offer, lo, hi, errors)
        else:
            _validate_intervention(offer, errors)

    if offer.prices is not None or offer.mode == "direct":
        _validate_prices(offer, errors, not types_checked)

    # the default schedule must be executable, or the fallback itself would break the offer;
    # judged only on an otherwise valid offer, where its errors mean something
    if not errors:
        d = offer.default
        errors.extend(
            check_assignment(
                offer, start=d.start, profile=d.profile, energy_kwh=d.energy_kwh, path="default."
            )
        )
    return errors


def _validate_intervention(offer: FlexOffer, errors: list[FieldError]) -> None:
    """Energy moved around an intervention: durations on the grid, room for the intervention
    in every profile, and the default (the baseline) as long as every profile."""
    tm = offer.two_mode
    assert tm is not None
    r = offer.resolution_s
    if tm.prior_s is None and tm.after_s is None:
        errors.append(FieldError("two_mode", "give prior_s and after_s (seconds before and after)"))
        return
    for name in ("prior_s", "after_s"):
        value = getattr(tm, name)
        if value is not None and value % r:
            errors.append(
                FieldError(f"two_mode.{name}", f"{value} is not a multiple of resolution_s ({r})")
            )
    for window, portion in (("prior", tm.prior_portion), ("after", tm.after_portion)):
        if portion > 0 and not getattr(tm, f"{window}_s"):
            errors.append(
                FieldError(
                    f"two_mode.{window}_portion",
                    f"{portion:g} of the moved energy must return {window} the intervention, "
                    f"but {window}_s gives it no time",
                )
            )
    window_slots = ((tm.prior_s or 0) + (tm.after_s or 0)) // r
    n_default = len(offer.default.energy_kwh)
    for i, p in enumerate(offer.profiles):
        if p.n_slots <= window_slots:
            errors.append(
                FieldError(
                    f"profiles[{i}]",
                    f"{p.n_slots} slots leave none for the intervention after "
                    f"{window_slots} prior and after slots",
                )
            )
        elif p.n_slots != n_default:
            errors.append(
                FieldError(
                    f"profiles[{i}]",
                    f"{p.n_slots} slots, but the default (the baseline of two-mode "
                    f"operation) has {n_default}",
                )
            )


def _validate_start_scaled(offer: FlexOffer, lo: int, hi: int, errors: list[FieldError]) -> None:
    """The start-scaled form of protocol 1.0 to 1.2: split times on the grid, in the window."""
    tm = offer.two_mode
    assert tm is not None
    r = offer.resolution_s
    if tm.prior_s is not None or tm.after_s is not None:
        errors.append(
            FieldError(
                "two_mode",
                "give prior_s/after_s (energy moved around an intervention) or "
                "prior_time/after_time (the start-scaled form), not both",
            )
        )
    for name in ("prior_time", "after_time"):
        value = getattr(tm, name)
        if value is None:
            errors.append(FieldError(f"two_mode.{name}", "missing (start-scaled form)"))
        elif value % r:
            errors.append(FieldError(f"two_mode.{name}", f"not a multiple of resolution_s ({r})"))
    for name in ("prior_portion", "after_portion"):
        if getattr(tm, name) == 0:
            errors.append(
                FieldError(f"two_mode.{name}", "a scaling of the profile must be positive")
            )
    if tm.prior_time is not None and tm.prior_time < lo:
        errors.append(
            FieldError(
                "two_mode.prior_time", f"before the earliest start {lo}: prior mode impossible"
            )
        )
    if tm.after_time is not None and tm.after_time > hi:
        errors.append(
            FieldError("two_mode.after_time", f"after the latest start {hi}: after mode impossible")
        )


def _validate_profile(
    p: Profile, path: str, lo: int, hi: int, r: int, errors: list[FieldError], finite: bool
) -> None:
    lows, highs = p.lower_kwh, p.upper_kwh
    n = len(lows)
    if not 1 <= n <= MAX_SLOTS:
        errors.append(FieldError(f"{path}.lower_kwh", f"{n} slots; 1 to {MAX_SLOTS} allowed"))
        return
    if len(highs) != n:
        errors.append(FieldError(f"{path}.upper_kwh", f"{len(highs)} values for {n} slots"))
        return
    sum_lo, sum_hi = sum(lows), sum(highs)
    # the decoder refuses NaN and infinities; an offer built in memory (a planner's aggregate,
    # an import) is checked here, where the sums show it in one pass (NaN compares false
    # everywhere below and would slip through)
    if finite and not math.isfinite(sum_lo + sum_hi):
        # no value is NaN or infinite, only their sum overflowed: go on with the other rules
        # (the decoder caps values at 1e6 kWh; an offer built in memory is not capped)
        before = len(errors)
        _not_finite(f"{path}.lower_kwh", lows, errors)
        _not_finite(f"{path}.upper_kwh", highs, errors)
        if len(errors) > before:
            return
    if any(map(operator.gt, lows, highs)):
        for j, (lo_j, hi_j) in enumerate(zip(lows, highs, strict=True)):
            if lo_j > hi_j:
                errors.append(
                    FieldError(f"{path}.lower_kwh[{j}]", f"{lo_j:g} > upper_kwh {hi_j:g}")
                )
    if p.total is not None:
        t = p.total
        if finite and not (math.isfinite(t.lower) and math.isfinite(t.upper)):
            errors.append(FieldError(f"{path}.total", f"[{t.lower}, {t.upper}] is not finite"))
        elif t.lower > t.upper:
            errors.append(FieldError(f"{path}.total", f"lower {t.lower:g} > upper {t.upper:g}"))
        elif t.lower > sum_hi + EPS or t.upper < sum_lo - EPS:
            errors.append(
                FieldError(
                    f"{path}.total",
                    f"[{t.lower:g}, {t.upper:g}] cannot be met by slots summing to "
                    f"[{sum_lo:g}, {sum_hi:g}]",
                )
            )
    if len(p.dependencies) > MAX_DEPENDENCIES_PER_SLOT * n:
        errors.append(
            FieldError(
                f"{path}.dependencies",
                f"{len(p.dependencies)} rows > {MAX_DEPENDENCIES_PER_SLOT} per slot",
            )
        )
    elif p.dependencies and max(p.dependencies)[0] >= n:  # rows compare by slot first
        for k, d in enumerate(p.dependencies):
            if d.slot >= n:
                errors.append(
                    FieldError(f"{path}.dependencies[{k}]", f"slot {d.slot} beyond the {n} slots")
                )
    # rows are (slot, a, b, c) tuples: one C-level pass sums them all
    if finite and p.dependencies and not math.isfinite(sum(map(sum, p.dependencies))):
        for k, d in enumerate(p.dependencies):
            if not (math.isfinite(d.a) and math.isfinite(d.b) and math.isfinite(d.c)):
                errors.append(FieldError(f"{path}.dependencies[{k}]", "a value is not finite"))
    if p.polytope is not None:
        a, b = p.polytope.a, p.polytope.b
        if len(a) > MAX_POLYTOPE_ROWS:
            errors.append(FieldError(f"{path}.polytope.a", f"{len(a)} rows > {MAX_POLYTOPE_ROWS}"))
        elif len(a) != len(b):
            errors.append(
                FieldError(f"{path}.polytope.b", f"{len(b)} values for {len(a)} rows of a")
            )
        else:
            for k, row in enumerate(a):
                if len(row) != n:
                    errors.append(
                        FieldError(f"{path}.polytope.a[{k}]", f"{len(row)} columns for {n} slots")
                    )
            if finite and not math.isfinite(sum(map(sum, a)) + sum(b)):
                for k, row in enumerate(a):
                    _not_finite(f"{path}.polytope.a[{k}]", row, errors)
                _not_finite(f"{path}.polytope.b", b, errors)
    pa, pb = p.start_after, p.start_before
    for name, value in (("start_after", pa), ("start_before", pb)):
        if value is not None and value % r:
            errors.append(FieldError(f"{path}.{name}", f"not a multiple of resolution_s ({r})"))
    if max(lo, pa if pa is not None else lo) > min(hi, pb if pb is not None else hi):
        errors.append(
            FieldError(f"{path}.start_before", f"no start left in the offer's window [{lo}, {hi}]")
        )


def _not_finite(path: str, values: list[float], errors: list[FieldError]) -> None:
    errors.extend(
        FieldError(f"{path}[{j}]", f"{v} is not finite")
        for j, v in enumerate(values)
        if not math.isfinite(v)
    )


def _validate_prices(offer: FlexOffer, errors: list[FieldError], finite: bool) -> None:
    prices = offer.prices or Prices()
    if finite:
        for j, pb in enumerate(prices.slots):
            if not (math.isfinite(pb.min) and math.isfinite(pb.max)):
                errors.append(FieldError(f"prices.slots[{j}]", "a price is not finite"))
        dev = prices.deviation_eur_per_kwh
        if dev is not None and not math.isfinite(dev):
            errors.append(FieldError("prices.deviation_eur_per_kwh", f"{dev} is not finite"))
    longest = max((p.n_slots for p in effective_profiles(offer)), default=0)
    if offer.mode == "direct" and len(prices.slots) < longest:
        errors.append(
            FieldError(
                "prices.slots",
                f"direct mode needs a [min, max] price for each of the {longest} slots, "
                f"got {len(prices.slots)}",
            )
        )
    if len(prices.slots) > MAX_SLOTS:
        errors.append(FieldError("prices.slots", f"{len(prices.slots)} > {MAX_SLOTS}"))
    for j, pb in enumerate(prices.slots):
        if pb.min > pb.max:
            errors.append(FieldError(f"prices.slots[{j}]", f"min {pb.min:g} > max {pb.max:g}"))
    dev = prices.deviation_eur_per_kwh
    if dev is not None and dev < 0:
        errors.append(FieldError("prices.deviation_eur_per_kwh", f"{dev:g} is negative"))


def validate_schedule(schedule: Schedule) -> list[FieldError]:
    """Rules a schedule must meet on its own; :func:`check_schedule` judges it against its offer."""
    n = len(schedule.energy_kwh)
    if not 1 <= n <= MAX_SLOTS:
        return [FieldError("energy_kwh", f"{n} slots; 1 to {MAX_SLOTS} allowed")]
    return []


def validate_meter_batch(batch: MeterBatch) -> list[FieldError]:
    """A batch is bounded in size and its ids are ids; ranges were checked while decoding."""
    if len(batch.readings) > MAX_READINGS:
        return [FieldError("readings", f"{len(batch.readings)} readings > {MAX_READINGS}")]
    bad = {r.device for r in batch.readings} | {r.offer_id for r in batch.readings if r.offer_id}
    bad = {v for v in bad if not _ID.match(v)}
    if not bad:
        return []
    return [
        FieldError(f"readings[{i}]", f"{value!r} is not an id (letters, digits and _.:@- only)")
        for i, r in enumerate(batch.readings)
        for value in (r.device, r.offer_id)
        if value in bad
    ]


def _validate_ack(ack: Ack) -> list[FieldError]:
    if len(ack.quarantined) > MAX_READINGS:
        return [FieldError("quarantined", f"{len(ack.quarantined)} readings > {MAX_READINGS}")]
    return []


def _validate_reject(reject: Reject) -> list[FieldError]:
    if len(reject.reasons) > MAX_ITEMS:
        return [FieldError("reasons", f"{len(reject.reasons)} reasons > {MAX_ITEMS}")]
    return []


def _validate_status(status: Status) -> list[FieldError]:
    errors = []
    if len(status.health) > MAX_ITEMS:
        errors.append(FieldError("health", f"{len(status.health)} keys > {MAX_ITEMS}"))
    if len(status.devices) > MAX_DEVICES:
        errors.append(FieldError("devices", f"{len(status.devices)} devices > {MAX_DEVICES}"))
    return errors


#: The other message kinds (an offer takes ``types_checked`` as well: see :func:`validate`).
_MARKET_VALIDATORS: dict[type, Callable[[Any], list[FieldError]]] = _market.VALIDATORS

_VALIDATORS: dict[type, Callable[[Any], list[FieldError]]] = {
    Schedule: validate_schedule,
    MeterBatch: validate_meter_batch,
    Ack: _validate_ack,
    Reject: _validate_reject,
    Status: _validate_status,
}


def validate(body: Struct, *, types_checked: bool = False) -> list[FieldError]:
    """Every semantic rule ``body`` breaks, whatever message kind it is (``types_checked``:
    see :func:`validate_offer`)."""
    if type(body) is FlexOffer:
        return validate_offer(body, types_checked=types_checked)
    check = _VALIDATORS.get(type(body)) or _MARKET_VALIDATORS.get(type(body))
    return check(body) if check is not None else []
