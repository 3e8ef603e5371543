"""Waiting in tests: poll for a condition until a deadline, never sleep and hope.

A test that sleeps a fixed time either waits longer than it needs on a quiet machine or too
little on a loaded one, where it fails (or, when it checks that something did *not* happen,
passes without having proved anything). So a test waits for the condition itself, with a
deadline that is only reached when something is wrong, and the failure says what it waited
for and what it saw last. To show that something did *not* happen, wait first for a positive
signal that proves it would have happened by then (a later message on the same ordered
channel, a counter, a log line), then look.

:func:`wait_for` polls from a plain thread; :func:`until` from inside an event loop (the
condition may then be a coroutine function, for conditions that need I/O).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")

#: Deadlines are generous on purpose: they only matter when the test is failing, and a
#: loaded machine (several test runs on two cores) is many times slower than a quiet one.
DEFAULT_TIMEOUT_S = 20.0


def wait_for(
    predicate: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT_S,
    what: str = "the condition",
    *,
    step: float = 0.05,
    explain: Callable[[], object] | None = None,
) -> T:
    """Call ``predicate`` every ``step`` seconds until it returns something true, and return
    that; after ``timeout`` seconds raise AssertionError naming ``what``, the last value and
    what ``explain()`` returns (a log, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(timeout, what, value, explain))
        time.sleep(step)


async def until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = DEFAULT_TIMEOUT_S,
    what: str = "the condition",
    *,
    step: float = 0.02,
    explain: Callable[[], object] | None = None,
) -> T:
    """:func:`wait_for` for coroutines: the event loop runs while it waits, and
    ``predicate`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        value = cast(T, await got) if inspect.isawaitable(got) else got
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(timeout, what, value, explain))
        await asyncio.sleep(step)


def _timed_out(
    timeout: float, what: str, last: object, explain: Callable[[], object] | None
) -> str:
    text = f"timed out after {timeout:g} s waiting for {what} (last: {last!r})"
    return text if explain is None else f"{text}\n{explain()}"
