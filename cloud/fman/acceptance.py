"""Acceptance control: may FMAN take this offer, this withdrawal, this meter batch?

Pure functions of the message, what the store knows about it, the time and the sender's
contract; ingest calls them inside its transaction. Structural validity (types, ranges,
windows, a feasible default) is already settled by :func:`protocol.decode`; what is judged
here needs FMAN's knowledge: the sender, deadlines against our clock, the offer's history, the
agent's contract.

Each function returns a :class:`Verdict`: ``accept``, ``duplicate`` (the same revision again:
answer as before, change nothing), or ``reject`` with every reason found. A meter batch is
judged reading by reading: an accepted batch may carry readings to quarantine, with why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from protocol import FlexOffer, MeterBatch, Reason, Withdraw, effective_profiles, start_window

from .config import AcceptanceSection, Contract
from .store import OPEN_STATES, OfferHead

#: Energy slack when comparing against a contract limit (kWh).
_SLACK_KWH = 1e-6


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Literal["accept", "duplicate", "reject"]
    reasons: Sequence[Reason] = field(default_factory=tuple)
    #: of an accepted meter batch: the readings (by index) set aside, each with its reason
    quarantined: Sequence[tuple[int, Reason]] = field(default_factory=tuple)

    @property
    def accepted(self) -> bool:
        return self.outcome == "accept"


ACCEPT = Verdict("accept")
DUPLICATE = Verdict("duplicate")


def _reject(code: str, field: str, message: str) -> Verdict:
    return Verdict("reject", (Reason(code=code, field=field, message=message),))


def judge_offer(
    offer: FlexOffer,
    *,
    sender: str,
    stored: OfferHead | None,
    now: float,
    open_offers: int,
    contract: Contract,
    announced: frozenset[str] | None = None,
    rules: AcceptanceSection,
    tolerance_s: float | None = None,
) -> Verdict:
    """Accept, recognise as duplicate, or reject an offer (insert or update) from ``sender``.
    ``tolerance_s`` (default ``rules.clock_skew_s``) is how far ahead an agent's clock may be
    and how late an offer may arrive after its ``acceptance_before``. ``announced``: the
    devices the agent named in its last status (``None`` if it never did); a new offer for
    another device is implausible."""
    tol = rules.clock_skew_s if tolerance_s is None else tolerance_s
    if offer.issuer != sender:
        return _reject(
            "issuer_mismatch", "issuer", f"offer of {offer.issuer!r} sent on {sender!r}'s topic"
        )
    if stored is not None:
        if stored.issuer != sender:
            return _reject("id_conflict", "id", f"offer id {offer.id!r} belongs to another agent")
        if offer.revision == stored.revision:
            return DUPLICATE
        if offer.revision < stored.revision:
            return _reject(
                "superseded",
                "revision",
                f"revision {offer.revision} is older than the stored {stored.revision}",
            )
        if stored.state not in OPEN_STATES:
            return _reject(
                "not_updatable", "id", f"offer is {stored.state}; it can no longer change"
            )
    reasons: list[Reason] = []
    if offer.created_at > now + tol:
        reasons.append(
            Reason(
                code="created_in_future",
                field="created_at",
                message=f"{offer.created_at} is {offer.created_at - now:.0f} s ahead of FMAN",
            )
        )
    if now > offer.acceptance_before + tol:
        reasons.append(
            Reason(
                code="acceptance_deadline",
                field="acceptance_before",
                message=f"arrived {now - offer.acceptance_before:.0f} s after acceptance_before",
            )
        )
    elif now >= offer.assignment_before:
        reasons.append(
            Reason(code="assignment_deadline", field="assignment_before", message="passed")
        )
    _, latest = start_window(offer)
    if latest > now + rules.max_horizon_s:
        reasons.append(
            Reason(
                code="too_far_ahead",
                field="start_before",
                message=f"latest start is more than {rules.max_horizon_s} s ahead",
            )
        )
    if contract.devices and offer.device not in contract.devices:
        reasons.append(
            Reason(
                code="unknown_device",
                field="device",
                message=f"{offer.device!r} is not among the agent's registered devices",
            )
        )
    elif stored is None and announced and offer.device not in announced:
        reasons.append(
            Reason(
                code="unknown_device",
                field="device",
                message=f"{offer.device!r} is not among the devices the agent announced",
            )
        )
    reasons.extend(_contract_limits(offer, contract))
    if stored is None and open_offers >= contract.max_open_offers:
        reasons.append(
            Reason(
                code="too_many_offers",
                field="id",
                message=f"the agent already has {open_offers} open offers "
                f"(contract allows {contract.max_open_offers})",
            )
        )
    return Verdict("reject", tuple(reasons)) if reasons else ACCEPT


def _contract_limits(offer: FlexOffer, contract: Contract) -> list[Reason]:
    """Per-slot energy within the connection's power limit, in both directions."""
    limit = contract.max_power_kw * offer.resolution_s / 3600 + _SLACK_KWH
    for i, p in enumerate(effective_profiles(offer)):
        worst = max(max(map(abs, p.lower_kwh)), max(map(abs, p.upper_kwh)))
        if worst > limit:
            return [
                Reason(
                    code="exceeds_contract",
                    field=f"profiles[{i}]",
                    message=f"{worst:g} kWh in one slot exceeds the contract's "
                    f"{contract.max_power_kw:g} kW ({limit:g} kWh per slot)",
                )
            ]
    return []


def judge_withdraw(withdraw: Withdraw, *, sender: str, stored: OfferHead | None) -> Verdict:
    """A withdrawal of an unknown offer is accepted (it leaves a tombstone, so an offer that
    arrives after its own withdrawal, reordered by the shared subscription, stays withdrawn)."""
    if stored is None:
        return ACCEPT
    if stored.issuer != sender:
        return _reject("id_conflict", "offer_id", "the offer belongs to another agent")
    if stored.state == "withdrawn":
        return DUPLICATE
    if stored.state not in OPEN_STATES:
        return _reject("not_withdrawable", "offer_id", f"offer is {stored.state}")
    return ACCEPT


def judge_meter(
    batch: MeterBatch,
    *,
    sender: str,
    now: float,
    contract: Contract,
    rules: AcceptanceSection,
    tolerance_s: float | None = None,
) -> Verdict:
    """Reading by reading: the plausible readings are kept, the others quarantined with the
    first reason found (a device not in the contract, more energy than the contract's power
    allows over the interval, an interval ending in the future). One implausible reading no
    longer costs the valid readings of the household's other devices. Only a batch sent on
    another agent's topic is refused whole."""
    if batch.agent != sender:
        return _reject("agent_mismatch", "agent", f"batch of {batch.agent!r} on {sender!r}'s topic")
    tol = rules.clock_skew_s if tolerance_s is None else tolerance_s
    quarantined: list[tuple[int, Reason]] = []
    for i, r in enumerate(batch.readings):
        reason = None
        limit = contract.max_power_kw * r.duration_s / 3600 + _SLACK_KWH
        if contract.devices and r.device not in contract.devices:
            reason = Reason(code="unknown_device", field=f"readings[{i}].device", message=r.device)
        elif abs(r.energy_kwh) > limit:
            reason = Reason(
                code="implausible",
                field=f"readings[{i}].energy_kwh",
                message=f"{r.energy_kwh:g} kWh in {r.duration_s} s exceeds the contract's "
                f"{contract.max_power_kw:g} kW",
            )
        elif r.start + r.duration_s > now + tol:
            reason = Reason(
                code="reading_in_future",
                field=f"readings[{i}].start",
                message=f"interval ends {r.start + r.duration_s - now:.0f} s ahead of FMAN",
            )
        if reason is not None:
            quarantined.append((i, reason))
    return Verdict("accept", quarantined=tuple(quarantined)) if quarantined else ACCEPT
