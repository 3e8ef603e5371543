"""``atp broker up --config mosquitto/prod.conf --site``: the trial of the production broker.

The whole path an operator takes on one machine: ``atp pki init``, ``atp broker up``, then
``atp device add`` against the running broker through the admin socket it prints, and an
agent logging in. Run by root, the broker must not run as root.
"""

from __future__ import annotations

import os
import pwd
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

from cloud.broker import CONFIG_DIR, free_port

from .mqtt import Client, Credentials


def _atp(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from cloud.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The command's lines of output as they come, read on a thread of their own. (A
    ``select`` on the pipe before each ``readline`` misses a second line that the first read
    already took into the file object's buffer, as it does when both come at once.)"""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _readline(lines: queue.Queue[str], timeout: float = 20.0) -> str:
    """The command's next line of output, or "" if none comes in time (never blocks)."""
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def _broker_pid(parent: int) -> int | None:
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            if "mosquitto" in Path(f"/proc/{child}/comm").read_text():
                return int(child)
    return None


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))


def test_the_trial_broker_never_runs_as_root_and_takes_provisioning_live():
    # a directory the mosquitto user can reach (pytest's own temporary tree is root's only)
    base = Path(tempfile.mkdtemp(prefix="atp-trial-"))
    os.chmod(base, 0o755)
    site, data, port = base / "site", base / "data", free_port()
    proc = None
    try:
        init = _atp("pki", "init", "--site", str(site))
        assert init.wait(30) == 0, init.stdout.read()
        proc = _atp(
            "broker", "up", "--config", str(CONFIG_DIR / "prod.conf"), "--site", str(site),
            "--data-dir", str(data), "--port", str(port),
        )  # fmt: skip
        lines = _lines(proc)
        first = _readline(lines)
        assert "mosquitto listening" in first, first
        conf = (data / "mosquitto.conf").read_text()
        assert "user root" not in conf
        pid = _broker_pid(proc.pid)
        assert pid is not None
        if os.geteuid() == 0:
            assert "user mosquitto" in conf
            assert _uid(pid) == pwd.getpwnam("mosquitto").pw_uid
        else:
            assert _uid(pid) == os.geteuid()
        admin = re.search(r"ATP_BROKER_ADMIN=(\S+)", _readline(lines)).group(1)
        add = _atp("device", "add", "house-1", "--site", str(site), env={"ATP_BROKER_ADMIN": admin})
        assert add.wait(30) == 0, add.stdout.read()
        assert "applied to the running broker" in add.stdout.read()
        device = site / "devices" / "house-1"
        password = (device / "password").read_text().strip()
        with_tls = Credentials("house-1", password, device / "ca.crt")
        client = Client(SimpleNamespace(host="127.0.0.1", port=port), "house-1", with_tls)
        assert client.connected
        client.close()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        shutil.rmtree(base, ignore_errors=True)
