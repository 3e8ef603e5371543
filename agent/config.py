"""The agent's configuration: one TOML file, checked as a whole before anything starts.

Every problem is reported with its key (``broker.url``, ``devices.ev1.driver``), all of them
at once, so ``foa config check`` shows the full list. Relative paths are relative to the
file. The broker password comes from ``password_file`` (a file only its owner can read, mode
0600) or, discouraged, from ``password``; it is held in a :class:`Secret`, whose text is never
printed or logged. See ``docs/agent.md`` for the reference and an example.

How it is read. Each table of the file is a frozen msgspec struct (:class:`AgentSection`,
:class:`BrokerSection`, :class:`ClockConfig`, :class:`DeviceSection`), the declarative base
FMAN's configuration uses too: one definition per key gives its default, its type, its range
and, in ``Meta(description=...)``, the words of its error; unknown keys are refused. msgspec
is already the agent's codec, converts a table in microseconds (the fleet simulator checks
thousands of files) and gives values nobody can change afterwards. It reports only its first
problem, at a JSON path; :func:`protocol.convert_table`, shared with FMAN, finds every problem
and names each by its dotted key, with a "did you mean" for a misspelt one.

What a struct cannot say is plain code below (:func:`read_config`): keys that depend on each
other (``control_interval_s`` divides ``resolution_s``), the broker's URL taken apart, and what
needs the file system (paths relative to the file, the password file and its mode). The result
is :class:`AgentConfig`, the ``[agent]`` table with the other tables resolved. The checks that
need plug-ins (does the driver exist, are the device's own keys right, and is every key of a
device table read by its driver or generator) are in :func:`agent.plugins.check_config_file`.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from agent.errors import ConfigError, ConfigErrors
from protocol import (
    FieldError,
    check_value,
    convert_table,
    parse_toml,
    salvage_table,
    unknown_key,
)

S = TypeVar("S", bound=msgspec.Struct)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
RESOLUTION = "900 to 3600 s, dividing a day (900, 1200, 1800, 3600)"

#: An agent or device id: it is part of every MQTT topic the agent uses.
Id = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_.:@-]{1,128}$",
        description="letters, digits and _.:@- only (it is used in MQTT topics)",
    ),
]
#: A finite number above zero (the upper bound refuses TOML's ``inf``).
Positive = Annotated[float, Meta(gt=0, le=sys.float_info.max, description="must be positive")]
PositiveInt = Annotated[int, Meta(gt=0, description="must be positive")]
Mode = Literal["delegated", "direct"]


class Secret:
    """A value that must never appear in a log line, a repr or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# -- the tables of the file -----------------------------------------------------------------


class _Section(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A table of ``foa.toml``: every key declared, any other refused."""


class AgentSection(_Section, kw_only=True, frozen=True):
    """``[agent]``: who the agent is and how it runs."""

    id: Id
    #: The store (SQLite), relative to the file; empty: ``$STATE_DIRECTORY/foa.db`` under
    #: systemd, else ``foa.db`` next to the file. :attr:`AgentConfig.store` is the path used.
    store_file: str = msgspec.field(default="", name="store")
    resolution_s: Annotated[int, Meta(ge=900, le=3600, description=RESOLUTION)] = 900
    #: Copied into every offer (a device may override it).
    grid_node: str = ""
    trading_mode: Mode = "delegated"
    #: Seconds between control steps; must divide ``resolution_s`` (checked in _agent_rules).
    control_interval_s: int = 60
    #: Publish readings every N slots.
    meter_batch_slots: PositiveInt = 1
    #: How long sent readings (and undelivered meter batches) are kept.
    retention_days: Positive = 7.0
    #: ``full``: fsync every commit (a power cut loses nothing); ``normal``: faster.
    durability: Literal["full", "normal"] = "full"
    #: How often the retained ``online`` status is refreshed.
    health_interval_s: PositiveInt = 900
    #: Wall seconds one control step may take (device calls and their timeouts included)
    #: before the agent counts as hung: the systemd watchdog kicks, systemd restarts it.
    step_timeout_s: PositiveInt = 900
    #: Wall seconds a clean stop waits for FMAN to answer what the outbox still holds (what
    #: is left is sent after the next start).
    drain_s: Annotated[float, Meta(ge=0, le=3600, description="0 to 3600")] = 5.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class BrokerSection(_Section, kw_only=True, frozen=True):
    """``[broker]`` as written; :class:`BrokerConfig` is what the uplink gets from it."""

    url: str
    username: str | None = None
    #: Discouraged: ``password_file`` keeps the password out of the config.
    password: str | None = None
    password_file: str | None = None
    #: Default: the system's CA store.
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: Annotated[int, Meta(ge=5, le=65_535, description="5 to 65535")] = 30
    session_expiry_s: Annotated[int, Meta(ge=86_400, description="at least 86400 (one day)")] = (
        7 * 86_400
    )
    #: Reconnect backoff: doubles, jittered, capped at ``backoff_max_s``.
    backoff_initial_s: Positive = 1.0
    backoff_max_s: Positive = 60.0
    #: Wall seconds before an offer, withdrawal or meter batch FMAN has not answered is sent
    #: again (then doubling, jittered, up to ``answer_backoff_max_s``).
    answer_timeout_s: Positive = 10.0
    answer_backoff_max_s: Positive = 300.0
    #: Most messages sent and not yet answered by FMAN; new ones wait beyond that.
    max_unanswered: Annotated[int, Meta(ge=1, le=10_000, description="1 to 10000")] = 100
    #: Needed for ``mqtt://`` to a host that is not loopback.
    allow_plaintext: bool = False

    def __repr__(self) -> str:  # it holds the password as written
        return f"BrokerSection(url={self.url!r}, ...)"


class ClockConfig(_Section, kw_only=True, frozen=True):
    """``[clock]``, simulated time: ``start`` is the simulated epoch at wall time ``anchor``
    (default: when the agent starts), and the clock runs ``speed`` times real time."""

    speed: Positive = 1.0
    start: Positive
    anchor: Positive | None = None


class WebSection(_Section, kw_only=True, frozen=True):
    """``[web]``: the agent's local page (:mod:`agent.web`), off unless ``enabled``.

    On loopback it may go without a password (anyone who can reach the gateway's loopback
    already holds the gateway); on any other address ``password_file`` is required."""

    enabled: bool = False
    #: An IP address to listen on: ``127.0.0.1`` (this machine only), ``0.0.0.0`` (every
    #: interface, needs ``password_file``), or one interface's address.
    listen: str = "127.0.0.1"
    #: 0: any free port (the page's address is then in ``foa status``).
    port: Annotated[int, Meta(ge=0, le=65_535, description="0 to 65535")] = 8765
    #: The page's password (mode 0600), as text or as written by ``foa web password``.
    password_file: str | None = None


class MarketSection(_Section, kw_only=True, frozen=True):
    """``[market]``: the agent trades its direct-mode offers on this market itself, as sell
    orders of ``account`` (docs/agent.md, "Selling on a market"), rather than through FMAN."""

    #: The market's id: its orders go to ``atp/v1/m/{id}/bid/{account}``.
    id: Id
    #: The party the orders are from; FMAR answers on ``atp/v1/m/{id}/ack/{account}``.
    account: Id


class DeviceSection(msgspec.Struct, kw_only=True, frozen=True):
    """The agent's own keys of a ``[devices.<id>]`` table. The driver's and the generator's
    keys sit beside them; the plug-ins check those (:mod:`agent.params`), and
    :func:`agent.plugins.build_devices` refuses a key that none of them reads."""

    driver: str
    generator: str | None = None
    #: Default: the agent's.
    grid_node: str | None = None
    #: Default: the agent's.
    trading_mode: Mode | None = None


#: The tables a file may have.
TABLES = ("agent", "broker", "clock", "web", "market", "devices")
#: The keys of a device table that belong to the agent rather than to a plug-in.
DEVICE_KEYS = frozenset(f.encode_name for f in msgspec.structs.fields(DeviceSection))


# -- what the agent uses ----------------------------------------------------------------------


class BrokerConfig(msgspec.Struct, kw_only=True, frozen=True):
    """The broker as the uplink uses it: the URL taken apart, the password read, the paths
    resolved. Defaults and ranges are :class:`BrokerSection`'s."""

    url: str
    host: str
    port: int
    tls: bool
    username: str | None
    password: Secret | None
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    keepalive_s: int
    session_expiry_s: int
    backoff_initial_s: float
    backoff_max_s: float
    answer_timeout_s: float
    answer_backoff_max_s: float
    max_unanswered: int

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``mqtts://`` (``None`` for ``mqtt://``); ConfigError naming the
        file when a certificate or key cannot be loaded."""
        if not self.tls:
            return None
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("broker.ca_file", f"cannot load: {exc}") from exc
        if self.cert_file is not None:
            try:
                ctx.load_cert_chain(
                    str(self.cert_file), str(self.key_file) if self.key_file else None
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError("broker.cert_file", f"cannot load: {exc}") from exc
        return ctx


class WebConfig(msgspec.Struct, kw_only=True, frozen=True):
    """The local page as :mod:`agent.web` serves it: the address checked, the password read
    (``None``: no login, which only a loopback address allows)."""

    enabled: bool = False
    listen: str = "127.0.0.1"
    port: int = 8765
    password_file: Path | None = None
    password: Secret | None = None

    @property
    def loopback(self) -> bool:
        return _is_loopback(self.listen)


class DeviceConfig(msgspec.Struct, kw_only=True, frozen=True):
    """One ``[devices.<id>]`` table with the agent's defaults filled in. ``params`` is the
    whole table (driver and generator keys included); drivers and generators read what they
    need from it."""

    id: str
    driver: str
    generator: str | None
    grid_node: str
    trading_mode: Mode
    params: Mapping[str, Any] = msgspec.field(default_factory=dict)


class AgentConfig(AgentSection, kw_only=True, frozen=True):
    """The checked configuration: the ``[agent]`` table's keys as attributes (defaults and
    ranges declared once, in :class:`AgentSection`), the other tables resolved."""

    #: The store's path, from the file's ``store`` (:attr:`AgentSection.store_file`). An
    #: AgentConfig is never encoded; the name only keeps it apart from that key.
    store: Path = msgspec.field(name="store_path")
    broker: BrokerConfig
    devices: tuple[DeviceConfig, ...]
    clock: ClockConfig | None = None
    web: WebConfig = WebConfig()
    #: Where direct-mode offers are sold (``None``: they go to FMAN like the others).
    market: MarketSection | None = None
    source: Path | None = None


# -- reading ----------------------------------------------------------------------------------


def parse_config(data: Mapping[str, Any], *, base: Path, source: str = "") -> AgentConfig:
    """Check a parsed TOML document; :class:`ConfigErrors` lists every problem found."""
    cfg, _, errors = read_config(data, base=base, source=source)
    if errors or cfg is None:
        raise ConfigErrors(errors, source=source)
    return cfg


def read_config(
    data: Mapping[str, Any], *, base: Path, source: str = ""
) -> tuple[AgentConfig | None, tuple[DeviceConfig, ...], list[ConfigError]]:
    """The config (``None`` if anything is wrong), the device tables that could be read (so
    their plug-ins can be checked too) and every error found.

    Each table is converted on its own, so a mistake in one does not hide another's; a
    table's rules are checked with its right keys and the defaults of its wrong ones."""
    found: list[FieldError] = [unknown_key(k, k, TABLES) for k in data if k not in TABLES]
    agent = _table(data, "agent", AgentSection, found, required=True, fill={"id": "-"})
    if agent is not None:
        _agent_rules(agent, found)
    broker_section = _table(data, "broker", BrokerSection, found, required=True, fill={"url": ""})
    broker = _broker(broker_section, base, found) if broker_section is not None else None
    clock = _table(data, "clock", ClockConfig, found) if "clock" in data else None
    web_section = _table(data, "web", WebSection, found) if "web" in data else WebSection()
    web = _web(web_section, base, found) if web_section is not None else None
    market = _table(data, "market", MarketSection, found) if "market" in data else None
    devices = _devices(data.get("devices"), agent, found)
    errors = [ConfigError(e.path, e.message) for e in found]
    if errors or agent is None or broker is None:
        return None, devices, errors
    cfg = AgentConfig(
        **msgspec.structs.asdict(agent),
        store=_store(agent, base),
        broker=broker,
        devices=devices,
        clock=clock,
        web=web or WebConfig(),
        market=market,
        source=Path(source) if source else None,
    )
    return cfg, devices, []


def _table(
    data: Mapping[str, Any],
    key: str,
    cls: type[S],
    found: list[FieldError],
    *,
    required: bool = False,
    fill: Mapping[str, Any] | None = None,
) -> S | None:
    """Table ``key`` as ``cls``; with errors, what can still be checked (salvage_table, with
    ``fill``'s stand-ins for wrong required keys). A missing or malformed table is read as
    empty, so that its required keys are named too."""
    raw = data.get(key)
    if raw is None and required:
        found.append(FieldError(key, "missing table"))
    elif raw is not None and not isinstance(raw, dict):
        found.append(FieldError(key, f"must be a table, not {type(raw).__name__}"))
    if not isinstance(raw, dict):
        raw = {}
    value, errors = convert_table(raw, cls, path=key)
    found += errors
    return value if value is not None else salvage_table(raw, cls, errors, path=key, fill=fill)


def _agent_rules(a: AgentSection, found: list[FieldError]) -> None:
    resolution = a.resolution_s
    if 86_400 % resolution:
        found.append(FieldError("agent.resolution_s", RESOLUTION))
        resolution = 900  # the interval is checked against the default
    if not (a.control_interval_s > 0 and resolution % a.control_interval_s == 0):
        found.append(
            FieldError("agent.control_interval_s", f"must divide resolution_s ({resolution})")
        )


def _store(a: AgentSection, base: Path) -> Path:
    if a.store_file:
        return _path(a.store_file, base)
    state_dir = os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
    return Path(state_dir.split(":")[0]) / "foa.db" if state_dir else base / "foa.db"


def _path(raw: str, base: Path) -> Path:
    p = Path(os.path.expandvars(raw)).expanduser()
    return p if p.is_absolute() else base / p


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _address(url: str, error: Callable[[str, str], None]) -> tuple[str, int, bool]:
    """Host, port and whether TLS is used, from the broker's URL."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        error("url", f"scheme must be mqtt:// or mqtts://, not {parts.scheme!r}")
        return "", 0, False
    host, port = parts.hostname or "", 0
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        error("url", "bad port")
    if not host:
        error("url", "no host")
    if parts.username or parts.password:
        error("url", "put credentials in username and password_file, not the URL")
    return host, port, parts.scheme == "mqtts"


def _broker(b: BrokerSection, base: Path, found: list[FieldError]) -> BrokerConfig | None:
    def error(key: str, message: str) -> None:
        found.append(FieldError(f"broker.{key}", message))

    # an empty url is a missing or wrong one, said already
    host, port, tls = _address(b.url, error) if b.url else ("", 0, False)
    password = None
    if b.password is not None and b.password_file is not None:
        error("password", "give password or password_file, not both")
    elif b.password is not None:
        password = Secret(b.password)
    elif b.password_file is not None:
        password = _read_secret(_path(b.password_file, base), found)
    if password is not None and b.username is None:
        error("username", "a password needs a username")
    if host and not tls and not _is_loopback(host) and not b.allow_plaintext:
        error(
            "url",
            f"plain mqtt:// to {host}, which is not loopback, would send everything in clear; "
            "use mqtts:// (or set allow_plaintext = true on a trusted network)",
        )
    files = {
        key: _path(raw, base) if raw is not None else None
        for key, raw in (
            ("ca_file", b.ca_file),
            ("cert_file", b.cert_file),
            ("key_file", b.key_file),
        )
    }
    for key, path in files.items():
        if path is not None and not path.is_file():
            error(key, f"{path} is not a readable file")
    key_file = files["key_file"]
    if key_file is not None and files["cert_file"] is None:
        error("key_file", "a key_file needs a cert_file")
    if key_file is not None and key_file.is_file():
        _check_private("broker.key_file", key_file, found)
    if b.backoff_initial_s > b.backoff_max_s:
        error("backoff_max_s", "must not be below backoff_initial_s")
    if b.answer_timeout_s > b.answer_backoff_max_s:
        error("answer_backoff_max_s", "must not be below answer_timeout_s")
    if not host:
        return None
    return BrokerConfig(
        url=b.url,
        host=host,
        port=port,
        tls=tls,
        username=b.username,
        password=password,
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=key_file,
        keepalive_s=b.keepalive_s,
        session_expiry_s=b.session_expiry_s,
        backoff_initial_s=b.backoff_initial_s,
        backoff_max_s=b.backoff_max_s,
        answer_timeout_s=b.answer_timeout_s,
        answer_backoff_max_s=b.answer_backoff_max_s,
        max_unanswered=b.max_unanswered,
    )


def _check_private(key: str, path: Path, found: list[FieldError]) -> bool:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        found.append(
            FieldError(key, f"{path} has mode {mode:04o}, readable by others; run chmod 600 {path}")
        )
        return False
    return True


def _web(w: WebSection, base: Path, found: list[FieldError]) -> WebConfig | None:
    """The ``[web]`` table resolved; checked whether or not it is enabled, so that turning it
    on later cannot expose the page without a password."""
    try:
        ipaddress.ip_address(w.listen)
    except ValueError:
        found.append(
            FieldError("web.listen", f"{w.listen!r} is not an IP address (127.0.0.1, 0.0.0.0, ...)")
        )
        return None
    path = _path(w.password_file, base) if w.password_file is not None else None
    password = _read_secret(path, found, key="web.password_file") if path is not None else None
    if path is None and not _is_loopback(w.listen):
        found.append(
            FieldError(
                "web.password_file",
                f"required when the page listens on {w.listen}, which is not loopback "
                "(write one with: foa web password FILE)",
            )
        )
        return None
    return WebConfig(
        enabled=w.enabled, listen=w.listen, port=w.port, password_file=path, password=password
    )


def _read_secret(
    path: Path, found: list[FieldError], *, key: str = "broker.password_file"
) -> Secret | None:
    try:
        if not _check_private(key, path, found):
            return None
        text = path.read_text().strip()
    except OSError as exc:
        found.append(FieldError(key, f"cannot read {path}: {exc.strerror}"))
        return None
    if not text:
        found.append(FieldError(key, f"{path} is empty"))
        return None
    return Secret(text)


def _devices(
    raw: Any, agent: AgentSection | None, found: list[FieldError]
) -> tuple[DeviceConfig, ...]:
    """Every device table whose agent keys could be read (its plug-ins are checked next)."""
    if raw is not None and not isinstance(raw, dict):
        found.append(FieldError("devices", f"must be a table, not {type(raw).__name__}"))
        return ()
    if not raw:
        found.append(FieldError("devices", "no device configured (add a [devices.<id>] table)"))
        return ()
    grid_node = agent.grid_node if agent is not None else ""
    mode: Mode = agent.trading_mode if agent is not None else "delegated"
    devices = []
    for dev_id, table in raw.items():
        path = f"devices.{dev_id}"
        found += check_value(dev_id, Id, path=path)
        section, errors = convert_table(table, DeviceSection, path=path)
        found += errors
        if section is None:
            section = salvage_table(table, DeviceSection, errors, path=path)
        if section is None:
            continue  # no driver named: nothing to check it with
        devices.append(
            DeviceConfig(
                id=dev_id,
                driver=section.driver,
                generator=section.generator,
                grid_node=grid_node if section.grid_node is None else section.grid_node,
                trading_mode=section.trading_mode or mode,
                params=dict(table),
            )
        )
    return tuple(devices)


def load_config(path: str | Path) -> AgentConfig:
    """Read and check ``path``; :class:`ConfigErrors` lists every problem with its key."""
    p = Path(path)
    return parse_config(read_toml(p), base=p.resolve().parent, source=str(p))


def read_toml(p: Path) -> dict[str, Any]:
    """The parsed file, or :class:`ConfigErrors` saying why it cannot be read (a syntax error
    with its line and column)."""
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigErrors(
            [ConfigError("", f"cannot read {p}: {exc.strerror}")], source=str(p)
        ) from exc
    table, error = parse_toml(data)
    if table is None:
        assert error is not None
        raise ConfigErrors([ConfigError(error.path, error.message)], source=str(p))
    return table
