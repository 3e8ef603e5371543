"""Request/response over MQTT v5 (protocol 1.4): the resources an agent may ask FMAN for.

An agent publishes a :class:`Request` on ``atp/v1/a/{agent}/req/{method}`` with the MQTT v5
*response topic* ``atp/v1/a/{agent}/resp/{tag}`` and *correlation data* of its choosing; FMAN
answers with a :class:`Response` on that topic, the correlation data copied. The identity is
the topic's ``{agent}`` (the broker ties it to the account), never anything in ``params``.

Each method's parameters are a typed struct (:data:`METHODS`), so that FMAN and the agent read
and write the same thing; :func:`parse_params` checks a request's ``params`` against it and
names the field that is wrong.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ._errors import DecodeError, FieldError
from ._models import Epoch, Id, MeterBatch, Name, Text, _Struct

#: The longest range (``to - from``) a request may ask for: a year and a leap day.
MAX_RANGE_S = 366 * 86_400

Period = Annotated[str, Meta(pattern=r"^\d{4}-\d{2}(-\d{2})?$")]


class Request(_Struct, kw_only=True, frozen=True):
    """A request; the method is also the topic's last levels (they must agree)."""

    method: Name
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class Response(_Struct, kw_only=True, frozen=True):
    """The answer to a :class:`Request`: ``ok`` with a ``body``, or ``error`` with a reason."""

    status: Literal["ok", "error"]
    reason: Text = ""
    body: Any = None


class _Params(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class NoParams(_Params, kw_only=True, frozen=True):
    """``contract``, ``flexoffer``: nothing to say."""


class PeriodParams(_Params, kw_only=True, frozen=True):
    """``bill``, ``kpi``: a calendar month ``YYYY-MM`` or a day ``YYYY-MM-DD`` (UTC)."""

    period: Period


class RangeParams(_Params, kw_only=True, frozen=True):
    """``flexoffer/range`` and ``timeseries/*``: ``[from, to)`` in epoch seconds, at most
    :data:`MAX_RANGE_S` long."""

    start: Epoch = msgspec.field(name="from")
    end: Epoch = msgspec.field(name="to")


class OfferParams(_Params, kw_only=True, frozen=True):
    """``flexoffer/get``: one offer by id."""

    id: Id


class MeasurementParams(_Params, kw_only=True, frozen=True):
    """``measurement``: a meter batch, judged as one sent on the ``meter`` topic; ``msg_id``
    makes a resubmission a no-op (the same answer again)."""

    batch: MeterBatch
    msg_id: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


#: Every method FMAN answers, and the parameters it takes.
METHODS: dict[str, type[_Params]] = {
    "contract": NoParams,
    "bill": PeriodParams,
    "kpi": PeriodParams,
    "flexoffer": NoParams,
    "flexoffer/range": RangeParams,
    "flexoffer/get": OfferParams,
    "measurement": MeasurementParams,
    "timeseries/measurement": RangeParams,
    "timeseries/baseline": RangeParams,
    "timeseries/schedule": RangeParams,
}


def parse_params(method: str, params: dict[str, Any]) -> _Params:
    """The typed parameters of ``method``; :class:`DecodeError` naming the field otherwise
    (``params.from``), or the method if it is unknown."""
    cls = METHODS.get(method)
    if cls is None:
        known = ", ".join(sorted(METHODS))
        raise DecodeError([FieldError("method", f"unknown method {method!r} (known: {known})")])
    try:
        value = msgspec.convert(params, cls)
    except msgspec.ValidationError as exc:
        text = str(exc)
        path = "params"
        if " - at `$." in text:
            text, _, where = text.rpartition(" - at `$.")
            path = "params." + where.rstrip("`")
        elif " - at `$`" in text:
            text = text.partition(" - at `$`")[0]
        raise DecodeError([FieldError(path, text)]) from None
    if isinstance(value, RangeParams):
        if value.end <= value.start:
            raise DecodeError([FieldError("params.to", "must be after params.from")])
        if value.end - value.start > MAX_RANGE_S:
            raise DecodeError(
                [FieldError("params.to", f"the range is longer than a year ({MAX_RANGE_S} s)")]
            )
    return value


def params_json(params: _Params) -> dict[str, Any]:
    """The wire form of typed parameters (``from``/``to`` under their wire names)."""
    return msgspec.to_builtins(params)
