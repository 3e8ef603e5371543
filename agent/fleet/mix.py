"""Which devices each agent of the fleet has.

The households and grid sites themselves come from :mod:`agent.drivers.sim.mix` (the shares
and sizes are documented there); this module decides which agent is which: every
``GRID_EVERY``-th agent is a distribution operator's grid asset bidding into a DOMS market,
the others are households, spread over ``GRID_NODES`` grid nodes (feeders) so FMAN's grid-node
limits have something to bite on. A share of the households (``direct_share``, chosen by the
agent's own seed) trades in direct mode at asks from a comfort priority, also drawn from it;
``node_params`` sets generator keys (``lead_s``, ``horizon_h``) for every device at a node.

Agent ``i`` of fleet seed ``s`` draws from its own seed (a hash of ``s`` and ``i``), so the same
seed gives the same fleet and agent ``i`` is the same whether the fleet has ten agents or ten
thousand.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from agent.drivers.sim.mix import grid_site, household

#: Every ``GRID_EVERY``-th agent is a grid asset rather than a household.
GRID_EVERY = 50
#: Households are spread over this many grid nodes.
GRID_NODES = 20


def site(
    seed: int,
    index: int,
    *,
    direct_share: float = 0.0,
    node_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The device tables (as in ``[devices.<id>]`` of ``foa.toml``) of agent ``index``."""
    own = zlib.crc32(f"fleet:{seed}:{index}".encode())
    if index % GRID_EVERY == GRID_EVERY - 1:
        return grid_site(own)
    devices = household(own)
    if direct(seed, index) < direct_share:
        rng = random.Random(f"fleet:{seed}:{index}:priority")
        for table in devices.values():
            table["trading_mode"] = "direct"
            table["comfort_priority"] = rng.choice(PRIORITIES)
    for table in devices.values():
        table.update((node_params or {}).get(grid_node(index), {}))
    return devices


#: The comfort priorities a direct-mode household draws from (asks 0.02 to 0.20 EUR/kWh).
PRIORITIES = (1, 2, 2, 3, 3, 4)


def direct(seed: int, index: int) -> float:
    """Where agent ``index`` falls in ``[0, 1)``: below the direct share, it trades directly
    (the same agents at any fleet size, and a larger share keeps the smaller one's)."""
    return random.Random(f"fleet:{seed}:{index}:mode").random()


def grid_node(index: int) -> str:
    return f"node-{index % GRID_NODES:02d}"


def census(sites: Iterable[dict[str, dict[str, Any]]]) -> Counter[str]:
    """How many devices of each generator a fleet has (for the summary and the docs)."""
    return Counter(d["generator"] for devices in sites for d in devices.values())
