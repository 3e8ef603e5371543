"""Mosquitto password files, written without ``mosquitto_passwd``.

Mosquitto 2.0 stores ``username:$7$<iterations>$<salt>$<hash>`` per line: PBKDF2-HMAC-SHA512
with a 12-byte random salt and a 64-byte derived key, both base64-encoded. ``$6$<salt>$<hash>``
lines are the older scheme, SHA-512 of the password followed by the salt; Mosquitto 2.0 still
reads them, and VerneMQ's vmq_passwd reads only them (it fails on a ``$7$`` line), so a site
whose broker is the VerneMQ cluster of ``deploy/cloud`` uses ``sha512``.

We keep ``mosquitto_passwd``'s default of 101 iterations on purpose: every password made here
is 32 random bytes (256 bits), which no amount of guessing reaches, so key stretching would add
no security while costing the broker CPU on every CONNECT (a whole fleet reconnects at once
after an outage). A human-chosen password would need far more iterations; we never ask for one.

The parsing and formatting below are pure; :func:`write_entries` is the one function that
touches the disk (atomically, mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path

from ._errors import AccountError, SiteError
from ._files import write_secret

ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64
#: Hash schemes: ``pbkdf2-sha512`` (``$7$``, Mosquitto's default) and ``sha512`` (``$6$``).
SCHEMES = ("pbkdf2-sha512", "sha512")


def new_password() -> str:
    """A fresh random password: 32 bytes, URL-safe base64 (no ``:`` and no whitespace)."""
    return secrets.token_urlsafe(32)


def hash_password(
    password: str,
    *,
    scheme: str = "pbkdf2-sha512",
    iterations: int = ITERATIONS,
    salt: bytes | None = None,
) -> str:
    """The hash the broker checks ``password`` against, in ``scheme`` (see :data:`SCHEMES`)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    b64 = base64.b64encode
    if scheme == "sha512":
        digest = hashlib.sha512(password.encode() + salt).digest()
        return f"$6${b64(salt).decode()}${b64(digest).decode()}"
    if scheme != "pbkdf2-sha512":
        raise ValueError(f"unknown password hash {scheme!r} (one of {', '.join(SCHEMES)})")
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` or ``$6$`` hash (as the broker would decide)."""
    try:
        parts = hashed.split("$")
        if parts[:2] == ["", "7"] and len(parts) == 5:
            expected = base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac(
                "sha512",
                password.encode(),
                base64.b64decode(parts[3]),
                int(parts[2]),
                len(expected),
            )
        elif parts[:2] == ["", "6"] and len(parts) == 4:
            expected = base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode() + base64.b64decode(parts[2])).digest()
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def parse(text: str, *, source: str = "password file") -> dict[str, str]:
    """``{username: hash}`` from a password file's text, in file order."""
    entries: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed.startswith("$"):
            raise SiteError(f"{source}, line {n}: not a 'username:hash' entry")
        entries[user] = hashed
    return entries


def format_entries(entries: Mapping[str, str]) -> str:
    return "".join(f"{user}:{hashed}\n" for user, hashed in entries.items())


def read_entries(path: Path) -> dict[str, str]:
    try:
        return parse(path.read_text(), source=str(path))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SiteError(f"{path}: cannot read the password file ({exc.strerror})") from exc


def write_entries(path: Path, entries: Mapping[str, str]) -> None:
    write_secret(path, format_entries(entries))


def set_password(
    path: Path, user: str, password: str, *, replace: bool = False, scheme: str = SCHEMES[0]
) -> None:
    """Add ``user`` to the password file at ``path`` (or change its password if ``replace``)."""
    entries = read_entries(path)
    if user in entries and not replace:
        raise AccountError(f"{user!r} is already in {path}; revoke it first or use --rotate")
    entries[user] = hash_password(password, scheme=scheme)
    write_entries(path, entries)


def remove_user(path: Path, user: str) -> bool:
    """Remove ``user`` from the password file; ``False`` when it was not there."""
    entries = read_entries(path)
    if entries.pop(user, None) is None:
        return False
    write_entries(path, entries)
    return True
