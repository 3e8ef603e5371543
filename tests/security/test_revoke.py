"""Revocation: a revoked account is refused once the broker has re-read its files."""

from __future__ import annotations

import dataclasses
import time

import pytest

from cloud.broker import CONFIG_DIR, Mosquitto

from .mqtt import Client


def test_a_revoked_device_is_refused_after_the_broker_reloads(connect, provisioned, prod_broker):
    session = connect("agent-revoked", client_id="agent-revoked-session")
    assert session.connected
    creds = provisioned.creds("agent-revoked")  # what the box still has

    provisioned.run("device", "revoke", "agent-revoked")
    assert "agent-revoked:" not in provisioned.site.passwd.read_text()
    # The broker has not re-read its files yet: the old password still works ...
    early = connect("agent-revoked", client_id="agent-revoked-early", creds=creds)
    assert early.connected
    prod_broker.reload()  # systemctl reload mosquitto
    # ... after the reload, Mosquitto 2.0 drops the revoked user's sessions ...
    assert session.wait_disconnected()
    assert early.wait_disconnected()
    # ... and refuses it from then on, while everyone else carries on.
    late = connect("agent-revoked", client_id="agent-revoked-late", creds=creds)
    assert not late.connected
    assert late.connack is not None and late.connack.getName() == "Not authorized"
    assert connect("agent-a").connected


def connects(broker, client_id: str, creds) -> bool:
    """Whether the broker lets this client in (the connection is closed again)."""
    client = Client(broker, client_id, creds)
    try:
        return client.connected
    finally:
        client.close()


@pytest.fixture
def mtls_broker(provisioned, tmp_path):
    """prod.conf with TLS client authentication on, as its comments describe."""
    with Mosquitto(
        config=CONFIG_DIR / "prod.conf",
        files_dir=provisioned.site.broker_dir,
        workdir=tmp_path,
        listener_options="require_certificate true\ncrlfile /etc/mosquitto/atp/crl.pem",
    ) as m:
        yield m


def test_client_certificates_when_tls_client_authentication_is_on(provisioned, mtls_broker):
    with_cert = provisioned.creds("agent-cert", cert=True)
    assert connects(mtls_broker, "agent-cert", with_cert)
    # A password alone is no longer enough ...
    assert not connects(mtls_broker, "agent-a", provisioned.creds("agent-a"))
    # ... and a certificate needs its account's password too.
    wrong = dataclasses.replace(with_cert, password="not-the-password")
    assert not connects(mtls_broker, "agent-cert-2", wrong)


def test_a_rotated_certificate_is_refused_through_the_crl(provisioned, mtls_broker, tmp_path):
    old = provisioned.creds("agent-cert", cert=True)
    kept = tmp_path / "old"
    kept.mkdir()
    for name in ("client.crt", "client.key"):
        (kept / name).write_bytes((provisioned.site.device_dir("agent-cert") / name).read_bytes())
    provisioned.run("device", "add", "agent-cert", "--client-cert", "--rotate")
    new = provisioned.creds("agent-cert", cert=True)
    assert old.password != new.password
    # Until the broker reloads, it knows neither the new password nor the new CRL.
    assert connects(mtls_broker, "agent-cert-before", old)
    mtls_broker.reload()
    time.sleep(0.5)
    # The old certificate with the new password: only the CRL can refuse it, and it does
    # (Mosquitto 2.0.11 re-reads the CRL on SIGHUP, with the password file and the ACL).
    stale = dataclasses.replace(new, cert_file=kept / "client.crt", key_file=kept / "client.key")
    assert not connects(mtls_broker, "agent-cert-stale", stale)
    assert "certificate verify failed" in mtls_broker.log_tail(5)
    assert connects(mtls_broker, "agent-cert-new", new)
