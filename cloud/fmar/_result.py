"""The result of a clearing, as frozen value objects, and its JSON form (docs/market.md).

Money is EUR and energy kWh, as everywhere. ``paid_eur`` of an award is paid *to* the seller,
``paid_eur`` of a request is paid *by* the buyer; both include any make-whole payment, which
is also shown on its own. An order that runs its default is left out of ``awards``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["optimal", "feasible", "infeasible", "time_limit_defaults"]
Pricing = Literal["uniform", "pay-as-bid"]
#: ``mip``: the compact model solved whole; ``decomposition``: cutting planes on the dual;
#: ``default``: nothing better was found in time, every order runs its default.
Method = Literal["mip", "decomposition", "default"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Award:
    offer_id: str
    node: str
    start: int
    profile: int
    #: per slot of the profile
    energy_kwh: tuple[float, ...]
    #: per market slot: energy minus the default's (positive: up)
    deviation_kwh: tuple[float, ...]
    #: what the order's asks say its deviation costs
    ask_eur: float
    paid_eur: float
    make_whole_eur: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Acceptance:
    id: str
    node: str
    #: per market slot, signed like the request
    accepted_kwh: tuple[float, ...]
    #: the accepted kWh at the request's limits (the value of lost load for none)
    value_eur: float
    paid_eur: float
    make_whole_eur: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    source: str
    target: str
    kwh: tuple[float, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Clearing:
    """A cleared book. ``bound_eur`` is a proven upper bound on the welfare of any clearing
    of the book (``None`` when none was proven); ``prices`` are EUR per kWh of up deviation
    per node and market slot."""

    status: Status
    welfare_eur: float
    bound_eur: float | None
    pricing: Pricing
    method: Method
    prices: dict[str, tuple[float, ...]]
    awards: tuple[Award, ...]
    requests: tuple[Acceptance, ...]
    flows: tuple[Flow, ...]
    #: transport cost of the flows, owed to the network
    transport_eur: float
    #: what buyers pay minus what sellers receive (make-whole included)
    surplus_eur: float
    make_whole_eur: float
    #: what must come from outside the market to pay transport and make-whole payments
    uplift_eur: float

    @property
    def gap(self) -> float:
        """``(bound - welfare) / |bound|`` (``inf`` without a bound, 0 when both are 0)."""
        if self.bound_eur is None:
            return float("inf")
        diff = self.bound_eur - self.welfare_eur
        if diff <= 0:
            return 0.0
        return diff / max(abs(self.bound_eur), 1e-12)


def to_builtins(result: Clearing) -> dict[str, Any]:
    """The JSON form: the keys docs/market.md lists, in its order."""
    return {
        "status": result.status,
        "welfare_eur": result.welfare_eur,
        "bound_eur": result.bound_eur,
        "prices": {n: list(p) for n, p in result.prices.items()},
        "awards": [
            {
                "offer_id": a.offer_id,
                "node": a.node,
                "start": a.start,
                "profile": a.profile,
                "energy_kwh": list(a.energy_kwh),
                "deviation_kwh": list(a.deviation_kwh),
                "ask_eur": a.ask_eur,
                "paid_eur": a.paid_eur,
                "make_whole_eur": a.make_whole_eur,
            }
            for a in result.awards
        ],
        "requests": [
            {
                "id": r.id,
                "node": r.node,
                "accepted_kwh": list(r.accepted_kwh),
                "value_eur": r.value_eur,
                "paid_eur": r.paid_eur,
                "make_whole_eur": r.make_whole_eur,
            }
            for r in result.requests
        ],
        "flows": [{"from": f.source, "to": f.target, "kwh": list(f.kwh)} for f in result.flows],
        "pricing": result.pricing,
        "method": result.method,
        "transport_eur": result.transport_eur,
        "surplus_eur": result.surplus_eur,
        "make_whole_eur": result.make_whole_eur,
        "uplift_eur": result.uplift_eur,
    }
