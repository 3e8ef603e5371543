"""``atp broker up`` on a port another program holds."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from cloud.cli import main as cli_main


def test_broker_up_on_a_busy_port_fails_in_one_line_without_saying_listening(tmp_path):
    """It printed "mosquitto listening on ..." (its probe reached the other program), then
    failed with the broker's log."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = CliRunner().invoke(
            cli_main,
            ["broker", "up", "--port", str(port), "--data-dir", str(tmp_path / "broker")],
        )
    assert out.exit_code == 1
    assert "listening" not in out.output
    (line,) = out.output.strip().splitlines()
    assert f"port {port} on 127.0.0.1 is in use" in line
