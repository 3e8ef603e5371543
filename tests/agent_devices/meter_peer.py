"""An IEC 62056-21 meter on the far end of a pseudo-terminal pair.

The driver opens the pty's slave side by its path, as it would ``/dev/ttyUSB0``; this
simulator answers on the master side from a thread of its own, byte for byte as a meter with
an optical head would: identification, acknowledgement (mode C), data block with its BCC."""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from agent.drivers.iec62056 import ACK, frame


@dataclass
class MeterPeer:
    path: str
    lines: list[str]
    ident: bytes = b"/ISK5MT174-0001\r\n"
    mode: str = "C"
    silent: bool = False
    corrupt: bool = False
    readouts: int = 0
    received: list[bytes] = field(default_factory=list)


@contextmanager
def meter(lines: list[str], **kwargs: object) -> Iterator[MeterPeer]:
    master, slave = os.openpty()
    tty.setraw(master)
    peer = MeterPeer(path=os.ttyname(slave), lines=lines, **kwargs)  # type: ignore[arg-type]
    stop = threading.Event()

    def run() -> None:
        buf = b""
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                buf += os.read(master, 1024)
            except OSError:
                continue
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                peer.received.append(line)
                if peer.silent:
                    continue
                if line.startswith(b"/?") and line.endswith(b"!"):
                    os.write(master, peer.ident)
                    if peer.mode == "A":
                        send()
                elif line.startswith(ACK):
                    send()

    def send() -> None:
        data = frame(peer.lines)
        if peer.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0x55])
        os.write(master, data)
        peer.readouts += 1

    thread = threading.Thread(target=run, name="iec62056-meter", daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)
