"""Finding drivers and generators by name, through Python entry points.

Built-in and third-party plug-ins are found the same way: a package declares, in its
``pyproject.toml``,

.. code-block:: toml

    [project.entry-points."atp.generators"]
    sauna = "my_package.sauna:SaunaGenerator"

and ``generator = "sauna"`` in a device table then finds it. Nothing is imported until a name
is asked for, so an agent that uses two drivers loads two driver modules. An unknown name, a
plug-in that fails to import, or one that is not a subclass of the right base is a
:class:`~agent.errors.ConfigError` naming the config key and listing the known names.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from agent.clock import Clock
from agent.drivers.base import Driver
from agent.errors import ConfigError
from agent.generators.base import Generator

DRIVERS = "atp.drivers"
GENERATORS = "atp.generators"

T = TypeVar("T")


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    """The names registered in ``group``, sorted."""
    return sorted(_entry_points(group))


def load(group: str, name: str, base: type[T], *, key: str) -> type[T]:
    """The class registered as ``name`` in ``group``; ``key`` names the config entry that
    asked for it (``devices.ev1.driver``), for the error message."""
    found = _entry_points(group)
    ep = found.get(name)
    if ep is None:
        known = ", ".join(sorted(found)) or "none installed"
        raise ConfigError(key, f"unknown {_kind(group)} {name!r}; known: {known}")
    try:
        cls = ep.load()
    except Exception as exc:  # a broken third-party plug-in must not take the agent down
        raise ConfigError(
            key, f"{_kind(group)} {name!r} ({ep.value}) failed to load: {exc!r}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(
            key, f"{_kind(group)} {name!r} ({ep.value}) is not a {base.__name__} subclass"
        )
    return cls


def load_driver(name: str, *, key: str = "driver") -> type[Driver]:
    return load(DRIVERS, name, Driver, key=key)


def load_generator(name: str, *, key: str = "generator") -> type[Generator]:
    return load(GENERATORS, name, Generator, key=key)


def build_driver(
    name: str,
    *,
    device_id: str,
    params: Mapping[str, Any],
    clock: Clock,
    key_prefix: str | None = None,
) -> Driver:
    """Load and construct driver ``name`` for one device; ``key_prefix`` (default
    ``devices.<device_id>.``) makes every error name its full config key."""
    prefix = f"devices.{device_id}." if key_prefix is None else key_prefix
    cls = load_driver(name, key=f"{prefix}driver")
    return cls(device_id=device_id, params=params, clock=clock, key_prefix=prefix)


def build_generator(name: str, *, params: Mapping[str, Any], key_prefix: str = "") -> Generator:
    """Load and construct generator ``name`` with its parameter table."""
    cls = load_generator(name, key=f"{key_prefix}generator")
    return cls(params, key_prefix=key_prefix)


def _kind(group: str) -> str:
    return {DRIVERS: "driver", GENERATORS: "generator"}.get(group, "plug-in")
