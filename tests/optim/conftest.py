"""Strategies for random planning instances: small offers of every constraint kind."""

from __future__ import annotations

from hypothesis import strategies as st

from protocol import Bounds, DefaultSchedule, Dependency, FlexOffer, Polytope, Profile

T0 = 1_767_225_600
RES = 900


def make_offer(
    oid: str, profiles: list[Profile], default: list[float], *, first: int = 0, window: int = 0
) -> FlexOffer:
    """An offer starting ``first`` slots after ``T0`` with ``window`` slots of flexibility,
    its default the first profile at the earliest start."""
    start = T0 + first * RES
    return FlexOffer(
        id=oid,
        issuer="agent",
        device="d",
        created_at=T0 - 3600,
        acceptance_before=T0 - 1800,
        assignment_before=T0 - 900,
        start_after=start,
        start_before=start + window * RES,
        profiles=profiles,
        default=DefaultSchedule(start=start, energy_kwh=default),
    )


@st.composite
def offers(draw: st.DrawFn, index: int) -> FlexOffer:
    """A valid offer of 1 to 6 slots: bounds, maybe a total, a running-sum dependency row,
    a polytope row, a second (exclusive-or) profile, a start window of up to 4 slots."""
    n = draw(st.integers(1, 6))
    first = draw(st.integers(0, 6))
    window = draw(st.integers(0, 4))
    profiles = []
    for p in range(draw(st.integers(1, 2))):
        lo = [round(draw(st.floats(-1.0, 1.0)), 3) for _ in range(n)]
        width = [round(draw(st.floats(0.0, 2.0)), 3) for _ in range(n)]
        up = [a + w for a, w in zip(lo, width, strict=True)]
        point = [(a + b) / 2 for a, b in zip(lo, up, strict=True)]
        kind = draw(st.sampled_from(["box", "total", "dep", "poly"])) if p == 0 else "box"
        extra: dict = {}
        if kind == "total":
            s = sum(point)
            extra["total"] = Bounds(
                round(s - draw(st.floats(0, 1)), 3), round(s + draw(st.floats(0, 1)), 3)
            )
        elif kind == "dep":
            j = draw(st.integers(0, n - 1))
            used = sum(point[: j + 1])
            extra["dependencies"] = [
                Dependency(j, 1.0, 1.0, round(used + draw(st.floats(0, 0.5)), 3))
            ]
        elif kind == "poly":
            row = [round(draw(st.floats(-1, 1)), 2) for _ in range(n)]
            rhs = sum(a * x for a, x in zip(row, point, strict=True)) + draw(st.floats(0, 0.5))
            extra["polytope"] = Polytope(a=[row], b=[round(rhs, 3) + 0.001])
        profiles.append((Profile(lower_kwh=lo, upper_kwh=up, **extra), point))
    return make_offer(
        f"o{index}",
        [p for p, _ in profiles],
        profiles[0][1],
        first=first,
        window=window,
    )


@st.composite
def portfolios(draw: st.DrawFn, max_offers: int = 4) -> list[FlexOffer]:
    k = draw(st.integers(1, max_offers))
    return [draw(offers(i)) for i in range(k)]


@st.composite
def targets(draw: st.DrawFn) -> dict[int, float]:
    return {T0 + t * RES: round(draw(st.floats(-2.0, 4.0)), 2) for t in range(16)}
