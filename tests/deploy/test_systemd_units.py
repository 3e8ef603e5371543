"""The systemd units pass ``systemd-analyze verify`` and are well sandboxed.

This machine runs no systemd as PID 1 (a container), so the units cannot be started here;
``systemd-analyze`` checks them offline against a root tree holding the real programs: the
virtual environment running these tests provides the ``foa`` and ``atp`` scripts.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from .systemd import exposure, prepare_root, verify

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    etc = prepare_root(root)
    shutil.copytree(UNITS, etc, dirs_exist_ok=True)
    for app in ("foa", "atp"):  # the real console scripts (verify resolves paths in root)
        bin_dir = root / "opt" / app / "venv" / "bin"
        bin_dir.mkdir(parents=True)
        shutil.copy2(Path(sys.prefix) / "bin" / app, bin_dir / app)
    return root


def test_the_units_pass_systemd_analyze_verify(root):
    proc = verify(
        root, "foa.service", "atp-fman@1.service", "atp-fman@2.service", "atp-fmar.service"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_verify_catches_a_missing_program(root, tmp_path):
    """The check has teeth: with the agent not installed, verify fails and says why."""
    bare = tmp_path / "bare"
    shutil.copytree(root, bare, symlinks=True)
    (bare / "opt/foa/venv/bin/foa").unlink()
    proc = verify(bare, "foa.service")
    assert proc.returncode != 0
    assert "/opt/foa/venv/bin/foa" in proc.stderr


@pytest.mark.parametrize("unit", ["foa.service", "atp-fman@1.service", "atp-fmar.service"])
def test_the_units_are_sandboxed(root, unit):
    level = exposure(root, unit)
    print(f"{unit}: systemd-analyze security exposure {level}")
    assert level < 2.5  # "OK" or better on systemd's 0..10 scale; unhardened units score 9+


def test_foa_service_is_a_notify_service_with_a_watchdog():
    text = (UNITS / "foa.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=foa",
        "ProtectSystem=strict",
        "LoadCredential=foa.toml:/etc/foa/foa.toml",
    ):
        assert line in text


def test_the_market_unit_runs_the_service_on_its_configuration_and_state():
    text = (UNITS / "atp-fmar.service").read_text()
    assert "LoadCredential=fmar.toml:/etc/atp/fmar/fmar.toml" in text
    assert (
        "ExecStart=/opt/atp/venv/bin/atp fmar run --config ${CREDENTIALS_DIRECTORY}/fmar.toml "
        "--store ${STATE_DIRECTORY}/fmar.db"
    ) in text
