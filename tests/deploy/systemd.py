"""Check unit files with the real ``systemd-analyze``, against a root tree of our making.

``systemd-analyze verify`` loads the units as the service manager would (syntax, known
settings, dependencies, and that each ExecStart= program exists and is executable); with
``--root`` it resolves everything inside a directory tree, so the tree gets the machine's
own unit library (sysinit.target and friends) and the programs the units name.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

UNIT_LIBRARY = next(
    (p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()),
    None,
)


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool and UNIT_LIBRARY, (
        "systemd-analyze is missing: `make setup` installs it (apt-get install systemd)"
    )
    return tool


def prepare_root(root: Path) -> Path:
    """Give ``root`` the machine's unit library; returns its /etc/systemd/system."""
    analyze()
    lib = root / "usr/lib/systemd/system"
    if not lib.exists():
        shutil.copytree(UNIT_LIBRARY, lib, symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    return units


def verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze(), "verify", f"--root={root}", *units], capture_output=True, text=True
    )


def exposure(root: Path, unit: str) -> float:
    """``systemd-analyze security``'s overall exposure (0 safest, 10 least protected)."""
    proc = subprocess.run(
        [analyze(), "security", "--offline=yes", f"--root={root}", "--no-pager", unit],
        capture_output=True,
        text=True,
        cwd=root / "etc/systemd/system",
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    return float(found.group(1))
