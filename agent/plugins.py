"""Finding drivers and generators: by entry-point name, or by import path.

Drivers are registered in the ``atp.drivers`` entry-point group and generators in
``atp.generators`` (see ``pyproject.toml``), so a third-party package adds a load type or a
device protocol by declaring an entry point. For code that is not packaged (a site-specific
driver, the tests), ``driver = "package.module:ClassName"`` names the class directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar

from agent.clock import Clock, RealClock
from agent.config import AgentConfig, DeviceConfig, read_config, read_toml
from agent.drivers.base import Driver
from agent.errors import ConfigError, ConfigErrors
from agent.generators.base import Generator

DRIVERS = "atp.drivers"
GENERATORS = "atp.generators"
T = TypeVar("T")


def available(group: str) -> list[str]:
    """The names registered in an entry-point group."""
    return sorted({ep.name for ep in entry_points(group=group)})


def load_class(group: str, name: str, base: type[T], *, key: str) -> type[T]:
    """The class registered as ``name`` in ``group`` (or at import path ``module:Class``)."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(key, f"cannot import {name!r}: {exc}") from exc
    else:
        found = [ep for ep in entry_points(group=group) if ep.name == name]
        if not found:
            names = ", ".join(available(group)) or "none installed"
            raise ConfigError(key, f"no {group} plug-in named {name!r} (available: {names})")
        try:
            cls = found[0].load()
        except Exception as exc:  # a broken third-party plug-in must not hide the others
            raise ConfigError(key, f"plug-in {name!r} failed to load: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(key, f"{name!r} is not a {base.__name__} subclass")
    return cls


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
    """Instantiate every device's driver and generator (nothing is opened or connected).

    Raises :class:`ConfigErrors` with every problem, each keyed ``devices.<id>.<key>``."""
    errors: list[ConfigError] = []
    built = []
    for dev in devices:
        prefix = f"devices.{dev.id}"
        driver = generator = None
        try:
            cls = load_class(DRIVERS, dev.driver, Driver, key=f"{prefix}.driver")
            driver = cls(device_id=dev.id, params=dev.params, clock=clock)
        except ConfigError as exc:
            errors.extend(_keyed(exc, prefix))
        except Exception as exc:
            errors.append(ConfigError(prefix, f"driver {dev.driver!r}: {exc}"))
        if dev.generator:
            try:
                gcls = load_class(GENERATORS, dev.generator, Generator, key=f"{prefix}.generator")
                generator = gcls(dev.params)
            except ConfigError as exc:
                errors.extend(_keyed(exc, prefix))
            except Exception as exc:
                errors.append(ConfigError(prefix, f"generator {dev.generator!r}: {exc}"))
        if driver is not None:
            built.append(Device(config=dev, driver=driver, generator=generator))
    if errors:
        raise ConfigErrors(errors)
    return built


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
    """A plug-in's errors keyed by its own parameter names, put under the device's table."""
    if isinstance(exc, ConfigErrors):
        return [e for inner in exc.errors for e in _keyed(inner, prefix)]
    if exc.key.startswith("devices."):
        return [exc]
    return [ConfigError(f"{prefix}.{exc.key}" if exc.key else prefix, exc.message)]
