"""Hypothesis strategies that build valid messages by construction.

Every offer is built around a chosen feasible run (its default schedule), so each constraint
is generated to hold for that run with some slack: bounds around it, totals around its sum,
dependency rows and polytope rows satisfied by it.
"""

from __future__ import annotations

from hypothesis import strategies as st
from msgspec.structs import replace

from protocol import (
    Bounds,
    DefaultSchedule,
    Dependency,
    FlexOffer,
    MeterBatch,
    MeterReading,
    Polytope,
    PriceBounds,
    Prices,
    Profile,
    Schedule,
    TwoMode,
    effective_profiles,
)

T0 = 1_767_225_600  # 2026-01-01, on every grid
ids = st.from_regex(r"[A-Za-z0-9_.:@-]{1,20}", fullmatch=True)
kwh = st.floats(-20, 20, allow_nan=False, allow_infinity=False)
slack = st.floats(0, 5, allow_nan=False, allow_infinity=False)
coef = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@st.composite
def profiles_around(draw: st.DrawFn, run: list[float]) -> Profile:
    """A profile for which ``run`` is feasible."""
    n = len(run)
    lower = [e - draw(slack) for e in run]
    upper = [e + draw(slack) for e in run]
    total = None
    if draw(st.booleans()):
        s = sum(run)
        total = Bounds(s - draw(slack), s + draw(slack))
    deps = []
    if draw(st.booleans()):
        before = 0.0
        for i, e in enumerate(run):
            if draw(st.booleans()):
                a, b = draw(coef), draw(coef)
                deps.append(Dependency(i, a, b, a * before + b * e + draw(slack)))
            before += e
    polytope = None
    if draw(st.booleans()):
        rows = draw(st.lists(st.lists(coef, min_size=n, max_size=n), min_size=1, max_size=3))
        rhs = [sum(c * e for c, e in zip(row, run, strict=True)) + draw(slack) for row in rows]
        polytope = Polytope(a=rows, b=rhs)
    return Profile(
        lower_kwh=lower, upper_kwh=upper, total=total, dependencies=deps, polytope=polytope
    )


@st.composite
def offers(draw: st.DrawFn, *, allow_two_mode: bool = True) -> FlexOffer:
    r = draw(st.sampled_from([900, 1800, 3600]))
    lo = T0 + r * draw(st.integers(12, 30))
    implicit = draw(st.booleans())  # start_after "now", start_before as a duration
    created = lo - draw(st.integers(0, r - 1)) if implicit else T0 + draw(st.integers(0, 10_000))
    width = r * draw(st.integers(0, 20))
    hi = lo + width
    assignment = draw(st.integers(created, hi))
    acceptance = draw(st.integers(created, assignment))
    two_mode_form = (
        draw(st.sampled_from(["scaled", "intervention", None])) if allow_two_mode else None
    )
    if two_mode_form == "intervention":
        # energy moved around an intervention: the default is every profile's baseline, so
        # the profiles share its length; it moves nothing, so it returns nothing
        n = draw(st.integers(2, 12))
        n_profiles = draw(st.integers(1, 2))
        runs = [draw(st.lists(kwh, min_size=n, max_size=n)) for _ in range(n_profiles)]
    else:
        n_profiles = draw(st.integers(1, 3))
        runs = [draw(st.lists(kwh, min_size=1, max_size=12)) for _ in range(n_profiles)]
    profs = [draw(profiles_around(run)) for run in runs]
    chosen = draw(st.integers(0, n_profiles - 1))
    start = lo + r * draw(st.integers(0, width // r))
    two_mode = None
    default_profile = chosen
    energy = runs[chosen]
    if two_mode_form == "intervention":
        k = draw(st.integers(0, len(runs[0]) - 1))
        m = draw(st.integers(0, len(runs[0]) - 1 - k))
        share = st.floats(0, 2, allow_nan=False)
        two_mode = TwoMode(
            prior_s=k * r,
            prior_portion=draw(share) if k else 0.0,
            after_s=m * r,
            after_portion=draw(share) if m else 0.0,
        )
        chosen = default_profile = 0
        energy = runs[0]
    elif two_mode_form == "scaled":
        prior = draw(st.sampled_from(range(lo, hi + 1, r)))
        after = draw(st.sampled_from(range(lo, hi + 1, r)))
        two_mode = TwoMode(
            prior_time=prior,
            prior_portion=draw(st.floats(0.1, 2)),
            after_time=after,
            after_portion=draw(st.floats(0.1, 2)),
        )
        use_after = draw(st.booleans())
        start = draw(
            st.sampled_from(range(after, hi + 1, r) if use_after else range(lo, prior + 1, r))
        )
        default_profile = 2 * chosen + use_after
        k = two_mode.after_portion if use_after else two_mode.prior_portion
        energy = [e * k for e in runs[chosen]]
    if draw(st.booleans()):
        # profiles with start windows of their own, inside the offer's; the default's keeps
        # the default's start
        narrowed = []
        for i, p in enumerate(profs):
            if not draw(st.booleans()):
                narrowed.append(p)
                continue
            a = draw(st.sampled_from(range(lo, hi + 1, r)))
            b = draw(st.sampled_from(range(a, hi + 1, r)))
            if i == chosen:
                a, b = min(a, start), max(b, start)
            narrowed.append(replace(p, start_after=a, start_before=b))
        profs = narrowed
    mode = draw(st.sampled_from(["delegated", "direct"]))
    prices = None
    longest = max(len(run) for run in runs)
    if mode == "direct":
        prices = Prices(
            slots=[PriceBounds(-0.1, draw(st.floats(0, 1))) for _ in range(longest)],
            deviation_eur_per_kwh=draw(st.none() | st.floats(0, 1)),
        )
    elif draw(st.booleans()):
        prices = Prices(deviation_eur_per_kwh=draw(st.floats(0, 1)))
    return FlexOffer(
        id=draw(ids),
        issuer=draw(ids),
        device=draw(ids),
        load_type=draw(st.sampled_from(["ev", "heat_pump", "battery", "pv", "generic"])),
        grid_node=draw(st.sampled_from(["", "node-1", "feeder-7"])),
        mode=mode,
        revision=draw(st.integers(0, 5)),
        state=draw(st.sampled_from(["offered", "accepted", "assigned", "executed"])),
        created_at=created,
        resolution_s=r,
        acceptance_before=acceptance,
        assignment_before=assignment,
        start_after=None if implicit else lo,
        start_before=None if implicit else hi,
        start_before_duration_s=width if implicit else None,
        profiles=profs,
        two_mode=two_mode,
        default=DefaultSchedule(start=start, profile=default_profile, energy_kwh=energy),
        prices=prices,
    )


@st.composite
def offers_with_schedule(draw: st.DrawFn) -> tuple[FlexOffer, Schedule]:
    """An offer and a feasible schedule for it (its default, re-issued as an assignment)."""
    offer = draw(offers())
    d = offer.default
    assert effective_profiles(offer)
    return offer, Schedule(
        offer_id=offer.id,
        version=draw(st.integers(1, 1000)),
        start=d.start,
        profile=d.profile,
        energy_kwh=list(d.energy_kwh),
        issued_at=draw(st.none() | st.just(T0)),
        offer_revision=draw(st.integers(0, offer.revision)),
    )


@st.composite
def meter_batches(draw: st.DrawFn) -> MeterBatch:
    readings = draw(
        st.lists(
            st.builds(
                MeterReading,
                ids,
                st.integers(T0, T0 + 86_400),
                st.integers(1, 3600),
                kwh,
                st.just("") | ids,
            ),
            max_size=20,
        )
    )
    return MeterBatch(agent=draw(ids), seq=draw(st.integers(0, 10**6)), readings=readings)
