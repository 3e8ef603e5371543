"""Writing files that hold secrets: atomically, and never readable by anyone but the owner."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ._errors import SiteError

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


def write_file(path: Path, data: str | bytes, *, mode: int = PUBLIC_MODE) -> None:
    """Replace ``path`` with ``data`` atomically; the file has ``mode`` from its first byte.

    The temporary file is created 0600 by :func:`tempfile.mkstemp` and only then filled, so a
    secret is never on disk with wider permissions, even for a moment; a crash leaves either
    the old file or the new one.

    A file that is replaced keeps its owner and group: root provisioning into a broker
    directory that belongs to the ``mosquitto`` user must not leave it a file it cannot read."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            old = path.stat()
        except FileNotFoundError:
            old = None
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):  # only root can; others keep theirs
                    os.chown(tmp, old.st_uid, old.st_gid)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SiteError(f"{path}: cannot write ({exc.strerror})") from exc


def write_secret(path: Path, data: str | bytes) -> None:
    """:func:`write_file` with mode 0600."""
    write_file(path, data, mode=SECRET_MODE)
