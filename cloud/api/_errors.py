"""The HTTP gateway's one exception: a user error said in a line (a bad token file, a bind,
a TLS file). Bad *requests* are not exceptions: they get an HTTP error with a reason."""

from __future__ import annotations


class ApiError(Exception):
    """Something about the gateway's configuration a user must fix; the message says what
    and where (``file:line``)."""
