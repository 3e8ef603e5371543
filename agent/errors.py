"""The agent's exception tree.

    AgentError                 anything the agent refuses or cannot do
    ├── ConfigError            a config value is wrong; ``key`` names it (devices.ev1.power_w)
    └── DeviceFault            a device did not answer, answered garbage, or refused a command

Foreign errors (pymodbus, pyserial, sqlite3, paho) are wrapped at the boundary, so callers
catch these and nothing else.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of the agent's errors."""


class ConfigError(AgentError):
    """A configuration value is missing or wrong."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class DeviceFault(AgentError):
    """A device is unreachable or misbehaving; the EMS reports it and keeps running."""

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        self.message = message
        super().__init__(f"device {device}: {message}")
