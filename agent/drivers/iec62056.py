"""IEC 62056-21 ("D0", formerly IEC 1107) readout: the optical or RS-485 port of electricity
meters. Pure: bytes in, values out; the serial I/O lives in :mod:`agent.drivers.serial_meter`.

A readout in mode C goes:

1. client, at 300 baud 7E1: ``/?!`` CR LF (or ``/?<address>!`` CR LF);
2. meter: ``/XXXZ<identification>`` CR LF, where ``XXX`` is the manufacturer and ``Z`` the
   highest baud rate it offers (``0`` 300 … ``6`` 19200);
3. client: ACK ``0 Z 0`` CR LF (normal protocol, agreed baud rate, data readout), then both
   switch to that baud rate;
4. meter: STX, data lines ``1.8.0(001234.567*kWh)``, ``!`` CR LF, ETX, and the block check
   character: the XOR of every byte after STX up to and including ETX.

Mode A skips the acknowledgement: the meter sends the data block right after its
identification, at the initial baud rate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce
from operator import xor

STX, ETX, ACK = b"\x02", b"\x03", b"\x06"
CRLF = b"\r\n"
#: The baud-rate identification characters of mode C.
BAUD = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}

_LINE = re.compile(
    r"(?:(?P<medium>\d+)-(?P<channel>\d+):)?(?P<code>[0-9A-Z]+(?:\.[0-9A-Z]+){1,3})"
    r"(?:\*\d+)?\((?P<value>[^)*]*)(?:\*(?P<unit>[^)]*))?\)"
)
_UNITS = {"kWh": ("kWh", 1.0), "Wh": ("kWh", 1e-3), "kW": ("W", 1000.0), "W": ("W", 1.0)}


class ReadoutError(ValueError):
    """A readout that is not a valid IEC 62056-21 data message."""


@dataclass(frozen=True, slots=True)
class Identification:
    manufacturer: str
    baud_char: str
    ident: str

    @property
    def baud(self) -> int:
        return BAUD.get(self.baud_char, 300)


def request(address: str = "") -> bytes:
    """The sign-on message."""
    return b"/?" + address.encode("ascii") + b"!" + CRLF


def parse_identification(line: bytes) -> Identification:
    text = line.decode("ascii", "replace").strip()
    if not (text.startswith("/") and len(text) >= 5):
        raise ReadoutError(f"not an identification message: {text!r}")
    return Identification(manufacturer=text[1:4], baud_char=text[4], ident=text[5:])


def acknowledge(baud_char: str) -> bytes:
    """ACK for a data readout at the baud rate ``baud_char`` (``0`` keeps 300 baud)."""
    return ACK + b"0" + baud_char.encode("ascii") + b"0" + CRLF


def bcc(data: bytes) -> int:
    return reduce(xor, data, 0)


def frame(lines: list[str]) -> bytes:
    """A data message around ``lines`` (used by meters; here for tests and simulators)."""
    body = ("\r\n".join(lines) + "\r\n!\r\n").encode("ascii") + ETX
    return STX + body + bytes([bcc(body)])


def parse_data(message: bytes) -> dict[str, tuple[float | str, str]]:
    """``{obis code: (value, unit)}`` from a data message (STX … ETX BCC), checking its BCC.

    Numbers are converted to the project's units (kWh, W); other values stay text."""
    start = message.find(STX)
    end = message.find(ETX, start + 1)
    if start < 0 or end < 0 or end + 1 >= len(message):
        raise ReadoutError("incomplete data message (no STX, ETX or BCC)")
    body = message[start + 1 : end + 1]
    if bcc(body) != message[end + 1]:
        raise ReadoutError(f"block check {message[end + 1]:#04x} does not match {bcc(body):#04x}")
    out: dict[str, tuple[float | str, str]] = {}
    for raw in body[:-1].decode("ascii", "replace").splitlines():
        for m in _LINE.finditer(raw):
            unit = m.group("unit") or ""
            value: float | str = m.group("value")
            try:
                number = float(value)
            except ValueError:
                out[m.group("code")] = (value, unit)
                continue
            unit, factor = _UNITS.get(unit, (unit, 1.0))
            out[m.group("code")] = (number * factor, unit)
    return out
