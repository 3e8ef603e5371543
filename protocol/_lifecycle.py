"""The offer state machine, shared by the agent and FMAN.

::

    offered ──> accepted ──> assigned ──> executing ──> executed ──> settled
       │  │        │  │        │  ↺ (re-plan: a newer schedule version)
       │  │        │  └────────┼──> executing (no schedule by assignment_before: the default)
       │  └─> rejected         │
       ├──> executing (cloud unreachable: the default runs)
       └──> withdrawn / expired (also from accepted and assigned)

``rejected``, ``withdrawn``, ``expired`` and ``settled`` are final. ``expired`` means the
start window passed without the offer being run (the device left before its start, say).
"""

from __future__ import annotations

from ._errors import LifecycleError
from ._models import OfferState

TRANSITIONS: dict[str, frozenset[str]] = {
    "offered": frozenset({"accepted", "rejected", "executing", "withdrawn", "expired"}),
    "accepted": frozenset({"assigned", "executing", "withdrawn", "expired"}),
    "assigned": frozenset({"assigned", "executing", "withdrawn", "expired"}),
    "executing": frozenset({"executed"}),
    "executed": frozenset({"settled"}),
    "rejected": frozenset(),
    "withdrawn": frozenset(),
    "expired": frozenset(),
    "settled": frozenset(),
}
FINAL_STATES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def can_transition(current: str, target: str) -> bool:
    """Whether the lifecycle allows ``current -> target``."""
    return target in TRANSITIONS.get(current, ())


def transition(current: OfferState, target: OfferState) -> OfferState:
    """``target`` if the lifecycle allows ``current -> target``; else :class:`LifecycleError`."""
    if target not in TRANSITIONS.get(current, ()):
        raise LifecycleError(current, target)
    return target
