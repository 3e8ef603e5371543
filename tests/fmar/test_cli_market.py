"""``atp market clear`` end to end through the installed entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cloud.fmar import book_to_builtins, read_book

from .books import book
from .checks import check_result

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "markets" / "feeder-1.json"
ATP = [sys.executable, "-c", "from cloud.cli import main; main()"]


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ATP, "market", "clear", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=None if stdin is None else stdin.decode(),
    )


def test_json_output_is_the_documented_contract():
    out = _run("--book", str(EXAMPLE), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc == json.loads((ROOT / "examples" / "markets" / "feeder-1.result.json").read_text())
    assert out.stderr == ""  # no progress lines with --json


def test_text_output_for_a_person():
    out = _run("--book", str(EXAMPLE), "--pricing", "pay-as-bid")
    assert out.returncode == 0, out.stderr
    assert "house-3.washer" in out.stdout and "dso-1" in out.stdout
    assert "welfare 0.335 EUR, bound 0.335033, gap 0.01 %, optimal (mip, pay-as-bid)" in out.stdout
    assert "solving the compact MIP" in out.stderr


def test_a_network_book_from_standard_input(tmp_path: Path):
    b = book(3, kind="network", orders=5, requests=3)
    data = json.dumps(book_to_builtins(b)).encode()
    out = _run("--book", "-", "--json", "--time-limit", "20", "--voll", "5", stdin=data)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["flows"] and set(doc["prices"]) == set(b.network.nodes)
    from cloud.fmar import clear

    check_result(read_book(data), clear(read_book(data), voll=5.0), voll=5.0)


def test_bad_books_exit_1_with_field_paths_and_no_traceback(tmp_path: Path):
    doc = json.loads(EXAMPLE.read_text())
    doc["sell"][0]["ask_up_eur_per_kwh"] = -1
    doc["requests"][1]["id"] = "dso-1"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    out = _run("--book", str(bad), "--json")
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert lines == [
        f"{bad}: sell[0].ask_up_eur_per_kwh: an ask must be finite and >= 0, got -1",
        f"{bad}: requests[1].id: duplicate of requests[0]",
    ]
    doc["requests"][0]["kwh"] = ["x"]
    bad.write_text(json.dumps(doc))
    out = _run("--book", str(bad))
    assert out.returncode == 1
    assert f"{bad}: requests[0].kwh[0]: expected a number, got a string" in out.stderr
    assert "Traceback" not in out.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff\xfe not json")
    out = _run("--book", str(garbage))
    assert out.returncode == 1 and "not valid JSON" in out.stderr
    assert "Traceback" not in out.stderr
    out = _run("--book", str(EXAMPLE), "--pricing", "cheapest")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_help():
    out = subprocess.run([*ATP, "market", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "clear" in out.stdout
    out = _run("--help")
    assert out.returncode == 0
    for option in ("--book", "--pricing", "--time-limit", "--voll", "--json"):
        assert option in out.stdout
