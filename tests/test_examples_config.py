"""The configuration and series files under ``examples/``, checked by the code that reads them,
and the README's "A local first day" run with them against a real broker.

``foa.toml`` goes through ``foa config check`` (the installed command), ``fman.toml`` through
FMAN's configuration loader, every CSV through the series reader ``atp plan`` and FMAN use.
The first day runs exactly the README's commands (an FMAN worker and an agent sharing one
anchor) on copies of the files, changing only the broker's port and the clock's speed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from cloud.broker import Mosquitto
from cloud.fman import StoreError, open_reader
from cloud.fman import series as fman_series
from cloud.fman.config import load_config
from cloud.optim.series import parse_instant, parse_series
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"
FOA = [sys.executable, "-c", "from agent.cli import main; main()"]
ATP = [sys.executable, "-c", "from cloud.cli import main; main()"]
DAY = int(parse_instant("2026-01-01T00:00:00Z"))


def test_foa_toml_passes_foa_config_check():
    out = subprocess.run(
        [*FOA, "config", "check", str(EXAMPLES / "foa.toml"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["errors"] == []
    data = tomllib.loads((EXAMPLES / "foa.toml").read_text())
    devices = data["devices"]
    assert devices and all(d["driver"] == "sim" for d in devices.values())
    assert data["broker"]["url"].startswith("mqtt://127.0.0.1:")


def test_fman_toml_loads_and_agrees_with_the_agent():
    cfg = load_config(EXAMPLES / "fman.toml")
    agent = tomllib.loads((EXAMPLES / "foa.toml").read_text())
    assert cfg.worker.broker == agent["broker"]["url"]
    # one simulated clock: the same start and speed (the anchor is given on the command line)
    assert parse_instant(cfg.clock.sim_start) == agent["clock"]["start"] == DAY
    assert cfg.clock.speed == agent["clock"]["speed"]
    assert cfg.planning.resolution_s == agent["agent"]["resolution_s"]
    # the target it names is the example next to it (relative to the working directory, which
    # the README makes the directory the files are copied to)
    assert cfg.objective.target.file == "target.csv"
    target = fman_series.load_file(EXAMPLES / cfg.objective.target.file)
    assert set(target) == {DAY + 900 * i for i in range(96)}


@pytest.mark.parametrize("name", ["target.csv", "prices.csv"])
def test_series_cover_the_example_day_on_its_slot_grid(name):
    text = (EXAMPLES / name).read_text()
    values = parse_series(text, source=name, resolution_s=900)
    assert sorted(values) == [DAY + 900 * i for i in range(96)]
    assert all(v >= 0 for v in values.values())
    # FMAN reads the same file the same way
    assert fman_series.load_file(EXAMPLES / name) == values


def _readme_section() -> str:
    text = README.read_text()
    m = re.search(r"^## A local first day\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README has no 'A local first day' section"
    return m.group(1)


def test_readme_first_day_names_the_examples_and_device_add():
    section = _readme_section()
    for name in ("examples/foa.toml", "examples/fman.toml", "examples/target.csv"):
        assert name in section
    assert "atp device add" in section
    for command in ("atp broker up", "atp fman run -c fman.toml", "foa run -c foa.toml"):
        assert command in section


def test_the_readme_first_day_runs_with_the_example_files(tmp_path: Path):
    """The README's commands on copies of the examples: the agent's offers are accepted and
    planned by the worker, and the agent takes the schedules."""
    section = _readme_section()
    assert "--anchor" in section
    work = tmp_path / "first-day"
    work.mkdir()
    for name in ("foa.toml", "fman.toml", "target.csv"):
        shutil.copy(EXAMPLES / name, work / name)
    speed = 900.0  # the files say 60: a slot in a second keeps the test short
    with Mosquitto(workdir=tmp_path / "broker") as broker:
        for name in ("foa.toml", "fman.toml"):
            text = (work / name).read_text()
            assert "mqtt://127.0.0.1:1883" in text
            (work / name).write_text(text.replace("mqtt://127.0.0.1:1883", broker.url))
        anchor = time.time() + 3.0
        common = ["--anchor", f"{anchor:.3f}", "--speed", str(speed)]
        procs = []
        try:
            with (work / "fman.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [*ATP, "fman", "run", "-c", "fman.toml", *common],
                        cwd=work,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            with (work / "foa.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [*FOA, "run", "-c", "foa.toml", *common],
                        cwd=work,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

            def taken() -> bool:
                for p in procs:
                    assert p.poll() is None, (work / "fman.log").read_text() + (
                        work / "foa.log"
                    ).read_text()
                try:
                    with open_reader(work / "fman.db") as s:
                        acked = s.current_schedules()
                except StoreError:  # not made, or not migrated yet
                    return False
                return any(x.issuer == "house-1" and x.status == "acked" for x in acked.values())

            wait_for(taken, timeout=90, what="a schedule taken by the agent", step=0.2)
            status = subprocess.run(
                [*FOA, "status", "-c", "foa.toml", "--json"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert status.returncode == 0, status.stderr
            report = json.loads(status.stdout)
            assert report["agent"] == "house-1" and report["offers"]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
