"""The objective FMAN plans for, as the store records it for the reports. (Pure.)

``atp portfolio`` reads a store, not FMAN's config, yet must say what the plans optimise. The
planning cycle therefore records its objective in the store's series table under one name:
the weight of each term at a fixed index (the terms' order below), and whether delegated
offers carry asks. Reports decode it with :func:`objective_from`; a store written before this
record existed has none, and its reports fall back to what the series show (a target or not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .config import ObjectiveSection

#: The series the objective is recorded under.
OBJECTIVE_SERIES = "objective"
TERMS = ("balance", "cost", "peak", "profit")
_PRICE_DELEGATED = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedObjective:
    weights: dict[str, float]
    price_delegated: bool = False

    @property
    def profit(self) -> bool:
        return self.weights.get("profit", 0.0) > 0

    @property
    def cost(self) -> bool:
        return self.weights.get("cost", 0.0) > 0


def objective_code(objective: ObjectiveSection) -> dict[int, float]:
    weights = dict(objective.weights) or {objective.kind: 1.0}
    code = {i: float(weights.get(t, 0.0)) for i, t in enumerate(TERMS)}
    code[_PRICE_DELEGATED] = 1.0 if objective.price_delegated else 0.0
    return code


def objective_from(code: Mapping[int, float]) -> RecordedObjective | None:
    if not code:
        return None
    return RecordedObjective(
        weights={t: code.get(i, 0.0) for i, t in enumerate(TERMS) if code.get(i, 0.0) > 0},
        price_delegated=code.get(_PRICE_DELEGATED, 0.0) > 0,
    )
