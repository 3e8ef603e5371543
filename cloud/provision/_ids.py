"""Account ids: which names an agent or a service account may have.

An account id is an MQTT username, a client id (the broker ties the two together), a topic
level (``atp/v1/a/<id>/...``), a line of the password file (``id:hash``) and a directory
name (``devices/<id>``), so it is held to what all five accept: letters, digits and
``_ . @ -``, starting with a letter or a digit, at most 128 characters. No ``:`` (it ends the
user name in a password-file line), no ``/ + # $`` (topic syntax), no whitespace or newline
(a new line in the password file), no leading dot (``..`` would name the parent directory).

Service accounts have fixed names: ``fmar``, ``dso``, ``fman-<worker>`` for each FMAN worker,
and the broker's own ``atp-admin`` and ``atp-sessions``; no agent may take one of them.
"""

from __future__ import annotations

import re

from ._errors import AccountError

#: The documented account-id alphabet (docs/deploy.md); ``fullmatch`` so that no trailing
#: newline slips through, as it does past ``re.match`` with ``$``.
ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
#: An FMAN worker's name within its service (systemd's instance name, ``atp-fman@<worker>``).
WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
#: The broker's administrator (dynamic-security commands) and the account that ends a revoked
#: account's sessions; both usable on the broker host's admin socket only.
ADMIN = "atp-admin"
SESSIONS = "atp-sessions"
#: Account names that are not agents' (``fman-<worker>`` besides).
RESERVED = ("fman", "fmar", "dso", ADMIN, SESSIONS)


def check_account_id(account_id: str, what: str = "account id") -> str:
    """``account_id`` if it is in the alphabet; else :class:`AccountError` saying why."""
    if not ACCOUNT_ID.fullmatch(account_id):
        raise AccountError(
            f"{what} {account_id!r} is not allowed: use letters, digits and _.@- (starting "
            "with a letter or digit, at most 128 characters); no ':', '/', '+', '#', '$', "
            "spaces or line breaks"
        )
    return account_id


def is_service_name(account_id: str) -> bool:
    return account_id in RESERVED or account_id.startswith(("fman-", "atp-"))


def check_agent_id(agent_id: str) -> str:
    """The id if an agent may have it; else :class:`AccountError` saying why."""
    check_account_id(agent_id, "agent id")
    if is_service_name(agent_id):
        raise AccountError(
            f"{agent_id!r} is a service account's name (fman, fman-<worker>, fmar, dso, atp-...); "
            "pick another agent id"
        )
    return agent_id


def service_account(service: str, worker: str | None = None) -> str:
    """The account of ``service``: ``fman-<worker>`` (one per FMAN worker), ``fmar`` or
    ``dso`` (the market's and the DSO's, one each: the ACL binds them by name)."""
    if service == "fman":
        worker = worker or "1"
        if not WORKER_ID.fullmatch(worker):
            raise AccountError(
                f"worker {worker!r} is not allowed: letters, digits, _ and - (at most 32)"
            )
        return f"fman-{worker}"
    if service in ("fmar", "dso"):
        if worker is not None:
            raise AccountError(f"{service} has one account; --worker is for fman")
        return service
    raise AccountError(f"unknown service {service!r}; the policy knows fman, fmar and dso")
