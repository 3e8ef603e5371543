"""What FMAN refused since it last said so, in one log line per reason, not one per message.

Ingest and the planning cycle count each refusal under ``refused.<what>.<code>`` among the
worker's counters (``what``: ``offer``, ``withdraw``, ``meter`` for a whole meter batch,
``reading`` for one reading set aside, ``schedule`` for a schedule its agent refused, or the
channel of a message that could not be read, with the code ``invalid``). The worker compares
the counters with those of its last summary and logs the difference: a fleet that sends 18
bad meter batches gives one line, not 18, and a quiet one gives none."""

from __future__ import annotations

import json
from collections.abc import Mapping

PREFIX = "refused."


def key(what: str, code: str) -> str:
    """The counter of one kind of refusal."""
    return f"{PREFIX}{what}.{code or 'unknown'}"


def first_code(reason_json: str) -> str:
    """The first reason code of a stored reason list (JSON), or ``unknown``."""
    try:
        reasons = json.loads(reason_json or "[]")
        return str(reasons[0].get("code") or "unknown")
    except (ValueError, AttributeError, IndexError, TypeError):
        return "unknown"


def summary(before: Mapping[str, float], now: Mapping[str, float]) -> str | None:
    """One line for the refusals counted between two readings of the counters, grouped by
    what was refused, each group by code, largest first; ``None`` if there were none."""
    groups: dict[str, dict[str, int]] = {}
    for k, v in now.items():
        if not k.startswith(PREFIX):
            continue
        n = int(v - before.get(k, 0))
        if n <= 0:
            continue
        what, _, code = k[len(PREFIX) :].partition(".")
        groups.setdefault(what, {})[code] = n
    if not groups:
        return None
    parts = []
    for what, codes in sorted(groups.items(), key=lambda g: (-sum(g[1].values()), g[0])):
        detail = ", ".join(
            f"{c} {n}" for c, n in sorted(codes.items(), key=lambda x: (-x[1], x[0]))
        )
        parts.append(f"{sum(codes.values())} {what} ({detail})")
    return "refused: " + "; ".join(parts)
