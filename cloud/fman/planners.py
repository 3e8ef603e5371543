"""Choose the planner named in the configuration.

``default`` (every offer keeps its default schedule), ``greedy``
(:mod:`cloud.optim.greedy`), ``ortools`` (the optimiser of :mod:`cloud.optim`), or any class
behind the :class:`cloud.optim.Planner` interface as ``package.module:Class``. Planners are
built with no arguments; their options travel in each :class:`cloud.optim.PlanRequest`.
"""

from __future__ import annotations

import importlib

from ..optim import DefaultPlanner, Planner
from ._errors import ConfigError

BUILTIN = {
    "default": "cloud.optim:DefaultPlanner",
    "greedy": "cloud.optim:GreedyPlanner",
    "ortools": "cloud.optim:OrToolsPlanner",
}


def load_planner(name: str) -> Planner:
    target = BUILTIN.get(name, name)
    module_name, sep, attr = target.partition(":")
    if not sep:
        raise ConfigError(
            "planning.planner",
            f"{name!r}: use {', '.join(sorted(BUILTIN))} or package.module:Class",
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("planning.planner", f"cannot load {target}: {exc}") from None
    planner = cls()
    if not callable(getattr(planner, "plan", None)):
        raise ConfigError("planning.planner", f"{target} has no plan() method")
    return planner


__all__ = ["BUILTIN", "DefaultPlanner", "load_planner"]
