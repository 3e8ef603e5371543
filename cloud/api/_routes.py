"""The REST paths of the gateway, as data: which Table 6 resource each one is, and how an HTTP
request becomes the ``(method, params)`` that :func:`cloud.fman.requests.answer` answers over
MQTT too. Pure: no server, no store (the answers' error text is FMAN's).

The server builds its routes from :data:`ROUTES` and the OpenAPI document
(:mod:`._openapi`) is generated from the same table and the protocol's own types, so the
document cannot list a path the server lacks, nor miss one it has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import protocol
from cloud.fman.requests import NOT_FOUND

PREFIX = "/api/v1"

#: How a write reaches FMAN: through the ingest, as the message of that MQTT channel.
Write = Literal["offer", "offer/delete", "measurement"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One path and HTTP method. ``method`` is the request method of the MQTT interface it
    answers (``None`` for the offer writes and the stream, which are not request methods);
    ``path_params`` and ``query`` name where its parameters come from."""

    http: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    name: str
    summary: str
    method: str | None = None
    write: Write | None = None
    path_params: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    stream: bool = False

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


_RANGE = ("from", "to")

#: Every path of the gateway. Order matters where paths overlap: the fixed
#: ``/flexoffer/stream`` and ``/flexoffer/measurement`` come before ``/flexoffer/{id}``.
ROUTES: tuple[Route, ...] = (
    Route(
        http="GET", path="/contract", name="contract", method="contract",
        summary="The agent's contracts, each with its version and whole document.",
    ),
    Route(
        http="GET", path="/bill", name="bill", method="bill", query=("period",),
        summary="The agent's bill for a month (YYYY-MM) or a day (YYYY-MM-DD), UTC.",
    ),
    Route(
        http="GET", path="/kpi", name="kpi", method="kpi", query=("period",),
        summary="The four KPIs over the agent's own settled offers and transactions.",
    ),
    Route(
        http="GET", path="/flexoffer", name="flexoffer", method="flexoffer",
        summary="The agent's active offers (accepted, assigned, executing).",
    ),
    Route(
        http="POST", path="/flexoffer", name="flexoffer-create", write="offer",
        summary="Send an offer: judged and stored exactly as one sent on the MQTT offer topic.",
    ),
    Route(
        http="GET", path="/flexoffer/stream", name="flexoffer-stream", stream=True,
        summary="Server-sent events: an `offer` event for each of the agent's active offers, "
        "then one whenever an offer's state, revision or schedule version changes.",
    ),
    Route(
        http="POST", path="/flexoffer/measurement", name="measurement", method="measurement",
        summary="Hand in a meter batch: judged as one sent on the MQTT meter topic.",
    ),
    Route(
        http="GET", path="/flexoffer/{from}/{to}", name="flexoffer-range",
        method="flexoffer/range", path_params=_RANGE,
        summary="The agent's offers, any state, whose start window overlaps [from, to).",
    ),
    Route(
        http="GET", path="/flexoffer/{id}", name="flexoffer-get", method="flexoffer/get",
        path_params=("id",),
        summary="One offer as sent, its state, and the schedule in force if any.",
    ),
    Route(
        http="PUT", path="/flexoffer/{id}", name="flexoffer-update", write="offer",
        path_params=("id",),
        summary="Update an offer (a higher revision): judged as on the MQTT offer topic.",
    ),
    Route(
        http="DELETE", path="/flexoffer/{id}", name="flexoffer-delete", write="offer/delete",
        path_params=("id",), query=("reason",),
        summary="Withdraw an offer: judged as a withdrawal on the MQTT offer/delete topic.",
    ),
    *(
        Route(
            http="GET", path=f"/timeseries/{kind}/{{from}}/{{to}}",
            name=f"timeseries-{kind}", method=f"timeseries/{kind}", path_params=_RANGE,
            summary=f"The agent's {what} in [from, to), kWh summed per slot.",
        )
        for kind, what in (
            ("measurement", "metered readings"),
            ("baseline", "offers' baselines (default schedules)"),
            ("schedule", "schedules in force"),
        )
    ),
)  # fmt: skip


def params_of(route: Route, path: Mapping[str, str], query: Mapping[str, str]) -> dict[str, Any]:
    """The request parameters of an HTTP request to ``route``, as the MQTT request carries
    them: epoch seconds as integers (a non-number is left a string, for the parameter check
    to name), the query's parameters of the route, nothing else."""
    params: dict[str, Any] = {}
    for name in route.path_params:
        value = path[name]
        params[name] = int(value) if name in _RANGE and _is_int(value) else value
    for name in route.query:
        if name in query:
            params[name] = query[name]
    return params


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit() and len(text) <= 20


def match(http: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route an HTTP request goes to (the server's own order), and its path parameters;
    ``None`` if there is none. Used by the docs' examples check and the benchmark."""
    for route in ROUTES:
        if route.http != http:
            continue
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.full_path))
        m = re.match(pattern + "$", path)
        if m is not None:
            return route, m.groupdict()
    return None


def status_of(response: protocol.Response) -> int:
    """The HTTP status of a request's answer: 200 ok, 404 for an offer the agent does not
    have, 400 for any other refusal (its reason names the field)."""
    if response.status == "ok":
        return 200
    return 404 if f": {NOT_FOUND} " in response.reason else 400
