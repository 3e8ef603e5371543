"""Small builders for settlement inputs, shared by the settlement tests."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from cloud.settle import ContractBook, ExecutedOffer, Reading, Slots, load_contract

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "contracts"

#: 2026-11-01T00:00Z, and hours of 2026-11-05 (UTC)
NOV_1 = 1_793_491_200
DEC_1 = 1_796_083_200
NOV_5 = 1_793_836_800
H = 3600
Q = 900


def at(hour: float) -> int:
    """2026-11-05 at ``hour`` (UTC)."""
    return NOV_5 + round(hour * H)


def book(*names: str) -> ContractBook:
    return ContractBook(load_contract(EXAMPLES / n) for n in names)


def offer(
    oid: str,
    *,
    agent: str,
    device: str,
    default: tuple[int, list[float]],
    schedule: tuple[int, list[float]] | None = None,
    window: tuple[int, int] | None = None,
    mode: str = "delegated",
    asks: tuple[str, str] | None = None,
    state: str = "executed",
) -> ExecutedOffer:
    d = Slots(start=default[0], energy_kwh=tuple(default[1]))
    s = Slots(start=schedule[0], energy_kwh=tuple(schedule[1])) if schedule else None
    start_after, start_before = window or (d.start, d.start)
    return ExecutedOffer(
        id=oid,
        agent=agent,
        device=device,
        mode=mode,  # type: ignore[arg-type]
        state=state,
        start_after=start_after,
        start_before=start_before,
        default=d,
        schedule=s,
        ask_up_eur_per_kwh=(Decimal(asks[0]),) if asks else (),
        ask_down_eur_per_kwh=(Decimal(asks[1]),) if asks else (),
    )


def readings(agent: str, device: str, start: int, kwh: list[float], tag: str = "") -> list[Reading]:
    """Quarter-hour readings from ``start``."""
    return [Reading(agent, device, start + i * Q, Q, e, tag) for i, e in enumerate(kwh)]


def profile(s: Slots, res: int = Q) -> dict[int, float]:
    """``{slot start: kWh}`` of a profile."""
    return {s.start + i * res: e for i, e in enumerate(s.energy_kwh)}
