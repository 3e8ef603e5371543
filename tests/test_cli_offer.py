"""`atp offer validate` and `atp offer convert`, run as a user runs them (the installed script)."""

from __future__ import annotations

import json
import os
import pty
import random
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

import protocol
from protocol.samples import heat_pump_offer, two_slot_offer

SAMPLE = Path(__file__).parent / "fixtures" / "goflex" / "SampleFO_Cyprus.json"
#: a GOFLEX sample with an assigned schedule (``flexOfferSchedule``)
ASSIGNED = Path(__file__).parent / "fixtures" / "goflex" / "SampleFO_Swiss.json"
ATP = str(Path(sys.executable).with_name("atp"))  # the script installed beside this Python


def atp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ATP, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def offers_json(tmp_path) -> Path:
    path = tmp_path / "offers.json"
    path.write_bytes(protocol.to_json([heat_pump_offer(slots=8), two_slot_offer()]))
    return path


def test_validate_accepts_all_three_forms(tmp_path, offers_json):
    for path in (SAMPLE, offers_json):
        result = atp("offer", "validate", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
    packed = tmp_path / "offers.msgpack"
    assert (
        atp("offer", "convert", str(offers_json), "--to", "msgpack", "-o", str(packed)).returncode
        == 0
    )
    result = atp("offer", "validate", str(packed), "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "valid": True,
        "format": "msgpack",
        "offers": [heat_pump_offer(slots=8).id, two_slot_offer().id],
        "schedules": [],
    }


def test_validate_prints_one_line_per_error_with_path(tmp_path):
    raw = protocol.to_builtins(two_slot_offer())
    raw["profiles"][0]["lower_kwh"] = [0.9, 0.9]  # above upper in both slots
    raw["acceptance_before"] = raw["assignment_before"] + 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    result = atp("offer", "validate", str(bad))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert f"{bad}: acceptance_before: " in lines[0]
    assert any("profiles[0].lower_kwh[0]" in line for line in lines)
    assert any("profiles[0].lower_kwh[1]" in line for line in lines)


def test_validate_names_the_offer_in_a_list(tmp_path):
    raw = [protocol.to_builtins(two_slot_offer()), protocol.to_builtins(two_slot_offer())]
    raw[1]["resolution_s"] = 7
    path = tmp_path / "list.json"
    path.write_text(json.dumps(raw))
    result = atp("offer", "validate", str(path), "--json")
    assert result.returncode == 1
    assert [e["path"] for e in json.loads(result.stdout)["errors"]] == ["[1].resolution_s"]


def test_validate_reports_broken_files(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"id": ')
    result = atp("offer", "validate", str(path))
    assert result.returncode == 1 and "not valid JSON" in result.stdout
    # strings that are not UTF-8, in JSON and in MessagePack: an error line, not a traceback
    path.write_bytes(b'{"id": "\xff"}')
    result = atp("offer", "validate", str(path))
    assert result.returncode == 1 and "not valid JSON" in result.stdout, result.stderr
    path = tmp_path / "broken.msgpack"
    path.write_bytes(b"\x81\xa2\xff\xfe\x01")
    result = atp("offer", "validate", str(path))
    assert result.returncode == 1 and "MessagePack" in result.stdout, result.stderr


def test_convert_goflex_to_json_and_back(tmp_path):
    out = tmp_path / "sample.json"
    assert atp("offer", "convert", str(SAMPLE), "--to", "json", "-o", str(out)).returncode == 0
    offer = protocol.from_json(out.read_bytes(), protocol.FlexOffer)
    assert offer == protocol.from_goflex(json.loads(SAMPLE.read_text()))[0]
    result = atp("offer", "convert", str(out), "--to", "goflex")
    assert result.returncode == 0
    assert protocol.from_goflex(msgspec.json.decode(result.stdout))[0] == offer


def test_convert_refuses_invalid_input(tmp_path):
    raw = protocol.to_builtins(two_slot_offer())
    raw["default"]["energy_kwh"] = [5.0, 5.0]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    result = atp("offer", "convert", str(path), "--to", "goflex")
    assert result.returncode == 1 and "default.energy_kwh[0]" in result.stderr


def test_help_is_there():
    result = atp("offer", "--help")
    assert result.returncode == 0 and "validate" in result.stdout and "convert" in result.stdout


def test_goflex_schedule_survives_validate_and_both_conversions(tmp_path):
    original = json.loads(ASSIGNED.read_text())
    result = atp("offer", "validate", str(ASSIGNED), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["schedules"] == [
        {"offer_id": report["offers"][0], "version": 1, "checked_against_offer": True}
    ]
    # GOFLEX -> project JSON: the schedule next to its offer
    as_json = tmp_path / "assigned.json"
    assert (
        atp("offer", "convert", str(ASSIGNED), "--to", "json", "-o", str(as_json)).returncode == 0
    )
    offer_doc, schedule_doc = json.loads(as_json.read_text())
    assert schedule_doc["offer_id"] == offer_doc["id"]
    assert schedule_doc["start"] == 1582833600  # 2020-02-27T20:00:00Z
    assert schedule_doc["energy_kwh"] == [24.78495]
    # project JSON -> GOFLEX: the schedule back inside its offer, not null
    result = atp("offer", "convert", str(as_json), "--to", "goflex")
    assert result.returncode == 0, result.stderr
    back = json.loads(result.stdout)["flexOfferSchedule"]
    assert back is not None
    assert back["startTime"] == original["flexOfferSchedule"]["startTime"]
    assert [s["energyAmount"] for s in back["scheduleSlices"]] == [24.78495]
    # and through MessagePack: an offer message followed by a schedule message
    packed = tmp_path / "assigned.msgpack"
    assert (
        atp("offer", "convert", str(as_json), "--to", "msgpack", "-o", str(packed)).returncode == 0
    )
    from_packed = protocol.read_offer_file(packed.read_bytes())
    from_json = protocol.read_offer_file(as_json.read_bytes())
    assert from_packed.format == "msgpack" and len(from_packed.schedules) == 1
    assert (from_packed.offers, from_packed.schedules) == (from_json.offers, from_json.schedules)


def test_convert_to_the_flexoffer_specification_form_and_back(tmp_path):
    spec = tmp_path / "assigned.flexoffer.json"
    assert (
        atp("offer", "convert", str(ASSIGNED), "--to", "flexoffer", "-o", str(spec)).returncode == 0
    )
    doc = json.loads(spec.read_text())
    entry = doc["flexOffer"][0]
    # positive is production in this form: 2.24 to 24.78 kWh consumed is -24.78 to -2.24
    bounds = entry["flexOfferProfileConstraints"][0]["energyConstraintList"][0]
    assert bounds == {"lowerBound": -24.784952968788154, "upperBound": -2.2366500000000045}
    assert entry["flexOfferSchedule"]["scheduleSlices"][0]["energyAmount"] == -24.78495
    result = atp("offer", "validate", str(spec))
    assert result.returncode == 0 and "(flexoffer)" in result.stdout, result.stdout
    again = protocol.read_offer_file(spec.read_bytes())
    first = protocol.read_offer_file(ASSIGNED.read_bytes())
    assert (again.offers, again.schedules) == (first.offers, first.schedules)


def test_a_lone_schedule_cannot_be_written_as_goflex(tmp_path):
    path = tmp_path / "schedule.json"
    path.write_bytes(
        protocol.to_json(
            protocol.Schedule(offer_id="x1", version=3, start=1_767_229_200, energy_kwh=[1.0])
        )
    )
    result = atp("offer", "validate", str(path))
    assert result.returncode == 0 and "checked on their own" in result.stdout
    result = atp("offer", "convert", str(path), "--to", "goflex")
    assert result.returncode == 1
    assert "has no offer in the file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "content",
    [
        b"42",
        b"42\n",
        b'"an offer"',
        b"null",
        b"hello, world\n",
        b"",
        random.Random(15).randbytes(400),
        b"\x81" + random.Random(16).randbytes(300),  # a map header, then noise
        bytes(range(256)),
    ],
    ids=["42", "42-newline", "string", "null", "text", "empty", "random", "map-noise", "bytes"],
)
def test_a_file_that_is_not_an_offer_file_gets_one_clear_line(tmp_path, content):
    path = tmp_path / "junk"
    path.write_bytes(content)
    for command in (["validate", str(path)], ["convert", str(path), "--to", "json"]):
        result = atp("offer", *command)
        out = result.stdout if command[0] == "validate" else result.stderr
        assert result.returncode == 1, out
        lines = out.strip().splitlines()
        assert len(lines) == 1, out
        assert lines[0].startswith(f"{path}: ") and "Traceback" not in result.stderr
        if content.strip():
            assert "not an offer file" in lines[0] or "not valid JSON" in lines[0], lines[0]


def test_convert_refuses_to_write_msgpack_to_a_terminal(offers_json):
    primary, secondary = pty.openpty()
    try:
        result = subprocess.run(
            [ATP, "offer", "convert", str(offers_json), "--to", "msgpack"],
            stdout=secondary,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        os.close(secondary)
        secondary = -1
        written = b""
        while True:  # the terminal's side: whatever the command wrote to it
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: nothing more, the writer has closed
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert result.returncode == 1
    assert "-o FILE" in result.stderr and "terminal" in result.stderr
    assert written == b""  # not one byte of MessagePack reached the terminal
    # redirected to a file (not a terminal), standard output is fine
    piped = subprocess.run(
        [ATP, "offer", "convert", str(offers_json), "--to", "msgpack"],
        capture_output=True,
        timeout=60,
    )
    assert piped.returncode == 0
    assert len(protocol.read_offers(piped.stdout)) == 2


def test_convert_help_names_every_form():
    result = atp("offer", "convert", "--help")
    assert result.returncode == 0
    for form in protocol.FORMATS:
        assert form in result.stdout
