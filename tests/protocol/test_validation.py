"""Each validation rule, broken on its own, is reported with the field path it concerns."""

from __future__ import annotations

import msgspec
import pytest

import protocol
from protocol import (
    Bounds,
    DecodeError,
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
)

T = 1_767_225_600
replace = msgspec.structs.replace


NAN, INF = float("nan"), float("inf")


def base() -> FlexOffer:
    return FlexOffer(
        id="o1",
        issuer="a1",
        device="d1",
        created_at=T,
        acceptance_before=T + 900,
        assignment_before=T + 1800,
        start_after=T + 3600,
        start_before=T + 7200,
        profiles=[Profile(lower_kwh=[0.0, 0.0, 0.0], upper_kwh=[1.0, 1.0, 1.0])],
        default=DefaultSchedule(start=T + 3600, energy_kwh=[0.5, 0.5, 0.5]),
    )


def paths(offer: FlexOffer) -> list[str]:
    return [e.path for e in protocol.validate_offer(offer)]


def with_profile(**changes) -> FlexOffer:
    o = base()
    return replace(o, profiles=[replace(o.profiles[0], **changes)])


def test_base_offer_is_valid():
    assert protocol.validate_offer(base()) == []


@pytest.mark.parametrize(
    ("offer", "path"),
    [
        (replace(base(), resolution_s=600), "resolution_s"),
        (replace(base(), resolution_s=7200), "resolution_s"),
        (replace(base(), resolution_s=1000), "resolution_s"),
        (replace(base(), start_before=None), "start_before"),
        (replace(base(), start_before_duration_s=3600), "start_before"),
        (replace(base(), start_after=T + 3700), "start_after"),
        (replace(base(), start_before=T + 7300), "start_before"),
        (replace(base(), start_after=T + 9000), "start_before"),
        (replace(base(), start_before=T + 3600 + 8 * 86_400), "start_before"),
        (replace(base(), acceptance_before=T + 2000), "acceptance_before"),
        (replace(base(), acceptance_before=T - 1), "acceptance_before"),
        (replace(base(), assignment_before=T + 8000, acceptance_before=T), "assignment_before"),
        (replace(base(), profiles=[]), "profiles"),
        (replace(base(), profiles=[base().profiles[0]] * 17), "profiles"),
        (with_profile(lower_kwh=[0.0, 2.0, 0.0]), "profiles[0].lower_kwh[1]"),
        (with_profile(upper_kwh=[1.0, 1.0]), "profiles[0].upper_kwh"),
        (with_profile(lower_kwh=[], upper_kwh=[]), "profiles[0].lower_kwh"),
        (with_profile(lower_kwh=[0.0] * 673, upper_kwh=[1.0] * 673), "profiles[0].lower_kwh"),
        (with_profile(total=Bounds(2.0, 1.0)), "profiles[0].total"),
        (with_profile(total=Bounds(5.0, 6.0)), "profiles[0].total"),
        (with_profile(dependencies=[Dependency(3, 1.0, 1.0, 9.0)]), "profiles[0].dependencies[0]"),
        (
            with_profile(dependencies=[Dependency(0, 0, 1, 9)] * 25),
            "profiles[0].dependencies",
        ),
        (with_profile(polytope=Polytope(a=[[1.0, 1.0]], b=[3.0])), "profiles[0].polytope.a[0]"),
        (with_profile(polytope=Polytope(a=[[1.0, 1.0, 1.0]], b=[])), "profiles[0].polytope.b"),
        (
            with_profile(polytope=Polytope(a=[[1.0, 1.0, 1.0]] * 257, b=[3.0] * 257)),
            "profiles[0].polytope.a",
        ),
        (with_profile(start_after=T + 3650), "profiles[0].start_after"),
        (with_profile(start_after=T + 9000), "profiles[0].start_before"),
        (
            replace(
                base(),
                two_mode=TwoMode(
                    prior_time=T, prior_portion=1, after_time=T + 3600, after_portion=1
                ),
            ),
            "two_mode.prior_time",
        ),
        (
            replace(
                base(),
                two_mode=TwoMode(
                    prior_time=T + 3600, prior_portion=1, after_time=T + 9000, after_portion=1
                ),
            ),
            "two_mode.after_time",
        ),
        (replace(base(), mode="direct"), "prices.slots"),
        (replace(base(), prices=Prices(slots=[PriceBounds(1.0, 0.5)] * 3)), "prices.slots[0]"),
        (
            replace(base(), prices=Prices(deviation_eur_per_kwh=-1.0)),
            "prices.deviation_eur_per_kwh",
        ),
        # the default schedule must be feasible
        (replace(base(), default=DefaultSchedule(start=T, energy_kwh=[0.5] * 3)), "default.start"),
        (
            replace(base(), default=DefaultSchedule(start=T + 3650, energy_kwh=[0.5] * 3)),
            "default.start",
        ),
        (
            replace(base(), default=DefaultSchedule(start=T + 3600, energy_kwh=[0.5, 2.0, 0.5])),
            "default.energy_kwh[1]",
        ),
        (
            replace(base(), default=DefaultSchedule(start=T + 3600, energy_kwh=[0.5])),
            "default.energy_kwh",
        ),
        (
            replace(
                base(), default=DefaultSchedule(start=T + 3600, profile=1, energy_kwh=[0.5] * 3)
            ),
            "default.profile",
        ),
        (with_profile(total=Bounds(0.0, 1.0)), "default.energy_kwh"),
        (with_profile(dependencies=[Dependency(2, 1.0, 0.0, 0.5)]), "default.energy_kwh[2]"),
        (with_profile(polytope=Polytope(a=[[1.0, -1.0, 1.0]], b=[0.1])), "default.energy_kwh"),
        # implicit windows and two-mode times on the slot grid; price rows capped
        (
            replace(base(), start_before=None, start_before_duration_s=3700),
            "start_before_duration_s",
        ),
        (
            replace(
                base(),
                two_mode=TwoMode(
                    prior_time=T + 3650, prior_portion=1, after_time=T + 3600, after_portion=1
                ),
            ),
            "two_mode.prior_time",
        ),
        (
            replace(base(), prices=Prices(slots=[PriceBounds(0.1, 0.2)] * 673)),
            "prices.slots",
        ),
        # numbers must be finite: the decoder refuses NaN, an offer built in memory is checked
        (with_profile(lower_kwh=[0.0, NAN, 0.0]), "profiles[0].lower_kwh[1]"),
        (with_profile(upper_kwh=[1.0, 1.0, INF]), "profiles[0].upper_kwh[2]"),
        (with_profile(total=Bounds(NAN, 2.0)), "profiles[0].total"),
        (
            with_profile(dependencies=[Dependency(0, 1.0, NAN, 1.0)]),
            "profiles[0].dependencies[0]",
        ),
        (
            with_profile(polytope=Polytope(a=[[1.0, INF, 1.0]], b=[3.0])),
            "profiles[0].polytope.a[0][1]",
        ),
        (
            with_profile(polytope=Polytope(a=[[1.0, 1.0, 1.0]], b=[NAN])),
            "profiles[0].polytope.b[0]",
        ),
        (
            replace(base(), default=DefaultSchedule(start=T + 3600, energy_kwh=[0.5, NAN, 0.5])),
            "default.energy_kwh[1]",
        ),
        (
            replace(
                base(),
                two_mode=TwoMode(
                    prior_time=T + 3600, prior_portion=NAN, after_time=T + 3600, after_portion=1
                ),
            ),
            "two_mode.prior_portion",
        ),
        (
            replace(base(), prices=Prices(slots=[PriceBounds(0.1, INF)] * 3)),
            "prices.slots[0]",
        ),
        (
            with_profile(lower_kwh=[2.0, 0.0, 0.0], upper_kwh=[1.0, 1e308, 1e308]),
            "profiles[0].lower_kwh[0]",  # a sum that overflows does not hide the other rules
        ),
    ],
)
def test_rule_reported_with_path(offer, path):
    assert path in paths(offer)


def test_reject_reasons_and_status_health_capped():
    reject = protocol.Reject(
        ref_kind="offer", ref_id="o1", revision=0, reasons=[protocol.Reason(code="x")] * 65
    )
    assert [e.path for e in protocol.validate(reject)] == ["reasons"]
    status = protocol.Status(
        agent="a1", state="online", since=T, health={f"k{i}": i for i in range(65)}
    )
    assert [e.path for e in protocol.validate(status)] == ["health"]
    crowded = protocol.Status(agent="a1", state="online", devices=[f"d{i}" for i in range(4097)])
    assert [e.path for e in protocol.validate(crowded)] == ["devices"]


def test_all_errors_reported_at_once():
    o = replace(
        with_profile(lower_kwh=[2.0, 0.0, 2.0]),
        acceptance_before=T + 2000,
        start_after=T + 3700,
    )
    assert {
        "profiles[0].lower_kwh[0]",
        "profiles[0].lower_kwh[2]",
        "acceptance_before",
        "start_after",
    } <= set(paths(o))


@pytest.mark.parametrize(
    ("raw_change", "path"),
    [
        ({"id": "has/slash"}, "id"),
        ({"id": ""}, "id"),
        ({"issuer": "x" * 129}, "issuer"),
        ({"created_at": 12}, "created_at"),
        ({"mode": "barter"}, "mode"),
        ({"state": "lost"}, "state"),
        (
            {"profiles": [{"lower_kwh": [float("nan")], "upper_kwh": [1.0]}]},
            "profiles[0].lower_kwh[0]",
        ),
        (
            {"profiles": [{"lower_kwh": [0.0], "upper_kwh": [float("inf")]}]},
            "profiles[0].upper_kwh[0]",
        ),
        ({"profiles": [{"lower_kwh": ["a"], "upper_kwh": [1.0]}]}, "profiles[0].lower_kwh[0]"),
        ({"default": {"start": T, "energy_kwh": [1e7]}}, "default.energy_kwh[0]"),
    ],
)
def test_type_and_range_errors_name_the_field(raw_change, path):
    raw = protocol.to_builtins(base())
    raw.update(raw_change)
    with pytest.raises(DecodeError) as info:
        protocol.from_builtins(raw, FlexOffer)
    assert info.value.errors[0].path == path


def test_missing_field_is_named():
    raw = protocol.to_builtins(base())
    del raw["acceptance_before"]
    with pytest.raises(DecodeError, match="acceptance_before"):
        protocol.from_builtins(raw, FlexOffer)


def test_implicit_window_resolves_from_creation_time():
    o = replace(
        base(),
        created_at=T + 100,
        start_after=None,
        start_before=None,
        start_before_duration_s=3600,
        acceptance_before=T + 200,
        assignment_before=T + 900,
        default=DefaultSchedule(start=T + 900, energy_kwh=[0.5] * 3),
    )
    assert protocol.start_window(o) == (T + 900, T + 4500)
    assert protocol.validate_offer(o) == []


def test_schedule_and_batch_sizes_capped():
    s = Schedule(offer_id="o1", version=1, start=T, energy_kwh=[0.0] * 700)
    assert [e.path for e in protocol.validate_schedule(s)] == ["energy_kwh"]
    b = MeterBatch(agent="a1", readings=[MeterReading("d", T, 900, 0.1)] * 10_001)
    assert [e.path for e in protocol.validate_meter_batch(b)] == ["readings"]


def test_schedule_version_must_be_positive():
    with pytest.raises(DecodeError, match="version"):
        protocol.from_builtins(
            {"offer_id": "o1", "version": 0, "start": T, "energy_kwh": [1.0]}, Schedule
        )


def test_meter_batch_ids_are_checked_once_per_value():
    readings = [MeterReading("hp", T, 900, 0.1, "o1")] * 3 + [MeterReading("bad/dev", T, 900, 0.1)]
    errors = protocol.validate_meter_batch(MeterBatch(agent="a1", readings=readings))
    assert [e.path for e in errors] == ["readings[3]"]
    readings = [MeterReading("hp", T, 900, 0.1, "o#1")]
    assert [
        e.path for e in protocol.validate_meter_batch(MeterBatch(agent="a1", readings=readings))
    ] == ["readings[0]"]
