"""FMAN under the profit objective: direct-mode offers are moved only where it pays.

End to end against a real broker and a real ``atp fman run``: two identical direct-mode offers,
one asking 0.01 EUR/kWh and one 5 EUR/kWh, and a price series that pays 0.5 EUR per kWh of up
deviation. The cheap one is scheduled up to its bounds, the dear one keeps its default, and
``atp portfolio`` says which objective the plans follow and what they earn.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from cloud.broker import Mosquitto
from cloud.cli import main as cli_main
from cloud.clock import SimClock
from cloud.fman import open_reader
from protocol import DefaultSchedule, FlexOffer, PriceBounds, Prices, Profile

from .harness import T0, wait_for, wait_ready, write_config
from .minifleet import RES, MiniFleet, Tracked

START = T0 + 2 * 3600


def _direct(agent: str, ask: float) -> FlexOffer:
    return FlexOffer(
        id=f"{agent}.plug.1",
        issuer=agent,
        device="plug",
        mode="direct",
        created_at=T0,
        acceptance_before=T0 + 1800,
        assignment_before=START,
        start_after=START,
        start_before=START,
        profiles=[Profile(lower_kwh=[0.0] * 4, upper_kwh=[2.0] * 4)],
        default=DefaultSchedule(start=START, energy_kwh=[1.0] * 4),
        prices=Prices(slots=[PriceBounds(ask, ask + 1.0)] * 4),
    )


def test_fman_moves_the_cheap_direct_offer_and_leaves_the_dear_one(tmp_path, spawn):
    prices = tmp_path / "values.csv"
    prices.write_text("time,value\n" + "".join(f"{START + j * RES},0.5\n" for j in range(-8, 12)))
    with Mosquitto(workdir=tmp_path / "broker") as broker:
        clock = SimClock(start=T0, speed=1.0)
        db = tmp_path / "fman.db"
        cfg = write_config(
            tmp_path / "fman.toml",
            broker,
            db,
            clock={"sim_start": str(T0), "speed": 1.0, "anchor": clock.anchor},
            planning={"planner": "ortools", "time_limit_s": 2.0},
            objective={"kind": "profit", "prices": {"file": str(prices)}},
        )
        out = CliRunner().invoke(cli_main, ["fman", "config", "check", str(cfg)])
        assert out.exit_code == 0 and "objective profit at " in out.stdout, out.output
        worker = spawn(cfg, "pf-w1")
        wait_ready(db, worker.id)
        fleet = MiniFleet(
            broker=broker, clock=clock, agents=2, offers_per_agent=0, span_s=900, prefix="pf"
        )
        cheap, dear = _direct("pf-0", 0.01), _direct("pf-1", 5.0)
        fleet.offers = {o.id: Tracked(o) for o in (cheap, dear)}
        fleet.start()
        try:

            def in_force():
                with open_reader(db) as r:
                    now = r.current_schedules()
                return now if {cheap.id, dear.id} <= set(now) else None

            schedules = wait_for(in_force, 30, "a schedule in force for both offers")
            # the cheap offer's schedule reached its agent and was acknowledged
            wait_for(
                lambda: fleet.offers[cheap.id].schedule is not None, 30, "the cheap offer's ack"
            )
        finally:
            fleet.close()
        assert schedules[cheap.id].energy_kwh == [2.0] * 4, schedules[cheap.id]
        assert fleet.offers[cheap.id].schedule.energy_kwh == [2.0] * 4
        # the dear one runs its default: acknowledged as such, or FMAN's record that it does
        assert schedules[dear.id].start == START
        assert schedules[dear.id].energy_kwh == [1.0] * 4, schedules[dear.id]
        held = fleet.offers[dear.id].schedule
        assert held is None or held.energy_kwh == [1.0] * 4
        assert worker.stop() == 0, worker.log()[-2000:]
    assert "profit: the objective is minus the EUR earned" in worker.log()
    out = CliRunner().invoke(cli_main, ["portfolio", "--db", str(db), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["objective"].startswith("profit at the price series")
    # 4 kWh up at 0.5 EUR, asked 0.01 EUR each: 1.96 EUR; the dear offer earns and asks 0
    assert doc["value_scheduled_eur"] == 2.0
    assert abs(doc["asks_scheduled_eur"] - 0.04) < 1e-9
    assert abs(doc["profit_scheduled_eur"] - 1.96) < 1e-9
    out = CliRunner().invoke(cli_main, ["portfolio", "--db", str(db)])
    assert "objective: profit at the price series" in out.stdout
    assert "profit 1.96 EUR" in out.stdout, out.stdout


def test_config_check_names_what_the_profit_objective_lacks(tmp_path):
    bad = tmp_path / "fman.toml"
    bad.write_text('[objective]\nkind = "profit"\nweights = { profit = 1, gain = 2, peak = -1 }\n')
    out = CliRunner().invoke(cli_main, ["fman", "config", "check", str(bad), "--json"])
    assert out.exit_code == 1
    errors = {e["key"]: e["message"] for e in json.loads(out.stdout)["errors"]}
    assert errors == {
        "objective.prices": "the profit objective needs a price series",
        "objective.weights": "unknown objective(s) gain (known: balance, cost, peak, profit)",
        "objective.weights.peak": "-1.0: must be a number at least 0",
    }
    bad.write_text('[objective]\nkind = "cost"\nprices = { topic = "p" }\nprice_delegated = true\n')
    out = CliRunner().invoke(cli_main, ["fman", "config", "check", str(bad)])
    assert out.exit_code == 1
    assert "objective.price_delegated: only the profit objective charges asks" in out.stderr


def test_a_replan_counts_the_asks_of_the_schedules_it_would_change():
    """The churn guard compares plans by the planner's objective, asks included: moving the
    dear offer up earns 2 EUR at the price series but costs 20 EUR of asks."""
    from cloud.fman import stability
    from cloud.optim import PlannedSchedule, PlanRequest

    dear = _direct("pf-1", 5.0)
    request = PlanRequest(
        offers=[dear],
        objective="profit",
        prices_eur_per_kwh={START + j * RES: 0.5 for j in range(4)},
    )
    default = PlannedSchedule(offer_id=dear.id, start=START, profile=0, energy_kwh=[1.0] * 4)
    moved = PlannedSchedule(offer_id=dear.id, start=START, profile=0, energy_kwh=[2.0] * 4)
    assert stability.objective(request, {dear.id: default}) == 0.0
    assert stability.objective(request, {dear.id: moved}) == 20.0 - 2.0
    choice = stability.choose(
        request,
        in_force={dear.id: default},
        planned={dear.id: moved},
        change_cost=0.0,
        tolerance_kwh=0.01,
    )
    assert choice.changed == 0 and choice.gain == -18.0
