"""The agent and an FMAN worker, end to end over TLS, each with its provisioned credentials.

Both run as a user runs them (``foa run``, ``atp fman run``) against Mosquitto with the
production configuration; the agent has the ``foa.toml`` that ``atp device add`` wrote (plus
a simulated clock, so that a planning cycle passes in seconds), the worker the ``fman.toml``
and ``credentials`` that ``atp service add fman`` wrote, run from that directory with the
site's CA as OpenSSL's default verify file, as ``deploy/systemd/atp-fman@.service`` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.waiting import wait_for

BIN = Path(sys.executable).parent
T0 = 1_767_225_600  # 2026-01-01T00:00Z, simulated
#: Simulated seconds per wall second: the boiler's first offer must be assigned within 900
#: simulated seconds, 45 s of wall time here, ample on a loaded machine; FMAN plans as soon
#: as an offer arrives, so the test usually ends within seconds.
SPEED = 20.0


def _json(cmd: list) -> list:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else []


def test_agent_and_fman_run_end_to_end_over_tls(provisioned, prod_broker, tmp_path):
    site = provisioned.site
    survey = tmp_path / "devices.toml"
    survey.write_text('[devices.boiler]\ndriver = "sim"\nmodel = "boiler"\ngenerator = "boiler"\n')
    provisioned.run(
        "device",
        "add",
        "agent-e2e",
        "--devices",
        str(survey),
        "--broker-url",
        f"mqtts://localhost:{prod_broker.port}",
    )
    anchor = time.time() + 3.0
    config = site.device_dir("agent-e2e") / "foa.toml"
    config.write_text(
        config.read_text() + f"\n[clock]\nspeed = {SPEED}\nstart = {T0}\nanchor = {anchor}\n"
    )
    fman_dir = site.service_dir("fman-1")
    db = tmp_path / "fman.db"
    logs = {name: tmp_path / f"{name}.log" for name in ("fman", "foa")}
    procs = []
    try:
        with logs["fman"].open("w") as out:
            procs.append(
                subprocess.Popen(
                    [
                        BIN / "atp",
                        "fman",
                        "run",
                        "--config",
                        fman_dir / "fman.toml",
                        "--id",
                        "fman-1",
                        "--db",
                        db,
                        "--broker",
                        f"mqtts://localhost:{prod_broker.port}",
                        "--sim-start",
                        str(T0),
                        "--speed",
                        str(SPEED),
                        "--anchor",
                        str(anchor),
                    ],
                    cwd=fman_dir,  # where fman.toml's credentials_file and ca_file point
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )

        # FMAN first, as in production: a message published before any worker subscribed
        # reaches nobody (MQTT keeps no message for a subscription that does not exist yet).
        def ingesting() -> bool:
            assert procs[0].poll() is None, logs["fman"].read_text()
            return "ingesting from" in logs["fman"].read_text()

        wait_for(ingesting, timeout=30, what="FMAN to subscribe", step=0.1)
        with logs["foa"].open("w") as out:
            procs.append(
                subprocess.Popen(
                    [BIN / "foa", "run", "--config", config], stdout=out, stderr=subprocess.STDOUT
                )
            )

        # The agent offers, FMAN accepts and plans, the agent takes FMAN's schedule.
        def planned_by_fman() -> list:
            assert all(p.poll() is None for p in procs), {k: v.read_text() for k, v in logs.items()}
            mine = _json([BIN / "foa", "offers", "--config", config, "--json", "--all"])
            return [o for o in mine if (o.get("plan") or {}).get("source") == "fman"]

        planned = wait_for(
            planned_by_fman,
            timeout=90,
            what="a plan from FMAN",
            step=0.5,
            explain=lambda: {k: v.read_text() for k, v in logs.items()},
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)

    offer = planned[0]
    theirs = _json([BIN / "atp", "offers", "list", "--db", db, "--agent", "agent-e2e", "--json"])
    assert offer["id"] in {o["id"] for o in theirs}
    fman_view = next(o for o in theirs if o["id"] == offer["id"])
    assert fman_view["schedule_version"] == offer["plan"]["version"] >= 1
    foa_log, fman_log = logs["foa"].read_text(), logs["fman"].read_text()
    assert f"connected to mqtts://localhost:{prod_broker.port}" in foa_log
    assert f"connected to mqtts://localhost:{prod_broker.port}" in fman_log
    # the provisioned worker plans with its default planner, the optimiser
    assert "holds the planner lease (planner ortools)" in fman_log
    broker_log = prod_broker.log_path.read_text()
    assert "as agent-e2e (p5" in broker_log and "u'agent-e2e'" in broker_log
    assert "as fman-1 (p5" in broker_log and "u'fman-1'" in broker_log
    # No secret in any log of the run, nor in what the provisioning commands printed.
    secrets = provisioned.known_secrets | set(provisioned.secrets())
    everything = "\n".join([foa_log, fman_log, broker_log, *provisioned.output])
    assert not [s for s in secrets if s in everything]
