"""The listening socket of the project's HTTP servers (``atp api serve``, ``atp web``)."""

from __future__ import annotations

import socket

import click


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (IPv6 for an address with a colon), with
    TCP_NODELAY set, or a one-line error.

    uvicorn, given a socket, serves it as it is, and asyncio sets TCP_NODELAY only on sockets
    whose proto is IPPROTO_TCP, which ``create_server``'s (proto 0) is not. Accepted sockets
    inherit the option from the listening one; without it every answer written in two parts
    (headers, then body) waits ~40 ms for the client's delayed ACK on a kept-alive
    connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
