"""What a planning method found: a placement per offer, and the plan's load.

The exact model, column generation and the cutting planes each improve on the greedy
placement; they share these value objects and the few operations on them, so no planning
module reaches into another's private helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .asks import ask_cost
from .blocks import OfferView
from .model import LinearProblem
from .terms import Terms, evaluate


@dataclass(frozen=True, slots=True)
class Placement:
    """Block index, start (epoch s) and slot energies chosen for one offer."""

    block: int
    start: int
    energy: np.ndarray


@dataclass(slots=True)
class Plan:
    """A placement per planned offer (``None`` where none is known) and how it was found."""

    placements: list[Placement | None]
    bound: float
    solved: bool
    #: the multipliers of the slot rows that prove ``bound``, where known
    duals: np.ndarray | None = None
    #: the method that ran, and why it found no plan (``solved`` False), for the result
    method: str = "the planner"
    why: str = ""


def flex_of(values: np.ndarray, problem: LinearProblem, terms: Terms) -> np.ndarray:
    size = len(terms.groups) * terms.slots
    return values[problem.flex_col0 : problem.flex_col0 + size].reshape(len(terms.groups), -1)


def with_boxes(
    views: Sequence[OfferView],
    terms: Terms,
    picks: Sequence[tuple[int, int, np.ndarray | None]],
    flex: np.ndarray,
) -> list[Placement | None]:
    """Placements from picks; box-only offers share their node's flexible load in proportion
    to their widths, so each stays within its bounds and together they make the load."""
    width = np.zeros_like(flex)
    for v, (k, start, x) in zip(views, picks, strict=True):
        if k >= 0 and x is None:
            b = v.blocks[k]
            s = terms.slot_of(start)
            width[terms.group_of(v), s : s + b.n] += b.upper - b.lower
    share = np.clip(np.divide(flex, width, out=np.zeros_like(flex), where=width > 0), 0.0, 1.0)
    out: list[Placement | None] = []
    for v, (k, start, x) in zip(views, picks, strict=True):
        if k < 0:
            out.append(None)
            continue
        b = v.blocks[k]
        if x is None:
            s = terms.slot_of(start)
            x = b.lower + share[terms.group_of(v), s : s + b.n] * (b.upper - b.lower)
        out.append(Placement(k, start, np.asarray(x, dtype=float)))
    return out


def loads(
    views: Sequence[OfferView], terms: Terms, placements: Sequence[Placement | None]
) -> np.ndarray:
    loads = np.zeros((len(terms.groups), terms.slots))
    for v, p in zip(views, placements, strict=True):
        if p is not None:
            s = terms.slot_of(p.start)
            loads[terms.group_of(v), s : s + len(p.energy)] += p.energy
    return loads


def value_of(
    views: Sequence[OfferView], terms: Terms, placements: Sequence[Placement | None]
) -> float:
    """The objective of placements: :func:`evaluate` of their loads plus their asks."""
    value = evaluate(terms, loads(views, terms, placements))
    if terms.priced:
        value += ask_cost(
            terms.asks,
            [None if p is None else (terms.slot_of(p.start), p.energy) for p in placements],
        )
    return value


def adopt(
    views: Sequence[OfferView], terms: Terms, found: Plan, picks: list[Placement | None]
) -> None:
    if (
        value_of(views, terms, picks) <= value_of(views, terms, found.placements)
        or not found.solved
    ):
        found.placements = picks
