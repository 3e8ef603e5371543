"""The tables of the files provisioning writes (``site.toml``, ``foa.toml``, ``fman.toml``).

Python reads TOML (``tomllib``) but does not write it; ``tomli_w`` (the project's one TOML
writer, which contracts and FMAN's configuration use too) does the quoting. The files are
small templates with comments between their tables, so they are put together one table at
a time; every file written is read back with ``tomllib`` in tests.
"""

from __future__ import annotations

import tomli_w


def table(name: str, items: dict[str, str | int | bool | list[str] | None]) -> str:
    """``[name]`` followed by ``key = value`` lines; ``None`` values are left out."""
    body = {k: v for k, v in items.items() if v is not None}
    return tomli_w.dumps({name: body} if name else body)
