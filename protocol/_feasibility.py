"""Does a schedule satisfy an offer? The one answer that the agent, FMAN, FMAR and the tests use.

Everything that decides feasibility lives here: the resolved start window, the expansion of
two-mode operation (into polytope rows, or for its start-scaled form into exclusive-or
profiles), and the check of every constraint kind. Energy
comparisons allow :data:`EPS` kWh of slack so that a planner's floating-point sums do not
flip a feasible schedule into an infeasible one.
"""

from __future__ import annotations

import math
import operator
from itertools import accumulate

from ._errors import FieldError
from ._models import Bounds, Dependency, FlexOffer, Polytope, Profile, Schedule

#: Tolerance for energy comparisons, kWh.
EPS = 1e-6


def align_up(ts: int, resolution_s: int) -> int:
    """The first slot boundary at or after ``ts``."""
    return -(-ts // resolution_s) * resolution_s


def start_window(offer: FlexOffer) -> tuple[int, int]:
    """``(earliest, latest)`` start of the offer, both inclusive, with implicit fields resolved.

    A missing ``start_after`` means the first slot boundary at or after ``created_at``; a
    ``start_before_duration_s`` counts from that same boundary."""
    now_slot = align_up(offer.created_at, offer.resolution_s)
    earliest = offer.start_after if offer.start_after is not None else now_slot
    if offer.start_before is not None:
        latest = offer.start_before
    else:
        latest = now_slot + (offer.start_before_duration_s or 0)
    return earliest, latest


def effective_profiles(offer: FlexOffer) -> list[Profile]:
    """The exclusive-or profiles a schedule chooses from.

    Without two-mode operation these are ``offer.profiles``. With energy moved around an
    intervention (:class:`protocol.TwoMode`), profile ``i`` stays profile ``i`` and gains the
    polytope rows that return the moved energy before and after the intervention (see
    :func:`intervention_rows`). With the start-scaled form of protocol 1.0 to 1.2, base profile
    ``i`` becomes profile ``2*i`` (the prior mode: energy scaled by ``prior_portion``, start no
    later than ``prior_time``) and ``2*i + 1`` (the after mode: scaled by ``after_portion``,
    start no earlier than ``after_time``)."""
    tm = offer.two_mode
    if tm is None:
        return offer.profiles
    if not tm.start_scaled:
        return [_with_returns(offer, p) for p in offer.profiles]
    prior_time = tm.prior_time if tm.prior_time is not None else 0
    after_time = tm.after_time if tm.after_time is not None else 0
    out: list[Profile] = []
    for p in offer.profiles:
        prior_before = prior_time if p.start_before is None else min(p.start_before, prior_time)
        after_after = after_time if p.start_after is None else max(p.start_after, after_time)
        out.append(
            _scaled(p, tm.prior_portion, start_after=p.start_after, start_before=prior_before)
        )
        out.append(
            _scaled(p, tm.after_portion, start_after=after_after, start_before=p.start_before)
        )
    return out


def intervention_slots(offer: FlexOffer, n_slots: int) -> tuple[range, range, range]:
    """``(prior, intervention, after)`` slot ranges of a profile of ``n_slots`` slots under
    the offer's two-mode operation (energy moved around an intervention)."""
    tm = offer.two_mode
    r = offer.resolution_s
    k = (tm.prior_s or 0) // r if tm is not None else 0
    m = (tm.after_s or 0) // r if tm is not None else 0
    return range(0, k), range(k, max(k, n_slots - m)), range(max(k, n_slots - m), n_slots)


def intervention_rows(offer: FlexOffer, profile: Profile) -> tuple[list[list[float]], list[float]]:
    """The rows ``A x <= b`` that return moved energy around the intervention of ``profile``.

    With ``d`` the default's energy (the baseline, by profile slot), ``x`` the schedule, ``I``
    the intervention slots and ``W`` the prior (or after) slots with portion ``q``, the energy
    moved out of the intervention is ``M = sum_I (d - x)`` and the window must take
    ``sum_W (x - d) = q M`` more than its baseline, that is
    ``sum_W x + q sum_I x = sum_W d + q sum_I d``: two rows, ``<=`` and ``>=``, per window
    that has slots."""
    tm = offer.two_mode
    n = profile.n_slots
    base = offer.default.energy_kwh
    if tm is None or tm.start_scaled or len(base) != n:
        return [], []
    prior, mid, after = intervention_slots(offer, n)
    if not mid:
        return [], []
    rows: list[list[float]] = []
    rhs: list[float] = []
    mid_base = math.fsum(base[j] for j in mid)
    for window, q in ((prior, tm.prior_portion), (after, tm.after_portion)):
        if not window:
            continue
        row = [0.0] * n
        for j in window:
            row[j] = 1.0
        for j in mid:
            row[j] = q
        c = math.fsum(base[j] for j in window) + q * mid_base
        rows += [row, [0.0 - v for v in row]]
        rhs += [c, -c]
    return rows, rhs


def _with_returns(offer: FlexOffer, p: Profile) -> Profile:
    rows, rhs = intervention_rows(offer, p)
    if not rows:
        return p
    a, b = (p.polytope.a, p.polytope.b) if p.polytope is not None else ([], [])
    return Profile(
        lower_kwh=p.lower_kwh,
        upper_kwh=p.upper_kwh,
        total=p.total,
        dependencies=p.dependencies,
        polytope=Polytope(a=[*a, *rows], b=[*b, *rhs]),
        start_after=p.start_after,
        start_before=p.start_before,
    )


def _scaled(p: Profile, k: float, *, start_after: int | None, start_before: int | None) -> Profile:
    """Profile ``p`` with every energy scaled by ``k > 0``; constraints ``a.x <= c`` become
    ``a.x' <= k c`` for ``x' = k x``, so the scaled profile admits exactly the scaled schedules."""
    return Profile(
        lower_kwh=[v * k for v in p.lower_kwh],
        upper_kwh=[v * k for v in p.upper_kwh],
        total=None if p.total is None else Bounds(p.total.lower * k, p.total.upper * k),
        dependencies=[Dependency(d.slot, d.a, d.b, d.c * k) for d in p.dependencies],
        polytope=None
        if p.polytope is None
        else Polytope(a=p.polytope.a, b=[v * k for v in p.polytope.b]),
        start_after=start_after,
        start_before=start_before,
    )


def profile_window(offer: FlexOffer, profile: Profile) -> tuple[int, int]:
    """The start window of ``offer`` narrowed by ``profile``'s own window, if any."""
    lo, hi = start_window(offer)
    if profile.start_after is not None:
        lo = max(lo, profile.start_after)
    if profile.start_before is not None:
        hi = min(hi, profile.start_before)
    return lo, hi


def check_assignment(
    offer: FlexOffer,
    *,
    start: int,
    profile: int,
    energy_kwh: list[float],
    path: str = "",
) -> list[FieldError]:
    """Every way in which running ``energy_kwh`` from ``start`` on ``profile`` breaks ``offer``.

    An empty list means feasible. ``path`` prefixes the field paths (``default.``)."""
    profiles = effective_profiles(offer)
    if not 0 <= profile < len(profiles):
        return [FieldError(f"{path}profile", f"no profile {profile} (offer has {len(profiles)})")]
    prof = profiles[profile]
    errors: list[FieldError] = []
    lo, hi = profile_window(offer, prof)
    if start % offer.resolution_s:
        errors.append(
            FieldError(f"{path}start", f"{start} is not on a {offer.resolution_s} s slot boundary")
        )
    if not lo <= start <= hi:
        errors.append(
            FieldError(f"{path}start", f"{start} is outside the start window [{lo}, {hi}]")
        )
    lower, upper = prof.lower_kwh, prof.upper_kwh
    if len(energy_kwh) != len(lower):
        errors.append(
            FieldError(
                f"{path}energy_kwh",
                f"has {len(energy_kwh)} slots, profile {profile} has {len(lower)}",
            )
        )
        return errors
    # a feasible schedule (the common case) costs C-level passes only: the exact comparison,
    # then, if it fails, the tolerant one; a NaN or infinity (whose comparisons are all
    # false, so min and max would skip it) shows in the sum and goes to the slot-by-slot check
    total = sum(energy_kwh)
    if not (
        all(map(operator.le, lower, energy_kwh)) and all(map(operator.le, energy_kwh, upper))
    ) and (
        not math.isfinite(total)
        or min(map(operator.sub, energy_kwh, lower), default=0.0) < -EPS
        or max(map(operator.sub, energy_kwh, upper), default=0.0) > EPS
    ):
        for i, (e, lo_i, hi_i) in enumerate(zip(energy_kwh, lower, upper, strict=True)):
            if not lo_i - EPS <= e <= hi_i + EPS:
                errors.append(
                    FieldError(f"{path}energy_kwh[{i}]", f"{e:g} kWh outside [{lo_i:g}, {hi_i:g}]")
                )
    if prof.total is not None and not prof.total.lower - EPS <= total <= prof.total.upper + EPS:
        errors.append(
            FieldError(
                f"{path}energy_kwh",
                f"total {total:g} kWh outside [{prof.total.lower:g}, {prof.total.upper:g}]",
            )
        )
    if prof.dependencies:
        errors.extend(_check_dependencies(prof.dependencies, energy_kwh, path))
    tm = offer.two_mode
    if tm is not None and not tm.start_scaled:
        # the same profile without the returns' rows, whose breaches get their own message
        own = offer.profiles[profile].polytope
        if own is not None:
            errors.extend(_check_polytope(own, energy_kwh, path))
        errors.extend(_check_returns(offer, energy_kwh, path))
    elif prof.polytope is not None:
        errors.extend(_check_polytope(prof.polytope, energy_kwh, path))
    return errors


def _check_returns(offer: FlexOffer, energy: list[float], path: str) -> list[FieldError]:
    """The rows of :func:`intervention_rows`, explained: what a window returns against what
    the energy moved out of the intervention asks of it."""
    tm = offer.two_mode
    base = offer.default.energy_kwh
    n = len(energy)
    if tm is None or len(base) != n:
        return []
    prior, mid, after = intervention_slots(offer, n)
    if not mid:
        return []
    moved = math.fsum(base[j] - energy[j] for j in mid)
    errors = []
    for name, window, q in (("prior", prior, tm.prior_portion), ("after", after, tm.after_portion)):
        if not window:
            continue
        got = math.fsum(energy[j] - base[j] for j in window)
        need = q * moved
        if abs(got - need) > EPS * (len(window) + q * len(mid) + 1.0):
            errors.append(
                FieldError(
                    f"{path}energy_kwh",
                    f"the {name} window (slots {window.start} to {window.stop - 1}) takes "
                    f"{got:+.6g} kWh against the default, {need:+.6g} expected: "
                    f"{q:g} of the {moved:.6g} kWh moved out of the intervention",
                )
            )
    return errors


def _check_dependencies(deps: list[Dependency], energy: list[float], path: str) -> list[FieldError]:
    before = list(accumulate(energy, initial=0.0))  # before[i]: energy of slots 0..i-1
    try:  # fast path: one pass, no error built (slots are >= 0 by type, so only too high fails)
        for slot, a, b, c in deps:
            if a * before[slot] + b * energy[slot] > c:
                break
        else:
            return []
    except IndexError:
        pass
    n = len(energy)
    errors = []
    for slot, a, b, c in deps:
        if slot >= n:
            errors.append(FieldError(f"{path}energy_kwh", f"dependency on missing slot {slot}"))
            continue
        lhs = a * before[slot] + b * energy[slot]
        if lhs > c + EPS * (abs(a) + abs(b) + 1.0):
            errors.append(
                FieldError(
                    f"{path}energy_kwh[{slot}]",
                    f"dependency {a:g}*{before[slot]:g} + {b:g}*{energy[slot]:g} = {lhs:g} > {c:g}",
                )
            )
    return errors


def _check_polytope(poly: Polytope, energy: list[float], path: str) -> list[FieldError]:
    errors = []
    for r, (row, rhs) in enumerate(zip(poly.a, poly.b, strict=False)):
        lhs = math.fsum(map(operator.mul, row, energy))
        if lhs > rhs and lhs > rhs + EPS * (sum(map(abs, row)) + 1.0):
            errors.append(FieldError(f"{path}energy_kwh", f"polytope row {r}: {lhs:g} > {rhs:g}"))
    return errors


def check_schedule(offer: FlexOffer, schedule: Schedule) -> list[FieldError]:
    """Every way in which ``schedule`` breaks ``offer``; empty means it may be executed."""
    errors = []
    if schedule.offer_id != offer.id:
        errors.append(FieldError("offer_id", f"{schedule.offer_id!r} is not offer {offer.id!r}"))
    errors += check_assignment(
        offer, start=schedule.start, profile=schedule.profile, energy_kwh=schedule.energy_kwh
    )
    return errors


def is_feasible(offer: FlexOffer, schedule: Schedule) -> bool:
    """``True`` when ``schedule`` satisfies every constraint of ``offer``."""
    return not check_schedule(offer, schedule)
