"""The agent's store refuses a file that is not an agent's store, in one line, writing nothing.

An operator who points ``foa status --store`` (or ``agent.store``) at FMAN's database or at
some other file gets a one-line error naming the file, and the file is left exactly as it was:
no agent tables created in it, not a byte changed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.errors import StoreError
from agent.store import Store
from cloud.fman import open_store


def _fman_db(path: Path) -> Path:
    open_store(path).close()
    return path


def _fingerprint(path: Path) -> tuple[str, list[str]]:
    """The file's bytes and its write-ahead log's, and its tables. (SQLite's shared-memory
    index ``-shm`` and an empty ``-wal``, which any reader of a WAL database may create, hold
    no data.)"""
    digest = hashlib.sha256(path.read_bytes())
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        digest.update(wal.read_bytes())
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
    finally:
        conn.close()
    return digest.hexdigest(), tables


@pytest.mark.parametrize(
    "args", [["status"], ["status", "--json"], ["offers"], ["offers", "--all"], ["devices"]]
)
def test_cli_on_fmans_database_says_so_in_one_line_and_writes_nothing(tmp_path, args):
    db = _fman_db(tmp_path / "fman.db")
    before = _fingerprint(db)
    result = CliRunner().invoke(main, [*args, "--store", str(db)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert str(db) in lines[0] and "not an agent store" in lines[0]
    assert "FMAN" in lines[0]
    assert _fingerprint(db) == before


def test_the_daemons_store_refuses_fmans_database_before_writing(tmp_path):
    db = _fman_db(tmp_path / "fman.db")
    before = _fingerprint(db)
    with pytest.raises(StoreError, match="not an agent store"):
        Store(path=db)
    assert _fingerprint(db) == before
    assert "outbox" not in before[1]


def test_a_file_that_is_not_a_database_gets_one_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n" * 100)
    result = CliRunner().invoke(main, ["status", "--store", str(path)])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert str(path) in line and "not an SQLite database" in line
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store(path=path)
    assert path.read_text() == "shopping list\n" * 100


def test_an_empty_sqlite_file_becomes_a_store_but_a_reader_refuses_it(tmp_path):
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # an empty database: no tables yet
    result = CliRunner().invoke(main, ["status", "--store", str(path)])
    assert result.exit_code == 1 and "has no tables" in result.output
    with Store(path=path) as s:  # the daemon may make its store in an empty file
        assert s.outbox_size() == 0


def test_readers_change_nothing_in_an_agents_store(tmp_path):
    path = tmp_path / "foa.db"
    with Store(path=path) as s:
        s.set("agent", "house-1")
    before = _fingerprint(path)
    for args in (["status"], ["offers", "--all"], ["devices"]):
        result = CliRunner().invoke(main, [*args, "--store", str(path)])
        assert result.exit_code == 0, result.output
    assert _fingerprint(path) == before
