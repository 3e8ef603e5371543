"""systemd ``Type=notify``: READY=1 and the watchdog, without a library.

The protocol is one datagram per notification to the Unix socket named by ``$NOTIFY_SOCKET``
(a leading ``@`` names a Linux abstract socket). Outside systemd the variable is unset and
every call here does nothing.

The watchdog is kicked from an asyncio task of the agent's own event loop, at half the
interval systemd asks for (``$WATCHDOG_USEC``), and only while the agent's main loop is
healthy: if the event loop hangs, or a control step has run for longer than its limit (a
device call that never returns; the limit, ``step_timeout_s``, is far above any device's own
timeout, which is a device fault the agent handles), the kicks stop and systemd restarts the
service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to ``$NOTIFY_SOCKET`` (read once, at construction)."""

    def __init__(self, *, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + raw[1:] if raw.startswith("@") else raw
        self.watchdog_s = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; ``False`` if systemd is not listening."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(lines).encode())
            return True
        except OSError as exc:
            log.warning("sd_notify to %r failed: %s", self.address.replace("\0", "@"), exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    async def watchdog(
        self, stuck_for: Callable[[], float] = lambda: 0.0, limit_s: float = 900.0
    ) -> None:
        """Kick the watchdog at half its interval, forever (run it as a task), while
        ``stuck_for()`` (seconds the main loop has spent in its current step) stays below
        ``limit_s``."""
        if not self.address or self.watchdog_s is None:
            return
        warned = False
        while True:
            stuck = stuck_for()
            if stuck < limit_s:
                self.notify("WATCHDOG=1")
                warned = False
            elif not warned:
                log.error("main loop stuck in one step for %.0f s: no watchdog kick", stuck)
                warned = True
            await asyncio.sleep(self.watchdog_s / 2)


def _watchdog_interval(env: dict[str, str] | os._Environ[str]) -> float | None:
    """The watchdog interval in seconds, if systemd set one for this very process."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid:
        with contextlib.suppress(ValueError):
            if int(pid) != os.getpid():
                return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None
