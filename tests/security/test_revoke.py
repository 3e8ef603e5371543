"""Revocation: a revoked account is out at once, and nothing of it stays at the broker.

``atp device revoke`` talks to the running broker through its admin socket: the account is
deleted (its connections dropped), the session the broker kept for its client id is
discarded, offline persistent ones too, and its retained status is cleared. Only the CRL
(client-certificate mode) waits for a reload.
"""

from __future__ import annotations

import dataclasses

import pytest

from cloud.broker import CONFIG_DIR, Mosquitto
from protocol import topics
from tests.waiting import wait_for

from .mqtt import Client


def test_a_revoked_device_is_out_at_once(connect, provisioned):
    session = connect("agent-revoked", session_expiry_s=600)
    assert session.connected
    creds = provisioned.creds("agent-revoked")  # what the box still has

    provisioned.run("device", "revoke", "agent-revoked")
    assert "agent-revoked:" not in provisioned.site.passwd.read_text()
    # no reload: the broker dropped the connection when the account was deleted ...
    assert session.wait_disconnected()
    # ... and refuses it from then on, while everyone else carries on.
    late = connect("agent-revoked", creds=creds)
    assert not late.connected
    assert late.connack is not None and late.connack.getName() == "Not authorized"
    assert connect("agent-a").connected


def test_revocation_ends_an_offline_persistent_session_and_clears_the_retained_status(
    connect, provisioned
):
    provisioned.run("device", "add", "agent-gone")
    status, schedule = (topics.agent_topic("agent-gone", ch) for ch in ("status", "schedule"))
    gone = connect("agent-gone", session_expiry_s=3600)
    assert gone.subscribe(schedule) == ["Granted QoS 1"]
    gone.publish(status, b"online", retain=True)
    gone.close()  # an offline persistent session now, with a subscription
    fman = connect("fman-4")
    fman.publish(schedule, b"queued while offline")
    connect("agent-a").publish(topics.agent_topic("agent-a", "status"), b"a", retain=True)

    provisioned.run("device", "revoke", "agent-gone")

    # The retained status is gone: a subscriber gets agent-a's, asked for after it, alone.
    watcher = connect("fman-3")
    watcher.subscribe(status, topics.agent_topic("agent-a", "status"))
    got = watcher.received_until(topics.agent_topic("agent-a", "status"), b"a")
    assert got == [(topics.agent_topic("agent-a", "status"), b"a")]
    # The session is gone: the id provisioned anew starts with none, and nothing queued.
    provisioned.run("device", "add", "agent-gone")
    again = connect("agent-gone", session_expiry_s=3600)
    assert again.connected and again.session_present is False
    assert again.subscribe(schedule) == ["Granted QoS 1"]
    fman.publish(schedule, b"fresh")
    # what the old session had queued would come before it
    assert again.received_until(schedule, b"fresh") == [(schedule, b"fresh")]


def connects(broker, client_id: str, creds) -> bool:
    """Whether the broker lets this client in (the connection is closed again)."""
    client = Client(broker, client_id, creds)
    try:
        return client.connected
    finally:
        client.close()


@pytest.fixture
def mtls_broker(provisioned, tmp_path):
    """prod.conf with TLS client authentication on: its three commented lines uncommented,
    as its comments describe."""
    text = (CONFIG_DIR / "prod.conf").read_text()
    for line in (
        "require_certificate true",
        "use_identity_as_username true",
        "crlfile /etc/mosquitto/atp/crl.pem",
    ):
        assert f"#{line}\n" in text
        text = text.replace(f"#{line}\n", f"{line}\n")
    conf = tmp_path / "prod.conf"
    conf.write_text(text)
    with Mosquitto(config=conf, files_dir=provisioned.site.broker_dir, workdir=tmp_path) as m:
        yield m


def test_client_certificates_when_tls_client_authentication_is_on(provisioned, mtls_broker):
    with_cert = provisioned.creds("agent-cert", cert=True)
    assert connects(mtls_broker, "agent-cert", with_cert)
    # A password alone is no longer enough.
    assert not connects(mtls_broker, "agent-a", provisioned.creds("agent-a"))


def test_a_certificate_logs_in_as_its_owner_whatever_the_password(provisioned, mtls_broker):
    """agent-cert's certificate with agent-a's username and password is agent-cert."""
    a = provisioned.creds("agent-a")
    forged = dataclasses.replace(
        provisioned.creds("agent-cert", cert=True), username=a.username, password=a.password
    )
    client = Client(mtls_broker, "agent-a", forged)
    fman = Client(mtls_broker, "fman-1", provisioned.creds("fman-1", cert=False))
    try:
        assert client.connected
        assert client.subscribe(topics.agent_topic("agent-a", "schedule")) == ["Not authorized"]
        assert client.subscribe(topics.agent_topic("agent-cert", "schedule")) == ["Granted QoS 1"]
        assert "u'agent-cert'" in mtls_broker.log_tail(20)
    finally:
        client.close()
        fman.close()


def test_a_rotated_certificate_is_refused_through_the_crl(provisioned, mtls_broker, tmp_path):
    old = provisioned.creds("agent-cert", cert=True)
    kept = tmp_path / "old"
    kept.mkdir()
    for name in ("client.crt", "client.key"):
        (kept / name).write_bytes((provisioned.site.device_dir("agent-cert") / name).read_bytes())
    provisioned.run("device", "add", "agent-cert", "--client-cert", "--rotate")
    new = provisioned.creds("agent-cert", cert=True)
    assert old.password != new.password
    # Until the broker reloads, it does not know the new CRL.
    assert connects(mtls_broker, "agent-cert-before", old)
    mtls_broker.reload()
    # The old certificate: only the CRL can refuse it, and it does (Mosquitto 2.0.11
    # re-reads the CRL on SIGHUP).
    stale = dataclasses.replace(new, cert_file=kept / "client.crt", key_file=kept / "client.key")
    wait_for(
        lambda: not connects(mtls_broker, "agent-cert-stale", stale),
        what="the reloaded CRL to refuse the old certificate",
        step=0.1,
    )
    assert "certificate verify failed" in mtls_broker.log_tail(5)
    assert connects(mtls_broker, "agent-cert-new", new)
