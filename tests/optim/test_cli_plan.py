"""``atp plan`` end to end through the installed entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import protocol
from cloud.optim.instances import portfolio, solar_target

ATP = [sys.executable, "-c", "from cloud.cli import main; main()"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ATP, "plan", *args], capture_output=True, text=True, timeout=120)


def test_plan_json_with_target_and_aggregation(tmp_path: Path):
    offers = portfolio(16, seed=7)
    (tmp_path / "offers.json").write_bytes(protocol.write_offers(offers, "json", ts=0))
    target = solar_target(offers)
    rows = ["time,value"] + [f"{t},{v}" for t, v in target.items()]
    (tmp_path / "target.csv").write_text("\n".join(rows) + "\n")
    for extra in ([], ["--aggregate"]):
        out = _run(
            "--offers",
            str(tmp_path / "offers.json"),
            "--target",
            str(tmp_path / "target.csv"),
            "--time-limit",
            "5",
            "--json",
            *extra,
        )
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["objective"] >= doc["bound"] - 1e-6 * abs(doc["objective"])
        by_id = {o.id: o for o in offers}
        assert {s["offer_id"] for s in doc["schedules"]} == set(by_id)
        for s in doc["schedules"]:
            assert not protocol.check_assignment(
                by_id[s["offer_id"]], start=s["start"], profile=s["profile"], energy_kwh=s["energy"]
            )


def test_plan_reads_goflex_and_iso_prices(tmp_path: Path):
    offers = portfolio(4, seed=8)
    (tmp_path / "o.json").write_bytes(protocol.write_offers(offers, "goflex", ts=0))
    (tmp_path / "p.csv").write_text(
        "".join(
            f"2026-01-01T{h:02d}:{m:02d}:00Z,{0.1 + h / 100}\n"
            for h in range(24)
            for m in (0, 15, 30, 45)
        )
    )
    out = _run(
        "--offers",
        str(tmp_path / "o.json"),
        "--prices",
        str(tmp_path / "p.csv"),
        "--objective",
        "cost",
    )
    assert out.returncode == 0, out.stderr
    assert "schedules" in out.stdout and "bound" in out.stdout


def test_bad_csv_row_is_named(tmp_path: Path):
    offers = portfolio(2, seed=9)
    (tmp_path / "o.json").write_bytes(protocol.write_offers(offers, "json", ts=0))
    (tmp_path / "t.csv").write_text("time,value\n1767225600,1.0\n1767226500,abc\n")
    out = _run("--offers", str(tmp_path / "o.json"), "--target", str(tmp_path / "t.csv"))
    assert out.returncode == 1
    assert "t.csv:3" in out.stderr and "abc" in out.stderr


def test_bad_offer_field_is_named(tmp_path: Path):
    doc = json.loads(protocol.write_offers(portfolio(2, seed=9), "json", ts=0))
    doc[1]["resolution_s"] = 7
    (tmp_path / "o.json").write_text(json.dumps(doc))
    out = _run("--offers", str(tmp_path / "o.json"))
    assert out.returncode == 1
    assert "[1].resolution_s" in out.stderr


def test_plan_json_of_a_large_portfolio_is_clean(tmp_path: Path):
    # large enough for the cutting planes (HiGHS through highspy): nothing but the JSON
    # document may reach standard output
    offers = portfolio(160, seed=10)
    (tmp_path / "offers.json").write_bytes(protocol.write_offers(offers, "json", ts=0))
    rows = ["time,value"] + [f"{t},{v}" for t, v in solar_target(offers).items()]
    (tmp_path / "target.csv").write_text("\n".join(rows) + "\n")
    out = _run(
        "--offers",
        str(tmp_path / "offers.json"),
        "--target",
        str(tmp_path / "target.csv"),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert len(doc["schedules"]) == len(offers)
    assert doc["bound"] <= doc["objective"] <= 1.01 * doc["bound"]


def test_offers_that_cannot_be_planned_are_named_and_the_exit_status_says_so(tmp_path: Path):
    offers = portfolio(3, seed=4)
    # the same offer twice: the second cannot be planned as well (one schedule per offer)
    (tmp_path / "o.json").write_bytes(protocol.write_offers([*offers, offers[0]], "json", ts=0))
    rows = ["time,value"] + [f"{t},{v}" for t, v in solar_target(offers).items()]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    args = ("--offers", str(tmp_path / "o.json"), "--target", str(tmp_path / "t.csv"))
    out = _run(*args, "--json")
    assert out.returncode == 2, out.stderr
    doc = json.loads(out.stdout)
    assert list(doc["infeasible"]) == [offers[0].id]
    assert "duplicate" in doc["infeasible"][offers[0].id]
    assert {s["offer_id"] for s in doc["schedules"]} == {o.id for o in offers}
    text = _run(*args)
    assert text.returncode == 2 and f"infeasible: {offers[0].id}: duplicate" in text.stdout
