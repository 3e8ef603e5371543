"""The generic Modbus engine: one driver class per transport, any device by its register map.

Config (``[devices.<id>]``):

* ``driver = "modbus_tcp"``: ``host``, ``port`` (502); ``driver = "modbus_rtu"``: ``port`` (a
  serial device such as ``/dev/ttyUSB0``, or a pyserial URL such as ``socket://host:4001``
  for an RS-485 to Ethernet converter in transparent mode), ``baudrate`` (9600),
  ``parity`` (``N``/``E``/``O``), ``bytesize`` (8), ``stopbits`` (1);
* ``template``: a built-in template name or a ``.toml`` file; ``read``/``write``/``limits``
  tables override or extend it (or replace it altogether when there is no template);
* ``unit`` (1): the Modbus unit (slave) address; ``timeout_s`` (1.0); ``retries`` (0);
  ``min_interval_s`` (0.05): the pause after one exchange before the next request, which
  slow RS-485 devices need and which keeps a gateway from being flooded.

Behaviour that the EMS relies on:

* a measurement is read whole, in as few requests as the map allows, or not at all: any
  timeout, connection loss or Modbus exception is a :class:`~agent.errors.DeviceFault`
  naming the request, and no previous value is ever handed out in its place;
* after a failed exchange the connection is closed and reopened on the next request, so a
  late answer to a timed-out request can never be taken for the answer to a later one
  (Modbus RTU frames carry no transaction id);
* set-points outside the device's limits are refused.

Bus timing is wall-clock time, not the agent's :class:`~agent.clock.Clock`: a simulated clock
running 900 times faster must not shorten a real device's pause.
"""

from __future__ import annotations

import asyncio
import math
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from agent.drivers.base import Driver, Limits, Measurement
from agent.drivers.modbus.registers import MEASUREMENT_FIELDS, Block, RegisterMap, merge, parse_map
from agent.drivers.modbus.templates import load_template
from agent.errors import DeviceFault
from agent.params import Params

#: Device-table keys that configure the connection, not the register map.
_CONNECTION_KEYS = frozenset(
    {
        "driver",
        "generator",
        "template",
        "host",
        "port",
        "baudrate",
        "parity",
        "bytesize",
        "stopbits",
        "unit",
        "timeout_s",
        "retries",
        "min_interval_s",
    }
)


class ModbusDriver(Driver):
    """The engine; subclasses only say how to reach the device."""

    def setup(self, p: Params) -> None:
        self.map = self._register_map(p)
        self.unit = p.integer("unit", 1, min=0, max=247)
        self.timeout_s = p.number("timeout_s", 1.0, min=0.05, max=60.0)
        self.retries = p.integer("retries", 0, min=0, max=5)
        self.min_interval_s = p.number("min_interval_s", 0.05, min=0.0, max=10.0)
        self._blocks = self.map.blocks()
        energy_reg = next((r for r in self.map.reads if r.name == "energy_kwh"), None)
        self._energy_wrap = None if energy_reg is None else energy_reg.wrap
        self._client: ModbusBaseClient | None = None
        self._lock = asyncio.Lock()
        self._last_exchange = -math.inf
        self._configure(p)

    def _register_map(self, p: Params) -> RegisterMap:
        table: dict[str, Any] = {}
        if p.has("template"):
            table = load_template(p.string("template"), key=p.key("template"))
        own = {k: v for k, v in p.table.items() if k not in _CONNECTION_KEYS}
        table = merge(table, own)
        if not table.get("read") and not table.get("write"):
            raise p.error("template", "give a template or [read]/[write] register tables")
        return parse_map(table, prefix=self.key_prefix)

    @abstractmethod
    def _configure(self, p: Params) -> None:
        """Read the transport's own parameters."""

    @abstractmethod
    def _make_client(self) -> ModbusBaseClient:
        """A new, unconnected pymodbus client."""

    @property
    def limits(self) -> Limits:
        return self.map.limits

    # -- connection ---------------------------------------------------------------------

    async def open(self) -> None:
        async with self._lock:
            await self._connect()

    async def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _connect(self) -> ModbusBaseClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        client = self._make_client()
        try:
            ok = await client.connect()
        except (ModbusException, OSError) as exc:
            client.close()
            raise DeviceFault(self.device_id, f"cannot connect: {exc}") from exc
        if not ok:
            client.close()
            raise DeviceFault(self.device_id, "cannot connect")
        self._client = client
        return client

    async def _exchange(
        self, what: str, call: Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        """One request and its answer, paced, with every failure as a DeviceFault."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            wait = self._last_exchange + self.min_interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                client = await self._connect()
                response = await call(client)
            except (TimeoutError, ModbusException, OSError) as exc:
                self._drop()  # a late answer must not be read as the next one's
                raise DeviceFault(self.device_id, f"{what}: {_reason(exc)}") from exc
            finally:
                self._last_exchange = loop.time()
            if response.isError():
                code = getattr(response, "exception_code", "?")
                raise DeviceFault(self.device_id, f"{what}: Modbus exception code {code}")
            return response

    # -- reading ------------------------------------------------------------------------

    async def _read_block(self, block: Block) -> dict[str, float | bool]:
        what = f"reading {block.table} {block.address}..{block.address + block.count - 1}"
        unit = self.unit
        readers = {
            "holding": lambda c: c.read_holding_registers(
                block.address, count=block.count, device_id=unit
            ),
            "input": lambda c: c.read_input_registers(
                block.address, count=block.count, device_id=unit
            ),
            "coil": lambda c: c.read_coils(block.address, count=block.count, device_id=unit),
            "discrete": lambda c: c.read_discrete_inputs(
                block.address, count=block.count, device_id=unit
            ),
        }
        response = await self._exchange(what, readers[block.table])
        words = response.bits if block.table in ("coil", "discrete") else response.registers
        if len(words) < block.count:
            raise DeviceFault(self.device_id, f"{what}: {len(words)} values for {block.count}")
        try:
            return block.decode(words[: block.count])
        except (ModbusException, ValueError) as exc:
            raise DeviceFault(self.device_id, f"{what}: cannot decode: {exc}") from exc

    async def read(self) -> Measurement:
        values: dict[str, float | bool] = {}
        for block in self._blocks:
            values.update(await self._read_block(block))
        power = values.get("power_w")
        energy = values.get("energy_kwh")
        on = values.get("on")
        return Measurement(
            ts=self.clock.now(),
            power_w=None if power is None else float(power),
            energy_kwh=None if energy is None else float(energy),
            on=None if on is None else bool(on),
            state={k: float(v) for k, v in values.items() if k not in MEASUREMENT_FIELDS},
            energy_wrap_kwh=self._energy_wrap,
        )

    # -- writing ------------------------------------------------------------------------

    async def _write(self, name: str, value: float | bool) -> None:
        reg = self.map.writes[name]
        unit = self.unit
        what = f"writing {name} to {reg.table} {reg.address}"
        if reg.table == "coil":
            await self._exchange(
                what, lambda c: c.write_coil(reg.address, bool(value), device_id=unit)
            )
            return
        try:
            words = reg.encode(value)
        except ValueError as exc:
            raise DeviceFault(self.device_id, f"{what}: {exc}") from exc
        if len(words) == 1:
            await self._exchange(
                what, lambda c: c.write_register(reg.address, words[0], device_id=unit)
            )
        else:
            await self._exchange(
                what, lambda c: c.write_registers(reg.address, words, device_id=unit)
            )

    async def set_power(self, power_w: float) -> None:
        if "power_w" not in self.map.writes:
            if "on" in self.map.writes:
                await self.set_on(power_w > 0.0)
                return
            raise DeviceFault(self.device_id, "read-only device: no power set-point")
        await self._write("power_w", self.check_set_point(power_w))

    async def set_on(self, on: bool) -> None:
        if "on" in self.map.writes:
            await self._write("on", on)
        elif "power_w" in self.map.writes:
            await self._write("power_w", self.limits.max_power_w if on else self.limits.clip(0.0))
        else:
            raise DeviceFault(self.device_id, "read-only device: cannot be switched")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.removeprefix("Modbus Error: ")


class ModbusTcpDriver(ModbusDriver):
    """Modbus TCP (a meter or inverter on the LAN, or an RS-485 gateway speaking TCP)."""

    name = "modbus_tcp"
    version = "1"

    def _configure(self, p: Params) -> None:
        self.host = p.string("host")
        self.port = p.integer("port", 502, min=1, max=65_535)

    def _make_client(self) -> ModbusBaseClient:
        return AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout_s,
            retries=self.retries,
            reconnect_delay=0,
        )


class ModbusRtuDriver(ModbusDriver):
    """Modbus RTU over a serial line (RS-485 adapter) or a pyserial URL."""

    name = "modbus_rtu"
    version = "1"

    def _configure(self, p: Params) -> None:
        self.port = p.string("port")
        self.baudrate = p.integer("baudrate", 9600, min=300, max=921_600)
        self.parity = p.string("parity", "N", choices=["N", "E", "O"])
        self.bytesize = p.integer("bytesize", 8, min=7, max=8)
        self.stopbits = p.integer("stopbits", 1, min=1, max=2)

    def _make_client(self) -> ModbusBaseClient:
        return AsyncModbusSerialClient(
            self.port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            parity=self.parity,
            bytesize=self.bytesize,
            stopbits=self.stopbits,
            timeout=self.timeout_s,
            retries=self.retries,
            reconnect_delay=0,
        )
