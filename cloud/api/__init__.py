"""The HTTP gateway ``atp api serve``: the Flex-Offer interface's resources as a REST API
under ``/api/v1`` for third parties (docs/interface.md, "HTTP").

The paths are a table (:mod:`._routes`) over the request methods FMAN answers on MQTT; reads
answer through the same function, writes go through the same ingest (:mod:`._app`); the
OpenAPI document is generated from the table and the protocol's types (:mod:`._openapi`);
bearer tokens per party live hashed in a 0600 file (:mod:`._tokens`).
"""

from __future__ import annotations

from ._app import Gateway, Settings, make_app
from ._errors import ApiError
from ._openapi import openapi_document
from ._routes import PREFIX, ROUTES, Route, match, params_of, status_of
from ._tokens import ROLES, Token, check_token, issue_token, load_tokens, revoke_tokens

__all__ = [
    "PREFIX",
    "ROLES",
    "ROUTES",
    "ApiError",
    "Gateway",
    "Route",
    "Settings",
    "Token",
    "check_token",
    "issue_token",
    "load_tokens",
    "make_app",
    "match",
    "openapi_document",
    "params_of",
    "revoke_tokens",
    "status_of",
]
