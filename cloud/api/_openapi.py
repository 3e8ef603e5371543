"""The gateway's OpenAPI 3.1 document, generated from :data:`._routes.ROUTES` and the
protocol's own msgspec types (``msgspec.json.schema_components``): the parameters of each path
are the fields of its request method's parameter struct, the bodies are ``FlexOffer``,
``MeasurementParams``, ``Response``, ``Ack`` and ``Reject`` as the wire defines them.
OpenAPI 3.1 takes JSON Schema 2020-12 as it is, so the schemas need no translation.
"""

from __future__ import annotations

from typing import Any

import msgspec

import protocol
from protocol._request import METHODS, MeasurementParams

from ._routes import ROUTES, Route

REF = "#/components/schemas/{name}"
_BODIES: tuple[type[msgspec.Struct], ...] = (
    protocol.FlexOffer,
    MeasurementParams,
    protocol.Response,
    protocol.Ack,
    protocol.Reject,
)


def _ref(cls: type) -> dict[str, str]:
    return {"$ref": REF.format(name=cls.__name__)}


def _param_schemas() -> dict[str, dict[str, Any]]:
    """Each request method's parameters, by method: ``{name: schema}`` (wire names)."""
    out: dict[str, dict[str, Any]] = {}
    for method, cls in METHODS.items():
        _, comps = msgspec.json.schema_components([cls], ref_template=REF)
        props = comps[cls.__name__].get("properties", {})
        out[method] = {k: v for k, v in props.items()}
    return out


def _parameters(route: Route, schemas: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    own = schemas.get(route.method or "", {})
    params: list[dict[str, Any]] = []
    for name in route.path_params:
        schema = own.get(name) or schemas["flexoffer/get"]["id"]
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name in route.query:
        schema = own.get(name, {"type": "string", "maxLength": 1024})
        params.append({"name": name, "in": "query", "required": name in own, "schema": schema})
    params.append(
        {
            "name": "agent",
            "in": "query",
            "required": False,
            "description": "The agent spoken for: an agent's token may only name its own "
            "agent (and need not); an operator's token must name one.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        }
    )
    return params


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(route: Route) -> dict[str, Any]:
    resp = _ref(protocol.Response)
    out: dict[str, Any] = {}
    if route.stream:
        out["200"] = {
            "description": "An event stream: `event: offer`, `data:` the offer as listed by "
            "GET /flexoffer.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    elif route.write in ("offer", "offer/delete"):
        out["200"] = _json(
            {**resp, "description": "`status` ok, `body` the Ack"}, "Accepted (the Ack)."
        )
        out["422"] = _json(resp, "Refused: `body` is the Reject, with every reason.")
    else:
        out["200"] = _json(resp, "`status` ok and the resource in `body`.")
    if route.path_params == ("id",) and route.http == "GET":
        out["404"] = _json(resp, "No such offer of this agent.")
    out["400"] = _json(resp, "A bad parameter or body: `reason` names the field.")
    out["401"] = _json(resp, "No token, or one that is unknown or revoked.")
    out["403"] = _json(resp, "The token may not read or write this agent's data.")
    out["429"] = _json(resp, "Rate limited: the `Retry-After` header says when to ask again.")
    return out


def openapi_document(*, version: str) -> dict[str, Any]:
    """The whole document; ``version`` is the package's."""
    _, components = msgspec.json.schema_components(_BODIES, ref_template=REF)
    schemas = _param_schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        op: dict[str, Any] = {
            "operationId": route.name,
            "summary": route.summary,
            "parameters": _parameters(route, schemas),
            "responses": _responses(route),
        }
        if route.write == "offer":
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(protocol.FlexOffer)}},
            }
            op["parameters"].append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "The message id: a request sent again with the same key "
                    "is answered as the first time.",
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
                }
            )
        elif route.method == "measurement":
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(MeasurementParams)}},
            }
        paths.setdefault(route.full_path, {})[route.http.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "atp-flex FMAN interface",
            "version": version,
            "description": "The Flex-Offer interface's resources (docs/interface.md) over "
            "HTTP: the same answers as the MQTT request/response methods.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `atp api token issue`.",
                }
            },
        },
    }
