"""The settlement package's public API, and that it stays pure."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cloud.settle as settle

PACKAGE = Path(settle.__file__).parent


def test_public_api_is_exactly_all():
    public = {n for n in dir(settle) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(settle, n)).__name__ == "module"}
    assert public - modules == set(settle.__all__)
    assert len(settle.__all__) == len(set(settle.__all__))


def test_no_io_in_the_settlement_core():
    forbidden = {"sqlite3", "sqlite_utils", "psycopg", "paho", "aiomqtt", "socket", "time"}
    found = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module.split(".")[0] if node.level == 0 else node.module)
                if node.level == 2 and node.module.startswith("fman"):
                    found.add("cloud.fman")
    assert found, "no imports found: the scan is broken"
    assert not found & (forbidden | {"cloud.fman"})


def test_importing_it_loads_no_database_network_or_solver():
    heavy = ("sqlite3", "socket", "paho", "ortools", "numpy", "scipy")
    code = (
        "import sys, cloud.settle; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
