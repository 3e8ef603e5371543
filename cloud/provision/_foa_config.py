"""The ``foa.toml`` that ``atp device add`` hands out: broker, TLS and credentials filled in.

The agent's own config reader (``agent/``) is the authority on the format; this module only
writes the part provisioning knows. Devices are left for the installer, who knows the site.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._toml import table


@dataclass(frozen=True, slots=True, kw_only=True)
class FoaConfig:
    """What provisioning decides for one agent; ``password`` is a secret."""

    agent_id: str
    broker_url: str
    password: str
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    store_path: str = "/var/lib/foa/foa.db"


def render_foa_toml(c: FoaConfig) -> str:
    """The file's text (it holds the password: write it with mode 0600)."""
    return (
        f"# Agent {c.agent_id}, provisioned by `atp device add`.\n"
        "# This file holds the agent's broker password: keep it mode 0600, never in a log.\n"
        "# Relative paths are relative to this file.\n\n"
        + table("agent", {"id": c.agent_id})
        + "\n"
        + table(
            "broker",
            {
                "url": c.broker_url,
                "username": c.agent_id,
                "password": c.password,
                "ca_file": c.ca_file,
                "cert_file": c.cert_file,
                "key_file": c.key_file,
            },
        )
        + "\n"
        + table("store", {"path": c.store_path})
        + "\n# Devices: add one [devices.NAME] table per device (see docs/deploy.md).\n"
    )
