"""`atp offer validate` and `atp offer convert`, run as a user runs them (the installed script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

import protocol
from protocol.samples import heat_pump_offer, two_slot_offer

SAMPLE = Path(__file__).parent / "fixtures" / "goflex" / "SampleFO_Cyprus.json"
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
