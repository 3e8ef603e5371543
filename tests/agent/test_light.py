"""The agent stays light: no OR-Tools, numpy or cloud on its import path, a fast ``foa --help``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

HEAVY = ("ortools", "numpy", "pandas", "cloud", "matplotlib")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_the_whole_agent_imports_without_heavy_packages():
    loaded = _modules_after(
        "import agent, agent.runtime, agent.cli, agent.store, agent.uplink, agent.core, "
        "agent.ems, agent.config, agent.plugins, agent.systemd\n"
        "from agent.store import Store\n"
        "import tempfile, pathlib\n"
        "Store(path=pathlib.Path(tempfile.mkdtemp()) / 'x.db').close()"
    )
    assert "sqlite_utils" in loaded  # the store really loaded its library ...
    assert not loaded & set(HEAVY)  # ... without what it would drag in


def test_foa_help_loads_only_the_cli():
    loaded = _modules_after(
        "from agent.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert not loaded & {*HEAVY, "sqlite_utils", "paho", "msgspec", "asyncio", "protocol"}


def test_numpy_still_imports_after_the_store_hid_it():
    """Hiding numpy from sqlite-utils is temporary: other code in the process still gets it."""
    if importlib.util.find_spec("numpy") is None:
        return  # nothing was hidden on this machine
    loaded = _modules_after("import agent.store\nagent.store._import_sqlite_utils()\nimport numpy")
    assert "numpy" in loaded
