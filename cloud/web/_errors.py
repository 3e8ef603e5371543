"""The dashboard's one exception: a user error said in a line (bad accounts file, bind)."""

from __future__ import annotations


class WebError(Exception):
    """Something about the dashboard's configuration a user must fix; the message says
    what and where (``file:line``)."""
