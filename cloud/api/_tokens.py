"""Bearer tokens of the HTTP gateway: who may call it, for which party, in which role.

A token is ``atp_{ID}_{SECRET}``: ``ID`` (12 hex digits) names its line in the tokens file,
``SECRET`` is 32 random bytes. The file keeps, per token, ``ID ROLE PARTY SHA256(SECRET)
CREATED``: never the secret, which is shown once when the token is issued. A fast hash is
enough here (unlike a password, a 256-bit random secret cannot be guessed from its hash),
and it keeps the check of every request in microseconds. The file is written whole to a
temporary file of mode 0600 and renamed; the server refuses a file that others can read.

Roles: an ``agent`` token speaks for one agent (its ``PARTY``) and only ever reads and
writes that agent's data; an ``operator`` token (a service such as a DSO portal or the
operator's own tools) may name any agent.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._errors import ApiError

Role = Literal["agent", "operator"]
ROLES: tuple[Role, ...] = ("agent", "operator")
PARTY = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_TOKEN = re.compile(r"^atp_([0-9a-f]{12})_([A-Za-z0-9_-]{20,64})$")
HEADER = "# atp api tokens: ID ROLE PARTY SHA256 CREATED (written by `atp api token issue`)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """One issued token as stored: everything but its secret."""

    id: str
    role: Role
    party: str
    digest: str
    created: int


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def load_tokens(path: Path) -> dict[str, Token]:
    """The tokens of ``path`` by id (none if it does not exist); an error naming
    ``file:line`` for a bad line, and a refusal of a file that others can read."""
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ApiError(
            f"{path}: mode {mode:04o} lets others read the token hashes; run `chmod 600 {path}`"
        )
    tokens: dict[str, Token] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if (
            len(parts) != 5
            or not re.fullmatch(r"[0-9a-f]{12}", parts[0])
            or parts[1] not in ROLES
            or not PARTY.match(parts[2])
            or not re.fullmatch(r"[0-9a-f]{64}", parts[3])
            or not parts[4].isdigit()
        ):
            raise ApiError(f"{path}:{n}: expected 'ID agent|operator PARTY SHA256 CREATED'")
        tid, role, party, digest, created = parts
        tokens[tid] = Token(id=tid, role=role, party=party, digest=digest, created=int(created))  # type: ignore[arg-type]  # role in ROLES, checked above
    return tokens


def _save(path: Path, tokens: dict[str, Token]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(HEADER + "\n")
        for t in tokens.values():
            f.write(f"{t.id} {t.role} {t.party} {t.digest} {t.created}\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def issue_token(path: Path, *, party: str, role: Role, now: int) -> tuple[Token, str]:
    """A new token for ``party`` in ``role``, stored (hashed) in ``path``; the token and
    the secret string to hand over (the only time it exists outside the caller)."""
    if not PARTY.match(party):
        raise ApiError(f"bad party {party!r}: letters, digits and _.:@- (at most 128)")
    if role not in ROLES:
        raise ApiError(f"bad role {role!r}: one of {', '.join(ROLES)}")
    tokens = load_tokens(path)
    tid = secrets.token_hex(6)
    while tid in tokens:
        tid = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = Token(id=tid, role=role, party=party, digest=_digest(secret), created=now)
    tokens[tid] = token
    _save(path, tokens)
    return token, f"atp_{tid}_{secret}"


def revoke_tokens(path: Path, *, token_id: str | None = None, party: str | None = None) -> int:
    """Remove the token ``token_id``, or every token of ``party``; how many were removed."""
    tokens = load_tokens(path)
    keep = {
        k: t
        for k, t in tokens.items()
        if not (k == token_id or (party is not None and t.party == party))
    }
    removed = len(tokens) - len(keep)
    if removed:
        _save(path, keep)
    return removed


def check_token(tokens: dict[str, Token], presented: str) -> Token | None:
    """The token ``presented`` (the whole ``atp_...`` string) is, if it is a valid one."""
    m = _TOKEN.match(presented)
    if m is None:
        return None
    token = tokens.get(m.group(1))
    if token is None:
        return None
    return token if hmac.compare_digest(token.digest, _digest(m.group(2))) else None
