"""Answers to agents' requests (protocol 1.4): a method, its parameters and an identity in, a
:class:`protocol.Response` out.

The identity is the agent id of the request's *topic*, which the broker's ACL ties to the
account that published it; nothing in ``params`` can name another agent. Every read below is
narrowed to that agent (its offers, its contracts, its bills, its readings), and an offer of
another agent is answered exactly as an offer that does not exist, so a request cannot even
learn whether an id is taken.

Pure apart from the store reader handed in: no MQTT, no clock (``now`` is passed). The one
write, ``measurement``, goes through ``submit``, which the worker wires to the same ingest
as a meter batch on the ``meter`` topic.

:class:`RateLimit` is a token bucket per agent, also pure (times are passed in).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cloud.settle import Period, bill_json, kpi_json, kpis, party_account
from cloud.settle import SlotRecord as _SlotRecord
from protocol import DecodeError, FlexOffer, Response, decode, encode, to_builtins
from protocol._request import (
    MeasurementParams,
    OfferParams,
    PeriodParams,
    RangeParams,
    parse_params,
)

from . import settlement
from .store import ACTIVE_STATES, StoreReader

#: What ``measurement`` calls: the agent and the typed batch in, the ingest's answer (an
#: ``ack`` or ``reject`` body as builtins) out.
Submit = Callable[[str, MeasurementParams], Any]

#: The answer to an offer id the agent does not own, and to one that does not exist.
NOT_FOUND = "no such offer"


def error(reason: str) -> Response:
    return Response(status="error", reason=reason[:1024])


def ok(body: Any) -> Response:
    return Response(status="ok", body=body)


def answer(
    method: str,
    params: Any,
    *,
    agent: str,
    reader: StoreReader,
    now: int,
    submit: Submit | None = None,
) -> Response:
    """The response to ``method`` with ``params`` from ``agent``; never raises for bad input."""
    if not isinstance(params, dict):
        return error("params: expected an object")
    try:
        p = parse_params(method, params)
    except DecodeError as exc:
        return error("; ".join(f"{e.path}: {e.message}" for e in exc.errors))
    if method == "contract":
        return ok(_contracts(reader, agent))
    if method == "bill":
        assert isinstance(p, PeriodParams)
        period = _period(p)
        if isinstance(period, Response):
            return period
        return ok(json.loads(bill_json(settlement.bill(reader, agent, period, now=now))))
    if method == "kpi":
        assert isinstance(p, PeriodParams)
        period = _period(p)
        if isinstance(period, Response):
            return period
        return ok(json.loads(kpi_json(_kpis(reader, agent, period))))
    if method == "flexoffer":
        return ok(_offers(reader, agent, states=ACTIVE_STATES))
    if method == "flexoffer/range":
        assert isinstance(p, RangeParams)
        return ok(_offers(reader, agent, start_from=p.start, start_to=p.end))
    if method == "flexoffer/get":
        assert isinstance(p, OfferParams)
        return _offer(reader, agent, p.id)
    if method == "measurement":
        assert isinstance(p, MeasurementParams)
        if p.batch.agent != agent:
            return error(f"params.batch.agent: {p.batch.agent!r} is not the requesting agent")
        if submit is None:
            return error("measurements cannot be submitted here")
        return ok(submit(agent, p))
    assert isinstance(p, RangeParams)
    kind = method.removeprefix("timeseries/")
    return ok(_series(reader, agent, kind, p.start, p.end))


def _period(p: PeriodParams) -> Period | Response:
    try:
        return Period.parse(p.period)
    except ValueError as exc:
        return error(f"params.period: {exc}")


def _contracts(reader: StoreReader, agent: str) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "version": r.version, "contract": json.loads(r.document)}
        for r in reader.contracts()
        if r.party == agent
    ]


def _kpis(reader: StoreReader, agent: str, period: Period) -> Any:
    """The four KPIs over the agent's own settled offers and its own transactions."""
    own = {v.offer_id for v in reader.offer_verdicts(period=period.label) if v.agent == agent}
    slots = [
        _SlotRecord(
            s.offer_id,
            s.start,
            s.resolution_s,
            s.default_wh,
            s.baseline_wh,
            s.scheduled_wh,
            s.metered_wh,
            s.delivered_wh,
        )
        for s in reader.settlement_slots(start=period.start, end=period.end)
        if s.offer_id in own
    ]
    account = party_account(agent)
    transactions = [
        t
        for t in settlement.period_ledger(reader, period)
        if any(p.account == account for p in t.postings)
    ]
    return kpis(
        slots=slots, transactions=transactions, start=period.start, end=period.end, tz=period.tz
    )


def _offers(reader: StoreReader, agent: str, **where: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": o.id,
            "state": o.state,
            "revision": o.revision,
            "device": o.device,
            "start_after": o.start_after,
            "start_before": o.start_before,
            "assignment_before": o.assignment_before,
            "schedule_version": o.schedule_version,
            "reason": o.reason,
        }
        for o in reader.list_offers(agent=agent, **where)
    ]


def _offer(reader: StoreReader, agent: str, offer_id: str) -> Response:
    row = reader.offer(offer_id)
    if row is None or row.issuer != agent or row.payload is None:
        return error(f"params.id: {NOT_FOUND} {offer_id!r}")
    body: dict[str, Any] = {
        "state": row.state,
        "reason": row.reason,
        "offer": to_builtins(decode(row.payload, check=False).body),
    }
    schedule = reader.current_schedules([offer_id]).get(offer_id)
    if schedule is not None:
        body["schedule"] = {
            "version": schedule.version,
            "start": schedule.start,
            "energy_kwh": schedule.energy_kwh,
            "status": schedule.status,
        }
    return ok(body)


def _series(reader: StoreReader, agent: str, kind: str, start: int, end: int) -> dict[str, Any]:
    """``{slot start: kWh}`` summed over the agent's accepted offers in ``[start, end)``:
    metered readings, the offers' baselines (default schedules), or their schedules in force."""
    total: dict[int, float] = defaultdict(float)
    if kind == "measurement":
        for r in reader.readings(agent=agent, start=start, end=end, limit=1_000_000):
            total[r.start] += r.energy_kwh
    else:
        for row in reader.portfolio_offers(agent=agent):
            offer = decode(row.payload, check=False).body
            assert isinstance(offer, FlexOffer)
            res = offer.resolution_s
            if kind == "baseline":
                first, energy = offer.default.start, offer.default.energy_kwh
            elif row.schedule_start is not None and row.schedule_energy_kwh is not None:
                first, energy = row.schedule_start, row.schedule_energy_kwh
            else:
                continue
            for i, e in enumerate(energy):
                t = first + i * res
                if start <= t < end:
                    total[t] += e
    return {
        "kind": kind,
        "from": start,
        "to": end,
        "unit": "kWh",
        "values": {str(t): round(v, 6) for t, v in sorted(total.items())},
    }


@dataclass
class RateLimit:
    """A token bucket per agent: ``burst`` requests at once, ``rate_per_s`` sustained."""

    rate_per_s: float = 5.0
    burst: float = 20.0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, agent: str, now: float) -> bool:
        tokens, at = self._buckets.get(agent, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        if tokens < 1.0:
            self._buckets[agent] = (tokens, now)
            return False
        self._buckets[agent] = (tokens - 1.0, now)
        return True

    def retry_after(self, agent: str) -> float:
        tokens, _ = self._buckets.get(agent, (self.burst, 0.0))
        return max(0.0, (1.0 - tokens) / self.rate_per_s)


def response_bytes(response: Response, *, ts: int) -> bytes:
    return encode(response, ts=ts)
