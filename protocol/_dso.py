"""The DSO's requests to the market (protocol 1.4): congestion registrations and queries.

A DSO publishes a :class:`~protocol.Request` on ``atp/v1/d/{dso}/req/{method}`` with the MQTT
v5 response topic ``atp/v1/d/{dso}/resp/{tag}``, as an agent asks FMAN; FMAR answers with a
:class:`~protocol.Response`. The DSO is the topic's ``{dso}``, which the broker's ACL ties to
the ``dso`` account; nothing in ``params`` names it.

    congestion            register a congestion location: a request in the next gate(s)
    congestion/list       the DSO's registrations and the gates they went into
    congestion/summary    its completed trades per registration (cleared gates only)
    prosumers             the parties with open sell orders relevant to a node
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._errors import DecodeError, FieldError
from ._models import Epoch, EurPerKwh, Id, Kwh

Price = EurPerKwh | list[EurPerKwh]


class _Params(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class CongestionParams(_Params, kw_only=True, frozen=True):
    """``congestion``: at ``node`` (may be left out in a market of one node), ``kwh[j]`` signed
    (positive: up, more consumption or less production) for the slot ``start + j *
    resolution``, paying at most ``limit_eur_per_kwh`` (``None``: fixed demand, valued at
    the market's value of lost load). ``id`` is the DSO's own; registering the same again is
    a no-op, a different one under a used id is refused."""

    market: Id
    id: Id
    start: Epoch
    kwh: list[Kwh]
    limit_eur_per_kwh: Price | None
    node: Id | None = None
    partial: bool = True


class MarketParams(_Params, kw_only=True, frozen=True):
    """``congestion/list``, ``congestion/summary``: one market, or every one (``None``);
    ``id`` narrows to one registration."""

    market: Id | None = None
    id: Id | None = None


class ProsumersParams(_Params, kw_only=True, frozen=True):
    """``prosumers``: sell orders of ``market`` at ``node`` (every node: ``None``)."""

    market: Id
    node: Id | None = None


DSO_METHODS: dict[str, type[_Params]] = {
    "congestion": CongestionParams,
    "congestion/list": MarketParams,
    "congestion/summary": MarketParams,
    "prosumers": ProsumersParams,
}


def parse_dso_params(method: str, params: dict[str, Any]) -> _Params:
    """The typed parameters of ``method``; :class:`DecodeError` naming the field otherwise."""
    cls = DSO_METHODS.get(method)
    if cls is None:
        known = ", ".join(sorted(DSO_METHODS))
        raise DecodeError([FieldError("method", f"unknown method {method!r} (known: {known})")])
    try:
        value = msgspec.convert(params, cls)
    except msgspec.ValidationError as exc:
        text, path = str(exc), "params"
        if " - at `$." in text:
            text, _, where = text.rpartition(" - at `$.")
            path = "params." + where.rstrip("`")
        elif " - at `$`" in text:
            text = text.partition(" - at `$`")[0]
        raise DecodeError([FieldError(path, text)]) from None
    if isinstance(value, CongestionParams):
        errors = []
        if not value.kwh:
            errors.append(FieldError("params.kwh", "must not be empty"))
        lim = value.limit_eur_per_kwh
        if isinstance(lim, list) and len(lim) != len(value.kwh):
            errors.append(
                FieldError(
                    "params.limit_eur_per_kwh", f"{len(lim)} limits for {len(value.kwh)} slots"
                )
            )
        if errors:
            raise DecodeError(errors)
    return value
