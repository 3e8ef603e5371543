"""The agent's exception tree.

    AgentError                 anything the agent refuses or cannot do
    ├── ConfigError            a config value is wrong; ``key`` names it (devices.ev1.power_w)
    │   └── ConfigErrors       several of them at once (``errors``), as ``foa config check`` lists
    ├── DeviceFault            a device did not answer, answered garbage, or refused a command
    └── StoreError             the agent's database cannot be opened, read or written

Foreign errors (pymodbus, pyserial, sqlite3, paho) are wrapped at the boundary, so callers
catch these and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence


class AgentError(Exception):
    """Root of the agent's errors."""


class ConfigError(AgentError):
    """A configuration value is missing or wrong."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class ConfigErrors(ConfigError):
    """Every problem found in one configuration file, each with its key."""

    def __init__(self, errors: Sequence[ConfigError], *, source: str = "") -> None:
        from protocol import error_lines  # not on import: ``foa --help`` loads click alone

        self.errors = tuple(errors)
        self.source = source
        super().__init__("", "\n".join(error_lines(source, self.pairs())))

    def pairs(self) -> list[tuple[str, str]]:
        """``(key, message)`` of every error, as :func:`protocol.error_lines` prints them."""
        return [(e.key, e.message) for e in self.errors]


class DeviceFault(AgentError):
    """A device is unreachable or misbehaving; the EMS reports it and keeps running."""

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        self.message = message
        super().__init__(f"device {device}: {message}")


class StoreError(AgentError):
    """The agent's SQLite database failed; the path and SQLite's reason are in the message.

    ``transient`` is true when trying again later may succeed (disk full, database locked,
    an I/O error), false when it cannot (a constraint broken: a bug)."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        self.transient = transient
        super().__init__(message)
