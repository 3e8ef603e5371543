"""Two-mode operation: energy moved around an intervention, on the freezer of the worked example
(``examples/offers/freezer-shed.json``), and the start-scaled form older agents still send."""

from __future__ import annotations

from pathlib import Path

import msgpack
import msgspec
import pytest

import protocol
from protocol import DecodeError, FlexOffer, Schedule, TwoMode
from protocol._feasibility import intervention_slots

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
replace = msgspec.structs.replace


def freezer() -> FlexOffer:
    return protocol.from_json((EXAMPLES / "offers" / "freezer-shed.json").read_bytes(), FlexOffer)


def shed() -> Schedule:
    return protocol.from_json((EXAMPLES / "schedules" / "freezer-shed.json").read_bytes(), Schedule)


def run(energy: list[float]) -> list[str]:
    return [str(e) for e in protocol.check_schedule(freezer(), replace(shed(), energy_kwh=energy))]


def test_the_worked_example_splits_its_profile_into_prior_shed_and_after():
    o = freezer()
    prior, mid, after = intervention_slots(o, o.profiles[0].n_slots)
    assert (list(prior), list(mid), list(after)) == ([0, 1], [2, 3, 4, 5], [6, 7, 8, 9])
    assert protocol.validate_offer(o) == []
    # one profile: no intervention and intervention are the two ends of one linear relation
    assert len(protocol.effective_profiles(o)) == 1


def test_a_full_shed_returns_its_portions_before_and_after():
    # 4 slots of 0.05 kWh shed: 0.2 kWh moved; 0.5 of it before, 0.7 of it after
    assert protocol.check_schedule(freezer(), shed()) == []
    assert sum(shed().energy_kwh[:2]) == pytest.approx(0.1 + 0.5 * 0.2)
    assert sum(shed().energy_kwh[6:]) == pytest.approx(0.2 + 0.7 * 0.2)


def test_the_returned_energy_is_proportional_to_the_energy_moved():
    half = [0.075, 0.075, 0.025, 0.025, 0.025, 0.025, 0.0675, 0.0675, 0.0675, 0.0675]
    assert run(half) == []
    # the recovery may fall on any of its slots within their bounds
    assert run([0.075, 0.075, 0.025, 0.025, 0.025, 0.025, 0.05, 0.05, 0.07, 0.1]) == []
    # no intervention: the baseline everywhere, nothing returned
    assert run([0.05] * 10) == []


def test_a_shed_without_its_recovery_is_refused_and_says_why():
    errors = run([0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.05, 0.05, 0.05, 0.05])
    assert errors == [
        "energy_kwh: the after window (slots 6 to 9) takes +0 kWh against the default, "
        "+0.14 expected: 0.7 of the 0.2 kWh moved out of the intervention"
    ]
    # pre-cooling that was never needed: no shed, yet energy taken before
    errors = run([0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    assert len(errors) == 1 and "the prior window (slots 0 to 1)" in errors[0]


def test_the_expansion_gives_the_planner_linear_rows():
    o = freezer()
    poly = protocol.effective_profiles(o)[0].polytope
    assert poly is not None and len(poly.a) == 4  # <= and >= for each window
    assert poly.a[0] == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert poly.b[0] == pytest.approx(0.1 + 0.5 * 0.2)
    assert poly.a[1] == [-v for v in poly.a[0]] and poly.b[1] == -poly.b[0]


def test_the_planner_sheds_where_energy_is_dear_and_keeps_the_returns():
    from cloud.optim import OrToolsPlanner, PlanRequest

    o = freezer()
    dear = range(o.created_at + 5 * 3600 + 1800, o.created_at + 6 * 3600 + 1800, 900)  # 17:30
    prices = {t: 0.5 if t in dear else 0.1 for t in range(o.created_at, o.created_at + 86_400, 900)}
    result = OrToolsPlanner().plan(
        PlanRequest(offers=[o], resolution_s=900, objective="cost", prices_eur_per_kwh=prices)
    )
    (plan,) = result.schedules
    assert plan.start == dear.start - 1800  # pre-cooling in the half hour before the shed
    assert plan.energy_kwh[2:6] == pytest.approx([0.0] * 4)
    schedule = Schedule(
        offer_id=o.id, version=1, start=plan.start, profile=plan.profile, energy_kwh=plan.energy_kwh
    )
    assert protocol.check_schedule(o, schedule) == []


@pytest.mark.parametrize(
    ("two_mode", "path"),
    [
        (
            TwoMode(prior_s=1800, prior_portion=0.5, after_s=3700, after_portion=0.7),
            "two_mode.after_s",
        ),
        (
            TwoMode(prior_s=0, prior_portion=0.5, after_s=3600, after_portion=0.7),
            "two_mode.prior_portion",
        ),
        (TwoMode(prior_portion=0.5, after_portion=0.7), "two_mode"),
        (TwoMode(prior_s=4500, prior_portion=0.5, after_s=4500, after_portion=0.7), "profiles[0]"),
        (
            TwoMode(
                prior_s=1800,
                prior_portion=0.5,
                after_s=3600,
                after_portion=0.7,
                prior_time=1_767_281_400,
            ),
            "two_mode",
        ),
    ],
    ids=["off-grid", "no-time-to-return", "no-durations", "no-intervention-left", "both-forms"],
)
def test_rules_of_the_intervention_form(two_mode, path):
    errors = protocol.validate_offer(replace(freezer(), two_mode=two_mode))
    assert errors and errors[0].path == path, errors


def test_the_default_is_the_baseline_of_every_profile():
    o = freezer()
    short = protocol.Profile(lower_kwh=[0.0] * 8, upper_kwh=[0.1] * 8)
    errors = protocol.validate_offer(replace(o, profiles=[*o.profiles, short]))
    assert [e.path for e in errors] == ["profiles[1]"]
    assert "the default (the baseline of two-mode operation) has 10" in errors[0].message


# -- on the wire: the two forms, old and new readers --------------------------------------------


class OldTwoMode(msgspec.Struct, kw_only=True):
    """The shape a protocol 1.2 reader decodes ``two_mode`` with."""

    prior_time: int
    prior_portion: float
    after_time: int
    after_portion: float


def test_a_protocol_1_2_message_with_the_start_scaled_form_still_decodes():
    o = freezer()
    lo, _ = protocol.start_window(o)
    body = protocol.to_builtins(replace(o, two_mode=None))
    body["two_mode"] = {
        "prior_time": lo,
        "prior_portion": 1.0,
        "after_time": lo + 1800,
        "after_portion": 0.5,
    }
    old = msgpack.packb({"v": "1.2", "kind": "offer", "id": "m1", "ts": o.created_at, "body": body})
    message = protocol.decode(old, expect="offer")
    assert message.version == (1, 2)
    tm = message.body.two_mode
    assert tm.start_scaled and (tm.prior_s, tm.after_s) == (None, None)
    profiles = protocol.effective_profiles(message.body)
    assert len(profiles) == 2  # the exclusive-or profiles of the start-scaled form, as before
    assert profiles[1].upper_kwh == pytest.approx([v * 0.5 for v in o.profiles[0].upper_kwh])
    assert profiles[0].start_before == lo and profiles[1].start_after == lo + 1800


def test_the_forms_are_told_apart_by_their_fields():
    new = protocol.to_builtins(freezer())["two_mode"]
    assert set(new) == {"prior_s", "prior_portion", "after_s", "after_portion"}
    assert not protocol.from_builtins(new, TwoMode).start_scaled
    # a 1.2 reader refuses the new form (a required field is missing) instead of misreading it
    with pytest.raises(msgspec.ValidationError, match="prior_time"):
        msgspec.convert(new, OldTwoMode)
    data = protocol.encode(freezer(), ts=freezer().created_at)
    assert msgpack.unpackb(data)["v"] == "{}.{}".format(*protocol.PROTOCOL_VERSION)
    assert protocol.PROTOCOL_VERSION >= (1, 3)


def test_a_portion_out_of_range_is_refused_while_decoding():
    raw = protocol.to_builtins(freezer())
    raw["two_mode"]["after_portion"] = -0.1
    with pytest.raises(DecodeError) as info:
        protocol.from_builtins(raw, FlexOffer)
    assert info.value.errors[0].path == "two_mode.after_portion"
