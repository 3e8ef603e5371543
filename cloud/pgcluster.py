"""A throwaway PostgreSQL cluster from Debian's packages: for the tests and the benchmarks.

``initdb`` into a fresh directory, ``pg_ctl start`` on a free loopback port with the socket in
that directory, ``CREATE DATABASE`` per test (from a template, which is fast), and on close
``pg_ctl stop -m immediate`` and the directory removed. Nothing of the machine's own
PostgreSQL service is used or touched.

PostgreSQL refuses to run as root, so under root (CI) the cluster runs as the ``postgres`` user
the Debian package creates, through ``runuser``, in a directory that user owns; as anybody
else it runs as that user. The superuser of the cluster is ``atp`` with ``trust``
authentication on loopback only: a cluster for one test run, never for data.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from .broker import free_port

INSTALL_HINT = (
    "PostgreSQL is not installed: run `sudo apt-get install postgresql` (Debian/Ubuntu), "
    "or `make setup`, then try again."
)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgClusterError(RuntimeError):
    """PostgreSQL is missing, or the cluster did not start; the message says why."""


def bin_dir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``: the newest under ``/usr/lib/postgresql``
    (Debian keeps them off ``PATH``), else wherever ``PATH`` has them."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PgClusterError(INSTALL_HINT)


class PgCluster:
    """A PostgreSQL cluster that lives as long as the ``with`` block (or until :meth:`close`).

    ``settings`` are server settings (``-c key=value``); the tests turn ``fsync`` off, the
    benchmarks keep PostgreSQL's defaults."""

    def __init__(
        self,
        *,
        port: int | None = None,
        user: str = "atp",
        settings: dict[str, str] | None = None,
    ) -> None:
        if not _NAME.match(user):
            raise PgClusterError(f"{user!r} is not a plain role name")
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.user = user
        self.settings = dict(settings or {})
        self._run_as: str | None = "postgres" if os.geteuid() == 0 else None
        self.workdir: Path | None = None
        self._started = False

    # -- paths and commands --------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.workdir is not None, "the cluster is not started"
        return self.workdir / "data"

    @property
    def log_file(self) -> Path:
        assert self.workdir is not None, "the cluster is not started"
        return self.workdir / "server.log"

    def _cmd(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        return ["runuser", "-u", self._run_as, "--", *args]

    def _run(self, *args: str, timeout: float = 120) -> None:
        try:
            subprocess.run(self._cmd(*args), check=True, capture_output=True, timeout=timeout)
        except subprocess.CalledProcessError as exc:
            out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(
                errors="replace"
            )
            raise PgClusterError(f"{Path(args[0]).name} failed: {out.strip()[-2000:]}") from None
        except subprocess.TimeoutExpired:
            raise PgClusterError(f"{Path(args[0]).name} did not finish in {timeout:g} s") from None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> PgCluster:
        binaries = bin_dir()
        self.workdir = Path(tempfile.mkdtemp(prefix="atp-pg-"))
        if self._run_as is not None:
            try:
                owner = pwd.getpwnam(self._run_as)
            except KeyError:
                raise PgClusterError(INSTALL_HINT) from None
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
        self._run(
            str(binaries / "initdb"),
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = [
            f"-p {self.port}",
            f"-k {self.workdir}",
            f"-c listen_addresses={self.host}",
            *(f"-c {k}={v}" for k, v in self.settings.items()),
        ]
        self._run(
            str(binaries / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._started = True
        return self

    def close(self) -> None:
        if self.workdir is None:
            return
        if self._started:
            with contextlib.suppress(PgClusterError):
                self._run(
                    str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"
                )
            self._started = False
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    def __enter__(self) -> PgCluster:
        return self.start() if not self._started else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- databases -----------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str, *, template: str = "template0") -> str:
        """A new, empty database (a copy of ``template``); returns its URL."""
        self._admin(f'CREATE DATABASE "{_checked(name)}" TEMPLATE "{_checked(template)}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')

    def version(self) -> str:
        """The server's version, e.g. ``15.14``."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as c:
            row = c.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "?"

    def _admin(self, sql: str) -> None:
        import psycopg  # the cloud extra; imported here so `cloud.pgcluster` imports light

        try:
            with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as c:
                c.execute(sql)  # built from checked names only
        except psycopg.Error as exc:
            raise PgClusterError(f"{sql}: {exc}") from None


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise PgClusterError(f"{name!r} is not a plain database name")
    return name
