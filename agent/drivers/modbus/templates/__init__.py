"""The Modbus device templates shipped with the agent (one TOML file per device model)."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from agent.errors import ConfigError


def template_names() -> list[str]:
    """The names of the built-in templates, sorted."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in files(__name__).iterdir()
        if entry.name.endswith(".toml")
    )


def load_template(name: str, *, key: str = "template") -> dict[str, Any]:
    """Built-in template ``name``, or a template file when ``name`` is a path ending in
    ``.toml``; ``key`` names the config entry for errors."""
    if name.endswith(".toml"):
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(key, f"cannot read template file {name!r}: {exc.strerror}") from exc
    else:
        resource = files(__name__).joinpath(f"{name}.toml")
        if not resource.is_file():
            known = ", ".join(template_names())
            raise ConfigError(key, f"unknown Modbus template {name!r}; known: {known}")
        text = resource.read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(key, f"template {name!r} is not valid TOML: {exc}") from exc
