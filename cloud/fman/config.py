"""The worker's configuration: one TOML file, checked on load with errors that name the key.

Every section has defaults, so an empty file (or none) runs a development worker against a
broker on localhost. Unknown keys are refused: a misspelt ``intervall_s`` must not silently
fall back to the default, and the error says ``did you mean 'interval_s'?``. An example with
every key is in ``docs/fman.md``.

The sections are frozen msgspec structs, one definition per key for its default, type, range
and error; :func:`protocol.convert_table` (shared with the agent's ``foa.toml``) lists every
problem at its dotted key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from protocol import convert_table, parse_toml, salvage_table

from ._errors import ConfigError
from .store._url import check as check_location

PosFloat = Annotated[float, Meta(gt=0, description="must be positive")]
NonNegFloat = Annotated[float, Meta(ge=0, description="must not be negative")]
PosInt = Annotated[int, Meta(gt=0, description="must be positive")]
NonNegInt = Annotated[int, Meta(ge=0, description="must not be negative")]


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class WorkerSection(_Section, frozen=True):
    #: MQTT client id; keep it stable across restarts so the broker keeps the worker's session
    #: (and redelivers what it had not acknowledged when it died).
    id: str = "fman-1"
    broker: str = "mqtt://127.0.0.1:1883"
    #: Shared-subscription group: workers of one group share the load.
    group: str = "fman"
    #: Where the store is: a file path (SQLite; the workers of one host share the file) or
    #: ``postgresql://user@host:port/database`` (workers on several hosts). The older key
    #: ``db`` is read as this one. Keep a password out of the URL: libpq's ``passfile``
    #: parameter (``?passfile=/run/secrets/pgpass``, mode 0600) or ``PGPASSFILE`` does it.
    store: str = ".atp/fman.db"
    #: How long the broker keeps a dead worker's session and queues its share of messages.
    session_expiry_s: PosInt = 3600
    #: File holding ``username:password`` for the broker (mode 0600); empty for anonymous.
    credentials_file: str = ""
    #: CA certificate(s), PEM, that the broker's certificate must chain to (``mqtts://``);
    #: empty: the system's trust store. Relative paths, like ``credentials_file``, are
    #: relative to the working directory.
    ca_file: str = ""
    #: Most messages decided and committed in one transaction.
    batch_max: PosInt = 1000
    #: SQLite: ``normal`` survives a crash of the worker (WAL); ``full`` also a power cut,
    #: slower. (PostgreSQL's durability is the server's ``synchronous_commit``.)
    synchronous: Literal["normal", "full"] = "normal"
    #: Quality of service of acks and schedules sent to agents.
    qos: Literal[0, 1] = 1
    #: How often (wall seconds) counters are written to the database.
    stats_interval_s: PosFloat = 1.0
    #: Requests (``req/...``) one agent may make per wall second, sustained, and at once.
    requests_per_s: PosFloat = 5.0
    requests_burst: PosInt = 20


class ClockSection(_Section, frozen=True):
    #: Simulated start time (epoch seconds or ISO 8601); empty for the real clock.
    sim_start: str = ""
    speed: PosFloat = 1.0
    #: Wall-clock epoch at which simulated time equals ``sim_start`` (default: at start-up).
    anchor: float = 0.0


class Contract(_Section, frozen=True):
    """What an agent may offer: the connection's limit and, optionally, its devices."""

    max_power_kw: PosFloat = 50.0
    #: Devices the agent registered; empty accepts any device id.
    devices: list[str] = []
    #: Offers not yet final per agent; more are rejected (protects the planner from a flood).
    max_open_offers: PosInt = 500


class AcceptanceSection(_Section, frozen=True):
    #: How far an agent's clock may be ahead of ours (seconds of the worker's clock); also
    #: how late past ``acceptance_before`` an offer may arrive, for its time in transit.
    clock_skew_s: NonNegFloat = 60.0
    #: ...plus this many *wall* seconds times the clock's speed (a fast simulated clock turns
    #: milliseconds in the broker's and the worker's queues into simulated minutes).
    transit_wall_s: NonNegFloat = 0.25
    #: Latest start an offer may have, counted from now.
    max_horizon_s: PosInt = 7 * 86_400
    default: Contract = Contract()
    agents: dict[str, Contract] = {}


class SeriesSource(_Section, frozen=True):
    """A time series from a file (CSV ``time,value`` or JSON) or a (retained) MQTT topic."""

    file: str = ""
    topic: str = ""


class ObjectiveSection(_Section, frozen=True):
    #: ``balance`` (track the target), ``cost`` (energy at the price series) or ``profit``
    #: (deviation from the defaults valued at the price series, minus the offers' asks).
    kind: Literal["balance", "cost", "profit"] = "balance"
    #: Weights of combined objectives, e.g. ``{balance = 1, cost = 0.2}``.
    weights: dict[str, float] = {}
    #: Under ``profit``, charge delegated offers their contract's deviation price as asks
    #: too; by default only direct-mode offers carry asks (a delegated offer's cost is its
    #: contract's, settled apart, so planning moves it for free).
    price_delegated: bool = False
    target: SeriesSource = SeriesSource()
    prices: SeriesSource = SeriesSource()
    #: Peak limit in kW per grid node.
    peak_kw: dict[str, PosFloat] = {}


class PlanningSection(_Section, frozen=True):
    #: ``ortools`` (the optimiser), ``greedy`` (milliseconds, for simulated clocks thousands of
    #: times faster than real time), ``default`` or ``package.module:Class``.
    planner: str = "ortools"
    resolution_s: PosInt = 900
    #: Planning interval (simulated or real seconds); 0 means one slot.
    interval_s: NonNegFloat = 0.0
    #: How often every open offer is re-planned (at a planning interval); in between, a
    #: plan places only offers that need a schedule, the others count as they are. 0: at
    #: every planning interval.
    full_interval_s: NonNegFloat = 0.0
    horizon_s: PosInt = 86_400
    time_limit_s: PosFloat = 5.0
    #: Plan through aggregation (aggregate, plan, disaggregate, as ``atp plan --aggregate``)
    #: when more offers than this are to be planned at once; 0: never. Below about 5,000
    #: offers the optimiser plans every offer within the default time limit (docs/fman.md).
    aggregate_above: NonNegInt = 5_000
    #: Wall seconds the planner lease lasts unless renewed: how soon another worker takes
    #: over planning when the planning worker dies. 0: ``max(10, 3 * time_limit_s)``. A
    #: lease shorter than a plan would pass to another worker in the middle of one.
    lease_ttl_s: NonNegFloat = 0.0
    #: A schedule must reach the agent this long before the offer's ``assignment_before``.
    deadline_margin_s: NonNegFloat = 60.0
    #: ...plus this many *wall* seconds, so a fast simulated clock leaves time to deliver.
    deadline_margin_wall_s: NonNegFloat = 1.0
    #: Least wall time between two re-plans triggered by arriving offers.
    replan_min_wall_s: NonNegFloat = 0.3
    #: Resend a schedule the agent has not answered after this many wall seconds.
    resend_after_wall_s: PosFloat = 10.0
    #: A re-plan changes schedules in force only if it lowers the objective by more than this
    #: (objective units: kWh for balance, EUR for cost) for each schedule it changes...
    change_cost: NonNegFloat = 0.1
    #: ...and a schedule differs from the one in force when some slot differs by more than
    #: this (or its start or profile does).
    change_tolerance_kwh: NonNegFloat = 0.01


class ExecutionSection(_Section, frozen=True):
    #: A slot deviates when ``|metered - scheduled| > tolerance_kwh + tolerance_rel * |scheduled|``.
    tolerance_kwh: NonNegFloat = 0.05
    tolerance_rel: NonNegFloat = 0.1
    #: Time after an offer's last slot for its readings to arrive before it is judged.
    grace_s: NonNegFloat = 1800.0


class MarketMargin(_Section, frozen=True):
    #: A market pays a slot of an award only if the deviation delivered there is within
    #: ``margin_kwh + margin_rel * |awarded|`` of what it awarded (docs/settlement.md).
    margin_kwh: NonNegFloat = 0.05
    margin_rel: NonNegFloat = 0.1


class SettlementSection(_Section, frozen=True):
    #: The delivery margin of every market, unless ``markets`` names it.
    market_margin: MarketMargin = MarketMargin()
    #: A market's own delivery margin, by market id.
    markets: dict[str, MarketMargin] = {}

    def margin(self, market: str) -> MarketMargin:
        return self.markets.get(market, self.market_margin)


class MarketEntry(_Section, frozen=True):
    """A market FMAN bids in (docs/trading.md): one ``[[market]]`` table each."""

    #: The market's id on FMAR (``atp/v1/m/{id}/...``).
    id: str
    #: FMAN's account (party) on that market; FMAR answers on ``.../ack/{party}``.
    party: str
    #: The grid nodes whose offers FMAN bids there; empty: every node.
    nodes: list[str] = []
    #: Bid this long (seconds of the worker's clock) before the gate closes...
    bid_before_close_s: NonNegFloat = 300.0
    #: ...plus this many wall seconds times the clock's speed, for the orders' time in transit.
    bid_before_close_wall_s: NonNegFloat = 2.0
    #: The ask (EUR/kWh) of a member with no contract in force and no prices of its own.
    default_ask_eur_per_kwh: NonNegFloat = 0.0
    #: Resend an order FMAR has not answered after this many wall seconds.
    resend_after_wall_s: PosFloat = 3.0
    #: Members per aggregate at most.
    max_group_size: PosInt = 500
    #: Aggregates with less flexibility than this (kWh, summed over slots) are not bid.
    min_bid_kwh: NonNegFloat = 0.0


class Config(_Section, frozen=True):
    worker: WorkerSection = WorkerSection()
    clock: ClockSection = ClockSection()
    acceptance: AcceptanceSection = AcceptanceSection()
    planning: PlanningSection = PlanningSection()
    objective: ObjectiveSection = ObjectiveSection()
    execution: ExecutionSection = ExecutionSection()
    settlement: SettlementSection = SettlementSection()
    market: list[MarketEntry] = []

    def contract(self, agent: str) -> Contract:
        return self.acceptance.agents.get(agent, self.acceptance.default)

    @property
    def interval_s(self) -> float:
        return self.planning.interval_s or float(self.planning.resolution_s)


def config_from_dict(data: dict[str, Any]) -> Config:
    """A :class:`Config` from parsed TOML, or :class:`ConfigError` naming the first bad key
    (and, after it, every other problem found)."""
    cfg, errors = convert_table(_older_keys(data), Config)
    if cfg is None:
        first, *rest = errors
        raise ConfigError(first.path, "; ".join([first.message, *map(str, rest)]))
    _check(cfg)
    return cfg


def check_config_file(path: Path) -> tuple[Config | None, list[ConfigError]]:
    """Everything ``atp fman config check`` verifies: every key's value, then the rules that
    span keys (with the keys that were right, when others are wrong). Returns the config
    (``None`` if anything is wrong) and every error."""
    try:
        data = _older_keys(read_toml(path))
    except ConfigError as exc:
        return None, [exc]
    cfg, field_errors = convert_table(data, Config)
    errors = [ConfigError(e.path, e.message) for e in field_errors]
    checked = cfg if cfg is not None else salvage_table(data, Config, field_errors)
    if checked is not None:
        bad = {e.key for e in errors}
        errors += [e for e in _rule_problems(checked) if e.key not in bad]
    return (cfg if not errors else None), errors


def load_config(path: Path | None) -> Config:
    """Read and check ``path``; ``None`` gives the defaults."""
    if path is None:
        return config_from_dict({})
    return config_from_dict(read_toml(path))


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table, or :class:`ConfigError` saying why it cannot be read (a syntax error
    with its line and column, :func:`protocol.parse_toml`'s words, as the agent's)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from None
    table, error = parse_toml(data)
    if table is None:
        assert error is not None
        raise ConfigError("", f"{path}: {error.message}")
    return table


def _older_keys(data: dict[str, Any]) -> dict[str, Any]:
    """``worker.db``, the store's older name, read as ``worker.store``."""
    worker = data.get("worker")
    if not isinstance(worker, dict) or "db" not in worker:
        return data
    if "store" in worker:
        raise ConfigError("worker.db", "give worker.store or worker.db (its older name), not both")
    worker = {k: v for k, v in worker.items() if k != "db"} | {"store": worker["db"]}
    return {**data, "worker": worker}


def _check(cfg: Config) -> None:
    """Rules that span fields: the first one broken is raised."""
    for problem in _rule_problems(cfg):
        raise problem


def _rule_problems(cfg: Config) -> Iterator[ConfigError]:
    """Every rule that spans fields and that ``cfg`` breaks."""
    problem = check_location(cfg.worker.store)
    if problem:
        yield ConfigError("worker.store", problem)
    if not cfg.worker.broker.startswith(("mqtt://", "mqtts://")):
        yield ConfigError("worker.broker", f"{cfg.worker.broker!r} is not an mqtt:// URL")
    if cfg.worker.ca_file and not cfg.worker.broker.startswith("mqtts://"):
        yield ConfigError("worker.ca_file", f"set, but {cfg.worker.broker!r} does not use TLS")
    pc = cfg.planning
    if pc.lease_ttl_s and pc.lease_ttl_s < 2 * pc.time_limit_s:
        yield ConfigError(
            "planning.lease_ttl_s",
            f"{pc.lease_ttl_s:g} s is shorter than a plan may take (twice time_limit_s, "
            f"{2 * pc.time_limit_s:g} s): another worker would take over in mid-plan",
        )
    r = cfg.planning.resolution_s
    if not 900 <= r <= 3600 or 86_400 % r:
        yield ConfigError("planning.resolution_s", f"{r} s: use 900 to 3600 s dividing a day")
    for key, src in (("target", cfg.objective.target), ("prices", cfg.objective.prices)):
        if src.file and src.topic:
            yield ConfigError(f"objective.{key}", "give a file or a topic, not both")
    uses = set(cfg.objective.weights) if cfg.objective.weights else {cfg.objective.kind}
    has_prices = bool(cfg.objective.prices.file or cfg.objective.prices.topic)
    for kind in ("cost", "profit"):
        if kind in uses and not has_prices:
            yield ConfigError("objective.prices", f"the {kind} objective needs a price series")
    unknown = sorted(set(cfg.objective.weights) - {"balance", "cost", "peak", "profit"})
    if unknown:
        yield ConfigError(
            "objective.weights",
            f"unknown objective(s) {', '.join(unknown)} (known: balance, cost, peak, profit)",
        )
    for key, w in sorted(cfg.objective.weights.items()):
        if w < 0 or w != w:
            yield ConfigError(f"objective.weights.{key}", f"{w}: must be a number at least 0")
    if cfg.objective.price_delegated and "profit" not in uses:
        yield ConfigError("objective.price_delegated", "only the profit objective charges asks")
    if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,128}", cfg.worker.group):
        yield ConfigError("worker.group", f"{cfg.worker.group!r} is not a valid group name")
    if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,128}", cfg.worker.id):
        yield ConfigError("worker.id", f"{cfg.worker.id!r}: letters, digits and _.:@- only")
    yield from _market_problems(cfg.market)


def _market_problems(entries: list[MarketEntry]) -> Iterator[ConfigError]:
    seen: set[str] = set()
    for i, m in enumerate(entries):
        for key in ("id", "party"):
            if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,128}", getattr(m, key)):
                yield ConfigError(
                    f"market[{i}].{key}", f"{getattr(m, key)!r}: letters, digits and _.:@- only"
                )
        if m.id in seen:
            yield ConfigError(f"market[{i}].id", f"market {m.id!r} is listed twice")
        seen.add(m.id)


def with_overrides(cfg: Config, **sections: dict[str, Any]) -> Config:
    """``cfg`` with some keys replaced, e.g. ``with_overrides(cfg, worker={"id": "w2"})``;
    the command line uses it so flags and file agree on one checked result."""
    data = msgspec.to_builtins(cfg)
    for name, values in sections.items():
        given = {k: v for k, v in values.items() if v is not None}
        if name == "worker" and "db" in given:  # the older name of the store
            given["store"] = given.pop("db")
        data.setdefault(name, {}).update(given)
    return config_from_dict(data)


def dump_toml(data: dict[str, Any]) -> str:
    """TOML for a nested dict of scalars, lists and dicts (what :class:`Config` holds); the
    demo writes its worker's configuration with it. The project's one TOML writer is
    ``tomli_w`` (contracts and provisioning use it too)."""
    import tomli_w

    return tomli_w.dumps(data)
