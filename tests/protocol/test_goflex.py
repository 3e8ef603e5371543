"""GOFLEX / FlexOffer-specification JSON: the real sample, both variants, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

import protocol
from protocol import ConversionError, DecodeError, Dependency
from protocol.samples import heat_pump_offer

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "goflex" / "SampleFO_Cyprus.json"
T = 1_582_835_400  # 2020-02-27T20:30:00Z, the sample's start


def sample() -> dict:
    return json.loads(SAMPLE.read_text())


def test_cyprus_sample_imports_and_validates():
    offer, schedule = protocol.from_goflex(sample())
    assert schedule is None
    assert protocol.validate_offer(offer) == []
    assert offer.issuer == "7500001"
    assert offer.resolution_s == 900
    assert offer.created_at == 1758705 * 900
    assert protocol.start_window(offer) == (T, T)
    assert offer.acceptance_before == offer.assignment_before == T
    assert offer.profiles[0].lower_kwh == [0.0] and offer.profiles[0].upper_kwh == [0.5354]
    assert offer.prices.slots[0].min == -0.05
    assert offer.prices.slots[0].max == pytest.approx(0.34417258124766537)
    assert offer.mode == "direct"  # per-slot tariffs are the prosumer's own prices
    assert offer.default.start == T and offer.default.energy_kwh == [0.0]


def test_cyprus_sample_exports_back_with_the_same_meaning():
    original = sample()
    offer, _ = protocol.from_goflex(original)
    exported = protocol.to_goflex(offer)
    for key in (
        "offeredById",
        "numSecondsPerInterval",
        "creationInterval",
        "acceptanceBeforeInterval",
        "assignmentBeforeInterval",
        "startAfterInterval",
        "startBeforeInterval",
        "endAfterInterval",
        "endBeforeInterval",
        "creationTime",
        "startAfterTime",
        "startBeforeTime",
        "assignmentBeforeTime",
        "acceptanceBeforeTime",
        "endAfterTime",
        "endBeforeTime",
        "assignment",
    ):
        assert exported[key] == original[key], key
    ours = exported["flexOfferProfileConstraints"]
    theirs = original["flexOfferProfileConstraints"]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a["energyConstraintList"] == b["energyConstraintList"]
        assert a["tariffConstraint"] == b["tariffConstraint"]
        assert (a["minDuration"], a["maxDuration"]) == (b["minDuration"], b["maxDuration"])
    assert exported["defaultSchedule"]["startTime"] == original["defaultSchedule"]["startTime"]
    assert [s["energyAmount"] for s in exported["defaultSchedule"]["scheduleSlices"]] == [0]
    # and once more through our importer: the same offer
    assert protocol.from_goflex(json.loads(json.dumps(exported)))[0] == offer


def test_same_document_gives_the_same_generated_id():
    assert protocol.from_goflex(sample())[0].id == protocol.from_goflex(sample())[0].id


def spec_doc() -> dict:
    """The specification's array variant: one slice of six intervals with per-interval arrays."""
    return {
        "flexOffer": {
            "id": "4188a132-a937-4639-96cf-d8529fa78b86",
            "state": "Adaptation",
            "offeredById": "harry@80060B5E0FD671D58243CE7162A6054719822955",
            "creationInterval": 1726911,
            "acceptanceBeforeInterval": 1726914,
            "assignmentBeforeInterval": 1726914,
            "startAfterInterval": 1726912,
            "startBeforeInterval": 1726920,
            "flexOfferProfileConstraints": [
                {
                    "energyConstraintList": [
                        {"lower": [0, 0, 0, 0, 0, 0], "upper": [5, 5, 4.76, 0, 0, 0]}
                    ],
                    "priceConstraint": {"minPrice": [0.03] * 6, "maxPrice": [0.15] * 6},
                    "minDuration": 6,
                    "maxDuration": 6,
                }
            ],
            "totalEnergyConstraint": {"lower": 4, "upper": 8},
            "defaultSchedule": {
                "scheduleSlices": [{"duration": 6, "energyAmount": [2, 3, 3, 0, 0, 0]}],
                "startTime": "2019-04-02T16:00:00.000+0000",
            },
            "flexOfferSchedule": {
                "scheduleId": 12345,
                "updateId": 4,
                "scheduleSlices": [{"duration": 6, "energyAmount": [1, 2, 3, 0, 0, 0]}],
                "startTime": "2019-04-02T17:00:00.000+0000",
            },
            "numSecondsPerInterval": 900,
        }
    }


def test_array_variant_with_total_and_schedule():
    offer, schedule = protocol.from_goflex(spec_doc())
    p = offer.profiles[0]
    assert p.lower_kwh == [0.0] * 6 and p.upper_kwh == [5, 5, 4.76, 0, 0, 0]
    assert p.total == protocol.Bounds(4.0, 8.0)
    assert [pb.max for pb in offer.prices.slots] == [0.15] * 6
    assert protocol.start_window(offer) == (1726912 * 900, 1726920 * 900)
    assert offer.state == "offered"
    assert schedule.version == 4 and schedule.energy_kwh == [1, 2, 3, 0, 0, 0]
    assert protocol.is_feasible(offer, schedule)
    exported = protocol.to_goflex(offer, schedule)
    assert exported["totalEnergyConstraint"] == {"lower": 4.0, "upper": 8.0}
    assert exported["flexOfferSchedule"]["updateId"] == 4
    back, back_schedule = protocol.from_goflex(exported)
    assert back == offer and back_schedule == schedule


def test_scalar_slice_with_duration_expands_per_interval():
    doc = spec_doc()
    c = doc["flexOffer"]["flexOfferProfileConstraints"][0]
    c["energyConstraintList"] = [{"lower": 0, "upper": 5}]
    del c["priceConstraint"]
    offer, _ = protocol.from_goflex(doc)
    assert offer.profiles[0].upper_kwh == [5.0] * 6
    assert offer.mode == "delegated"


def test_dependency_only_slices_take_bounds_from_their_rows():
    doc = spec_doc()
    doc["flexOffer"]["flexOfferProfileConstraints"] = [
        {
            "DependencyEnergyConstraintList": [[0, 1, 5], [0, -1, 5]],
            "minDuration": 1,
            "maxDuration": 1,
        },
        {
            "DependencyEnergyConstraintList": [[0, -1, 5], [0, 1, 5], [1, 1, 7.14]],
            "minDuration": 1,
            "maxDuration": 1,
        },
    ]
    doc["flexOffer"]["totalEnergyConstraint"] = None
    doc["flexOffer"]["defaultSchedule"]["scheduleSlices"] = [
        {"duration": 2, "energyAmount": [2, 3]}
    ]
    del doc["flexOffer"]["flexOfferSchedule"]
    offer, _ = protocol.from_goflex(doc)
    p = offer.profiles[0]
    assert p.lower_kwh == [-5.0, -5.0] and p.upper_kwh == [5.0, 5.0]
    assert Dependency(1, 1.0, 1.0, 7.14) in p.dependencies
    assert protocol.validate_offer(offer) == []
    exported = protocol.to_goflex(offer)
    assert [1.0, 1.0, 7.14] in exported["flexOfferProfileConstraints"][1][
        "DependencyEnergyConstraintList"
    ]


def test_variable_slice_duration_is_refused_with_its_path():
    doc = sample()
    doc["flexOfferProfileConstraints"][0]["maxDuration"] = 3
    with pytest.raises(ConversionError) as info:
        protocol.from_goflex(doc)
    assert info.value.errors[0].path == "flexOfferProfileConstraints[0].maxDuration"


def test_every_mapping_problem_is_listed():
    doc = sample()
    del doc["startBeforeInterval"], doc["startBeforeTime"]
    doc["flexOfferProfileConstraints"][0]["energyConstraintList"][0]["upper"] = "high"
    doc["creationTime"] = "yesterday"
    with pytest.raises(ConversionError) as info:
        protocol.from_goflex(doc)
    paths = {e.path for e in info.value.errors}
    assert {
        "startBeforeTime",
        "creationTime",
        "flexOfferProfileConstraints[0].energyConstraintList[0].upper",
    } <= paths


def test_imported_offer_that_breaks_a_rule_is_a_decode_error():
    doc = sample()
    doc["defaultSchedule"]["scheduleSlices"][0]["energyAmount"] = 3.0  # above the 0.5354 bound
    with pytest.raises(DecodeError) as info:
        protocol.from_goflex(doc)
    assert info.value.errors[0].path == "default.energy_kwh[0]"


def test_extensions_carry_what_goflex_cannot_express():
    offer = heat_pump_offer(slots=8)
    second = protocol.Profile(
        lower_kwh=[0.0] * 4, upper_kwh=[1.0] * 4, start_after=offer.start_after
    )
    offer = msgspec.structs.replace(
        offer, profiles=[*offer.profiles, second], revision=3, state="assigned"
    )
    doc = protocol.to_goflex(offer)
    assert doc["state"] == "Assigned"
    assert len(doc["atpExtensions"]["profiles"]) == 2
    assert protocol.from_goflex(doc)[0] == offer


SWISS = SAMPLE.with_name("SampleFO_Swiss.json")


def test_an_assigned_sample_keeps_its_schedule_through_every_form():
    data = SWISS.read_bytes()
    content = protocol.read_offer_file(data)
    (offer,), (schedule,) = content.offers, content.schedules
    assert schedule.offer_id == offer.id and schedule.version == 1  # updateId 0 reads as 1
    assert schedule.start == 1582833600 and schedule.energy_kwh == [24.78495]
    assert protocol.check_schedule(offer, schedule) == []
    for fmt in protocol.FORMATS:
        written = protocol.write_offer_file(content, fmt, ts=offer.created_at)
        again = protocol.read_offer_file(written)
        assert (again.offers, again.schedules) == (content.offers, content.schedules), fmt
    assert protocol.to_goflex(offer, schedule)["flexOfferSchedule"]["scheduleSlices"] == [
        {"duration": 1, "energyAmount": 24.78495, "tariff": 0}
    ]


def test_a_schedule_that_breaks_its_offer_is_reported_where_it_is():
    doc = json.loads(SWISS.read_text())
    doc["flexOfferSchedule"]["scheduleSlices"][0]["energyAmount"] = 30.0
    with pytest.raises(DecodeError) as info:
        protocol.read_offer_file(json.dumps([doc]).encode())
    assert [e.path for e in info.value.errors] == ["[0].flexOfferSchedule.energy_kwh[0]"]


def test_several_energy_entries_of_a_slice_are_its_parts():
    doc = sample()
    doc["flexOfferProfileConstraints"][0]["energyConstraintList"] = [
        {"lower": 0, "upper": 0.3},
        {"lower": 0, "upper": 0.2354},
    ]
    offer, _ = protocol.from_goflex(doc)
    assert offer.profiles[0].upper_kwh == pytest.approx([0.5354])
