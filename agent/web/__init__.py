"""The agent's local page (F2.FOA3): devices, offers, schedules, outbox and connection, and
the prices and comfort limits of ``foa.toml`` to edit. Off unless ``[web] enabled = true``.

Served by the agent itself on its event loop with the standard library (:mod:`._http`), so
it adds no dependency and little memory; the runtime imports this package only when the
page is enabled. ``docs/agent.md`` describes it for users.
"""

from agent.web._app import WebServer
from agent.web._auth import hash_password, parse_hash

__all__ = ["WebServer", "hash_password", "parse_hash"]
