"""The market service's configuration, ``fmar.toml``: one TOML file checked on load.

As FMAN's: frozen msgspec sections, :func:`protocol.convert_table` names every bad key (with
``did you mean``), and the rules that span keys come after. Markets are a table keyed by id
(``[markets.feeder-1]``), each with its kind, node(s) and network, the slot grid, its gate
cycle, pricing rule and minimum order size; examples/fmar.toml has every key.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from protocol import convert_table, parse_toml

from ..fman.store import check_location
from ._book import MAX_MARKET_SLOTS
from ._errors import MarketConfigError

PosFloat = Annotated[float, Meta(gt=0, description="must be positive")]
NonNegFloat = Annotated[float, Meta(ge=0, description="must not be negative")]
PosInt = Annotated[int, Meta(gt=0, description="must be positive")]
NonNegInt = Annotated[int, Meta(ge=0, description="must not be negative")]
_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_PARTY = re.compile(r"^[A-Za-z0-9_.:@*-]{1,128}$")


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class ServiceSection(_Section, frozen=True):
    #: MQTT client id; stable across restarts so the broker keeps the session (and hands
    #: over the orders it had not seen acknowledged).
    id: str = "fmar"
    broker: str = "mqtt://127.0.0.1:1883"
    #: An SQLite file or a ``postgresql://`` URL (the tables are ``market_*``).
    store: str = ".atp/fmar.db"
    session_expiry_s: PosInt = 3600
    #: ``username:password`` for the broker (mode 0600); empty for anonymous.
    credentials_file: str = ""
    ca_file: str = ""
    #: Gates after the current one that the retained calendar lists.
    calendar_gates: NonNegInt = 4


class ClockSection(_Section, frozen=True):
    #: Simulated start time (epoch seconds or ISO 8601); empty for the real clock.
    sim_start: str = ""
    speed: PosFloat = 1.0
    anchor: float = 0.0


class LinkSection(_Section, frozen=True):
    source: str = msgspec.field(name="from")
    to: str
    capacity_kwh: NonNegFloat
    cost_eur_per_kwh: NonNegFloat = 0.0


Kind = Literal["one-sided", "two-sided", "many-to-many"]


class MarketSection(_Section, frozen=True):
    #: ``one-sided``: one buyer's fixed demand covered at least cost (F2.FMAR1); ``two-sided``:
    #: buyers and sellers at one node (F2.FMAR2); ``many-to-many``: several nodes joined by
    #: ``links`` (F2.FMAR3, transport costs and capacities, F2.FMAR4).
    kind: Kind = "two-sided"
    nodes: list[str] = []
    links: list[LinkSection] = []
    resolution_s: PosInt = 900
    #: What one gate trades: this many seconds from its delivery start.
    horizon_s: PosInt = 3600
    #: A new gate every so many seconds (gates' delivery starts are multiples of it).
    gate_period_s: PosInt = 3600
    #: Gate closure this long before delivery starts.
    gate_lead_s: NonNegInt = 900
    pricing: Literal["uniform", "pay-as-bid"] = "uniform"
    #: Least flexibility an order may bring: a sell order's widest profile's range
    #: (sum of upper minus lower kWh), a request's sum of |kWh|.
    min_order_kwh: NonNegFloat = 0.0
    #: Seconds the clearing may search.
    time_limit_s: PosFloat = 10.0
    #: Value of lost load, EUR/kWh, for requests without a limit.
    voll: NonNegFloat = 10.0
    #: Accounts that may send sell orders (exact names, or patterns with ``*``: ``agent-*``,
    #: ``*`` for every account). Empty: nobody; a market trades only with whom it names.
    sellers: list[str] = []
    #: Accounts that may send requests (and register congestion: the DSO's ``dso``).
    buyers: list[str] = []

    def allows(self, side: str, party: str) -> bool:
        """Whether ``party`` (the account the broker authenticated) may send orders of
        ``side`` (``sell`` or ``request``) here."""
        names = self.sellers if side == "sell" else self.buyers
        return any(fnmatch.fnmatchcase(party, pattern) for pattern in names)

    @property
    def slots(self) -> int:
        return self.horizon_s // self.resolution_s

    def network(self) -> dict[str, Any] | None:
        """The book's ``network`` (docs/market.md), or ``None`` for a market at one node."""
        if self.kind != "many-to-many":
            return None
        return {
            "nodes": list(self.nodes),
            "links": [
                {
                    "from": ln.source,
                    "to": ln.to,
                    "capacity_kwh": ln.capacity_kwh,
                    "cost_eur_per_kwh": ln.cost_eur_per_kwh,
                }
                for ln in self.links
            ],
        }


class Config(_Section, frozen=True):
    service: ServiceSection = ServiceSection()
    clock: ClockSection = ClockSection()
    markets: dict[str, MarketSection] = {}


def config_from_dict(data: dict[str, Any]) -> Config:
    """A :class:`Config`, or :class:`MarketConfigError` naming the first bad key (and, after
    it, every other problem)."""
    cfg, errors = convert_table(data, Config)
    if cfg is None:
        first, *rest = errors
        raise MarketConfigError(first.path, "; ".join([first.message, *map(str, rest)]))
    for problem in rule_problems(cfg):
        raise problem
    return cfg


def load_config(path: Path) -> Config:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MarketConfigError("", f"cannot read {path}: {exc.strerror}") from None
    table, error = parse_toml(data)
    if table is None:
        assert error is not None
        raise MarketConfigError("", f"{path}: {error.message}")
    return config_from_dict(table)


def rule_problems(cfg: Config) -> Iterator[MarketConfigError]:
    """Every rule spanning keys that ``cfg`` breaks."""
    s = cfg.service
    problem = check_location(s.store)
    if problem:
        yield MarketConfigError("service.store", problem)
    if not s.broker.startswith(("mqtt://", "mqtts://")):
        yield MarketConfigError("service.broker", f"{s.broker!r} is not an mqtt:// URL")
    if not _ID.match(s.id):
        yield MarketConfigError("service.id", f"{s.id!r}: letters, digits and _.:@- only")
    if not cfg.markets:
        yield MarketConfigError("markets", "no market: add a [markets.ID] table")
    for mid, m in cfg.markets.items():
        yield from _market_problems(f"markets.{mid}", mid, m)


def _market_problems(p: str, mid: str, m: MarketSection) -> Iterator[MarketConfigError]:
    if not _ID.match(mid):
        yield MarketConfigError(p, f"market id {mid!r}: letters, digits and _.:@- only")
    r = m.resolution_s
    if not 60 <= r <= 3600 or 86_400 % r:
        yield MarketConfigError(f"{p}.resolution_s", f"{r} s: use 60 to 3600 s dividing a day")
        return
    for key in ("horizon_s", "gate_period_s"):
        value = getattr(m, key)
        if value % r:
            yield MarketConfigError(f"{p}.{key}", f"{value} s is not a multiple of {r} s")
    if m.slots > MAX_MARKET_SLOTS:
        yield MarketConfigError(f"{p}.horizon_s", f"{m.slots} slots > {MAX_MARKET_SLOTS}")
    if m.gate_lead_s >= 10 * m.gate_period_s + m.horizon_s:
        yield MarketConfigError(f"{p}.gate_lead_s", "longer than ten gate periods")
    for key in ("sellers", "buyers"):
        for i, pattern in enumerate(getattr(m, key)):
            if not _PARTY.match(pattern):
                yield MarketConfigError(
                    f"{p}.{key}[{i}]", f"{pattern!r}: an account name, * standing for any part"
                )
    bad = [n for n in m.nodes if not _ID.match(n)]
    if bad:
        yield MarketConfigError(f"{p}.nodes", f"{bad[0]!r}: letters, digits and _.:@- only")
    if len(set(m.nodes)) != len(m.nodes):
        yield MarketConfigError(f"{p}.nodes", "a node is listed twice")
    if m.kind == "many-to-many":
        if len(m.nodes) < 2:
            yield MarketConfigError(f"{p}.nodes", "a many-to-many market has two nodes or more")
        for i, ln in enumerate(m.links):
            for key, node in (("from", ln.source), ("to", ln.to)):
                if node not in m.nodes:
                    yield MarketConfigError(f"{p}.links[{i}].{key}", f"{node!r} is not in nodes")
    else:
        if len(m.nodes) != 1:
            yield MarketConfigError(f"{p}.nodes", f"a {m.kind} market has exactly one node")
        if m.links:
            yield MarketConfigError(f"{p}.links", f"a {m.kind} market has no network")
