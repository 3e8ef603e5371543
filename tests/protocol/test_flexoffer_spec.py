"""The FlexOffer specification's own JSON form, on the specification's request and response
examples (``tests/fixtures/flexoffer-spec``), with its sign: positive energy is production."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import protocol
from protocol import ConversionError, DecodeError, Schedule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flexoffer-spec"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def request() -> dict:
    return json.loads((FIXTURES / "request.json").read_text())


def response() -> dict:
    return json.loads((FIXTURES / "response.json").read_text())


def consistent_request() -> dict:
    """The published request with its three inconsistencies mended (see the fixtures' README):
    slice 0's bounds in order, a start window of at most a week, a default of four slots."""
    doc = request()
    fo = doc["flexOffer"][0]
    entry = fo["flexOfferProfileConstraints"][0]["energyConstraintList"][0]
    entry["lowerBound"], entry["upperBound"] = entry["upperBound"], entry["lowerBound"]
    fo["startBeforeTime"] = "2017-01-29T09:00:00Z"
    fo["defaultSchedule"]["scheduleSlices"] = [
        {"duration": 1, "energyAmount": v} for v in (-10.0, 0.0, 3.14, 20.0)
    ]
    return doc


def test_both_examples_are_recognised_as_the_specifications_form():
    for doc in (request(), response()):
        assert protocol.is_flexoffer_spec(doc)
        assert protocol.detect_format(json.dumps(doc).encode()) == "flexoffer"


def test_the_published_request_is_refused_at_its_empty_slice_only():
    # slice 0 says lowerBound -5.1, upperBound -16.89: in the specification's table 1.2 that is
    # "at most 5.1 kWh consumed" and "at least 16.89 kWh consumed" at once
    with pytest.raises(ConversionError) as info:
        protocol.from_flexoffer_spec(request())
    assert [(e.path, e.message) for e in info.value.errors] == [
        (
            "flexOffer[0].flexOfferProfileConstraints[0].energyConstraintList[0].lowerBound",
            "lowerBound -5.1 > upperBound -16.89: the slice allows no energy "
            "(positive is production in this form)",
        )
    ]


def test_the_mended_request_reads_with_the_sign_turned_round():
    (offer,), schedules = protocol.from_flexoffer_spec(consistent_request())
    assert schedules == []
    p = offer.profiles[0]
    # [lowerBound, upperBound] produced is [-upperBound, -lowerBound] consumed
    assert p.lower_kwh[:3] == pytest.approx([5.1, -6.89, -3.14])
    assert p.upper_kwh[:3] == pytest.approx([16.89, 5.1, -3.14])
    # several entries in one slice are parts of its energy: their sums bound the slot
    assert (p.lower_kwh[3], p.upper_kwh[3]) == pytest.approx((-(11.89 + 6.89 + 6.89), -16.09))
    assert offer.default.energy_kwh == [10.0, 0.0, -3.14, -20.0]
    assert [(b.min, b.max) for b in offer.prices.slots] == [
        (0.03, 0.03),
        (0.03, 0.15),
        (0.03, 0.03),
        (0.15, 0.15),
    ]
    assert offer.mode == "direct" and offer.id == "17" and offer.issuer == "1023"
    assert offer.acceptance_before == 1485071100  # acceptBeforeTime 2017-01-22T07:45:00Z
    assert offer.assignment_before == 1485125100
    assert protocol.start_window(offer) == (1485075600, 1485680400)


def test_the_mended_request_survives_a_round_trip_through_the_form():
    (offer,), _ = protocol.from_flexoffer_spec(consistent_request())
    schedule = Schedule(
        offer_id=offer.id,
        version=4,
        start=offer.default.start,
        energy_kwh=[16.89, -6.89, -3.14, -16.09],
    )
    assert protocol.check_schedule(offer, schedule) == []
    doc = protocol.to_flexoffer_spec([offer], [schedule])
    written = doc["flexOffer"][0]
    assert written["flexOfferProfileConstraints"][0]["energyConstraintList"] == [
        {"lowerBound": -16.89, "upperBound": -5.1}
    ]
    assert [s["energyAmount"] for s in written["flexOfferSchedule"]["scheduleSlices"]] == [
        -16.89,
        6.89,
        3.14,
        16.09,
    ]
    (back,), (back_schedule,) = protocol.from_flexoffer_spec(json.loads(json.dumps(doc)))
    assert back == offer and back_schedule == schedule


def test_the_published_response_is_a_schedule_with_its_sign_turned_round():
    offers, (schedule,) = protocol.from_flexoffer_spec(response())
    assert offers == []
    assert schedule.offer_id == "123" and schedule.version == 1
    assert schedule.start == 1680199200  # 2023-03-30T18:00:00Z
    # "energyAmount": "-13342.610307504", a decimal string: 13,342.6 kWh consumed
    assert schedule.energy_kwh == pytest.approx(
        [13342.610307504, 14330.47291966, 15634.3049937015, 16754.1480817855]
    )
    # written back as a response entry, since its offer is not there
    doc = protocol.to_flexoffer_spec([], [schedule])
    (entry,) = doc["flexOffer"]
    assert entry["id"] == "123" and "flexOfferProfileConstraints" not in entry
    assert protocol.from_flexoffer_spec(doc) == ([], [schedule])


def test_an_offer_file_holds_requests_and_responses():
    doc = consistent_request()
    doc["flexOffer"].append(response()["flexOffer"][0])
    content = protocol.read_offer_file(json.dumps(doc).encode())
    assert content.format == "flexoffer"
    assert [o.id for o in content.offers] == ["17"]
    assert [s.offer_id for s in content.unmatched()] == ["123"]


def test_goflex_bound_names_in_the_specifications_list_are_refused_with_the_reason():
    doc = consistent_request()
    slice0 = doc["flexOffer"][0]["flexOfferProfileConstraints"][0]
    slice0["energyConstraintList"] = [{"lower": 5.1, "upper": 16.89}]
    with pytest.raises(ConversionError) as info:
        protocol.from_flexoffer_spec(doc)
    (error,) = info.value.errors
    assert error.path.endswith("flexOfferProfileConstraints[0].energyConstraintList[0]")
    assert "lower/upper belong to the GOFLEX form (positive is consumption)" in error.message


def test_units_and_multipliers_scale_to_kwh():
    doc = consistent_request()
    fo = doc["flexOffer"][0]
    fo["unit"], fo["multiplier"] = "Wh", "1"
    for c in fo["flexOfferProfileConstraints"]:
        for e in c["energyConstraintList"]:
            e["lowerBound"] *= 1000
            e["upperBound"] *= 1000
    for s in fo["defaultSchedule"]["scheduleSlices"]:
        s["energyAmount"] *= 1000
    (offer,), _ = protocol.from_flexoffer_spec(doc)
    (expected,), _ = protocol.from_flexoffer_spec(consistent_request())
    assert offer.profiles[0].lower_kwh == pytest.approx(expected.profiles[0].lower_kwh)
    assert offer.default.energy_kwh == pytest.approx(expected.default.energy_kwh)
    fo["flexOfferProfilType"] = "reactiveEnergy"
    with pytest.raises(ConversionError, match="only active energy"):
        protocol.from_flexoffer_spec(doc)


def test_a_flexibility_removal_is_named_not_misread():
    doc = consistent_request()
    doc["flexOffer"][0]["flexOfferProfileConstraints"] = []
    with pytest.raises(ConversionError, match="flexibility removal"):
        protocol.from_flexoffer_spec(doc)


def test_validation_errors_name_the_entry():
    doc = consistent_request()
    doc["flexOffer"][0]["defaultSchedule"]["scheduleSlices"][0]["energyAmount"] = 0.0
    with pytest.raises(DecodeError) as info:
        protocol.from_flexoffer_spec(doc)
    assert [e.path for e in info.value.errors] == ["flexOffer[0].default.energy_kwh[0]"]


def test_dependency_rows_and_totals_change_sign():
    ev = protocol.read_offers((EXAMPLES / "offers" / "ev.json").read_bytes())[0]
    doc = protocol.to_flexoffer_spec([ev])
    c = doc["flexOffer"][0]["flexOfferProfileConstraints"][3]
    assert c["DependencyEnergyConstraintList"] == [[-1.0, -1.0, 8.0]]
    assert doc["flexOffer"][0]["totalEnergyConstraint"] == {"lower": -8.0, "upper": -6.0}
    assert protocol.from_flexoffer_spec(doc)[0] == [ev]
