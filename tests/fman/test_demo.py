"""``atp demo``: its output directory is never someone else's, a fleet that finished its day is
not a failure, and a short day runs to its summary and plot.

The end-to-end test runs the real command (Mosquitto, an FMAN worker and a fleet as separate
processes) with two agents at 14400 times real speed: a day in 6 seconds, the kind of run that
used to end in "atp sim fleet stopped with code 0" without a summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from cloud.cli import demo
from cloud.fman import open_reader, open_store

ATP = [sys.executable, "-c", "from cloud.cli import main; main()"]
DAY = 1_767_225_600  # 2026-01-01T00:00Z


def test_a_directory_the_demo_did_not_make_is_refused_and_left_alone(tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "fman.db").write_text("not the demo's either")
    out = subprocess.run(
        [*ATP, "demo", "--out", str(mine), "--agents", "1", "--speed", "14400"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "not empty and was not made by `atp demo`" in out.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["fman.db", "thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert (mine / "fman.db").read_text() == "not the demo's either"


def test_its_own_directory_loses_only_the_demos_files(tmp_path: Path):
    out = tmp_path / "demo"
    demo.prepare_out(out)  # a fresh directory: made and marked
    assert (out / demo.MARK).exists()
    for name in ("fman.db", "fman.log", "portfolio.png"):
        (out / name).write_text("old run")
    (out / "broker").mkdir()
    (out / "broker" / "mosquitto.log").write_text("old run")
    (out / "notes.txt").write_text("the user's")
    demo.prepare_out(out)
    assert sorted(p.name for p in out.iterdir()) == [demo.MARK, "notes.txt"]
    assert (out / "notes.txt").read_text() == "the user's"
    # an empty directory is fine too; a file is not
    empty = tmp_path / "empty"
    empty.mkdir()
    demo.prepare_out(empty)
    with pytest.raises(click.ClickException, match="is a file"):
        demo.prepare_out(out / "notes.txt")


def test_a_directory_an_earlier_demo_made_is_taken_but_not_a_lookalike(tmp_path: Path):
    old = tmp_path / "old"
    old.mkdir()
    for name in ("fman.db", "fman.toml", "target.json", "fleet.log", "portfolio.png"):
        (old / name).write_text("earlier run, before the mark")
    demo.prepare_out(old)
    assert sorted(p.name for p in old.iterdir()) == [demo.MARK]
    # an operator's own FMAN directory has the demo's file names, not its signature
    ops = tmp_path / "ops"
    ops.mkdir()
    for name in ("fman.db", "fman.toml", "fman.log"):
        (ops / name).write_text("production")
    with pytest.raises(click.ClickException, match="not made by `atp demo`"):
        demo.prepare_out(ops)
    assert sorted(p.name for p in ops.iterdir()) == ["fman.db", "fman.log", "fman.toml"]


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _exits(code: int) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    p.wait(timeout=30)
    return p


@pytest.fixture
def fman_db(tmp_path: Path) -> Path:
    path = tmp_path / "fman.db"
    open_store(path).close()
    return path


def test_a_fleet_that_finished_its_day_ends_the_day(fman_db: Path, tmp_path: Path):
    """The fleet stops by itself at the end of its day: exit code 0 then is the end of the
    day, however quickly after the last slot it comes (at 7200x the last slot lasts an
    eighth of a wall second)."""
    worker = _sleeper()
    try:
        speed = 7200.0
        anchor = time.time() - (86_400 - 400) / speed  # 400 s before the day's end
        started = time.monotonic()
        online, when = demo.follow(
            fman_db,
            worker=worker,
            fleet=_exits(0),
            logs=(tmp_path / "fman.log", tmp_path / "fleet.log"),
            start=DAY,
            anchor=anchor,
            speed=speed,
        )
        assert time.monotonic() - started < 10
        assert online == 0 and DAY <= when < DAY + 86_400
    finally:
        worker.kill()
        worker.wait()


def test_a_worker_or_fleet_that_stops_early_is_an_error_naming_its_log(
    fman_db: Path, tmp_path: Path
):
    logs = (tmp_path / "fman.log", tmp_path / "fleet.log")
    mid_day = time.time() - 43_200 / 900.0  # noon at 900x
    sleeper = _sleeper()
    try:
        with pytest.raises(click.ClickException, match=r"fleet stopped at 12:\d\d.*fleet\.log"):
            demo.follow(
                fman_db,
                worker=sleeper,
                fleet=_exits(0),
                logs=logs,
                start=DAY,
                anchor=mid_day,
                speed=900.0,
            )
        with pytest.raises(click.ClickException, match=r"fleet stopped with code 3.*fleet\.log"):
            demo.follow(
                fman_db,
                worker=sleeper,
                fleet=_exits(3),
                logs=logs,
                start=DAY,
                anchor=mid_day,
                speed=900.0,
            )
        with pytest.raises(click.ClickException, match=r"FMAN worker stopped.*fman\.log"):
            demo.follow(
                fman_db,
                worker=_exits(1),
                fleet=sleeper,
                logs=logs,
                start=DAY,
                anchor=mid_day,
                speed=900.0,
            )
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_short_fast_day_ends_in_a_summary_and_a_plot(tmp_path: Path):
    """With the market (the default): FMAR next to FMAN, the feeder's offers bid and
    awarded, the summary's market figures in the text and in the JSON (``--json`` prints on
    standard output what ``summary.json`` holds; the text then goes to standard error).

    Without a target (``--target-kwh 0``: balance to zero): a target scaled to two agents
    lies above their evening load, and planning towards it would fill the feeder's evening
    against the DSO; the 200 agents' target lies far below theirs (the grid sites)."""
    out = tmp_path / "demo"
    run = subprocess.run(
        [
            *ATP,
            "demo",
            "--agents",
            "2",
            "--speed",
            "14400",
            "--sim-start",
            "2026-01-01",
            "--out",
            str(out),
            "--target-kwh",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr + (out / "fman.log").read_text()
    text = run.stderr
    doc = json.loads(run.stdout)
    assert json.loads((out / "summary.json").read_text()) == doc
    assert "agents: 2 (2 online at 23:" in text
    assert "offers: " in text and "accepted" in text
    assert "imbalance against the target" in text
    assert "what varies between runs of one seed" in text and "late" in text
    assert (out / "portfolio.png").stat().st_size > 10_000
    # the accepted figure is the workers' counter: it includes offers since withdrawn, so it
    # is never below the offers in an accepted state now
    accepted = int(text.split("offers: ")[1].split(" accepted")[0])
    with open_reader(out / "fman.db") as s:
        counter = sum(w.get("offer.accepted", 0) for w in s.stats().values())
        now_accepted = len(s.offers_in(("accepted", "assigned", "executing", "executed")))
    assert accepted == counter >= now_accepted > 0
    # then the day is settled: the four KPIs, the aggregator's margin and KPI 2.1.1.2.b drawn
    settled = int(text.split("settlement of 2026-01-01: ")[1].split(" offers settled")[0])
    for kpi in ("2.1.1.1.a", "2.1.1.1.c", "2.1.1.2.a", "2.1.1.2.b"):
        assert f"\n{kpi} " in text
    assert "aggregator's margin: " in text
    assert (out / "adaptation.png").stat().st_size > 10_000
    with open_reader(out / "fman.db") as s:
        ledger = s.ledger()
        in_the_day = s.offer_verdicts(period="2026-01-01")
        assert {c.party for c in s.contracts()} == {"sim-0000", "sim-0001"}
    assert settled == sum(1 for v in in_the_day if v.status == "settled") > 0
    assert sum(p.amount_cents for t in ledger for p in t.postings) == 0
    assert doc["offers_accepted"] == accepted and doc["settlement"]["offers_settled"] == settled

    # the market: gates cleared with FMAN's bids, awards, revenue as the awards price them
    m = doc["market"]
    assert m["market"] == "demo-feeder" and m["node"] == "node-00"
    assert m["gates_bid"] >= m["gates_cleared"] > 0 and m["gates_awarded"] > 0
    awards = m["awards"]
    assert awards and m["up_kwh"] + m["down_kwh"] > 0
    assert m["up_kwh"] == pytest.approx(sum(a["kwh"] for a in awards if a["kwh"] > 0), abs=1e-3)
    assert m["down_kwh"] == pytest.approx(-sum(a["kwh"] for a in awards if a["kwh"] < 0), abs=1e-3)
    revenue = sum(a["kwh"] * a["price_eur_per_kwh"] for a in awards)
    assert m["revenue_eur"] == pytest.approx(revenue, abs=1e-3)
    assert m["avg_price_eur_per_kwh"] == pytest.approx(
        revenue / (m["up_kwh"] + m["down_kwh"]), abs=1e-3
    )
    # the awards are FMAN's own records, and only down is bought in the congested evening
    with open_reader(out / "fman.db") as s:
        stored = [a for a in s.market_awards(DAY, DAY + 86_400) if a.market == "demo-feeder"]
    assert sum(a.kwh * a.price_eur_per_kwh for a in stored) == pytest.approx(revenue, abs=1e-3)
    evening = [a for a in awards if DAY + 17 * 3600 <= a["slot"] < DAY + 21 * 3600]
    assert all(a["kwh"] < 0 for a in evening)
    # the buyers' orders, and the congestion at the feeder against the DSO's limit
    asked = m["asked"]
    assert asked["congestion"]["status"] == "ok", asked
    assert all(b["accepted"] for b in asked["brp"]) and asked["brp"]
    assert m["limit_kwh"] > 0 and m["congested_slots"] == 16
    assert 0 <= m["metered_slots"] <= 16
    for key in ("above_before_kwh", "above_scheduled_kwh", "above_after_kwh"):
        assert m[key] >= 0
    feeder = m["feeder_kwh"]
    assert m["above_before_kwh"] == pytest.approx(
        sum(max(0.0, v["default"] - m["limit_kwh"]) for v in feeder.values()), abs=1e-2
    )
    # the market relieved the feeder as scheduled, and the metered energy follows the
    # schedules within the simulated devices' tracking error (a result that came too late
    # for a gate leaves its slots at their defaults, plus that error)
    assert m["above_scheduled_kwh"] <= m["above_before_kwh"], feeder
    metered = {t: v for t, v in feeder.items() if v["metered"] is not None}
    assert len(metered) == m["metered_slots"] >= 8, feeder
    tracking = [abs(v["metered"] - v["scheduled"]) for v in metered.values()]
    assert max(tracking) <= 0.05, feeder
    assert m["above_after_kwh"] <= m["above_before_kwh"] + sum(tracking) + 1e-3, feeder
    assert f"market demo-feeder at node-00: {m['gates_cleared']} gates cleared" in text
    assert "congestion at node-00" in text
