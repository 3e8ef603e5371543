"""The dashboard's accounts: a file of names, roles and password hashes, and its sessions.

The accounts file has one line per account, ``NAME ROLE HASH``, the hash in the form
``scrypt$N$r$p$SALT$DIGEST`` (base64); ``atp web user add`` writes it with mode 0600 and the
server refuses a file that others can read. scrypt is in the standard library
(:func:`hashlib.scrypt`), memory-hard, and takes tens of milliseconds a try on purpose; the
server checks passwords on a worker thread and one at a time, pausing after a failure, so a
guesser gets about one try a second.

Every visitor gets a session (a random id in an ``HttpOnly``, ``SameSite=Strict`` cookie)
with its own CSRF token before logging in too: the login and logout forms carry the token, so
another site cannot post them from an operator's browser. Logging in gives a new session id.
Sessions live in memory (a restart logs everybody out), a bounded number, each for at most
:data:`SESSION_S`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._errors import WebError

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
SCHEME = "scrypt"
#: scrypt cost: 2**14 blocks of 8 x 128 bytes (16 MB), about 50 ms a try
N, R, P = 2**14, 8, 1
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SESSION_S = 8 * 3600
MAX_SESSIONS = 256
COOKIE = "atp_session"
FAILURE_PAUSE_S = 1.0


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=64 * 2**20)
    b64 = base64.b64encode
    return f"{SCHEME}${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (slow on purpose; call off the event loop)."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != SCHEME:
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 2**20,
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    name: str
    role: Role
    password_hash: str


def load_accounts(path: Path) -> dict[str, Account]:
    """The accounts of ``path`` (none if it does not exist); an error naming ``file:line``
    for a bad line, and a refusal of a file that others than its owner can read."""
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise WebError(
            f"{path}: mode {mode:04o} lets others read the password hashes; run `chmod 600 {path}`"
        )
    accounts: dict[str, Account] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 3 or parts[1] not in ROLES or not parts[2].startswith(SCHEME + "$"):
            raise WebError(f"{path}:{n}: expected 'NAME viewer|operator scrypt$...'")
        name, role, encoded = parts
        if not NAME.match(name):
            raise WebError(f"{path}:{n}: bad account name {name!r}")
        accounts[name] = Account(name=name, role=role, password_hash=encoded)  # type: ignore[arg-type]  # role checked against ROLES above
    return accounts


def save_account(path: Path, *, name: str, role: Role, password: str) -> bool:
    """Add ``name`` or replace its role and password; the file is written whole to a
    temporary file of mode 0600 and renamed over the old one. Whether it was new."""
    if not NAME.match(name):
        raise WebError(f"bad account name {name!r}: letters, digits and _.@- (at most 64)")
    if role not in ROLES:
        raise WebError(f"bad role {role!r}: one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise WebError("the password must have at least 8 characters")
    accounts = load_accounts(path)
    new = name not in accounts
    accounts[name] = Account(name=name, role=role, password_hash=hash_password(password))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# atp web accounts: NAME ROLE HASH (written by `atp web user add`)\n")
        for a in accounts.values():
            f.write(f"{a.name} {a.role} {a.password_hash}\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return new


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    created: float
    user: str | None = None
    role: Role | None = None
    #: the outcome of the last action, shown once by the page it returns to
    notice: tuple[bool, str] | None = None


class Sessions:
    """The sessions in memory, and the check of a login (one at a time)."""

    def __init__(
        self, *, accounts: Mapping[str, Account], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._accounts = dict(accounts)
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._login_lock = threading.Lock()
        # a name that is not there costs as much as a wrong password
        self._dummy = hash_password(secrets.token_hex(8))

    @property
    def required(self) -> bool:
        """Whether visitors must log in: whenever any account is configured."""
        return bool(self._accounts)

    def get(self, sid: str | None) -> Session | None:
        with self._lock:
            s = self._sessions.get(sid or "")
            if s is not None and self._clock() - s.created > SESSION_S:
                del self._sessions[s.id]
                return None
            return s

    def new(self) -> Session:
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.created)
                del self._sessions[oldest.id]
            s = Session(id=secrets.token_urlsafe(24), csrf=secrets.token_urlsafe(24), created=0)
            s.created = self._clock()
            self._sessions[s.id] = s
            return s

    def drop(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def login(self, old: Session, name: str, password: str) -> Session | None:
        """A new logged-in session for ``name`` if ``password`` is right (``old`` dropped),
        else ``None`` after a pause. Blocking: call it on a worker thread."""
        with self._login_lock:
            account = self._accounts.get(name)
            ok = check_password(password, account.password_hash if account else self._dummy)
            if not ok or account is None:
                time.sleep(FAILURE_PAUSE_S)
                return None
        self.drop(old.id)
        s = self.new()
        s.user, s.role = account.name, account.role
        return s
