"""The layout's rules: the public API of `protocol`, and who may import whom."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import protocol

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_is_exactly_all():
    public = {name for name in dir(protocol) if not name.startswith("_")}
    # submodules (the private _modules and the public samples) are attributes too
    modules = {name for name in public if type(getattr(protocol, name)).__name__ == "module"}
    assert public - modules == set(protocol.__all__) - {"topics"}
    assert sorted(protocol.__all__) == sorted(set(protocol.__all__))


def _imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (
            "protocol",
            {
                "agent",
                "cloud",
                "paho",
                "aiomqtt",
                "sqlite3",
                "sqlite_utils",
                "socket",
                "ortools",
                "numpy",
            },
        ),
        ("agent", {"cloud", "ortools", "numpy"}),
        ("cloud", {"agent"}),
    ],
)
def test_dependency_rule(package, forbidden):
    assert not _imports(package) & forbidden


def test_protocol_does_no_io_on_import():
    heavy = ("socket", "sqlite3", "paho", "ortools", "numpy")
    code = (
        f"import sys, protocol; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
