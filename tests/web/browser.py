"""A real headless Chromium for the page tests and ``make screens``: Debian's ``chromium``,
driven by playwright (the Python client only; no browser is downloaded).

:func:`launch` starts it, or fails with what to do when it is missing (these tests never
skip). :class:`Watch` records what a page does wrong while a test uses it: console errors,
uncaught exceptions, requests that failed or were answered with an error status.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path(os.environ.get("ATP_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING = (
    "headless Chromium is needed for the page tests and was not found at {path}: run "
    "`make setup` (it installs Debian's chromium with --no-install-recommends), or set "
    "ATP_CHROMIUM to the browser's path"
)


class BrowserMissing(RuntimeError):
    pass


@contextmanager
def launch() -> Iterator[object]:
    """The browser (a playwright ``Browser``) for as long as the block runs."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        raise BrowserMissing(MISSING.format(path=CHROMIUM) + (f" (one is at {found})" if found else ""))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserMissing(
            "the playwright package is missing: run `make setup` (it is in the dev extra)"
        ) from exc
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """What went wrong on a page: attach it with :meth:`attach`, read :attr:`problems`.

    ``allow`` lists HTTP statuses a test provokes on purpose (a 403 for a forged form)."""

    problems: list[str] = field(default_factory=list)
    allow: set[int] = field(default_factory=set)

    def attach(self, page) -> None:  # type: ignore[no-untyped-def]
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught exception: {exc}"))
        page.on(
            "requestfailed",
            lambda req: self.problems.append(
                f"request failed: {req.method} {req.url}: {req.failure}"
            ),
        )
        page.on("response", self._response)

    def _console(self, msg) -> None:  # type: ignore[no-untyped-def]
        if msg.type in ("error", "warning"):
            text = msg.text
            if msg.type == "error" and any(f"status of {s} " in text for s in self.allow):
                return
            self.problems.append(f"console {msg.type}: {text} ({msg.location.get('url', '')})")

    def _response(self, resp) -> None:  # type: ignore[no-untyped-def]
        if resp.status >= 400 and resp.status not in self.allow:
            self.problems.append(f"HTTP {resp.status} for {resp.request.method} {resp.url}")

    def assert_clean(self) -> None:
        assert not self.problems, "the page had problems:\n  " + "\n  ".join(self.problems)

    def clear(self) -> None:
        self.problems.clear()
