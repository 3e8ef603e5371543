"""``atp plan`` end to end through the installed entry point."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

import protocol
from cloud.optim.instances import DAY_START, portfolio, solar_target

ATP = [sys.executable, "-c", "from cloud.cli import main; main()"]


def _target_csv(offers: list[protocol.FlexOffer]) -> str:
    """The solar target of the offers' day, and 0 for the first hour of the next day, which
    offers starting late in their window reach (a series must cover every slot of a plan)."""
    rows = ["time,value"] + [f"{t},{v}" for t, v in solar_target(offers).items()]
    rows += [f"{DAY_START + 86_400 + k * 900},0" for k in range(4)]
    return "\n".join(rows) + "\n"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ATP, "plan", *args], capture_output=True, text=True, timeout=120)


def test_plan_json_with_target_and_aggregation(tmp_path: Path):
    offers = portfolio(16, seed=7)
    (tmp_path / "offers.json").write_bytes(protocol.write_offers(offers, "json", ts=0))
    (tmp_path / "target.csv").write_text(_target_csv(offers))
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


def test_plan_aggregate_goes_through_the_planner_fman_uses(tmp_path: Path):
    """``--aggregate`` plans through ``AggregatingPlanner``, the stage FMAN's cycle puts first
    above ``planning.aggregate_above`` (tests/fman/test_planning.py): its detail says so, and
    the loss report comes from the aggregates it formed."""
    from cloud.optim import AggregatingPlanner, OrToolsPlanner, PlanRequest
    from cloud.optim.aggregate import total_loss

    offers = portfolio(8, seed=3)
    (tmp_path / "offers.json").write_bytes(protocol.write_offers(offers, "json", ts=0))
    (tmp_path / "target.csv").write_text(_target_csv(offers))
    out = _run(
        "--offers",
        str(tmp_path / "offers.json"),
        "--target",
        str(tmp_path / "target.csv"),
        "--time-limit",
        "3",
        "--json",
        "--aggregate",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    planner = AggregatingPlanner(inner=OrToolsPlanner())
    request = PlanRequest(offers=offers, resolution_s=offers[0].resolution_s, time_limit_s=3)
    direct = planner.plan(request)
    head = f"planned {len(offers)} offers as {len(planner.aggregates)} aggregates"
    assert direct.detail.startswith(head)
    assert doc["status_detail"].startswith(head), doc["status_detail"]
    loss = total_loss(planner.aggregates)
    assert doc["aggregation_loss"]["profiles_dropped"] == loss.profiles_dropped
    assert doc["aggregation_loss"]["time_flexibility_s"] == loss.time_flexibility_s


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
    (tmp_path / "target.csv").write_text(_target_csv(offers))
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


# -- series that do not cover the plan, and the time limit -------------------------------------


def _quarter_hour_offers(tmp_path: Path) -> tuple[Path, list[protocol.FlexOffer]]:
    offers = portfolio(12, seed=11)
    path = tmp_path / "offers.json"
    path.write_bytes(protocol.write_offers(offers, "json", ts=0))
    assert {o.resolution_s for o in offers} == {900}
    return path, offers


def _hourly_prices(day: int = DAY_START) -> str:
    """A day of hourly prices and the first hour of the next (late starts reach it)."""
    return "time,value\n" + "".join(f"{day + h * 3600},{0.10 + 0.01 * h}\n" for h in range(25))


def test_hourly_prices_on_quarter_hour_offers_are_refused_unless_resampled(tmp_path: Path):
    offers_file, _ = _quarter_hour_offers(tmp_path)
    (tmp_path / "hourly.csv").write_text(_hourly_prices())
    args = ["--offers", str(offers_file), "--prices", str(tmp_path / "hourly.csv")]
    out = _run(*args, "--objective", "cost")
    assert out.returncode == 1, out.stdout
    assert "hourly.csv" in out.stderr and "no value for" in out.stderr
    assert "3600 s" in out.stderr and "--resample" in out.stderr
    # --resample repeats each hourly price over its four quarter hours, and says so: the
    # same plan as the same prices written per quarter hour
    resampled = _run(*args, "--objective", "cost", "--resample", "--json")
    assert resampled.returncode == 0, resampled.stderr
    doc = json.loads(resampled.stdout)
    assert any("resampled" in n and "repeated" in n for n in doc["notes"])
    (tmp_path / "quarter.csv").write_text(
        "time,value\n"
        + "".join(
            f"{DAY_START + h * 3600 + q * 900},{0.10 + 0.01 * h}\n"
            for h in range(25)
            for q in range(4)
        )
    )
    quarter = _run(
        "--offers", str(offers_file), "--prices", str(tmp_path / "quarter.csv"), "--json"
    )
    assert quarter.returncode == 0, quarter.stderr
    assert doc["objective"] != 0
    assert doc["objective"] == pytest.approx(json.loads(quarter.stdout)["objective"], rel=1e-6)
    text = _run(*args, "--objective", "cost", "--resample")
    assert "note:" in text.stderr and "--resample" in text.stderr


def test_a_target_for_another_day_is_refused_unless_filled(tmp_path: Path):
    offers_file, offers = _quarter_hour_offers(tmp_path)
    target = solar_target(offers)
    later = 2 * 86_400  # two days later: not one slot of the plan
    (tmp_path / "tomorrow.csv").write_text(
        "time,value\n" + "".join(f"{t + later},{v}\n" for t, v in target.items())
    )
    args = ["--offers", str(offers_file), "--target", str(tmp_path / "tomorrow.csv")]
    out = _run(*args)
    assert out.returncode == 1, out.stdout
    assert "tomorrow.csv" in out.stderr and "another day" in out.stderr
    filled = _run(*args, "--fill", "--json")
    assert filled.returncode == 0, filled.stderr
    (note,) = json.loads(filled.stdout)["notes"]
    assert "count as 0" in note and "--fill" in note


def _distinct_coupled_offers(n: int) -> list[protocol.FlexOffer]:
    """``n`` EV-like offers whose polytope rows differ, so no two price alike: each costs the
    column generation its own small LPs (the slow path)."""
    rng = random.Random(3)
    doc = [
        {
            "id": f"house-{i}.ev",
            "issuer": f"house-{i}",
            "device": "ev",
            "created_at": DAY_START,
            "acceptance_before": DAY_START + 900,
            "assignment_before": DAY_START + 1800,
            "start_after": DAY_START + 3600,
            "start_before": DAY_START + 3600 + 12 * 900,
            "profiles": [
                {
                    "lower_kwh": [0.0] * 4,
                    "upper_kwh": [2.75] * 4,
                    "total": [6.0, 8.0],
                    "dependencies": [[3, 1.0, 1.0, 8.0]],
                    "polytope": {"a": [[1, 1, 0, 0]], "b": [round(rng.uniform(5.0, 5.5), 3)]},
                }
            ],
            "default": {"start": DAY_START + 3600, "energy_kwh": [2.5, 2.5, 1.5, 0.0]},
        }
        for i in range(n)
    ]
    return protocol.read_offers(json.dumps(doc).encode())


def test_the_time_limit_bounds_the_whole_plan_and_a_fallback_says_why():
    from cloud.optim import OrToolsPlanner, PlanRequest

    offers = _distinct_coupled_offers(1000)
    target = {DAY_START + i * 900: 100.0 if 32 <= i < 64 else 20.0 for i in range(96)}
    request = PlanRequest(offers=offers, target_kwh=target, time_limit_s=1.0)
    started = time.monotonic()
    result = OrToolsPlanner().plan(request)
    elapsed = time.monotonic() - started
    # the documented overshoot: a fraction of a second (the greedy placement and the first
    # bound always run, then at most one step of a phase); generous for a loaded machine
    assert elapsed < 2.5, f"{elapsed:.1f} s for a 1 s limit"
    assert len(result.schedules) == len(offers) and not result.infeasible
    assert result.status == "fallback"
    assert "fell back to the greedy placement" in result.detail
    assert "time limit" in result.detail and "column generation" in result.detail


def test_identical_offers_are_priced_once_and_planned_within_the_limit():
    from cloud.optim import OrToolsPlanner, PlanRequest

    one = _distinct_coupled_offers(1)[0]
    offers = [msgspec.structs.replace(one, id=f"copy-{i}") for i in range(300)]
    target = {DAY_START + i * 900: 100.0 if 32 <= i < 64 else 20.0 for i in range(96)}
    result = OrToolsPlanner().plan(PlanRequest(offers=offers, target_kwh=target, time_limit_s=5.0))
    assert result.status in ("optimal", "feasible"), result.detail
    assert result.detail == ""
