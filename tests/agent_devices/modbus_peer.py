"""A real pymodbus server playing a device described by a register map.

The server is pymodbus's own (``ModbusTcpServer`` with the simulator's ``SimDevice``), with the
RTU framer when asked, so the driver under test talks to the same code a field device's
gateway would run. ``slow`` makes it stop answering in time, for fault tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from agent.drivers.modbus.registers import Register, RegisterMap

FUNC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


@dataclass
class Peer:
    server: ModbusTcpServer
    port: int
    unit: int
    delay_s: float = 0.0
    #: loop time of each request, as it arrived
    requests: list[float] = field(default_factory=list)
    #: requests answered so far (an answer goes out as soon as it is counted)
    answered: int = 0

    async def get(self, reg: Register) -> list[int] | list[bool]:
        return await self.server.async_getValues(self.unit, FUNC[reg.table], reg.address, reg.count)

    async def put(self, reg: Register, words: list[int] | list[bool]) -> None:
        func = {"coil": 5, "discrete": 2, "holding": 16, "input": 4}[reg.table]
        await self.server.async_setValues(self.unit, func, reg.address, list(words))


def words_for(reg: Register, value: float | bool) -> list[int] | list[bool]:
    if reg.table in ("coil", "discrete"):
        return [bool(value)]
    return reg.encode(value)


@asynccontextmanager
async def serve(
    regmap: RegisterMap,
    values: Mapping[str, float | bool],
    *,
    unit: int = 1,
    framer: FramerType = FramerType.SOCKET,
    port: int = 0,
) -> AsyncIterator[Peer]:
    """Serve ``values`` at the addresses of ``regmap`` (reads and writes) on 127.0.0.1."""
    tables: dict[str, list[SimData]] = {t: [] for t in FUNC}
    seen: set[tuple[str, int]] = set()
    for reg in [*regmap.reads, *regmap.writes.values()]:
        if (reg.table, reg.address) in seen:
            continue
        seen.add((reg.table, reg.address))
        words = words_for(
            reg, values.get(reg.name, 0 if reg.table not in ("coil", "discrete") else False)
        )
        datatype = DataType.BITS if reg.table in ("coil", "discrete") else DataType.REGISTERS
        tables[reg.table].append(SimData(reg.address, values=list(words), datatype=datatype))
    for t, blocks in tables.items():  # pymodbus wants every table non-empty
        if not blocks:
            blocks.append(
                SimData(
                    60_000,
                    values=[False] if t in ("coil", "discrete") else [0],
                    datatype=DataType.BITS if t in ("coil", "discrete") else DataType.REGISTERS,
                )
            )
    peer: Peer | None = None

    async def action(fc, start, address, count, regs, set_values):
        assert peer is not None
        peer.requests.append(asyncio.get_running_loop().time())
        if peer.delay_s:
            await asyncio.sleep(peer.delay_s)  # a slow device: the answer comes this late
        peer.answered += 1
        return None

    device = SimDevice(
        id=unit,
        simdata=(tables["coil"], tables["discrete"], tables["holding"], tables["input"]),
        action=action,
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", port), framer=framer)
    await server.serve_forever(background=True)
    bound = server.transport.sockets[0].getsockname()[1]
    peer = Peer(server=server, port=bound, unit=unit)
    try:
        yield peer
    finally:
        await server.shutdown()
