"""The local page's password and sessions.

The password file holds either the password itself or its hash as ``foa web password``
writes it (``pbkdf2_sha256$ITERATIONS$SALT$HASH``, base64). Either way the server keeps only a
hash in memory and compares hashes with :func:`hmac.compare_digest` (constant time). Hashing
takes tens to hundreds of milliseconds on purpose, so it runs on a worker thread, never on
the agent's event loop, and login attempts are taken one at a time with a pause after each
failure: a guesser gets about one try a second.

Every visitor gets a session (a random id in an ``HttpOnly``, ``SameSite=Strict`` cookie)
with its own CSRF token, before logging in too: the login form and the configuration form
both carry the token, so another site cannot post to them from the user's browser. Logging in
gives a new session id (an id known before login is worth nothing after it). Sessions live in
memory (a restart logs everybody out), a bounded number of them, each for at most
:data:`SESSION_S`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.config import Secret

SCHEME = "pbkdf2_sha256"
ITERATIONS = 200_000
SESSION_S = 8 * 3600
MAX_SESSIONS = 64
COOKIE = "foa_session"
FAILURE_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class PasswordHash:
    iterations: int
    salt: bytes
    digest: bytes

    def encode(self) -> str:
        b64 = base64.b64encode
        return f"{SCHEME}${self.iterations}${b64(self.salt).decode()}${b64(self.digest).decode()}"

    def matches(self, candidate: str) -> bool:
        """Whether ``candidate`` is the password (slow on purpose; call off the loop)."""
        got = _pbkdf2(candidate, self.salt, self.iterations)
        return hmac.compare_digest(got, self.digest)


def _pbkdf2(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def hash_password(password: str, *, iterations: int = ITERATIONS) -> PasswordHash:
    salt = secrets.token_bytes(16)
    return PasswordHash(
        iterations=iterations, salt=salt, digest=_pbkdf2(password, salt, iterations)
    )


def parse_hash(text: str) -> PasswordHash | None:
    """The hash ``foa web password`` wrote, or ``None`` if ``text`` is not one (it is then
    the password itself)."""
    parts = text.split("$")
    if len(parts) != 4 or parts[0] != SCHEME or not parts[1].isdigit():
        return None
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except ValueError:
        return None
    if not salt or len(digest) != 32 or int(parts[1]) < 1:
        return None
    return PasswordHash(iterations=int(parts[1]), salt=salt, digest=digest)


async def password_hash(secret: Secret) -> PasswordHash:
    """The hash to check logins against, from what the password file holds."""
    text = secret.reveal()
    parsed = parse_hash(text)
    if parsed is not None:
        return parsed
    return await asyncio.to_thread(hash_password, text)


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    created: float
    authenticated: bool = False
    #: what the login page shows after a failure or a logout (once)
    notice: str = ""


class Sessions:
    """The open sessions, by id; the oldest go when there are too many."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._now = clock
        self._by_id: dict[str, Session] = {}

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        s = self._by_id.get(session_id)
        if s is None:
            return None
        if self._now() - s.created > SESSION_S:
            del self._by_id[session_id]
            return None
        return s

    def new(self, *, authenticated: bool = False) -> Session:
        while len(self._by_id) >= MAX_SESSIONS:
            # anonymous sessions go first, then the oldest logged-in ones
            victim = min(self._by_id.values(), key=lambda s: (s.authenticated, s.created))
            del self._by_id[victim.id]
        s = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            created=self._now(),
            authenticated=authenticated,
        )
        self._by_id[s.id] = s
        return s

    def drop(self, session: Session) -> None:
        self._by_id.pop(session.id, None)


def csrf_ok(session: Session | None, token: str) -> bool:
    return session is not None and bool(token) and hmac.compare_digest(session.csrf, token)


def cookie(session: Session | None) -> str:
    """The ``Set-Cookie`` value for ``session`` (``None``: delete the cookie)."""
    if session is None:
        return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    return f"{COOKIE}={session.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_S}"
