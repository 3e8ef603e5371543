"""The HTTP servers' listening socket: TCP_NODELAY on it and on every connection it accepts
(without, a kept-alive connection waits ~40 ms for delayed ACKs on each answer)."""

from __future__ import annotations

import socket

import click
import pytest

from cloud.cli._listen import listen


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_accepted_connections_have_nodelay(host):
    server = listen(host, 0)
    try:
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        port = server.getsockname()[1]
        with socket.create_connection((host, port), timeout=5):
            conn, _ = server.accept()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        server.close()


def test_a_port_in_use_is_said_in_a_line():
    first = listen("127.0.0.1", 0)
    try:
        with pytest.raises(click.ClickException, match=r"cannot listen on 127\.0\.0\.1:"):
            listen("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()
