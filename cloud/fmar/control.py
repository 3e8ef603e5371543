"""The operator's actions on a running market service: close or open a market, change its
parameters. ``atp market close|open|set`` and the dashboard's markets page both call these.

Neither speaks to the service: closing writes the store's ``market_control`` row, which the
service reads every half second; a change of parameters rewrites ``fmar.toml``, which the
service reads again when it changes (:meth:`cloud.fmar.service.Service._reload`), so a change
made here takes the same road as an operator's edit of the file. The file is edited in place
(comments and layout kept), checked whole with the service's own loader before it replaces
the old one, and replaced atomically: the service never reads half a file, and a change the
loader would refuse is never written.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import tomlkit
import tomlkit.exceptions

from ._errors import MarketConfigError, MarketError
from .config import MarketSection, config_from_dict
from .store import ControlRow, MarketState, open_market_store

#: The parameters an operator changes by name (``atp market set``, the markets page): the
#: gate timing and grid, pricing and the limits, and the allow-lists. Kind, nodes and links
#: shape the market itself and are changed in the file.
EDITABLE: tuple[str, ...] = (
    "pricing",
    "resolution_s",
    "horizon_s",
    "gate_period_s",
    "gate_lead_s",
    "min_order_kwh",
    "time_limit_s",
    "voll",
    "sellers",
    "buyers",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChange:
    market: str
    state: MarketState
    #: the state before
    was: MarketState
    note: str
    at: float

    def text(self) -> str:
        """What changed, for a person (the command's line, the page's notice)."""
        if self.state == "closed":
            return (
                f"market {self.market} closed (was {self.was}): orders are refused and no "
                "new gate opens; a gate already open clears what it took"
            )
        return f"market {self.market} open (was {self.was}): the next gate takes orders"


def set_state(
    store: str,
    market: str,
    state: MarketState,
    *,
    note: str = "",
    clock: Callable[[], float] = time.time,
) -> StateChange:
    """Open or close ``market`` in the store at ``store`` (a market the service has run).
    Within a second the running service refuses its orders (closed) or takes them again."""
    s = open_market_store(store)
    try:
        known = [m.id for m in s.markets()]
        if market not in known:
            raise MarketError(
                f"no market {market!r} in {s.where} (markets: {', '.join(known) or 'none'})"
            )
        before = s.control(market)
        at = clock()
        s.set_control(ControlRow(market=market, state=state, changed_at=at, note=note))
    finally:
        s.close()
    return StateChange(
        market=market, state=state, was=before.state if before else "open", note=note, at=at
    )


def parse_value(market: str, key: str, text: str) -> Any:
    """The value of parameter ``key`` written as text (a form field, ``KEY=VALUE`` on the
    command line): a number, a pricing rule, or a list of accounts separated by commas."""
    path = f"markets.{market}.{key}"
    if key not in EDITABLE:
        raise MarketConfigError(path, f"not changed by name; one of {', '.join(EDITABLE)}")
    default = getattr(MarketSection(), key)
    text = text.strip()
    if isinstance(default, list):
        return [p.strip() for p in text.split(",") if p.strip()]
    if isinstance(default, (bool, str)):
        return text
    try:
        return int(text) if isinstance(default, int) else float(text)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise MarketConfigError(path, f"{text!r} is not {kind}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamsChange:
    market: str
    before: MarketSection
    after: MarketSection
    #: the keys whose values differ
    changed: tuple[str, ...]

    def text(self, where: Path) -> str:
        """What changed, for a person (the command's line, the page's notice)."""
        if not self.changed:
            return f"market {self.market}: nothing changed in {where}"
        shown = ", ".join(f"{k} = {getattr(self.after, k)!r}" for k in self.changed)
        return (
            f"market {self.market}: {shown} written to {where}; the running service opens "
            "its next gate with them (sellers and buyers apply at once)"
        )


def change_params(config_path: Path, market: str, values: Mapping[str, Any]) -> ParamsChange:
    """Set ``values`` (parameter name to value, see :func:`parse_value`) of ``market`` in
    ``config_path``. The whole file is checked as the service loads it; a refusal raises
    :class:`MarketConfigError` naming the key and leaves the file as it was."""
    try:
        text = config_path.read_text()
    except OSError as exc:
        raise MarketConfigError("", f"cannot read {config_path}: {exc.strerror}") from None
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise MarketConfigError("", f"{config_path}: {exc}") from None
    before = config_from_dict(doc.unwrap()).markets.get(market)
    markets = doc.get("markets")
    if before is None or markets is None or market not in markets:
        raise MarketConfigError(f"markets.{market}", f"no such market in {config_path}")
    for key in values:
        if key not in EDITABLE:
            raise MarketConfigError(
                f"markets.{market}.{key}", f"not changed by name; one of {', '.join(EDITABLE)}"
            )
    table = markets[market]
    for key, value in values.items():
        # a value as it is stays as written (a form sends every field, changed or not)
        if msgspec.to_builtins(getattr(before, key)) != value:
            table[key] = value
    after = config_from_dict(doc.unwrap()).markets[market]
    changed = tuple(
        k
        for k in EDITABLE
        if msgspec.to_builtins(getattr(before, k)) != msgspec.to_builtins(getattr(after, k))
    )
    if changed:
        _replace(config_path, tomlkit.dumps(doc))
    return ParamsChange(market=market, before=before, after=after, changed=changed)


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to a file beside ``path`` (its mode kept) and rename it over ``path``."""
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
