"""A serial-line electricity meter read by IEC 62056-21 (an optical head or an RS-485 port).

Config (``[devices.<id>]``): ``driver = "serial_meter"``, ``port`` (``/dev/ttyUSB0``, or any
pyserial URL), ``baudrate`` (300: the sign-on rate), ``bytesize`` (7), ``parity`` (``E``),
``stopbits`` (1), ``mode`` (``C``: acknowledge and switch to the meter's baud rate; ``A``:
the meter answers at once), ``address`` (empty: any meter on the line), ``timeout_s`` (2.0: the
longest silence within a readout), ``readout_timeout_s`` (60: the longest readout), and
``[obis]`` mapping quantities to OBIS codes (defaults: ``energy_kwh = "1.8.0"``,
``power_w = "16.7.0"``; other names become state entries, for example
``export_kwh = "2.8.0"``).

Every :meth:`SerialMeter.read` is one complete readout, checked by its block check character;
a meter that does not answer, answers garbage, or leaves out a mapped code is a
:class:`~agent.errors.DeviceFault`, and nothing from an earlier readout is handed out
instead. The port stays open between readouts (reopened after a port error); each readout
starts at the sign-on baud rate with the input flushed, so nothing left over from a failed
exchange can be mistaken for the next answer. pyserial blocks, so the exchange runs in a
worker thread, one at a time; a meter is read every few seconds at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import serial

from agent.drivers.base import Driver, Limits, Measurement
from agent.drivers.iec62056 import (
    BAUD,
    ETX,
    ReadoutError,
    acknowledge,
    parse_data,
    parse_identification,
    request,
)
from agent.errors import DeviceFault
from agent.params import Params

DEFAULT_OBIS = {"energy_kwh": "1.8.0", "power_w": "16.7.0"}

if sys.platform == "win32":  # pragma: no cover - no termios
    _TermiosError = OSError
else:  # pyserial lets termios errors through on POSIX (a port that rejects its settings)
    from termios import error as _TermiosError
_PORT_ERRORS = (serial.SerialException, OSError, _TermiosError)


class SerialMeter(Driver):
    name = "serial_meter"
    version = "1"

    def setup(self, p: Params) -> None:
        self.port = p.string("port")
        self.baudrate = p.integer("baudrate", 300, min=300, max=115_200)
        self.bytesize = p.integer("bytesize", 7, min=7, max=8)
        self.parity = p.string("parity", "E", choices=["N", "E", "O"])
        self.stopbits = p.integer("stopbits", 1, min=1, max=2)
        self.mode = p.string("mode", "C", choices=["A", "C"])
        self.address = p.string("address", "")
        if len(self.address) > 32 or not all(c.isalnum() or c == " " for c in self.address):
            raise p.error("address", "up to 32 letters, digits or blanks")
        self.timeout_s = p.number("timeout_s", 2.0, min=0.05, max=60.0)
        self.readout_timeout_s = p.number("readout_timeout_s", 60.0, min=1.0, max=600.0)
        obis = p.sub("obis")
        self.obis = dict(DEFAULT_OBIS)
        for name in obis.table:
            self.obis[name] = obis.string(name)
        self._port: serial.SerialBase | None = None
        self._lock = asyncio.Lock()

    @property
    def limits(self) -> Limits:
        return Limits(max_power_w=0.0, modulating=False)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._drop)

    def _drop(self) -> None:
        if self._port is not None:
            with contextlib.suppress(*_PORT_ERRORS):
                self._port.close()
            self._port = None

    async def read(self) -> Measurement:
        async with self._lock:
            try:
                values = await asyncio.to_thread(self._readout)
            except _PORT_ERRORS as exc:
                await asyncio.to_thread(self._drop)
                raise DeviceFault(self.device_id, f"serial port {self.port}: {exc}") from exc
            except ReadoutError as exc:
                raise DeviceFault(self.device_id, f"bad readout: {exc}") from exc
        found: dict[str, float] = {}
        for name, code in self.obis.items():
            if code not in values:
                raise DeviceFault(self.device_id, f"readout has no OBIS code {code} ({name})")
            value, _unit = values[code]
            if not isinstance(value, float):
                raise DeviceFault(self.device_id, f"OBIS {code} ({name}) is not a number: {value}")
            found[name] = value
        return Measurement(
            ts=self.clock.now(),
            power_w=found.pop("power_w", None),
            energy_kwh=found.pop("energy_kwh", None),
            state=found,
        )

    def _readout(self) -> dict[str, tuple[float | str, str]]:
        """One blocking readout (runs in a worker thread)."""
        deadline = time.monotonic() + self.readout_timeout_s
        if self._port is None:
            self._port = serial.serial_for_url(
                self.port,
                baudrate=self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=self.timeout_s,
            )
        port = self._port
        if port.baudrate != self.baudrate:
            port.baudrate = self.baudrate
        port.reset_input_buffer()
        port.write(request(self.address))
        line = port.readline()
        if not line.endswith(b"\n"):
            raise ReadoutError("no identification from the meter (timed out)")
        ident = parse_identification(line)
        if self.mode == "C":
            baud_char = ident.baud_char if ident.baud_char in BAUD else "0"
            port.write(acknowledge(baud_char))
            port.flush()
            if BAUD[baud_char] != self.baudrate:
                time.sleep(0.3)  # the meter switches 200 to 1500 ms after the ACK
                port.baudrate = BAUD[baud_char]
        message = bytearray()
        while not (ETX in message and message.index(ETX) + 1 < len(message)):
            chunk = port.read_until(ETX) if ETX not in message else port.read(1)
            if not chunk:
                raise ReadoutError("the meter stopped sending in the middle of a readout")
            message += chunk
            if time.monotonic() > deadline:
                raise ReadoutError(f"readout took longer than {self.readout_timeout_s:g} s")
        return parse_data(bytes(message))

    async def set_power(self, power_w: float) -> None:
        raise DeviceFault(self.device_id, "a meter cannot be driven")

    async def set_on(self, on: bool) -> None:
        raise DeviceFault(self.device_id, "a meter cannot be switched")

    async def safe_state(self) -> None:
        """A meter has nothing to leave safe."""
