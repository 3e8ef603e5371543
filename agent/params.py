"""Checked reading of a plug-in's parameter table.

Generators and drivers get their ``[devices.<id>]`` table as a plain mapping. :class:`Params`
reads it with types, ranges and defaults, and raises :class:`~agent.errors.ConfigError` naming
the key (prefixed with where the table lives, ``devices.ev1.battery_kwh``), so a user sees at
once which line of ``foa.toml`` to fix. It is a table-driven validator in the manner of Home
Assistant's config schemas, small enough not to need a schema library on the gateway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import ConfigError

_MISSING: Any = object()


class Params:
    """A read-only view of one parameter table that checks every value it hands out."""

    def __init__(self, table: Mapping[str, Any], *, prefix: str = "") -> None:
        if not isinstance(table, Mapping):
            raise ConfigError(prefix.rstrip("."), f"expected a table, got {type(table).__name__}")
        self.table = table
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The full key of ``name`` as the user wrote it."""
        return f"{self.prefix}{name}"

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.key(name), message)

    def has(self, name: str) -> bool:
        return name in self.table

    def sub(self, name: str) -> Params:
        """The sub-table ``name`` (empty when absent)."""
        value = self.table.get(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, f"expected a table, got {type(value).__name__}")
        return Params(value, prefix=f"{self.key(name)}.")

    def number(
        self,
        name: str,
        default: float = _MISSING,
        *,
        min: float = -math.inf,
        max: float = math.inf,
        exclusive_min: bool = False,
    ) -> float:
        """A finite real number in ``[min, max]`` (or ``(min, max]``)."""
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise self.error(name, f"{value} is not a finite number")
        too_low = value <= min if exclusive_min else value < min
        if too_low or value > max:
            lo = "(" if exclusive_min else "["
            raise self.error(name, f"{value:g} is outside {lo}{min:g}, {max:g}]")
        return value

    def optional_number(
        self,
        name: str,
        *,
        min: float = -math.inf,
        max: float = math.inf,
    ) -> float | None:
        return self.number(name, min=min, max=max) if name in self.table else None

    def integer(
        self,
        name: str,
        default: int = _MISSING,
        *,
        min: int | None = None,
        max: int | None = None,
    ) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected an integer, got {value!r}")
        if (min is not None and value < min) or (max is not None and value > max):
            raise self.error(name, f"{value} is outside [{min}, {max}]")
        return value

    def boolean(self, name: str, default: bool = _MISSING) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {value!r}")
        return value

    def string(
        self, name: str, default: str = _MISSING, *, choices: Sequence[str] | None = None
    ) -> str:
        value = self._get(name, default)
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(name, f"{value!r} is not one of {', '.join(map(repr, choices))}")
        return value

    def numbers(
        self,
        name: str,
        default: Sequence[float] = _MISSING,
        *,
        min: float = -math.inf,
        max: float = math.inf,
        length: int | None = None,
        min_length: int = 1,
    ) -> list[float]:
        """A list of finite numbers, each in ``[min, max]``."""
        value = self._get(name, default)
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise self.error(name, f"expected a list of numbers, got {value!r}")
        if length is not None and len(value) != length:
            raise self.error(name, f"expected {length} values, got {len(value)}")
        if len(value) < min_length:
            raise self.error(name, f"expected at least {min_length} values, got {len(value)}")
        out = []
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise self.error(f"{name}[{i}]", f"expected a finite number, got {v!r}")
            if not min <= v <= max:
                raise self.error(f"{name}[{i}]", f"{v:g} is outside [{min:g}, {max:g}]")
            out.append(float(v))
        return out

    def timezone(self, name: str = "timezone", default: str = "UTC") -> ZoneInfo:
        """An IANA time zone (``Europe/Copenhagen``) for parameters given in local time."""
        zone = self.string(name, default)
        try:
            return ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise self.error(name, f"unknown time zone {zone!r}") from exc

    def _get(self, name: str, default: Any) -> Any:
        if name in self.table:
            return self.table[name]
        if default is _MISSING:
            raise self.error(name, "is required")
        return default
