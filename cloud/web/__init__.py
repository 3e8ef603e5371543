"""The operator dashboard ``atp web``: FMAN's store as web pages (docs/operator.md).

Server-rendered pages (HTML and SVG drawn in Python, two small scripts for sorting tables and
live updates), read through the store's read-only reader and the same report functions as the
``atp`` commands, served by Starlette on uvicorn. Accounts with a role (viewer or operator)
live in a file of scrypt hashes; see :mod:`._accounts` and :mod:`._app` for the security.
FMAN's store is only read; the markets page's actions (operator role) change FMAR's through
:mod:`cloud.fmar.control`, as ``atp market close|open|set`` do.
"""

from __future__ import annotations

from ._accounts import ROLES, Account, load_accounts, save_account
from ._app import Settings, check_bind, make_app
from ._errors import WebError

__all__ = [
    "ROLES",
    "Account",
    "Settings",
    "WebError",
    "check_bind",
    "load_accounts",
    "make_app",
    "save_account",
]
