"""A real headless Chromium for the page tests and ``make screens``: Debian's ``chromium``,
driven by playwright's Python client. Where the distribution has no Chromium package that
runs headless (Ubuntu ships it as a snap only), ``make setup`` installs playwright's own
build instead and :func:`chromium_path` finds it; ``ATP_CHROMIUM`` names any other.
``python -m tests.web.browser`` prints the browser found (exit status 1: none).

:func:`launch` starts it and drives it for as long as a block runs (``make screens``).
The tests keep one browser for the whole session instead, :class:`ChromiumProcess`, and
each test module connects to it (:func:`connect`): playwright's synchronous client keeps an
event loop marked running on its thread while it is connected, which would break every later
test that calls ``asyncio.run``; connecting per module leaves the thread as it found it.
Both fail with what to do when the browser is missing (these tests never skip).

:class:`Watch` records what a page does wrong while a test uses it: console errors and
warnings, uncaught exceptions, requests that failed or were answered with an error status.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
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
    "headless Chromium is needed for the page tests and none was found (not at {path}, nor "
    "playwright's own): run `make setup` (it installs Debian's chromium, or elsewhere "
    "playwright's with `python -m playwright install --with-deps chromium`), or set "
    "ATP_CHROMIUM to the browser's path"
)


class BrowserMissing(RuntimeError):
    pass


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def chromium_path(*, debian: Path = DEBIAN_CHROMIUM) -> Path | None:
    """The browser to drive: ``$ATP_CHROMIUM``, else Debian's, else the one ``playwright
    install chromium`` put in its cache; ``None`` if there is none."""
    if os.environ.get("ATP_CHROMIUM"):
        return Path(os.environ["ATP_CHROMIUM"])
    if _executable(debian):
        return debian
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as p:
        own = Path(p.chromium.executable_path)
    return own if _executable(own) else None


def _check(*, debian: Path = DEBIAN_CHROMIUM) -> Path:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise BrowserMissing(
            "the playwright package is missing: run `make setup` (it is in the dev extra)"
        ) from exc
    path = chromium_path(debian=debian)
    if path is None:
        raise BrowserMissing(MISSING.format(path=debian))
    if not _executable(path):
        raise BrowserMissing(f"ATP_CHROMIUM is {path}, which is not an executable file")
    return path


class ChromiumProcess:
    """Chromium running headless with its DevTools endpoint open (on loopback, a free port);
    :attr:`endpoint` is what :func:`connect` takes."""

    def __init__(self) -> None:
        self.path = _check()
        self._dir = tempfile.TemporaryDirectory(prefix="atp-chromium-")
        log_path = Path(self._dir.name) / "chromium.log"
        with log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [str(self.path), *ARGS, "--remote-debugging-address=127.0.0.1",
                 "--remote-debugging-port=0", f"--user-data-dir={self._dir.name}/profile",
                 "about:blank"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            m = re.search(r"DevTools listening on (ws://\S+)", log_path.read_text(errors="replace"))
            if m:
                self.endpoint = m.group(1)
                return
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise BrowserMissing(
                    f"{self.path} did not start: {log_path.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._dir.cleanup()


@contextmanager
def connect(endpoint: str) -> Iterator[object]:
    """A playwright ``Browser`` connected to a :class:`ChromiumProcess` for the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p.chromium.connect_over_cdp(endpoint)


@contextmanager
def launch() -> Iterator[object]:
    """The browser (a playwright ``Browser``) for as long as the block runs."""
    path = _check()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(path), args=ARGS)
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
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _failed(self, req) -> None:  # type: ignore[no-untyped-def]
        # leaving a page cancels its live refresh's fetch in flight (live.js): not a fault
        if req.resource_type == "fetch" and "ERR_ABORTED" in (req.failure or ""):
            return
        self.problems.append(f"request failed: {req.method} {req.url}: {req.failure}")

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


if __name__ == "__main__":
    found = chromium_path()
    print(found or "no Chromium for the page tests")
    sys.exit(0 if found is not None and _executable(found) else 1)
