"""The store in one SQLite file: the default, embedded, what the demo uses.

Every worker process of one host opens the same file in WAL mode. A write is one
``BEGIN IMMEDIATE`` transaction, so decisions that read the current state and the writes they
lead to are atomic across workers; readers never block writers. Writers of every process
queue on an ``flock`` of ``<file>.lock`` first (the kernel wakes the next one at once) rather
than on SQLite's busy handler, which polls with sleeps.

Opening the file (switching it to WAL, migrating) happens under that same lock: two workers
started at the same moment on a new file used to race there, one switching the file to WAL
while the other held it, and one in six starts failed with ``database is locked``.

A reader (``readonly``) opens the file with ``mode=ro``: it takes no lock, writes nothing
(SQLite may create the ``-wal`` and ``-shm`` files of a WAL database beside it) and refuses a
file that is missing or not at the schema version this code reads.

A file that is not FMAN's (an agent's store, anything else) is refused before anything is
written or created beside it, by a worker and a reader alike: a first look reads the file as
it is on disk (``immutable``: no lock, no ``-wal`` or ``-shm``), and the check is made again
on the real connection (what the first look cannot see, a database whose tables are still
only in its write-ahead log, is a live one).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from .._errors import StoreError
from ._migrations import foreign_kind
from ._sql import Row, SqlStore, not_fman

#: Most values in one ``IN (...)`` list (old SQLite builds allow 999 variables).
_CHUNK = 900


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(
        self,
        *,
        path: str | Path,
        synchronous: Literal["normal", "full"] = "normal",
        timeout_s: float = 30.0,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.where = str(path)
        self.lock_wait_s = 0.0
        self.lock_held_s = 0.0
        self.readonly = readonly
        self._in_tx = False
        self._lock_fd: int | None = None
        self._locked = False
        self._conn: sqlite3.Connection | None = None
        try:
            if readonly:
                self._open_readonly(timeout_s)
            else:
                self._open(synchronous, timeout_s)
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"cannot open the FMAN database {path}: {exc}") from exc
        except StoreError:
            self.close()
            raise

    def _open_readonly(self, timeout_s: float) -> None:
        if not self.path.is_file():
            raise StoreError(f"no FMAN database at {self.path}")
        self._first_look()
        uri = self.path.resolve().as_uri() + "?mode=ro"
        self._conn = sqlite3.connect(
            uri, uri=True, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        self._check_version()

    def _open(self, synchronous: str, timeout_s: float) -> None:
        if str(self.path) != ":memory:":
            self._first_look()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        with self._file_lock():
            conn = self._conn = sqlite3.connect(
                str(self.path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            self._check_kind()  # before the switch to WAL, which writes to the file
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            self._migrate()

    def _first_look(self) -> None:
        """Refuse a file that is plainly not FMAN's database, creating nothing beside it."""
        try:
            if not self.path.is_file() or self.path.stat().st_size == 0:
                return
            with self.path.open("rb") as f:
                header = f.read(16)
        except OSError as exc:
            raise StoreError(f"cannot open the FMAN database {self.path}: {exc}") from exc
        if header != b"SQLite format 3\x00":
            raise StoreError(f"{self.path}: not an SQLite database (is it the right file?)")
        try:
            uri = self.path.resolve().as_uri() + "?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True)
            try:
                tables = {
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                columns = {r[1] for r in conn.execute("PRAGMA table_info(offers)")}
            finally:
                conn.close()
        except sqlite3.Error:
            return  # a file in the middle of a write, say: the real connection decides
        problem = foreign_kind(tables, columns)
        if problem:
            raise StoreError(not_fman(str(self.path), problem))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.where}: the store is closed")
        return self._conn

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._lock_fd is None or self._locked:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._locked = True
        try:
            yield
        finally:
            self._locked = False
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def write(self, *, offers: Collection[str] | None = None) -> Iterator[SqliteStore]:
        """An immediate (write-locked) transaction; SQLite has one writer, so ``offers``
        changes nothing here."""
        if self.readonly:
            raise StoreError(f"{self.where}: opened read-only")
        if self._in_tx:
            yield self
            return
        conn = self.conn
        t0 = time.perf_counter()
        with self._file_lock():
            t1 = time.perf_counter()
            self.lock_wait_s += t1 - t0
            try:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise StoreError(f"{self.where}: cannot begin a write: {exc}") from exc
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
                        raise StoreError(f"{self.where}: commit failed: {exc}") from exc
                finally:
                    self._in_tx = False
            finally:
                self.lock_held_s += time.perf_counter() - t1

    # -- primitives ------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            cur = self.conn.execute(sql, params)
            cols = [d[0] for d in cur.description or ()]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        except sqlite3.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self.conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        try:
            return self.conn.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _in(self, column: str, values: Collection[Any]) -> Iterator[tuple[str, list[Any]]]:
        items = list(values)
        if not items:
            yield "1 = 0", []
            return
        for i in range(0, len(items), _CHUNK):
            chunk = items[i : i + _CHUNK]
            yield f"{column} IN ({','.join('?' * len(chunk))})", chunk

    def _db_now(self) -> float:
        return time.time()  # one host: the workers share this clock

    def _tables(self) -> set[str]:
        return {r["name"] for r in self._rows("SELECT name FROM sqlite_master WHERE type='table'")}

    def _columns(self, table: str) -> set[str]:
        return {r["name"] for r in self._rows(f"PRAGMA table_info({table})")}
