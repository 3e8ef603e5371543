"""The envelope: versions, kinds, sizes, interoperability with the plain msgpack package."""

from __future__ import annotations

import msgpack
import pytest

import protocol
from protocol import Ack, DecodeError, Reason, Reject, Request, Response, Status, Withdraw
from protocol.samples import NOW, heat_pump_offer, meter_batch, two_slot_offer


def raw_message(body: dict, *, v="1.0", kind="offer", **extra) -> bytes:
    return msgpack.packb({"v": v, "kind": kind, "id": "m1", "ts": NOW, "body": body, **extra})


def offer_dict() -> dict:
    return protocol.to_builtins(two_slot_offer())


@pytest.mark.parametrize(
    "body",
    [
        heat_pump_offer(),
        two_slot_offer(),
        meter_batch(),
        Withdraw(offer_id="o1", reason="device left"),
        Ack(ref_kind="offer", ref_id="o1", revision=2, fman_id="f-9"),
        Reject(
            ref_kind="schedule",
            ref_id="o1",
            revision=3,
            reasons=[Reason(code="infeasible", field="energy_kwh[2]")],
        ),
        Status(
            agent="a1", state="online", since=NOW, version="0.1.0", health={"offers": 3, "ok": True}
        ),
        Request(method="bill", params={"month": "2026-01"}),
        Response(status="ok", body={"total_eur": 12.5}),
    ],
)
def test_every_kind_roundtrips(body):
    msg = protocol.decode(protocol.encode(body, ts=NOW))
    assert msg.body == body
    assert msg.kind == protocol.kind_of(body)
    assert msg.version == protocol.PROTOCOL_VERSION


def test_newer_minor_version_with_unknown_fields_is_read():
    body = offer_dict() | {"carbon_g_per_kwh": [120, 80]}
    msg = protocol.decode(raw_message(body, v="1.7", trace="abc"))
    assert msg.version == (1, 7)
    assert msg.body == two_slot_offer()


@pytest.mark.parametrize("v", ["2.0", "0.9", "11.0"])
def test_unknown_major_version_is_refused_clearly(v):
    with pytest.raises(DecodeError) as info:
        protocol.decode(raw_message(offer_dict(), v=v))
    (err,) = info.value.errors
    assert err.path == "v" and "not supported" in err.message


def test_unknown_major_is_refused_before_the_body_is_judged():
    with pytest.raises(DecodeError) as info:
        protocol.decode(raw_message({"something": "else"}, v="2.0"))
    assert info.value.errors[0].path == "v"


@pytest.mark.parametrize("v", ["one", "1", "", "1.x"])
def test_malformed_version(v):
    with pytest.raises(DecodeError, match=r"major\.minor"):
        protocol.decode(raw_message(offer_dict(), v=v))


def test_kind_must_match_the_topic():
    data = protocol.encode(meter_batch(), ts=NOW)
    with pytest.raises(DecodeError) as info:
        protocol.decode(data, expect="offer")
    assert info.value.errors[0].path == "kind" and "'meter'" in info.value.errors[0].message


def test_unknown_kind():
    with pytest.raises(DecodeError, match="unknown message kind"):
        protocol.decode(raw_message({}, kind="teleport"))


def test_body_error_names_the_field():
    body = offer_dict()
    body["profiles"][0]["upper_kwh"][1] = "lots"
    with pytest.raises(DecodeError) as info:
        protocol.decode(raw_message(body))
    assert info.value.errors[0].path == "profiles[0].upper_kwh[1]"
    assert str(info.value).startswith("offer: profiles[0].upper_kwh[1]")


def test_semantic_errors_are_decode_errors_with_paths():
    body = offer_dict()
    body["profiles"][0]["lower_kwh"] = [0.9, 0.2]
    with pytest.raises(DecodeError) as info:
        protocol.decode(raw_message(body))
    assert "profiles[0].lower_kwh[0]" in [e.path for e in info.value.errors]
    # without the semantic check the same payload decodes (types and ranges are fine)
    assert protocol.decode(raw_message(body), check=False).body.profiles[0].lower_kwh == [0.9, 0.2]


def test_oversized_payload_is_refused_before_decoding():
    with pytest.raises(DecodeError, match="bytes"):
        protocol.decode(b"\x00" * (protocol.MAX_PAYLOAD_BYTES + 1))


def test_envelope_errors():
    with pytest.raises(DecodeError):
        protocol.decode(msgpack.packb([1, 2, 3]))
    with pytest.raises(DecodeError, match="id"):
        protocol.decode(msgpack.packb({"v": "1.0", "kind": "offer", "ts": 1, "body": {}}))


def test_encode_refuses_a_foreign_type():
    with pytest.raises(TypeError):
        protocol.encode("not a body", ts=NOW)  # type: ignore[arg-type]


def test_msgpack_package_decodes_and_encodes_compatible_messages():
    offer = heat_pump_offer()
    plain = msgpack.unpackb(protocol.encode(offer, ts=NOW), raw=False)
    # a message produced by another implementation with the plain package is read back
    again = protocol.decode(msgpack.packb(plain))
    assert again.body == offer


def test_an_ack_of_a_1_2_sender_decodes_without_quarantined_readings():
    data = raw_message(
        {"ref_kind": "meter", "ref_id": "a.m7", "revision": 7, "fman_id": "fman"},
        v="1.2",
        kind="ack",
    )
    msg = protocol.decode(data)
    assert msg.version == (1, 2) and msg.body.quarantined == []


def test_quarantined_readings_travel_with_the_ack_and_plain_msgpack_reads_them():
    aside = protocol.QuarantinedReading(
        device="hp", start=NOW, code="implausible", message="140 kWh in 900 s"
    )
    ack = Ack(ref_kind="meter", ref_id="a.m7", revision=7, quarantined=[aside])
    data = protocol.encode(ack, ts=NOW)
    assert protocol.decode(data).body == ack
    plain = msgpack.unpackb(data, raw=False)
    assert plain["v"] == "{}.{}".format(*protocol.PROTOCOL_VERSION)
    assert plain["body"]["quarantined"] == [
        {"device": "hp", "start": NOW, "code": "implausible", "message": "140 kWh in 900 s"}
    ]
    too_many = Ack(ref_kind="meter", ref_id="a.m7", quarantined=[aside] * 10_001)
    with pytest.raises(DecodeError, match="quarantined"):
        protocol.decode(protocol.encode(too_many, ts=NOW))
