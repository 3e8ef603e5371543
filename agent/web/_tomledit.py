"""Change a few values of ``foa.toml`` and keep everything else of the file as it was.

The standard library reads TOML but cannot write it, and a writer that dumps the parsed data
would drop every comment an installer left in the file. The page only ever sets numbers (or
lists of numbers) in ``[devices.<id>]`` tables, so this edits those lines as text: the value
after ``key =`` is replaced and the line's comment kept; a new key goes after the table's
last key; a cleared one is removed (its default applies again). Then the result is parsed
again and must equal the parsed original with exactly the changes made: a file in a layout
this does not handle (a device given as an inline table, dotted keys) is refused with
:class:`EditError` rather than written wrong.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from collections.abc import Mapping

Value = int | float | list[int | float]

_HEADER = re.compile(r"^\s*\[(?!\[)(?P<name>[^\]]*)\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")


class EditError(Exception):
    """The file cannot be changed this way; the message says why."""


def toml_value(value: Value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EditError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise EditError(f"not a finite number: {value!r}")
    return repr(value)


def set_device_values(text: str, changes: Mapping[tuple[str, str], Value | None]) -> str:
    """``text`` with each ``(device, key)`` of ``changes`` set to its value (``None``: the
    key removed). Raises :class:`EditError` when the file is laid out in a way this cannot
    change faithfully."""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EditError(f"the file is not valid TOML now: {exc}") from exc
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for (device, key), value in changes.items():
        lines = _set(lines, device, key, value)
    out = "".join(lines)
    expected = copy.deepcopy(before)
    for (device, key), value in changes.items():
        table = expected.get("devices", {}).get(device)
        if not isinstance(table, dict):
            raise EditError(f"the file has no [devices.{device}] table")
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    try:
        after = tomllib.loads(out)
    except tomllib.TOMLDecodeError as exc:
        raise EditError(f"the edit would not be valid TOML ({exc}); edit the file by hand") from exc
    if after != expected:
        raise EditError(
            "the file's layout is not one the page can edit (a device given inline or with "
            "dotted keys?); edit the file by hand"
        )
    return out


def _set(lines: list[str], device: str, key: str, value: Value | None) -> list[str]:
    head = _find_table(lines, device)
    end = next((i for i in range(head + 1, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines))
    pattern = re.compile(
        rf"^(?P<indent>\s*)(?P<key>{re.escape(key)}|\"{re.escape(key)}\")(?P<sep>\s*=\s*)"
        r"(?P<rest>.*?)(?P<nl>\r?\n?)$"
    )
    for i in range(head + 1, end):
        m = pattern.match(lines[i])
        if m is None:
            continue
        stop = _value_end(lines, i, end, m.group("rest"))
        if value is None:
            return lines[:i] + lines[stop + 1 :]
        comment = _comment(lines[stop]) if stop > i else _comment(m.group("rest"))
        new = f"{m.group('indent')}{m.group('key')}{m.group('sep')}{toml_value(value)}"
        if comment:
            # the comment stays in its column (comments in a table are often aligned)
            column = lines[stop].find(comment) if stop == i else -1
            new += " " * max(2, column - len(new)) + comment
        return [*lines[:i], new + (m.group("nl") or "\n"), *lines[stop + 1 :]]
    if value is None:
        return lines
    last = head
    for i in range(head + 1, end):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            last = i
    return [*lines[: last + 1], f"{key} = {toml_value(value)}\n", *lines[last + 1 :]]


def _find_table(lines: list[str], device: str) -> int:
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m is None:
            continue
        try:
            parsed = tomllib.loads(f"[{m.group('name')}]\n")
        except tomllib.TOMLDecodeError:
            continue
        if parsed == {"devices": {device: {}}}:
            return i
    raise EditError(f"the file has no [devices.{device}] table header; edit it by hand")


def _value_end(lines: list[str], i: int, end: int, rest: str) -> int:
    """The last line of the value that starts on line ``i`` (arrays may span lines)."""
    depth = _depth(rest)
    j = i
    while depth > 0 and j + 1 < end:
        j += 1
        depth += _depth(lines[j])
    return j


def _depth(text: str) -> int:
    code = text.split("#", 1)[0]
    return code.count("[") - code.count("]")


def _comment(text: str) -> str:
    """The comment at the end of a line holding numbers (which contain no ``#``)."""
    _, hash_, comment = text.partition("#")
    return ("#" + comment).rstrip("\r\n") if hash_ else ""
