"""Finding drivers and generators by name, through Python entry points.

Built-in and third-party plug-ins are found the same way: a package declares, in its
``pyproject.toml``,

.. code-block:: toml

    [project.entry-points."atp.generators"]
    sauna = "my_package.sauna:SaunaGenerator"

and ``generator = "sauna"`` in a device table then finds it. For code that is not packaged
(a site-specific driver, the tests), ``driver = "package.module:ClassName"`` names the class
by its import path instead. Nothing is imported until a name is asked for, so an agent that
uses two drivers loads two driver modules. An unknown name, a plug-in that fails to import,
or one that is not a subclass of the right base is a :class:`~agent.errors.ConfigError`
naming the config key and listing the known names.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, TypeVar

from agent.clock import Clock, RealClock
from agent.config import DEVICE_KEYS, AgentConfig, DeviceConfig, read_config, read_toml
from agent.drivers.base import Driver
from agent.errors import ConfigError, ConfigErrors
from agent.generators._common import ASK_KEYS
from agent.generators.base import Generator
from protocol import unknown_key

DRIVERS = "atp.drivers"
GENERATORS = "atp.generators"

T = TypeVar("T")


@functools.cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    """The group's entry points, scanned once per process (a scan costs milliseconds, and
    the fleet simulator builds thousands of devices)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    """The names registered in ``group``, sorted."""
    return sorted(_entry_points(group))


def load(group: str, name: str, base: type[T], *, key: str) -> type[T]:
    """The class registered as ``name`` in ``group`` (or at import path ``module:Class``);
    ``key`` names the config entry that asked for it (``devices.ev1.driver``), for the error."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(key, f"cannot import {_kind(group)} {name!r}: {exc}") from exc
        where = name
    else:
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
        where = ep.value
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(
            key, f"{_kind(group)} {name!r} ({where}) is not a {base.__name__} subclass"
        )
    return cls


def load_driver(name: str, *, key: str = "driver") -> type[Driver]:
    return load(DRIVERS, name, Driver, key=key)  # type: ignore[type-abstract]  # only issubclass'd


def load_generator(name: str, *, key: str = "generator") -> type[Generator]:
    return load(GENERATORS, name, Generator, key=key)  # type: ignore[type-abstract]  # as above


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


# -- the devices of one agent ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    """A configured device: its driver instance and, if it makes offers, its generator."""

    config: DeviceConfig
    driver: Driver
    generator: Generator | None

    @property
    def id(self) -> str:
        return self.config.id


def build_devices(devices: Sequence[DeviceConfig], *, clock: Clock) -> list[Device]:
    """Construct every device's driver and generator (nothing is opened or connected).

    Raises :class:`ConfigErrors` with every problem, each keyed ``devices.<id>.<key>``. A key
    of a device table that neither the driver nor the generator reads is refused, with a
    "did you mean" among the keys they asked for: a misspelt ``batery_kwh`` must not leave
    the battery at its default size."""
    errors: list[ConfigError] = []
    built = []
    for dev in devices:
        prefix = f"devices.{dev.id}."
        before = len(errors)
        table = _Reads(dev.params)
        driver = generator = None
        try:
            driver = build_driver(
                dev.driver, device_id=dev.id, params=table, clock=clock, key_prefix=prefix
            )
        except ConfigError as exc:
            errors.extend(_keyed(exc, prefix))
        except Exception as exc:
            errors.append(ConfigError(prefix.rstrip("."), f"driver {dev.driver!r}: {exc}"))
        if dev.generator:
            try:
                generator = build_generator(dev.generator, params=table, key_prefix=prefix)
            except ConfigError as exc:
                errors.extend(_keyed(exc, prefix))
            except Exception as exc:
                errors.append(
                    ConfigError(prefix.rstrip("."), f"generator {dev.generator!r}: {exc}")
                )
        if len(errors) == before:  # a plug-in that failed may not have read all its keys
            errors.extend(_unread(dev, table, prefix))
        if generator is not None and dev.trading_mode != "direct":
            errors.extend(_unused_asks(dev, prefix))
        if driver is not None:
            built.append(Device(config=dev, driver=driver, generator=generator))
    if errors:
        raise ConfigErrors(_once(errors))
    return built


class _Reads(Mapping[str, Any]):
    """A device's table that notes every key its plug-ins ask for (present or not).

    Plug-ins read their keys through :class:`~agent.params.Params` or the mapping itself
    when they are built. One that walks the whole table (a Modbus register map takes every
    key it does not know) has read everything, and nothing of its table is refused."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self._table = table
        self.asked: set[str] = set()
        self.walked = False

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return self._table[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return key in self._table

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return self._table.get(key, default)

    def __iter__(self) -> Iterator[str]:
        self.walked = True
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def _unread(dev: DeviceConfig, table: _Reads, prefix: str) -> list[ConfigError]:
    """The keys of ``dev``'s table that neither its driver nor its generator asked for."""
    if table.walked:
        return []
    known = table.asked | DEVICE_KEYS
    owners = f"driver {dev.driver!r}" + (
        f" and generator {dev.generator!r}" if dev.generator else ""
    )
    errors = []
    for key in dev.params:
        if key not in known:
            e = unknown_key(f"{prefix}{key}", key, known, what=f"unknown key for {owners}")
            errors.append(ConfigError(e.path, e.message))
    return errors


def _unused_asks(dev: DeviceConfig, prefix: str) -> list[ConfigError]:
    """Asks given to a device that trades in delegated mode, where its contract sets the price
    and an offer's asks are not read: refused rather than silently ignored."""
    return [
        ConfigError(
            f"{prefix}{key}",
            f"prices direct trading, but {dev.id} trades in {dev.trading_mode} mode (its "
            'contract sets the price); set trading_mode = "direct" here or in [agent]',
        )
        for key in ASK_KEYS
        if key in dev.params
    ]


def _once(errors: list[ConfigError]) -> list[ConfigError]:
    """``errors`` without repeats: a key both plug-ins read and refuse is wrong once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in errors:
        if (e.key, e.message) not in seen:
            seen.add((e.key, e.message))
            out.append(e)
    return out


def check_config_file(path: Path) -> tuple[AgentConfig | None, list[ConfigError]]:
    """Everything ``foa config check`` verifies: the values, then every device's driver and
    generator with their parameters (also when other parts of the file are wrong), then
    the TLS files. Returns the config (``None`` if anything is wrong) and every error."""
    try:
        data = read_toml(path)
    except ConfigErrors as exc:
        return None, list(exc.errors)
    cfg, devices, errors = read_config(data, base=path.resolve().parent, source=str(path))
    try:
        build_devices(devices, clock=RealClock())
    except ConfigErrors as exc:
        errors += exc.errors
    if cfg is not None:
        try:
            cfg.broker.ssl_context()
        except ConfigError as exc:
            errors.append(exc)
    return (cfg if not errors else None), errors


def _keyed(exc: ConfigError, prefix: str) -> list[ConfigError]:
    """A plug-in's errors keyed by its own parameter names, put under the device's table
    (plug-ins that use ``key_prefix`` already name the full key)."""
    if isinstance(exc, ConfigErrors):
        return [e for inner in exc.errors for e in _keyed(inner, prefix)]
    if exc.key.startswith("devices."):
        return [exc]
    return [ConfigError(f"{prefix}{exc.key}" if exc.key else prefix.rstrip("."), exc.message)]
