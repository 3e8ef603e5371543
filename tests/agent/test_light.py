"""The agent stays light: no OR-Tools, numpy or cloud on its import path, a fast ``foa --help``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def test_the_local_page_serves_every_page_without_heavy_packages(tmp_path, broker):
    """The agent of ``examples/foa-web.toml`` with its page on, every page fetched over HTTP and
    the configuration checked as the page's edit checks it, in one process: still nothing
    heavy loaded (what the page imports lazily, on a request, counts too)."""
    config = tmp_path / "foa.toml"
    config.write_text(
        (ROOT / "examples" / "foa-web.toml")
        .read_text()
        .replace("mqtt://127.0.0.1:1883", broker.url)
        .replace('id = "house-1"', 'id = "light-web"')
        .replace("port = 8765 ", "port = 0 ")
    )
    code = f"""
import asyncio, pathlib, time, urllib.request
from agent.clock import SimClock
from agent.config import load_config
from agent.plugins import check_config_file
from agent.runtime import AgentRuntime
path = pathlib.Path({str(config)!r})
rt = AgentRuntime(config=load_config(path), clock=SimClock(start=1_767_225_600, speed=3600))
def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, len(r.read())
async def main():
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run(stop=stop))
    deadline = time.monotonic() + 30
    while rt.web is None or not rt.web.url or rt.ticks < 2:
        assert time.monotonic() < deadline and not task.done(), "the page never started"
        await asyncio.sleep(0.02)
    for page in ("", "offers", "offers?all=1", "config", "status.json", "static/sort.js"):
        status, size = await asyncio.to_thread(fetch, rt.web.url + page)
        assert status == 200 and size > 0, (page, status)
    stop.set()
    await task
asyncio.run(main())
assert check_config_file(path)[1] == []
"""
    loaded = _modules_after(code)
    assert {"agent", "http", "urllib"} <= loaded  # the page really ran ...
    assert not loaded & set(HEAVY)  # ... without what it would drag in
