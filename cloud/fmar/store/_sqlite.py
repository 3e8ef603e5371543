"""The market store in one SQLite file (WAL): the default, for a service on one host.

SQLite has one writer at a time: a write is a ``BEGIN IMMEDIATE`` transaction, so an order's
check that its gate is open and its insert are atomic against the gate's closing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import MarketStoreError
from ._sql import LATEST, Row, SqlMarketStore


class SqliteMarketStore(SqlMarketStore):
    dialect = "sqlite"

    def __init__(
        self, *, path: str | Path, readonly: bool = False, timeout_s: float = 30.0
    ) -> None:
        self.path = Path(path)
        self.where = str(path)
        self.readonly = readonly
        self._in_tx = False
        self._conn: sqlite3.Connection | None = None
        try:
            if readonly:
                if not self.path.is_file():
                    raise MarketStoreError(f"{self.where}: no market store here")
                uri = self.path.resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=timeout_s,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._check_version()
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            self.close()
            raise MarketStoreError(f"cannot open the market store {self.where}: {exc}") from None
        except MarketStoreError:
            self.close()
            raise

    def _check_version(self) -> None:
        try:
            have = self._version()
        except MarketStoreError:
            raise MarketStoreError(f"{self.where}: not a market store") from None
        if have > LATEST:
            raise MarketStoreError(f"{self.where}: market schema {have} is newer than {LATEST}")

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise MarketStoreError(f"{self.where}: the store is closed")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def write(self) -> Iterator[SqliteMarketStore]:
        if self.readonly:
            raise MarketStoreError(f"{self.where}: opened read-only")
        if self._in_tx:
            yield self
            return
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise MarketStoreError(f"{self.where}: cannot begin a write: {exc}") from exc
        self._in_tx = True
        try:
            yield self
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise MarketStoreError(f"{self.where}: commit failed: {exc}") from exc
        finally:
            self._in_tx = False

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            cur = self.conn.execute(sql, tuple(params))
            cols = [d[0] for d in cur.description or ()]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        except sqlite3.Error as exc:
            raise MarketStoreError(f"{self.where}: {exc}") from exc

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self.conn.execute(sql, tuple(params)).rowcount
        except sqlite3.Error as exc:
            raise MarketStoreError(f"{self.where}: {exc}") from exc
