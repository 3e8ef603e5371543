"""No secret reaches a log: not the broker's, not the CLI's output, not Python's logging.

Runs after the other security tests of the session (file order), so the broker's log holds
every connection they made, refused ones included; it adds a few of its own.
"""

from __future__ import annotations

import dataclasses
import logging


def test_no_secret_in_the_broker_log_or_the_cli_output(connect, provisioned, prod_broker, caplog):
    caplog.set_level(logging.DEBUG)
    good = provisioned.creds("agent-b")
    assert connect("agent-b").connected
    assert not connect("agent-b", creds=dataclasses.replace(good, password="wrong-pw")).connected
    assert not connect("agent-a", creds=dataclasses.replace(good, username="agent-a")).connected
    provisioned.run("device", "add", "agent-logged", "--json")
    provisioned.run("device", "add", "agent-logged", "--rotate")
    provisioned.run("device", "revoke", "agent-logged")
    prod_broker.reload()

    secrets = provisioned.known_secrets | set(provisioned.secrets())
    assert len(secrets) > 10
    broker_log = prod_broker.log_path.read_text()
    assert "agent-b" in broker_log  # the log is there and names accounts ...
    outputs = "\n".join(provisioned.output)
    assert "mode 0600" in outputs
    for secret in [*secrets, "wrong-pw"]:  # ... but never a password or a key
        assert secret not in broker_log
        assert secret not in outputs
        assert secret not in caplog.text
