"""The agent's configuration: one TOML file, checked as a whole before anything starts.

Every problem is reported with its key (``broker.url``, ``devices.ev1.driver``), all of them
at once, so ``foa config check`` shows the full list. Relative paths are relative to the
file. The broker password comes from ``password_file`` (a file only its owner can read, mode
0600) or, discouraged, from ``password``; it is held in a :class:`Secret`, whose text is never
printed or logged. See ``docs/agent.md`` for the reference and an example.

The checks that need plug-ins (does the driver exist, do the generator's parameters make
sense) are in :func:`agent.plugins.check_config_file`; this module only reads and checks values.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import ssl
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from agent.errors import ConfigError, ConfigErrors

T = TypeVar("T")
_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


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


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    url: str
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: Secret | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86_400
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    #: wall seconds before an offer, withdrawal or meter batch FMAN has not answered is sent
    #: again (then doubling, jittered, up to ``answer_backoff_max_s``)
    answer_timeout_s: float = 10.0
    answer_backoff_max_s: float = 300.0
    #: most messages sent and not yet answered by FMAN; new ones wait beyond that
    max_unanswered: int = 100

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


@dataclass(frozen=True, kw_only=True)
class ClockConfig:
    """Simulated time: ``start`` is the simulated epoch at wall time ``anchor``."""

    speed: float
    start: float
    anchor: float | None = None


@dataclass(frozen=True, kw_only=True)
class DeviceConfig:
    """One ``[devices.<id>]`` table. ``params`` is the whole table (driver and generator keys
    included); drivers and generators read what they need from it."""

    id: str
    driver: str
    generator: str | None
    grid_node: str
    trading_mode: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    id: str
    store: Path
    broker: BrokerConfig
    devices: tuple[DeviceConfig, ...]
    resolution_s: int = 900
    grid_node: str = ""
    trading_mode: str = "delegated"
    control_interval_s: int = 60
    meter_batch_slots: int = 1
    retention_days: float = 7.0
    durability: str = "full"
    health_interval_s: int = 900
    #: wall seconds one control step may take (device calls and their timeouts included)
    #: before the agent counts as hung: the systemd watchdog kicks stop, systemd restarts it
    step_timeout_s: int = 900
    #: wall seconds a clean stop waits for FMAN to answer what the outbox still holds (what
    #: is left is sent after the next start)
    drain_s: float = 5.0
    log_level: str = "info"
    clock: ClockConfig | None = None
    source: Path | None = None


class _Reader:
    """Reads typed values from a table, collecting every error with its dotted key."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.errors: list[ConfigError] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(ConfigError(key, message))

    def table(self, data: Mapping[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                self.error(key, "missing table")
            return {}
        if not isinstance(value, dict):
            self.error(key, f"must be a table, not {type(value).__name__}")
            return {}
        return value

    def unknown(self, table: Mapping[str, Any], prefix: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                hint = _closest(key, known)
                self.error(
                    f"{prefix}.{key}" if prefix else key,
                    "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""),
                )

    def value(
        self,
        table: Mapping[str, Any],
        prefix: str,
        key: str,
        kind: type[T] | tuple[type, ...],
        default: T | None = None,
        *,
        required: bool = False,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        full = f"{prefix}.{key}"
        if key not in table:
            if required:
                self.error(full, "missing")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.error(full, f"must be {names}, not {type(value).__name__} ({value!r})")
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.error(full, problem)
                return default
        return value

    def path(self, table: Mapping[str, Any], prefix: str, key: str) -> Path | None:
        raw = self.value(table, prefix, key, str)
        if raw is None:
            return None
        p = Path(os.path.expandvars(raw)).expanduser()
        return p if p.is_absolute() else self.base / p


def _closest(key: str, known: set[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return matches[0] if matches else None


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def _positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be positive"


def _id_check(v: str) -> str | None:
    return None if _ID.match(v) else "letters, digits and _.:@- only (it is used in MQTT topics)"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


AGENT_KEYS = {
    "id",
    "store",
    "resolution_s",
    "grid_node",
    "trading_mode",
    "control_interval_s",
    "meter_batch_slots",
    "retention_days",
    "durability",
    "health_interval_s",
    "step_timeout_s",
    "drain_s",
    "log_level",
}
BROKER_KEYS = {
    "url",
    "username",
    "password",
    "password_file",
    "ca_file",
    "cert_file",
    "key_file",
    "keepalive_s",
    "session_expiry_s",
    "backoff_initial_s",
    "backoff_max_s",
    "answer_timeout_s",
    "answer_backoff_max_s",
    "max_unanswered",
    "allow_plaintext",
}
CLOCK_KEYS = {"speed", "start", "anchor"}


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
    their plug-ins can be checked too) and every error found."""
    r = _Reader(base)
    r.unknown(data, "", {"agent", "broker", "clock", "devices"})
    agent = r.table(data, "agent", required=True)
    r.unknown(agent, "agent", AGENT_KEYS)
    agent_id = r.value(agent, "agent", "id", str, required=True, check=_id_check)
    resolution = r.value(
        agent,
        "agent",
        "resolution_s",
        int,
        900,
        check=lambda v: (
            None
            if 900 <= v <= 3600 and 86_400 % v == 0
            else "900 to 3600 s, dividing a day (900, 1200, 1800, 3600)"
        ),
    )
    interval = r.value(
        agent,
        "agent",
        "control_interval_s",
        int,
        60,
        check=lambda v: (
            None if v > 0 and resolution % v == 0 else f"must divide resolution_s ({resolution})"
        ),
    )
    mode = r.value(
        agent,
        "agent",
        "trading_mode",
        str,
        "delegated",
        check=_one_of("delegated", "direct"),
    )
    grid_node = r.value(agent, "agent", "grid_node", str, "")
    store_path = r.path(agent, "agent", "store")
    if store_path is None:
        state_dir = os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
        store_path = Path(state_dir.split(":")[0]) / "foa.db" if state_dir else base / "foa.db"

    broker = _broker(r, r.table(data, "broker", required=True))
    clock = _clock(r, r.table(data, "clock")) if "clock" in data else None

    devices = []
    raw_devices = r.table(data, "devices")
    if not raw_devices:
        r.error("devices", "no device configured (add a [devices.<id>] table)")
    for dev_id, table in raw_devices.items():
        prefix = f"devices.{dev_id}"
        if _id_check(dev_id):
            r.error(prefix, _id_check(dev_id) or "")
        if not isinstance(table, dict):
            r.error(prefix, f"must be a table, not {type(table).__name__}")
            continue
        devices.append(
            DeviceConfig(
                id=dev_id,
                driver=r.value(table, prefix, "driver", str, "", required=True),
                generator=r.value(table, prefix, "generator", str),
                grid_node=r.value(table, prefix, "grid_node", str, grid_node),
                trading_mode=r.value(
                    table,
                    prefix,
                    "trading_mode",
                    str,
                    mode,
                    check=_one_of("delegated", "direct"),
                ),
                params=dict(table),
            )
        )
    if r.errors or broker is None:
        return None, tuple(devices), r.errors
    cfg = AgentConfig(
        id=agent_id,
        store=store_path,
        broker=broker,
        devices=tuple(devices),
        resolution_s=resolution,
        grid_node=grid_node,
        trading_mode=mode,
        control_interval_s=interval,
        meter_batch_slots=r.value(agent, "agent", "meter_batch_slots", int, 1, check=_positive),
        retention_days=r.value(agent, "agent", "retention_days", float, 7.0, check=_positive),
        durability=r.value(
            agent,
            "agent",
            "durability",
            str,
            "full",
            check=_one_of("full", "normal"),
        ),
        health_interval_s=r.value(agent, "agent", "health_interval_s", int, 900, check=_positive),
        step_timeout_s=r.value(agent, "agent", "step_timeout_s", int, 900, check=_positive),
        drain_s=r.value(
            agent,
            "agent",
            "drain_s",
            float,
            5.0,
            check=lambda v: None if 0 <= v <= 3600 else "0 to 3600",
        ),
        log_level=r.value(
            agent,
            "agent",
            "log_level",
            str,
            "info",
            check=_one_of("debug", "info", "warning", "error"),
        ),
        clock=clock,
        source=Path(source) if source else None,
    )
    return cfg, cfg.devices, r.errors


def _broker(r: _Reader, b: dict[str, Any]) -> BrokerConfig | None:
    r.unknown(b, "broker", BROKER_KEYS)
    url = r.value(b, "broker", "url", str, required=True)
    host, port, tls = "", 0, False
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            r.error("broker.url", f"scheme must be mqtt:// or mqtts://, not {parts.scheme!r}")
        else:
            tls = parts.scheme == "mqtts"
            host = parts.hostname or ""
            try:
                port = parts.port or DEFAULT_PORTS[parts.scheme]
            except ValueError:
                r.error("broker.url", "bad port")
            if not host:
                r.error("broker.url", "no host")
            if parts.username or parts.password:
                r.error("broker.url", "put credentials in username and password_file, not the URL")
    allow_plain = r.value(b, "broker", "allow_plaintext", bool, False)
    username = r.value(b, "broker", "username", str)
    password = None
    if "password" in b and "password_file" in b:
        r.error("broker.password", "give password or password_file, not both")
    elif "password" in b:
        raw = r.value(b, "broker", "password", str)
        password = Secret(raw) if raw is not None else None
    elif "password_file" in b:
        path = r.path(b, "broker", "password_file")
        if path is not None:
            password = _read_secret(r, path)
    if password is not None and username is None:
        r.error("broker.username", "a password needs a username")
    if host and not tls and not _is_loopback(host) and not allow_plain:
        r.error(
            "broker.url",
            f"plain mqtt:// to {host}, which is not loopback, would send everything in clear; "
            "use mqtts:// (or set allow_plaintext = true on a trusted network)",
        )
    files = {k: r.path(b, "broker", k) for k in ("ca_file", "cert_file", "key_file")}
    for key, path in files.items():
        if path is not None and not path.is_file():
            r.error(f"broker.{key}", f"{path} is not a readable file")
    if files["key_file"] is not None and files["cert_file"] is None:
        r.error("broker.key_file", "a key_file needs a cert_file")
    if files["key_file"] is not None and files["key_file"].is_file():
        _check_private(r, "broker.key_file", files["key_file"])
    expiry = r.value(
        b,
        "broker",
        "session_expiry_s",
        int,
        7 * 86_400,
        check=lambda v: None if v >= 86_400 else "at least 86400 (one day)",
    )
    initial = r.value(b, "broker", "backoff_initial_s", float, 1.0, check=_positive)
    cap = r.value(b, "broker", "backoff_max_s", float, 60.0, check=_positive)
    if initial is not None and cap is not None and initial > cap:
        r.error("broker.backoff_max_s", "must not be below backoff_initial_s")
    answer = r.value(b, "broker", "answer_timeout_s", float, 10.0, check=_positive)
    answer_cap = r.value(b, "broker", "answer_backoff_max_s", float, 300.0, check=_positive)
    if answer is not None and answer_cap is not None and answer > answer_cap:
        r.error("broker.answer_backoff_max_s", "must not be below answer_timeout_s")
    unanswered = r.value(
        b,
        "broker",
        "max_unanswered",
        int,
        100,
        check=lambda v: None if 1 <= v <= 10_000 else "1 to 10000",
    )
    if not host:
        return None
    return BrokerConfig(
        url=url,
        host=host,
        port=port,
        tls=tls,
        username=username,
        password=password,
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        keepalive_s=r.value(
            b,
            "broker",
            "keepalive_s",
            int,
            30,
            check=lambda v: None if 5 <= v <= 65_535 else "5 to 65535",
        ),
        session_expiry_s=expiry,
        backoff_initial_s=initial,
        backoff_max_s=cap,
        answer_timeout_s=answer,
        answer_backoff_max_s=answer_cap,
        max_unanswered=unanswered,
    )


def _check_private(r: _Reader, key: str, path: Path) -> bool:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        r.error(key, f"{path} has mode {mode:04o}, readable by others; run chmod 600 {path}")
        return False
    return True


def _read_secret(r: _Reader, path: Path) -> Secret | None:
    try:
        if not _check_private(r, "broker.password_file", path):
            return None
        text = path.read_text().strip()
    except OSError as exc:
        r.error("broker.password_file", f"cannot read {path}: {exc.strerror}")
        return None
    if not text:
        r.error("broker.password_file", f"{path} is empty")
        return None
    return Secret(text)


def _clock(r: _Reader, c: dict[str, Any]) -> ClockConfig | None:
    r.unknown(c, "clock", CLOCK_KEYS)
    speed = r.value(c, "clock", "speed", float, 1.0, check=_positive)
    start = r.value(c, "clock", "start", float, required=True, check=_positive)
    anchor = r.value(c, "clock", "anchor", float, check=_positive)
    if speed is None or start is None:
        return None
    return ClockConfig(speed=speed, start=start, anchor=anchor)


def load_config(path: str | Path) -> AgentConfig:
    """Read and check ``path``; :class:`ConfigErrors` lists every problem with its key."""
    p = Path(path)
    return parse_config(read_toml(p), base=p.resolve().parent, source=str(p))


def read_toml(p: Path) -> dict[str, Any]:
    """The parsed file, or :class:`ConfigErrors` saying why it cannot be read."""
    try:
        return tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigErrors(
            [ConfigError("", f"cannot read {p}: {exc.strerror}")], source=str(p)
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigErrors([ConfigError("", f"not valid TOML: {exc}")], source=str(p)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError("", f"not UTF-8 text: {exc}")], source=str(p)) from exc
