"""When is a device's new prediction worth a new revision of its offer? (Pure.)

Every revision costs the aggregator a new acceptance and a new plan, and a schedule planned for
the revision before may no longer fit. So an agent revises an offer only when what it promised
is *materially* wrong, never because time passed or a prediction drifted within its accuracy:

* **Episodes.** A generator names the episode its offer describes by the offer's id (a planning
  block, a charging session, a dishwasher load). A prediction for another episode is never a
  revision of this one (see :func:`span` for how episodes of one device are kept apart).
* **Windows.** A start window that only moved later because "now" moved on (the generator offers
  from ``lead_s`` ahead) is not a change: the current offer can still be planned until its own
  deadline. The end of the window (the latest start plus the profile's length: a departure, a
  ready-by time) moving by a slot or more is.
* **Energy.** Per-slot bounds, totals, dependency and polytope limits and the default's energy
  are compared slot by slot in absolute time (offers without time flexibility) or by profile
  slot (offers with it). Differences within :class:`Tolerance` are prediction drift: the EMS
  meets the energy per slot in closed loop, and a tenth of a kelvin in a building's predicted
  temperature is not worth a re-plan.
* **Anything else** that changes what FMAN trades (profiles, two-mode operation, load type,
  grid node, trading mode, prices) is material.

:func:`material_change` returns why a new revision is needed, or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

from protocol import FlexOffer, Profile, profile_window, start_window


@dataclass(frozen=True, slots=True, kw_only=True)
class Tolerance:
    """How much a prediction may drift before the offer is revised: ``kwh``, or ``rel`` of the
    profile's energy scale (the sum over its slots of the larger bound), whichever is larger.
    Per-slot bounds use the same rule with the slot's own bound as the scale."""

    kwh: float = 0.05
    rel: float = 0.03


DEFAULT_TOLERANCE = Tolerance()


def span(offer: FlexOffer) -> tuple[int, int]:
    """``[first, end)``: every moment at which a schedule of ``offer`` may run its device.

    Two episodes of one device whose spans overlap could each get a schedule for the same
    time; the agent therefore offers an episode only when its span overlaps no other episode
    the device still offers or is committed to."""
    first, _ = start_window(offer)
    end = max(profile_window(offer, p)[1] + p.n_slots * offer.resolution_s for p in offer.profiles)
    return first, end


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def material_change(
    current: FlexOffer, new: FlexOffer, tol: Tolerance = DEFAULT_TOLERANCE
) -> str | None:
    """Why ``new`` (the generator's prediction now) must replace ``current`` (the offer as last
    published), or ``None`` when ``current`` still describes the device well enough."""
    for name in ("load_type", "grid_node", "mode", "resolution_s"):
        if getattr(current, name) != getattr(new, name):
            return f"{name} changed"
    if len(current.profiles) != len(new.profiles):
        return "profiles changed"
    why = _two_mode_change(current, new, tol)
    if why:
        return why
    if _price_terms(current) != _price_terms(new):
        return "prices changed"
    res = current.resolution_s
    c_lo, c_hi = start_window(current)
    n_lo, n_hi = start_window(new)
    fixed = c_lo == c_hi and n_lo == n_hi
    for i, (cp, np_) in enumerate(zip(current.profiles, new.profiles, strict=True)):
        c_end = profile_window(current, cp)[1] + cp.n_slots * res
        n_end = profile_window(new, np_)[1] + np_.n_slots * res
        if abs(c_end - n_end) >= res:
            return f"profile {i}: its window ends at {n_end} instead of {c_end}"
        # slot j of the new profile is slot j + shift of the current one
        if fixed:
            shift = (n_lo - c_lo) // res
        elif cp.n_slots == np_.n_slots:
            shift = 0
        else:
            return f"profile {i}: {np_.n_slots} slots instead of {cp.n_slots}"
        why = _profile_change(cp, np_, shift, tol)
        if why:
            return f"profile {i}: {why}"
    return _default_change(current, new, tol)


def _two_mode_change(cur: FlexOffer, new: FlexOffer, tol: Tolerance) -> str | None:
    """Two-mode operation: its portions are shares of energy (compared with the relative
    tolerance). Energy moved around an intervention: the prior and after windows are part of
    the profile, so a different length is material. The start-scaled form: its split times
    lie inside the start window and follow it as it moves with time, so like the window's
    start they are not compared."""
    a, b = cur.two_mode, new.two_mode
    if (a is None) != (b is None):
        return "two-mode operation changed"
    if a is not None and b is not None:
        if a.start_scaled != b.start_scaled:
            return "two-mode operation changed"
        if (a.prior_s, a.after_s) != (b.prior_s, b.after_s):
            return "two-mode windows changed"
        for x, y in ((a.prior_portion, b.prior_portion), (a.after_portion, b.after_portion)):
            if abs(x - y) > tol.rel * max(abs(x), 1.0):
                return "two-mode portions changed"
    return None


def _price_terms(o: FlexOffer) -> tuple:
    """The prices as terms of trade: per-slot bounds follow the profile's length, which may
    shrink as time passes without the prices changing."""
    p = o.prices
    if p is None:
        return (None, frozenset())
    return (p.deviation_eur_per_kwh, frozenset((b.min, b.max) for b in p.slots))


def _scale(p: Profile) -> float:
    return sum(max(abs(lo), abs(hi)) for lo, hi in zip(p.lower_kwh, p.upper_kwh, strict=True))


def _differs(a: float, b: float, scale: float, tol: Tolerance) -> bool:
    return abs(a - b) > max(tol.kwh, tol.rel * abs(scale))


def _profile_change(cur: Profile, new: Profile, shift: int, tol: Tolerance) -> str | None:
    if shift < 0:
        return "starts earlier"
    scale = _scale(cur)
    for j in range(new.n_slots):
        k = j + shift
        if k >= cur.n_slots:
            return f"slot {j} is new"
        bound = max(abs(cur.lower_kwh[k]), abs(cur.upper_kwh[k]))
        if _differs(cur.lower_kwh[k], new.lower_kwh[j], bound, tol) or _differs(
            cur.upper_kwh[k], new.upper_kwh[j], bound, tol
        ):
            return f"bounds of slot {j} changed"
    if (cur.total is None) != (new.total is None) or (
        cur.total is not None
        and new.total is not None
        and (
            _differs(cur.total.lower, new.total.lower, scale, tol)
            or _differs(cur.total.upper, new.total.upper, scale, tol)
        )
    ):
        return "total changed"
    why = _rows_change(cur, new, shift, scale, tol)
    if why:
        return why
    if (cur.polytope is None) != (new.polytope is None):
        return "polytope changed"
    if cur.polytope is not None and new.polytope is not None:
        if shift or cur.polytope.a != new.polytope.a or len(cur.polytope.b) != len(new.polytope.b):
            return "polytope changed"
        pairs = zip(cur.polytope.b, new.polytope.b, strict=True)
        if any(_differs(a, b, scale, tol) for a, b in pairs):
            return "polytope limits changed"
    return None


def _rows_change(
    cur: Profile, new: Profile, shift: int, scale: float, tol: Tolerance
) -> str | None:
    """Dependency rows, compared by what they allow.

    Rows with ``a == b`` bound the cumulative energy at the end of a slot (a comfort band, a
    state of charge); a generator leaves such a row out where the per-slot bounds already
    imply it, so two predictions a little apart may differ in which rows they list. They are
    compared as the cumulative envelope they give together with the per-slot bounds. Other
    rows are compared row by row. When the newer offer starts later the energy counted
    "before" a slot is no longer the same: rows are then not comparable, and the change is
    taken as material (the built-in generators keep their blocks' starts fixed)."""
    if not cur.dependencies and not new.dependencies:
        return None
    if shift:
        return "dependency rows moved"
    other_c = sorted(r for r in cur.dependencies if r[1] != r[2])
    other_n = sorted(r for r in new.dependencies if r[1] != r[2])
    if [r[:3] for r in other_c] != [r[:3] for r in other_n]:
        return "dependency rows changed"
    for (slot, a, b, c0), (_, _, _, c1) in zip(other_c, other_n, strict=True):
        if _differs(c0, c1, scale * max(abs(a), abs(b), 1.0), tol):
            return f"dependency limit of slot {slot} changed"
    lo_c, hi_c = _envelope(cur)
    lo_n, hi_n = _envelope(new)
    for k in range(min(len(lo_c), len(lo_n))):
        if _differs(lo_c[k], lo_n[k], scale, tol) or _differs(hi_c[k], hi_n[k], scale, tol):
            return f"energy band at slot {k} changed"
    return None


def _envelope(p: Profile) -> tuple[list[float], list[float]]:
    """Lowest and highest cumulative energy at the end of each slot that the per-slot bounds
    and the rows with ``a == b`` allow (``a * S <= c`` with ``S`` the energy so far)."""
    lo = list(accumulate(p.lower_kwh))
    hi = list(accumulate(p.upper_kwh))
    for slot, a, b, c in p.dependencies:
        if a != b or a == 0 or slot >= len(lo):
            continue
        if a > 0:
            hi[slot] = min(hi[slot], c / a)
        else:
            lo[slot] = max(lo[slot], c / a)
    return lo, hi


def _default_change(cur: FlexOffer, new: FlexOffer, tol: Tolerance) -> str | None:
    """The default is the baseline FMAN counts on when it plans nothing: a different energy
    is material; the same energy starting later, because the offer starts later, is not."""
    if cur.default.profile != new.default.profile:
        return "default profile changed"
    scale = _scale(cur.profiles[0]) if cur.profiles else 0.0
    if _differs(sum(cur.default.energy_kwh), sum(new.default.energy_kwh), scale, tol):
        return "default energy changed"
    return None
