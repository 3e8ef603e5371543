"""Money in whole cents, energy in whole watt-hours, and the one rounding rule.

Why integers: a sum of floats depends on its order and drifts by fractions of a cent, so a
ledger kept in floats cannot balance to zero. Settlement therefore works in two integer units:

- **energy in Wh**: every per-slot energy (meter sums, schedules, baselines, awards) is
  rounded once to the nearest watt-hour (``round(kwh * 1000)``, ties to even) before anything
  is computed from it, so a kWh figure on a bill is an exact decimal with three places;
- **money in cents**: an amount is computed exactly as a :class:`~decimal.Decimal` (rate in
  EUR per unit times an integer quantity) and rounded once, to the nearest cent with ties to
  even (banker's rounding), when its transaction is made. The counter-posting is the exact
  negation, so every transaction, and hence the whole ledger, sums to zero in integers.

Where one amount must be split (a market award's revenue over the members that carried it),
:func:`split_cents` divides it by the largest-remainder method, so the parts add up to the
whole to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

CENT = Decimal("0.01")
_WH_PER_KWH = Decimal(1000)


def wh(kwh: float) -> int:
    """Energy in whole watt-hours (nearest, ties to even)."""
    return round(kwh * 1000)


def kwh_text(wh_: int) -> str:
    """``1234`` Wh as ``"1.234"`` (kWh, exact, always three decimals)."""
    sign = "-" if wh_ < 0 else ""
    whole, frac = divmod(abs(wh_), 1000)
    return f"{sign}{whole}.{frac:03d}"


def cents(eur: Decimal) -> int:
    """An exact EUR amount rounded to whole cents, ties to even."""
    with localcontext() as ctx:
        ctx.prec = 60
        return int(eur.quantize(CENT, rounding=ROUND_HALF_EVEN) * 100)


def per_kwh(rate_eur_per_kwh: Decimal, energy_wh: int) -> Decimal:
    """The exact EUR value of ``energy_wh`` at ``rate_eur_per_kwh``."""
    with localcontext() as ctx:
        ctx.prec = 60
        return rate_eur_per_kwh * energy_wh / _WH_PER_KWH


def eur_text(amount_cents: int) -> str:
    """``-105`` cents as ``"-1.05"``."""
    sign = "-" if amount_cents < 0 else ""
    whole, frac = divmod(abs(amount_cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def split_cents(total: int, weights: Sequence[Decimal]) -> list[int]:
    """``total`` cents split in proportion to non-negative ``weights`` by the largest-remainder
    method: each part is the floor of its exact share, and the cents left over go one each to
    the largest remainders (the earlier weight first on a tie). The parts sum to ``total``
    exactly; all-zero weights give all-zero parts (the caller keeps the whole)."""
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights, Decimal(0))
    if not weights or weight_sum == 0:
        return [0] * len(weights)
    sign = -1 if total < 0 else 1
    whole = abs(total)
    with localcontext() as ctx:
        ctx.prec = 60
        exact = [whole * w / weight_sum for w in weights]
    parts = [int(x) for x in exact]  # floor: every x is >= 0
    left = whole - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return [sign * p for p in parts]
