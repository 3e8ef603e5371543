"""Any valid message survives encode -> decode, and JSON -> GOFLEX -> JSON, unchanged in meaning."""

from __future__ import annotations

import json

import msgpack
from hypothesis import HealthCheck, given, settings

import protocol
from protocol import FlexOffer, start_window
from tests.protocol.strategies import T0, meter_batches, offers, offers_with_schedule

VERSION = "{}.{}".format(*protocol.PROTOCOL_VERSION)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(offers())
def test_generated_offers_are_valid(offer):
    assert protocol.validate_offer(offer) == []


@SETTINGS
@given(offers_with_schedule())
def test_offer_and_schedule_survive_the_wire(pair):
    offer, schedule = pair
    for body, kind in ((offer, "offer"), (schedule, "schedule")):
        data = protocol.encode(body, ts=offer.created_at, msg_id="m1")
        msg = protocol.decode(data, expect=kind)
        assert msg.body == body
        assert (msg.kind, msg.id, msg.ts) == (kind, "m1", offer.created_at)
        # interoperability: the plain msgpack package reads every message
        plain = msgpack.unpackb(data, raw=False)
        assert plain["v"] == VERSION and plain["kind"] == kind and plain["id"] == "m1"
        assert plain["body"] == protocol.to_builtins(body)
    assert protocol.check_schedule(offer, schedule) == []


@SETTINGS
@given(meter_batches())
def test_meter_batch_survives_the_wire(batch):
    assert protocol.decode(protocol.encode(batch, ts=1_767_225_600)).body == batch


@SETTINGS
@given(offers())
def test_project_json_roundtrip(offer):
    assert protocol.from_json(protocol.to_json(offer), FlexOffer) == offer


def _meaning(offer: FlexOffer) -> tuple:
    """What an offer means, independent of how its window was written down."""
    return (
        offer.id,
        offer.issuer,
        offer.device,
        offer.load_type,
        offer.grid_node,
        offer.mode,
        offer.revision,
        offer.state,
        offer.created_at,
        offer.resolution_s,
        offer.acceptance_before,
        offer.assignment_before,
        start_window(offer),
        offer.profiles,
        offer.two_mode,
        offer.default,
        offer.prices,
    )


@SETTINGS
@given(offers_with_schedule())
def test_goflex_roundtrip_keeps_meaning(pair):
    offer, schedule = pair
    doc = protocol.to_goflex(offer, schedule)
    back, back_schedule = protocol.from_goflex(doc)
    assert _meaning(back) == _meaning(offer)
    assert back_schedule == schedule
    # and through the JSON text, as a file would carry it
    again, _ = protocol.from_goflex(json.loads(json.dumps(doc)))
    assert _meaning(again) == _meaning(offer)


@SETTINGS
@given(offers_with_schedule())
def test_flexoffer_specification_roundtrip_keeps_meaning(pair):
    offer, schedule = pair
    doc = protocol.to_flexoffer_spec([offer], [schedule])
    (back,), (back_schedule,) = protocol.from_flexoffer_spec(json.loads(json.dumps(doc)))
    assert _meaning(back) == _meaning(offer)
    assert back_schedule == schedule
    # a schedule alone travels as a response
    assert protocol.from_flexoffer_spec(protocol.to_flexoffer_spec([], [schedule])) == (
        [],
        [schedule],
    )


@SETTINGS
@given(offers_with_schedule())
def test_offer_files_keep_offer_and_schedule_in_every_form(pair):
    offer, schedule = pair
    content = protocol.OfferFile(offers=(offer,), schedules=(schedule,))
    for fmt in protocol.FORMATS:
        again = protocol.read_offer_file(protocol.write_offer_file(content, fmt, ts=T0))
        if fmt in ("json", "msgpack"):
            assert (again.offers, again.schedules) == (content.offers, content.schedules)
        else:
            assert [_meaning(o) for o in again.offers] == [_meaning(offer)]
            assert again.schedules == content.schedules
