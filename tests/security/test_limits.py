"""Connection limits: idle connections cannot take the broker's file descriptors.

A connection takes a descriptor before it has said a word; with no limit, about a thousand
idle TCP connections exhausted a broker with 1,024 descriptors and locked everyone out.
prod.conf caps each listener (``max_connections``) below the unit's ``LimitNOFILE``; the
admin socket has its own cap, so provisioning still reaches a broker whose public listener
is full.
"""

from __future__ import annotations

import configparser
import re
import socket
from pathlib import Path

from cloud.broker import CONFIG_DIR, Mosquitto

REPO = Path(__file__).resolve().parents[2]
DROP_IN = REPO / "deploy" / "systemd" / "mosquitto.service.d" / "atp.conf"


def _listeners(text: str) -> dict[str, dict[str, str]]:
    """``{listener line: {option: value}}`` of a Mosquitto configuration."""
    out: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        words = line.split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "listener":
            current = line
            out[current] = {}
        elif current is not None and len(words) == 2:
            out[current][words[0]] = words[1]
    return out


def test_every_listener_is_capped_below_the_units_descriptor_limit():
    listeners = _listeners((CONFIG_DIR / "prod.conf").read_text())
    assert len(listeners) == 2  # the public TLS listener and the admin socket
    caps = [int(opts["max_connections"]) for opts in listeners.values()]
    unit = configparser.ConfigParser()
    unit.read_string(DROP_IN.read_text())
    nofile = int(unit["Service"]["LimitNOFILE"])
    # a descriptor per connection, and a margin for the broker's own files and listeners
    assert sum(caps) + 1024 <= nofile


def _closed_by_peer(s: socket.socket, timeout: float) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_idle_connections_past_the_cap_are_closed_and_the_admin_socket_still_answers(
    provisioned, tmp_path
):
    """prod.conf with its public listener's cap lowered to 20, so that the test opens 30
    idle connections instead of 50,000."""
    from cloud.provision import _admin

    text = (CONFIG_DIR / "prod.conf").read_text()
    text, n = re.subn(r"^max_connections 50000$", "max_connections 20", text, flags=re.M)
    assert n == 1
    conf = tmp_path / "prod.conf"
    conf.write_text(text)
    with Mosquitto(config=conf, files_dir=provisioned.site.broker_dir, workdir=tmp_path) as m:
        idle = [socket.create_connection((m.host, m.port)) for _ in range(30)]
        try:
            # the ten past the cap are closed at once; the twenty before stay open
            assert sum(_closed_by_peer(s, 2.0) for s in idle[20:]) == 10
            assert not any(_closed_by_peer(s, 0.05) for s in idle[:20])
            assert "max_connections exceeded" in m.log_tail(20)
            fds = len(list(Path(f"/proc/{m.pid}/fd").iterdir()))
            assert fds < 20 + 40  # the capped connections and the broker's own files
            # provisioning still gets through, on the admin socket
            assert m.admin_socket is not None and _admin.running(m.admin_socket)
            password = provisioned.site.admin_passwords()["atp-admin"]
            with _admin.BrokerAdmin(socket_path=m.admin_socket, password=password) as admin:
                (answer,) = admin.run([{"command": "getDefaultACLAccess"}])
            assert answer["data"]["acls"]
        finally:
            for s in idle:
                s.close()
