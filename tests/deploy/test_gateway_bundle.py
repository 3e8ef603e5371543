"""A gateway bundle installs offline into a clean environment, and the installed agent runs.

The bundle is built with the real ``atp gateway bundle``; its ``install.sh`` runs with an
empty environment (``env -i``), the system's own Python (not the test venv's), no pip
configuration, and, where the kernel lets us (root), no network at all (``unshare -n``). It
installs into a directory tree (``--root``), as it would into ``/`` on a box. The installed
agent then passes ``foa config check``, and ``foa run`` connects to a broker running the
production configuration with the provisioned credentials over TLS.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from cloud.broker import CONFIG_DIR, Mosquitto
from cloud.provision import Site, add_agent, add_service, init_site
from protocol import topics
from tests.waiting import wait_for

from ..security.mqtt import Client, Credentials
from .systemd import prepare_root, verify

REPO = Path(__file__).resolve().parents[2]
AGENT = "gw-1"


def clean_python() -> str:
    """The machine's own Python 3.11+ (a box has one), not the virtual environment's."""
    for candidate in ("/usr/bin/python3", getattr(sys, "_base_executable", "")):
        if candidate and Path(candidate).exists():
            ok = subprocess.run(
                [candidate, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]
            )
            if ok.returncode == 0:
                return candidate
    raise AssertionError("no Python 3.11+ outside the virtual environment")


def offline_prefix() -> list[str]:
    """``unshare -n`` (a new network namespace with nothing in it) when we may use it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"]).returncode == 0:
        return [unshare, "-n"]
    return []  # not root: --no-index and an empty pip config still keep pip off the network


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8", **(extra or {})}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A site, a production broker, an agent with a device, its bundle, unpacked."""
    base = tmp_path_factory.mktemp("gateway")
    site = Site(root=base / "site")
    init_site(site, hostnames=["localhost", "127.0.0.1"])
    add_service(site, "fman", offline=True)  # before the broker's first start
    broker = Mosquitto(
        config=CONFIG_DIR / "prod.conf", files_dir=site.broker_dir, workdir=base / "broker"
    )
    broker.start()
    # The box's device, from the installer's survey (a simulated boiler here).
    survey = base / "devices.toml"
    survey.write_text('[devices.boiler]\ndriver = "sim"\nmodel = "boiler"\ngenerator = "boiler"\n')
    add_agent(
        site,
        AGENT,
        broker_url=f"mqtts://localhost:{broker.port}",
        devices=survey,
        admin_socket=broker.admin_socket,  # the running broker takes it at once
    )
    out = base / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cloud.cli import main; main()",
            "gateway",
            "bundle",
            "--agent",
            AGENT,
            "--out",
            str(out),
            "--site",
            str(site.root),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    archive = out / f"foa-bundle-{AGENT}.tar.gz"
    unpacked = base / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="tar")
    yield {
        "base": base,
        "site": site,
        "broker": broker,
        "archive": archive,
        "bundle": unpacked / "foa-bundle",
        "bundle_log": proc.stdout,
    }
    broker.close()


def install(world, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*offline_prefix(), "sh", str(world["bundle"] / "install.sh"), "--root", str(root), *args],
        env=clean_env({"PYTHON": clean_python()}),
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def installed(world):
    root = world["base"] / "root"
    proc = install(world, root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"root": root, "log": proc.stdout + proc.stderr}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_bundle_holds_the_agent_its_credentials_and_no_cloud_dependency(world):
    assert _mode(world["archive"]) == 0o600  # it carries the agent's password
    bundle = world["bundle"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["agent"] == AGENT
    wheels = {p.name.split("-")[0].lower() for p in (bundle / "wheels").glob("*.whl")}
    assert {"atp_flex", "msgspec", "msgpack", "paho_mqtt", "pymodbus", "pip"} <= wheels
    assert not wheels & {"ortools", "numpy", "matplotlib", "cryptography"}
    for name in ("foa.toml", "password", "ca.crt"):
        assert (bundle / "etc" / name).exists()
    assert _mode(bundle / "etc" / "password") == 0o600
    for rel, digest in manifest["files"].items():
        assert len(digest) == 64 and (bundle / rel).exists()


def test_install_sh_installs_offline_into_a_clean_environment(world, installed):
    root = installed["root"]
    foa = root / "opt/foa/venv/bin/foa"
    help_text = subprocess.run([foa, "--help"], env=clean_env(), capture_output=True, text=True)
    assert help_text.returncode == 0 and "Flex-Offer Agent" in help_text.stdout
    listed = subprocess.run(
        [root / "opt/foa/venv/bin/python", "-m", "pip", "list", "--format=json"],
        env=clean_env({"PIP_CONFIG_FILE": "/dev/null"}),
        capture_output=True,
        text=True,
    )
    packages = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "atp-flex" in packages and "msgspec" in packages
    assert not packages & {"ortools", "numpy", "matplotlib", "cryptography", "pytest"}
    etc = root / "etc/foa"
    assert _mode(etc) == 0o700
    assert _mode(etc / "foa.toml") == 0o600 and _mode(etc / "password") == 0o600
    assert (root / "etc/systemd/system/foa.service").exists()


def test_the_installed_agent_checks_its_config(world, installed):
    root = installed["root"]
    proc = subprocess.run(
        [root / "opt/foa/venv/bin/foa", "config", "check", root / "etc/foa/foa.toml"],
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_installed_unit_passes_systemd_analyze_verify(installed):
    prepare_root(installed["root"])
    proc = verify(installed["root"], "foa.service")
    assert proc.returncode == 0, proc.stderr


def test_the_installed_agent_starts_and_reaches_the_broker_over_tls(world, installed, tmp_path):
    """``foa run`` from the installed venv, with the installed foa.toml and credentials."""
    site, broker = world["site"], world["broker"]
    fman_creds = site.service_dir("fman-1")
    watcher = Client(
        broker,
        "fman-1",
        Credentials(
            "fman-1",
            (fman_creds / "credentials").read_text().strip().partition(":")[2],
            fman_creds / "ca.crt",
        ),
    )
    assert watcher.connected
    watcher.subscribe(topics.agent_topic(AGENT, "status"))
    root = installed["root"]
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "foa.log"
    with log.open("w") as out:
        agent = subprocess.Popen(
            [root / "opt/foa/venv/bin/foa", "run", "--config", root / "etc/foa/foa.toml"],
            env=clean_env({"STATE_DIRECTORY": str(state)}),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                lambda: [m for m in watcher.received() if m[0].endswith("/status")],
                what="the installed agent's status",
                step=0.2,
                explain=log.read_text,
            )
            assert agent.poll() is None, log.read_text()
        finally:
            agent.terminate()
            agent.wait(timeout=20)
            watcher.close()
    assert (state / "foa.db").exists()
    password = (root / "etc/foa/password").read_text().strip()
    assert password not in log.read_text()
    assert password not in installed["log"]
    assert password not in world["bundle_log"]
    assert f"u'{AGENT}'" in broker.log_tail(100)  # it logged in with its own account


def test_a_second_install_upgrades_in_place_and_keeps_one_rollback(world, installed):
    root = installed["root"]
    before = os.readlink(root / "opt/foa/venv")
    # release directories are named to the second (UTC): install once the name is new
    wait_for(
        lambda: time.strftime("venv-%Y%m%d%H%M%S", time.gmtime()) > before,
        what="the next second",
    )
    proc = install(world, root, "--no-start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = os.readlink(root / "opt/foa/venv")
    assert after != before
    assert sorted(p.name for p in (root / "opt/foa").glob("venv-*")) == sorted([before, after])
    assert (
        subprocess.run([root / "opt/foa/venv/bin/foa", "--help"], env=clean_env()).returncode == 0
    )


def test_the_first_boot_hook_installs_from_the_boot_partition(world):
    boot = world["base"] / "boot"
    boot.mkdir()
    cmdline = "console=serial0,115200 root=PARTUUID=1234-02 rootwait quiet"
    (boot / "cmdline.txt").write_text(
        cmdline + " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot"
        " systemd.unit=kernel-command-line.target\n"
    )
    shutil.copy(world["archive"], boot)
    shutil.copy(REPO / "deploy/gateway/firstrun.sh", boot)
    root = world["base"] / "root-firstboot"
    proc = subprocess.run(
        [*offline_prefix(), "sh", str(boot / "firstrun.sh")],
        env=clean_env(
            {
                "FOA_BOOT_DIR": str(boot),
                "FOA_INSTALL_ROOT": str(root),
                "PYTHON": clean_python(),
            }
        ),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0
    log = (boot / "firstrun.log").read_text()
    assert "installed foa-bundle-gw-1.tar.gz" in log, log
    assert (boot / "cmdline.txt").read_text() == cmdline + "\n"  # runs once
    assert not list(boot.glob("foa-bundle-*"))  # the secrets left the FAT partition
    assert not (boot / "firstrun.sh").exists()
    assert (root / "opt/foa/venv/bin/foa").exists()
    assert (root / "etc/systemd/system/multi-user.target.wants/foa.service").is_symlink()
