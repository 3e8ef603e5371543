"""The ``foa.toml`` that ``atp device add`` hands out: broker, TLS and credentials filled in.

The agent's config reader (``agent/config.py``) is the authority on the format: relative paths
are relative to the file, the password is read from ``password_file`` (mode 0600), and the
store defaults to systemd's ``$STATE_DIRECTORY``. Devices come from the installer's survey of
the site (``--devices FILE``); without them the agent refuses to start, and says so.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ._errors import ProvisionError
from ._toml import table


@dataclass(frozen=True, slots=True, kw_only=True)
class FoaConfig:
    """What provisioning decides for one agent (no secret: the password is in a file)."""

    agent_id: str
    broker_url: str
    password_file: str
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    devices_toml: str = ""


def read_devices(path: Path) -> str:
    """The ``[devices.*]`` tables of a TOML file, checked to be nothing else."""
    try:
        text = path.read_text()
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProvisionError(f"{path}: {exc}") from exc
    extra = sorted(set(data) - {"devices"})
    if extra or not isinstance(data.get("devices"), dict) or not data["devices"]:
        raise ProvisionError(
            f"{path}: expected only [devices.<id>] tables"
            + (f", found {', '.join(extra)}" if extra else "")
        )
    return text


def render_foa_toml(c: FoaConfig) -> str:
    devices = (
        c.devices_toml.strip() + "\n"
        if c.devices_toml
        else "# No device yet: add one [devices.<id>] table per device (docs/agent.md); the\n"
        "# agent refuses to start without one (`foa config check` says so).\n"
    )
    return (
        f"# Agent {c.agent_id}, provisioned by `atp device add`.\n"
        "# Relative paths are relative to this file.\n\n"
        + table("agent", {"id": c.agent_id})
        + "\n"
        + table(
            "broker",
            {
                "url": c.broker_url,
                "username": c.agent_id,
                "password_file": c.password_file,
                "ca_file": c.ca_file,
                "cert_file": c.cert_file,
                "key_file": c.key_file,
            },
        )
        + "\n"
        + devices
    )
