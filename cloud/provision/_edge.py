"""The gateway's edge broker: ``mosquitto/edge-bridge.conf`` rendered for one agent.

The committed file is complete but for four lines, written there as comments
(``#address CLOUD_HOST:8883`` …); Mosquitto reads a bridge's address and credentials only from
the bridge's own section, so they are filled in here rather than included from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ._errors import ProvisionError

TEMPLATE = Path(__file__).resolve().parents[2] / "mosquitto" / "edge-bridge.conf"
_SLOTS = ("#address ", "#remote_clientid ", "#remote_username ", "#remote_password ")


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
        values.get(next((s for s in _SLOTS if line.startswith(s)), ""), line) for line in lines
    ]
    if sum(a != b for a, b in zip(lines, filled, strict=True)) != len(_SLOTS):
        raise ProvisionError(f"{TEMPLATE}: expected the four per-agent lines {_SLOTS}")
    return "\n".join(filled) + "\n"
