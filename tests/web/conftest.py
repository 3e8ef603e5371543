"""Fixtures of the page tests: one headless Chromium for the session, a fresh browser context
and page per test that records console errors and failed requests (:class:`Watch`), checked
at the end of every test.

A site's tests start the site (``tests/web/sites.py``) in a module-scoped fixture and use
``page`` (and ``watch`` to allow a status they provoke on purpose).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.browser import BrowserMissing, ChromiumProcess, Watch, connect


@pytest.fixture(scope="session")
def chromium() -> Iterator[ChromiumProcess]:
    """Debian's Chromium, headless, for the whole session; a clear failure when missing."""
    try:
        proc = ChromiumProcess()
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="module")
def browser(chromium: ChromiumProcess) -> Iterator[Any]:
    with connect(chromium.endpoint) as b:
        yield b


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Any, watch: Watch) -> Iterator[Any]:
    """A page in a fresh context (no cookies); at the end of the test it must have had no
    console error or warning, uncaught exception or failed request."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    watch.attach(pg)
    try:
        yield pg
        watch.assert_clean()
    finally:
        context.close()
