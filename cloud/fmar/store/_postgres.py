"""The market store on PostgreSQL (psycopg 3), e.g. in the database FMAN's workers share.

Writes are transactions; an order's insert reads its gate's row ``FOR SHARE``, so it waits
for a gate's closing that is under way (and then sees the gate closed) rather than slipping
into a book already being cleared. A reader runs read-only transactions and never migrates.
The URL's password never appears in a message (:attr:`where` leaves it out).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ...fman.store import describe
from .._errors import MarketStoreError
from ._sql import LATEST, Row, SqlMarketStore


class PostgresMarketStore(SqlMarketStore):
    dialect = "postgresql"
    _LOCK = " FOR SHARE"

    def __init__(self, *, url: str, readonly: bool = False, connect_timeout_s: int = 10) -> None:
        self.where = describe(url)
        self.readonly = readonly
        self._in_tx = False
        self._conn: psycopg.Connection[Row] | None = None
        try:
            self._conn = psycopg.connect(
                url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=connect_timeout_s,
                application_name="atp-fmar",
            )
            if readonly:
                self._conn.execute("SET default_transaction_read_only = on")
                have = self._version()
                if have > LATEST:
                    raise MarketStoreError(f"{self.where}: market schema {have} > {LATEST}")
            else:
                self._migrate()
        except psycopg.Error as exc:
            self.close()
            raise MarketStoreError(f"cannot open the market store {self.where}: {exc}") from None
        except MarketStoreError:
            self.close()
            raise

    @property
    def conn(self) -> psycopg.Connection[Row]:
        if self._conn is None or self._conn.closed:
            raise MarketStoreError(f"{self.where}: the store is closed")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def write(self) -> Iterator[PostgresMarketStore]:
        if self.readonly:
            raise MarketStoreError(f"{self.where}: opened read-only")
        if self._in_tx:
            yield self
            return
        self._in_tx = True
        try:
            with self.conn.transaction():
                yield self
        except psycopg.Error as exc:
            raise MarketStoreError(f"{self.where}: {exc}") from exc
        finally:
            self._in_tx = False

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self.conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall()
        except psycopg.errors.UndefinedTable:
            raise MarketStoreError(f"{self.where}: not a market store") from None
        except psycopg.Error as exc:
            raise MarketStoreError(f"{self.where}: {exc}") from exc

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self.conn.execute(sql.replace("?", "%s"), tuple(params)).rowcount
        except psycopg.Error as exc:
            raise MarketStoreError(f"{self.where}: {exc}") from exc
