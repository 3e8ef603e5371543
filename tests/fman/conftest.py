"""Fixtures of the FMAN tests: worker processes that never outlive their test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .harness import WorkerProc


@pytest.fixture
def spawn(tmp_path) -> Iterator[Callable[..., WorkerProc]]:
    """``spawn(config, worker_id)`` starts an ``atp fman run``; all are stopped at teardown."""
    procs: list[WorkerProc] = []

    def start(config, worker_id: str) -> WorkerProc:
        w = WorkerProc(config=config, worker_id=worker_id, log_dir=tmp_path).start()
        procs.append(w)
        return w

    yield start
    for w in procs:
        w.stop()
