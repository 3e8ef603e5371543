"""The configuration form: what it shows, and how a submitted form reaches the file.

A change is checked exactly as ``foa config check`` checks a file (the changed text is
written next to the file and :func:`agent.plugins.check_config_file` reads it), so the page
refuses what the command would refuse, with the same key and words. Only a text that passes
replaces the file, atomically (a temporary file in the same directory, flushed to disk,
renamed over the old one, the directory flushed): a power cut leaves the old file or the new
one, never half of each. Comments and layout are kept (:mod:`agent.web._tomledit`).

The running agent keeps the configuration it started with; the page says a restart is
needed for a saved change to take effect.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.web._editable import Field, fields_for
from agent.web._tomledit import EditError, Value, set_device_values

PREFIX = "devices."
_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True, slots=True)
class DeviceForm:
    """One device's editable keys with what the file holds for each (``None``: absent)."""

    device: str
    generator: str
    fields: tuple[Field, ...]
    values: Mapping[str, Any]


@dataclass(slots=True)
class EditResult:
    saved: bool = False
    #: ``(key, message)``; the key is the one ``foa config check`` names ("" for the file)
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: the values as submitted, by field name, to show the form again with them
    submitted: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)


def version(text: str) -> str:
    """What identifies the file's content in the form (changed under the form: refused)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def field_name(device: str, key: str) -> str:
    return f"{PREFIX}{device}.{key}"


def forms(data: Mapping[str, Any]) -> list[DeviceForm]:
    """The editable keys of each device of the parsed file, in the file's order."""
    out: list[DeviceForm] = []

    devices = data.get("devices")
    if not isinstance(devices, dict):
        return out
    for dev, table in devices.items():
        if not isinstance(table, dict):
            continue
        generator = table.get("generator")
        fields = fields_for(generator if isinstance(generator, str) else None)
        if fields:
            values = {f.key: table.get(f.key) for f in fields}
            out.append(DeviceForm(dev, str(generator), fields, values))
    return out


def show(value: Any) -> str:
    """A file's value as the form's input shows it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(show(v) for v in value)
    return str(value)


def apply(path: Path, form: Mapping[str, str]) -> EditResult:
    """Check the submitted ``form`` against the file at ``path`` and, if the whole file then
    passes ``foa config check``, write it. Blocking (file system, plug-ins): run it off the
    event loop."""
    result = EditResult(submitted={k: v for k, v in form.items() if k.startswith(PREFIX)})
    try:
        text = path.read_text()
    except OSError as exc:
        result.errors.append(("", f"cannot read {path}: {exc.strerror}"))
        return result
    if form.get("version") != version(text):
        result.errors.append(
            ("", "the file was changed since the form was shown; this is what it holds now")
        )
        result.submitted = {}
        return result
    data = tomllib.loads(text)
    changes = _changes(data, result)
    if result.errors:
        return result
    if not changes:
        return result
    try:
        new_text = set_device_values(text, changes)
    except EditError as exc:
        result.errors.append(("", str(exc)))
        return result
    result.errors += _check_and_write(path, new_text)
    if not result.errors:
        result.saved = True
        result.changed = [field_name(d, k) for d, k in changes]
    return result


def _changes(data: Mapping[str, Any], result: EditResult) -> dict[tuple[str, str], Value | None]:
    editable = {field_name(f.device, fld.key): (f, fld) for f in forms(data) for fld in f.fields}
    changes: dict[tuple[str, str], Value | None] = {}
    for name, raw in result.submitted.items():
        found = editable.get(name)
        if found is None:
            result.errors.append((name, "not a key this page edits"))
            continue
        dev, fld = found
        try:
            value = _parse(raw, fld)
        except ValueError as exc:
            result.errors.append((name, str(exc)))
            continue
        if value != dev.values.get(fld.key):
            changes[(dev.device, fld.key)] = value
    return changes


def _parse(raw: str, fld: Field) -> Value | None:
    text = raw.strip()
    if not text:
        return None  # cleared: the default applies
    if fld.kind == "numbers":
        parts = [p for p in re.split(r"[,\s]+", text.strip("[]")) if p]
        if not parts:
            return None
        return [_number(p) for p in parts]
    return _number(text)


def _number(text: str) -> int | float:
    if _INT.match(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def _check_and_write(path: Path, text: str) -> list[tuple[str, str]]:
    from agent.plugins import check_config_file

    target = path.resolve()
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".new")
    except OSError as exc:
        return [
            (
                "",
                f"cannot write next to {target}: {exc.strerror} (the agent's user needs write "
                f"access to {target.parent} to replace the file safely)",
            )
        ]
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _, errors = check_config_file(tmp)
        if errors:
            return [(e.key, e.message) for e in errors]
        with contextlib.suppress(OSError):
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return []
    except OSError as exc:
        return [("", f"cannot write {target}: {exc.strerror}")]
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
