"""Where a store is: a file path (SQLite) or a ``postgresql://`` URL, and how to name it in a
message without its password."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_url(location: str) -> bool:
    return "://" in location


def is_postgres(location: str) -> bool:
    return location.split("://", 1)[0].lower() in POSTGRES_SCHEMES and is_url(location)


def describe(location: str) -> str:
    """``location`` fit for a log line: a URL without its password (in the user part or a
    ``password`` parameter); a path as it is."""
    if not is_url(location):
        return location
    try:
        parts = urlsplit(location)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.split(':', 1)[0]}@{host}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return f"{location.split('://', 1)[0]}://(unreadable URL)"


def check(location: str) -> str | None:
    """What is wrong with ``location``, or ``None``."""
    if not location.strip():
        return "empty: give a file path (SQLite) or a postgresql:// URL"
    if not is_url(location):
        return None
    scheme = location.split("://", 1)[0]
    if scheme.lower() not in POSTGRES_SCHEMES:
        return f"{scheme}:// is not a store: give a file path (SQLite) or a postgresql:// URL"
    try:
        parts = urlsplit(location)
        _ = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        return f"{describe(location)} is not a valid URL: {exc}"
    if not parts.path.strip("/"):
        return f"{describe(location)} names no database (postgresql://user@host:port/DATABASE)"
    return None
