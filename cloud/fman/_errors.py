"""The FMAN exception tree.

    FmanError              anything the aggregator service refuses or cannot do
    ├── ConfigError        the worker's configuration is wrong (names the key)
    ├── StoreError         the store cannot be opened or written (wraps sqlite3 and psycopg)
    └── BusError           the broker cannot be reached or refused us (wraps paho's codes)

Bad *messages* are not exceptions here: ingest answers them with a reject and counts them, and
the worker carries on.
"""

from __future__ import annotations


class FmanError(Exception):
    """Root of every error raised by :mod:`cloud.fman`."""


class ConfigError(FmanError):
    """A configuration value is missing or wrong; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class StoreError(FmanError):
    """The store failed; the message says which database and why."""


class BusError(FmanError):
    """The MQTT connection failed; the message names the broker."""
