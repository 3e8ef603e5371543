"""Faults against the whole platform lose nothing and double nothing (requirement NF2.1).

A fleet of agents (``atp sim fleet``) and two FMAN workers on a Mosquitto with persistence;
one after another: a worker SIGKILLed and restarted, the broker SIGKILLed and restarted, the
broker stopped for a while (scaled down here: 8 wall seconds, 80 simulated minutes at 600x;
``bench/faults.py`` stops it for a minute), the fleet SIGKILLed and restarted. Then every
agent's store is compared with FMAN's (see :mod:`tests.faultrig`).
"""

from __future__ import annotations

import pytest

from tests.faultrig import MUST_BE_ZERO, Scenario, audit, run


@pytest.mark.soak
@pytest.mark.timeout(240)
def test_worker_broker_and_fleet_faults_lose_nothing(tmp_path):
    scenario = Scenario()
    happened = run(scenario, tmp_path)
    result = audit(scenario, tmp_path)
    report = {k: v for k, v in result.items() if k != "examples"}
    print(report, happened.events)
    assert happened.fleet_exit == 0, (tmp_path / "fleet.log").read_text()[-3000:]
    assert happened.worker_exits == [0, 0]
    # the faults did what they should: messages the broker acknowledged were lost on the way
    # and sent again for want of an answer; the restarted fleet's devices began again at zero
    assert result["agent_resent"] > 0, report
    assert happened.fleet_summary["meter_resets"] > 0, happened.fleet_summary
    # the run produced something to lose
    assert result["agent_offers"] >= 3 * scenario.agents, report
    assert result["agent_readings"] >= 20 * scenario.agents, report
    wrong = {k: result[k] for k in MUST_BE_ZERO if result[k]}
    assert not wrong, (wrong, {k: result["examples"].get(k) for k in wrong})
