"""The gateway's edge broker: ``mosquitto/edge-bridge.conf`` rendered for one agent.

The committed file is complete but for four lines, written there as comments
(``#address CLOUD_HOST:8883`` …); Mosquitto reads a bridge's address and credentials only from
the bridge's own section, so they are filled in here rather than included from elsewhere.
Its ``topic`` lines name every agent (``atp/v1/a/+/...``) and are narrowed here to the one
agent, whose cloud account may subscribe to its own filters only.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ._errors import ProvisionError

TEMPLATE = Path(__file__).resolve().parents[2] / "mosquitto" / "edge-bridge.conf"
_SLOTS = ("#address ", "#remote_clientid ", "#remote_username ", "#remote_password ")


def _own(line: str, agent_id: str) -> str:
    """A bridge ``topic`` line narrowed to the agent's own topics: the cloud lets an agent
    subscribe to exactly its own downlink filters and nothing wider."""
    if line.startswith("topic atp/v1/a/+/"):
        return line.replace("atp/v1/a/+/", f"atp/v1/a/{agent_id}/", 1)
    return line


def render_edge_config(*, agent_id: str, cloud_url: str, password: str) -> str:
    """The edge broker's configuration for ``agent_id`` (it holds the password: mode 0600)."""
    parts = urlsplit(cloud_url)
    if parts.scheme != "mqtts" or not parts.hostname:
        raise ProvisionError(f"the bridge needs the cloud's mqtts:// URL, not {cloud_url!r}")
    values = {
        "#address ": f"address {parts.hostname}:{parts.port or 8883}",
        "#remote_clientid ": f"remote_clientid {agent_id}",
        "#remote_username ": f"remote_username {agent_id}",
        "#remote_password ": f"remote_password {password}",
    }
    lines = TEMPLATE.read_text().splitlines()
    filled = [
        values.get(next((s for s in _SLOTS if line.startswith(s)), ""), _own(line, agent_id))
        for line in lines
    ]
    slots = sum(a.startswith(_SLOTS) and a != b for a, b in zip(lines, filled, strict=True))
    if slots != len(_SLOTS):
        raise ProvisionError(f"{TEMPLATE}: expected the four per-agent lines {_SLOTS}")
    return "\n".join(filled) + "\n"
