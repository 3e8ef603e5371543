"""Just enough TOML writing for the files provisioning makes (flat tables of strings and ints).

Python reads TOML (``tomllib``) but does not write it; the files here are small fixed
templates, so a quoting function is all they need. Strings are TOML basic strings, whose
escapes JSON's encoder produces; every file written is read back with ``tomllib`` in tests.
"""

from __future__ import annotations

import json


def value(v: str | int | bool | list[str]) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def table(name: str, items: dict[str, str | int | bool | list[str] | None]) -> str:
    """``[name]`` followed by ``key = value`` lines; ``None`` values are left out."""
    head = f"[{name}]\n" if name else ""
    body = "".join(f"{k} = {value(v)}\n" for k, v in items.items() if v is not None)
    return head + body
