"""Register maps: what to read and write on a Modbus device, as data. Pure: no I/O.

A map is parsed from a TOML table (a template shipped in ``templates/``, a device table in
``foa.toml``, or both merged), checked with named keys, and then drives the one generic engine
in :mod:`agent.drivers.modbus.driver`. Each entry names a quantity (``power_w``,
``energy_kwh``, ``on``; any other name becomes a ``Measurement.state`` entry) and says where it
lives:

.. code-block:: toml

    [read.power_w]
    address = 52          # zero-based register (or coil) address
    table = "input"       # holding | input | coil | discrete
    type = "float32"      # int16 uint16 int32 uint32 int64 uint64 float32 float64 bool
    word_order = "big"    # "little": low word first (Carlo Gavazzi and others)
    scale = 1.0           # value = raw * scale + offset
    offset = 0.0

``[write.power_w]`` and ``[write.on]`` (a coil, or a register with ``on_value``/
``off_value``) are the set-points. Decoding and encoding are pymodbus's own
``convert_from_registers``/``convert_to_registers``; reads of neighbouring registers are
merged into one request when at most ``max_gap`` registers lie between them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pymodbus.client.mixin import ModbusClientMixin

from agent.drivers.base import Limits
from agent.params import Params

Table = Literal["holding", "input", "coil", "discrete"]
TABLES: tuple[Table, ...] = ("holding", "input", "coil", "discrete")
BIT_TABLES = ("coil", "discrete")
WordOrder = Literal["big", "little"]
WORD_ORDERS: tuple[WordOrder, ...] = ("big", "little")
_C = TypeVar("_C", bound=str)
_DT = ModbusClientMixin.DATATYPE
TYPES: dict[str, Any] = {
    "int16": _DT.INT16,
    "uint16": _DT.UINT16,
    "int32": _DT.INT32,
    "uint32": _DT.UINT32,
    "int64": _DT.INT64,
    "uint64": _DT.UINT64,
    "float32": _DT.FLOAT32,
    "float64": _DT.FLOAT64,
    "bool": None,
}
#: The protocol's limits on one read request.
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000
#: Names that are fields of a Measurement rather than state entries.
MEASUREMENT_FIELDS = ("power_w", "energy_kwh", "on")


@dataclass(frozen=True, slots=True)
class Register:
    """One quantity at one address."""

    name: str
    address: int
    table: Table
    type: str
    scale: float = 1.0
    offset: float = 0.0
    word_order: WordOrder = "big"
    on_value: int = 1
    off_value: int = 0

    @property
    def count(self) -> int:
        """Registers (or bits) it occupies."""
        if self.table in BIT_TABLES or self.type == "bool":
            return 1
        return int(TYPES[self.type].value[1])

    @property
    def wrap(self) -> float | None:
        """The change in value after which an unsigned integer register wraps to zero (its
        range times the scale); ``None`` for other types."""
        if self.table in BIT_TABLES or not self.type.startswith("uint"):
            return None
        return float(2 ** (16 * self.count)) * abs(self.scale)

    def decode(self, words: Sequence[int] | Sequence[bool]) -> float | bool:
        """The value of this register from its raw words (or bits)."""
        if self.table in BIT_TABLES:
            return bool(words[0])
        if self.type == "bool":
            return int(words[0]) != 0
        raw = ModbusClientMixin.convert_from_registers(
            [int(w) for w in words], TYPES[self.type], word_order=self.word_order
        )
        assert isinstance(raw, int | float)
        return float(raw) * self.scale + self.offset

    def encode(self, value: float | bool) -> list[int]:
        """Raw words that write ``value`` (``(value - offset) / scale``, rounded for integers)."""
        if self.type == "bool" or isinstance(value, bool):
            return [self.on_value if value else self.off_value]
        raw: float = (float(value) - self.offset) / self.scale
        if not self.type.startswith("float"):
            raw = round(raw)
            bits = 16 * self.count
            signed = not self.type.startswith("u")
            lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
            if not lo <= raw <= hi:
                raise ValueError(f"{value:g} does not fit {self.type} at scale {self.scale:g}")
        return ModbusClientMixin.convert_to_registers(
            raw, TYPES[self.type], word_order=self.word_order
        )


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers (or bits) of ``table`` from ``address``."""

    table: Table
    address: int
    count: int
    registers: tuple[Register, ...]

    def decode(self, words: Sequence[int] | Sequence[bool]) -> dict[str, float | bool]:
        out = {}
        for reg in self.registers:
            i = reg.address - self.address
            out[reg.name] = reg.decode(words[i : i + reg.count])
        return out


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """A device's reads, writes and limits."""

    reads: tuple[Register, ...]
    writes: Mapping[str, Register]
    limits: Limits
    max_gap: int = 0

    def blocks(self) -> list[Block]:
        """The reads grouped into as few requests as the gaps and the protocol allow."""
        out: list[Block] = []
        for table in TABLES:
            regs = sorted((r for r in self.reads if r.table == table), key=lambda r: r.address)
            limit = MAX_BITS_PER_READ if table in BIT_TABLES else MAX_REGISTERS_PER_READ
            group: list[Register] = []
            for reg in regs:
                if group:
                    start = group[0].address
                    end = max(r.address + r.count for r in group)
                    fits = reg.address - end <= self.max_gap
                    fits = fits and reg.address + reg.count - start <= limit
                    if not fits:
                        out.append(_block(table, group))
                        group = []
                group.append(reg)
            if group:
                out.append(_block(table, group))
        return out


def _block(table: Table, group: list[Register]) -> Block:
    start = group[0].address
    end = max(r.address + r.count for r in group)
    return Block(table=table, address=start, count=end - start, registers=tuple(group))


def _choice(p: Params, name: str, default: str, choices: Sequence[_C]) -> _C:
    """``p.string`` narrowed to the literal type of ``choices``."""
    value = p.string(name, default, choices=choices)
    return next(c for c in choices if c == value)


def parse_map(table: Mapping[str, Any], *, prefix: str = "") -> RegisterMap:
    """Check and build a register map; every error names its key (``read.power_w.type``)."""
    p = Params(table, prefix=prefix)
    defaults = p.sub("template")
    default_table = _choice(defaults, "table", "holding", TABLES)
    default_type = defaults.string("type", "uint16", choices=list(TYPES))
    default_order = _choice(defaults, "word_order", "big", WORD_ORDERS)
    max_gap = defaults.integer("max_gap", 0, min=0, max=100)

    def entry(section: Params, name: str, *, writable: bool) -> Register:
        e = section.sub(name)
        tbl = _choice(e, "table", default_table, TABLES)
        typ = e.string("type", "bool" if tbl in BIT_TABLES else default_type, choices=list(TYPES))
        if tbl in BIT_TABLES and typ != "bool":
            raise e.error("type", f'a {tbl} is a single bit: use type = "bool"')
        if writable and tbl in ("input", "discrete"):
            raise e.error("table", f"{tbl} entries are read-only")
        scale = e.number("scale", 1.0)
        if scale == 0.0:
            raise e.error("scale", "must not be 0")
        reg = Register(
            name=name,
            address=e.integer("address", min=0, max=65_535),
            table=tbl,
            type=typ,
            scale=scale,
            offset=e.number("offset", 0.0),
            word_order=_choice(e, "word_order", default_order, WORD_ORDERS),
            on_value=e.integer("on_value", 1, min=0, max=65_535),
            off_value=e.integer("off_value", 0, min=0, max=65_535),
        )
        if reg.address + reg.count > 65_536:
            raise e.error("address", f"{reg.type} at {reg.address} runs past register 65535")
        return reg

    reads_p, writes_p = p.sub("read"), p.sub("write")
    reads = tuple(entry(reads_p, name, writable=False) for name in reads_p.table)
    writes = {name: entry(writes_p, name, writable=True) for name in writes_p.table}
    for name in writes:
        if name not in ("power_w", "on"):
            raise writes_p.error(name, "only power_w and on can be written")
    lim = p.sub("limits")
    writable_power = "power_w" in writes
    max_w = lim.number("max_power_w", 0.0, min=-1e9, max=1e9)
    min_w = lim.number("min_power_w", min(0.0, max_w), min=-1e9, max=max_w)
    modulating = lim.boolean("modulating", writable_power)
    if modulating and not writable_power:
        raise lim.error("modulating", "a modulating device needs a [write.power_w] register")
    if not modulating and writes and "on" not in writes:
        raise p.error("write", "an on/off device needs a [write.on] entry")
    if math.isclose(max_w, 0.0) and writes:
        raise lim.error("max_power_w", "a device that can be driven needs its maximum power")
    return RegisterMap(
        reads=reads,
        writes=writes,
        limits=Limits(max_power_w=max_w, min_power_w=min_w, modulating=modulating),
        max_gap=max_gap,
    )


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``: tables merge key by key, everything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
