"""Contracts to and from files: one TOML or JSON document per contract version.

Reading checks everything and names the key of the first problem (``terms.share: 1.5 is above
1``), with the file; unknown keys are refused, so a misspelt ``reward_eur_per_kwhh`` cannot fall
back to zero. Times are epoch seconds, ISO 8601 text (UTC unless it names an offset) or, in
TOML, a bare date-time. Money is read as exact decimals (TOML floats are parsed as
:class:`~decimal.Decimal`, JSON numbers by msgspec straight from their text).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
import tomli_w

from ..optim.series import parse_instant
from ._contract import MAX_EUR, Contract, DirectPrice, RevenueSharing, StrictRewards
from ._errors import ContractError

Format = Literal["toml", "json"]

_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$", re.S)
_TERM_KINDS = ("strict_rewards", "revenue_sharing", "direct")


def contract_from_dict(data: Any, *, source: str = "") -> Contract:
    """A checked :class:`Contract` from parsed TOML or JSON; :class:`ContractError` naming the
    key (and ``source``) otherwise."""
    if not isinstance(data, dict):
        raise ContractError("", "a contract is a table of keys", source=source)
    data = dict(data)
    for key in ("valid_from", "valid_until"):
        if key in data and data[key] is not None:
            data[key] = _instant(data[key], key, source)
    terms = data.get("terms")
    if isinstance(terms, dict) and "kind" in terms and terms["kind"] not in _TERM_KINDS:
        raise ContractError(
            "terms.kind",
            f"{terms['kind']!r} is not one of {', '.join(_TERM_KINDS)}",
            source=source,
        )
    try:
        contract = msgspec.convert(data, Contract)
    except msgspec.ValidationError as exc:
        m = _AT.match(str(exc))
        if m:
            raise ContractError(m.group(2), m.group(1), source=source) from None
        raise ContractError("", str(exc), source=source) from None
    check_contract(contract, source=source)
    return contract


def check_contract(c: Contract, *, source: str = "") -> None:
    """Rules that span fields or that msgspec cannot state for decimals."""

    def fail(key: str, message: str) -> ContractError:
        return ContractError(key, message, source=source)

    if c.valid_until is not None and c.valid_until <= c.valid_from:
        raise fail("valid_until", "must be later than valid_from")
    terms = c.terms
    if isinstance(terms, DirectPrice) != (c.mode == "direct"):
        want = "direct" if c.mode == "direct" else "strict_rewards or revenue_sharing"
        raise fail("terms.kind", f"a {c.mode} contract needs {want} terms")
    money: dict[str, Decimal] = {}
    if isinstance(terms, StrictRewards):
        money = {
            "reward_eur_per_kwh": terms.reward_eur_per_kwh,
            "reward_eur_per_flex_hour": terms.reward_eur_per_flex_hour,
            "fee_eur_per_month": terms.fee_eur_per_month,
            "penalty_eur_per_kwh": terms.penalty_eur_per_kwh,
        }
    elif isinstance(terms, RevenueSharing):
        money = {"share": terms.share}
    for key, value in money.items():
        if not value.is_finite():
            raise fail(f"terms.{key}", f"{value} is not a finite number")
        if value < 0:
            raise fail(f"terms.{key}", f"{value} is negative")
        if value > MAX_EUR:
            raise fail(f"terms.{key}", f"{value} is above {MAX_EUR}")
    if isinstance(terms, RevenueSharing) and terms.share > 1:
        raise fail("terms.share", f"{terms.share} is above 1 (a share of the revenue)")
    if len(set(c.devices)) != len(c.devices):
        raise fail("devices", "a device is listed twice")
    if c.metering.main_meter and c.metering.main_meter in c.devices:
        raise fail("metering.main_meter", "the main meter is not a flexible device")
    if c.baseline.min_days > c.baseline.days:
        raise fail("baseline.min_days", f"{c.baseline.min_days} is more than days")
    if c.baseline.days > c.baseline.lookback_days:
        raise fail("baseline.days", f"{c.baseline.days} is more than lookback_days")


def load_contract(path: str | Path) -> Contract:
    """Read and check one contract file (``.toml`` or ``.json``)."""
    path = Path(path)
    fmt = _format_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError("", f"cannot read it: {exc.strerror}", source=str(path)) from None
    except UnicodeDecodeError:
        raise ContractError("", "is not UTF-8 text", source=str(path)) from None
    return parse_contract(text, fmt=fmt, source=str(path))


def parse_contract(text: str, *, fmt: Format, source: str = "") -> Contract:
    """A contract from TOML or JSON text."""
    if fmt == "toml":
        try:
            data = tomllib.loads(text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            raise ContractError("", f"not valid TOML: {exc}", source=source) from None
    else:
        try:
            data = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            where = f"{source}:{exc.lineno}" if source else f"line {exc.lineno}"
            raise ContractError("", f"not valid JSON: {exc.msg}", source=where) from None
    return contract_from_dict(data, source=source)


def contract_to_dict(c: Contract) -> dict[str, Any]:
    """The contract as plain data: times as ISO 8601 UTC, money as exact decimals."""
    data: dict[str, Any] = msgspec.to_builtins(c, builtin_types=(Decimal,))
    for key in ("valid_from", "valid_until"):
        if data.get(key) is not None:
            data[key] = datetime.fromtimestamp(data[key], UTC).isoformat().replace("+00:00", "Z")
    return data


def dump_contract(c: Contract, *, fmt: Format) -> str:
    """The contract as TOML or JSON text that :func:`parse_contract` reads back equal."""
    data = contract_to_dict(c)
    if fmt == "toml":
        return tomli_w.dumps(_drop_none(data))
    return msgspec.json.format(
        msgspec.json.Encoder(decimal_format="number").encode(data), indent=2
    ).decode()


def write_contract(c: Contract, path: str | Path) -> None:
    path = Path(path)
    path.write_text(dump_contract(c, fmt=_format_of(path)), encoding="utf-8")


def _format_of(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix == ".json":
        return "json"
    raise ContractError("", "a contract file ends in .toml or .json", source=str(path))


def _instant(value: Any, key: str, source: str) -> int:
    if isinstance(value, datetime):
        ts = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    elif isinstance(value, date):
        ts = datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    elif isinstance(value, bool):
        raise ContractError(key, "expected epoch seconds or an ISO 8601 time", source=source)
    elif isinstance(value, int | float | Decimal):
        ts = float(value)
    elif isinstance(value, str):
        try:
            ts = parse_instant(value)
        except ValueError as exc:
            raise ContractError(key, str(exc), source=source) from None
    else:
        raise ContractError(key, "expected epoch seconds or an ISO 8601 time", source=source)
    if not math.isfinite(ts) or not float(ts).is_integer():
        raise ContractError(key, f"{value!r} is not a whole second", source=source)
    return int(ts)


def _drop_none(data: Any) -> Any:
    """TOML has no null: leave such keys out (they are the defaults)."""
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_drop_none(v) for v in data]
    return data
