"""Counters a worker's threads share: ingest, the planning cycle and the stats writer.

A bare ``collections.Counter`` updated with ``+=`` from several threads loses increments (the
read and the write are two steps); every change here takes one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping


class Counters:
    """Named numbers, safe to change from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}

    def add(self, key: str, n: float = 1) -> None:
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + n

    def update(self, values: Mapping[str, float]) -> None:
        """Add every value of ``values``."""
        with self._lock:
            for key, n in values.items():
                self._values[key] = self._values.get(key, 0.0) + n

    def set(self, key: str, value: float) -> None:
        with self._lock:
            self._values[key] = value

    def set_max(self, key: str, value: float) -> None:
        with self._lock:
            self._values[key] = max(self._values.get(key, 0.0), value)

    def __getitem__(self, key: str) -> float:
        with self._lock:
            return self._values.get(key, 0.0)

    def snapshot(self) -> dict[str, float]:
        """A copy of every value, taken at one moment."""
        with self._lock:
            return dict(self._values)
