"""The market messages (protocol 1.4): orders to FMAR, its answers, gate notices, results.

A party sends its orders on ``atp/v1/m/{market}/bid/{party}``: a *sell order* (a Flex-Offer
with asks for deviating from its default schedule) or a *request* (signed kWh per slot at a
node, with a limit price), both as the order book JSON of docs/market.md holds them, plus the
party and, optionally, the gate meant. The party is the topic's, which the broker's ACL binds
to the sending account; FMAR refuses an order whose ``party`` differs from it. FMAR answers
each on ``atp/v1/m/{market}/ack/{party}`` with an :class:`OrderAnswer` once the order is
stored (or refused, with reasons): as with an agent's offer, the order stays with its sender
until that answer arrives, since a broker's PUBACK is not delivery. The gate calendar is
retained on ``.../gate`` (:class:`GateNotice`) and every cleared gate's outcome goes to
``.../result`` (:class:`MarketResult`).

Prices and quantities follow the book's units: EUR per kWh of up deviation, kWh signed
(positive: up, more consumption or less production). A price given as a list runs per slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from ._errors import FieldError
from ._models import Epoch, EurPerKwh, FlexOffer, Id, Kwh, Name, NonNegInt, Reason, Text

GateState = Literal["open", "closed", "cleared"]
#: A price per kWh: one figure, or one per slot.
Price = EurPerKwh | list[EurPerKwh]
#: A gate's horizon in slots (31 days of quarter hours at most, as a book).
Slots = Annotated[int, Meta(ge=1, le=2976)]


class _Struct(Struct, kw_only=True, frozen=True, omit_defaults=True, forbid_unknown_fields=False):
    pass


class SellOrder(_Struct, kw_only=True, frozen=True):
    """A flexibility provider's order: its offer and asks (``None``: from the offer's prices,
    docs/market.md "Asks from an offer's prices"). ``gate`` empty: the gate open on arrival."""

    market: Id
    party: Id
    offer: FlexOffer
    node: Id | None = None
    ask_up_eur_per_kwh: Price | None = None
    ask_down_eur_per_kwh: Price | None = None
    gate: Text = ""


class MarketRequest(_Struct, kw_only=True, frozen=True):
    """A flexibility buyer's order: ``kwh[j]`` for the market slot ``start + j * resolution``;
    ``limit_eur_per_kwh`` ``None`` is fixed demand; ``partial`` false: every slot or none."""

    market: Id
    party: Id
    id: Id
    start: Epoch
    kwh: list[Kwh]
    #: required; ``None`` (null) says fixed demand, valued at the market's value of lost load
    limit_eur_per_kwh: Price | None
    node: Id | None = None
    partial: bool = True
    gate: Text = ""


class OrderAnswer(_Struct, kw_only=True, frozen=True):
    """FMAR's answer to one order: ``accepted`` (stored for ``gate``) or refused for
    ``reasons``. ``ref_kind`` is the order's message kind, ``ref_id`` its id."""

    market: Id
    ref_kind: Name
    ref_id: Text
    accepted: bool
    gate: Text = ""
    reasons: list[Reason] = []


class GateTimes(_Struct, kw_only=True, frozen=True):
    """One gate: orders are taken from ``opens_at`` until ``closes_at``; it trades the
    ``slots`` slots of ``resolution_s`` from ``delivery_start``."""

    gate: Id
    opens_at: Epoch
    closes_at: Epoch
    delivery_start: Epoch
    slots: Slots = 1
    resolution_s: NonNegInt = 900


class GateNotice(_Struct, kw_only=True, frozen=True):
    """Retained on ``.../gate``: the current gate, its state, and the gates after it."""

    market: Id
    current: GateTimes
    state: GateState
    upcoming: list[GateTimes] = []
    pricing: Name = "uniform"


class AwardLine(_Struct, kw_only=True, frozen=True):
    offer_id: Text
    node: Text
    start: Epoch
    profile: NonNegInt
    energy_kwh: list[float]
    deviation_kwh: list[float]
    paid_eur: float


class AcceptedRequest(_Struct, kw_only=True, frozen=True):
    id: Text
    node: Text
    accepted_kwh: list[float]
    paid_eur: float


class FlowLine(_Struct, kw_only=True, frozen=True):
    source: Text
    target: Text
    kwh: list[float]


class MarketResult(_Struct, kw_only=True, frozen=True):
    """A cleared gate: awards per sell order (an order left out runs its default), accepted
    requests, prices per node (EUR per kWh of up deviation, per market slot) and flows."""

    market: Id
    gate: Id
    status: Name
    welfare_eur: float
    bound_eur: float | None = None
    pricing: Name = "uniform"
    delivery_start: Epoch
    resolution_s: NonNegInt
    prices: dict[str, list[float]] = {}
    awards: list[AwardLine] = []
    requests: list[AcceptedRequest] = []
    flows: list[FlowLine] = []


def _validate_request(body: MarketRequest) -> list[FieldError]:
    errors: list[FieldError] = []
    if not body.kwh:
        errors.append(FieldError("kwh", "must not be empty"))
    lim = body.limit_eur_per_kwh
    if isinstance(lim, list) and len(lim) != len(body.kwh):
        errors.append(
            FieldError("limit_eur_per_kwh", f"{len(lim)} limits for {len(body.kwh)} slots")
        )
    return errors


def _validate_sell(body: SellOrder) -> list[FieldError]:
    from ._validate import validate_offer

    errors = [
        FieldError(f"offer.{e.path}" if e.path else "offer", e.message)
        for e in validate_offer(body.offer, types_checked=True)
    ]
    for key in ("ask_up_eur_per_kwh", "ask_down_eur_per_kwh"):
        ask = getattr(body, key)
        values = ask if isinstance(ask, list) else [] if ask is None else [ask]
        if any(v < 0 for v in values):
            errors.append(FieldError(key, "asks must be >= 0"))
    return errors


def _validate_gate(body: GateNotice) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, g in enumerate([body.current, *body.upcoming]):
        path = "current" if i == 0 else f"upcoming[{i - 1}]"
        if g.closes_at < g.opens_at:
            errors.append(FieldError(f"{path}.closes_at", "before opens_at"))
    return errors


#: Message kinds of the market, merged into the codec's kinds.
MARKET_KINDS: dict[str, type[Struct]] = {
    "market.sell": SellOrder,
    "market.request": MarketRequest,
    "market.answer": OrderAnswer,
    "market.gate": GateNotice,
    "market.result": MarketResult,
}
#: Kinds a party sends on ``.../bid``.
ORDER_KINDS = frozenset({"market.sell", "market.request"})

VALIDATORS: dict[type, Callable[[Any], list[FieldError]]] = {
    SellOrder: _validate_sell,
    MarketRequest: _validate_request,
    GateNotice: _validate_gate,
}
