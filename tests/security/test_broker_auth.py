"""Who may connect to the production broker: TLS only, a valid password only."""

from __future__ import annotations

import dataclasses

from cloud.provision import _passwd


def test_a_provisioned_agent_connects_over_tls(connect):
    assert connect("agent-a").connected


def test_anonymous_access_is_refused(connect, prod_broker):
    client = connect(None)
    assert not client.connected
    assert client.connack is not None and client.connack.getName() == "Not authorized"
    assert "not authorised" in prod_broker.log_tail()


def test_a_wrong_password_is_refused(connect, provisioned):
    good = provisioned.creds("agent-a")
    client = connect("agent-a", creds=dataclasses.replace(good, password=good.password + "x"))
    assert not client.connected
    assert client.connack is not None and client.connack.getName() == "Not authorized"


def test_another_agents_password_is_refused(connect, provisioned):
    creds = dataclasses.replace(
        provisioned.creds("agent-a"), password=provisioned.creds("agent-b").password
    )
    assert not connect("agent-a", creds=creds).connected


def test_plain_text_is_refused_on_the_tls_only_listener(connect, prod_broker):
    client = connect("agent-a", tls=False)  # right password, no TLS
    assert not client.connected
    assert client.connack is None  # never even got a CONNACK: the TLS handshake failed
    assert "wrong version number" in prod_broker.log_tail(50)


def test_a_server_certificate_from_another_ca_is_refused(connect, provisioned, tmp_path):
    from cloud.provision import _pki

    other = _pki.make_ca(common_name="someone else", organisation="x", days=1)
    (tmp_path / "other-ca.crt").write_bytes(other.cert_pem)
    creds = dataclasses.replace(provisioned.creds("agent-a"), ca_file=tmp_path / "other-ca.crt")
    client = connect("agent-a", creds=creds)
    assert not client.connected
    assert client.error is not None and "CERTIFICATE_VERIFY_FAILED" in client.error


def test_mosquitto_passwd_and_our_hashes_agree(tmp_path):
    """Our PBKDF2-SHA512 entries are Mosquitto's own format: each side verifies the other's."""
    import shutil
    import subprocess

    tool = shutil.which("mosquitto_passwd")
    assert tool, "mosquitto_passwd comes with the mosquitto package"
    pw = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(pw), "alice", "s3cret"], check=True)
    theirs = _passwd.read_entries(pw)["alice"]
    assert theirs.startswith("$7$101$")
    assert _passwd.verify_password("s3cret", theirs)
    assert not _passwd.verify_password("s3cre", theirs)
    ours = _passwd.hash_password("s3cret")
    assert ours.split("$")[1:3] == theirs.split("$")[1:3]  # same scheme, same iterations
    assert len(ours) == len(theirs)


def test_the_sha512_scheme_for_a_vernemq_cluster_works_with_mosquitto_too(tmp_path):
    """A site made with ``--password-hash sha512`` ($6$, the one VerneMQ reads) writes its
    password file for VerneMQ, while Mosquitto checks the dynamic-security plugin's own
    PBKDF2 hashes of the same passwords."""
    import subprocess
    import tomllib

    from cloud.broker import CONFIG_DIR, Mosquitto
    from cloud.provision import Site, add_agent, init_site

    from .mqtt import Client, Credentials

    site = Site(root=tmp_path / "site")
    init_site(site, hostnames=["127.0.0.1"], password_hash="sha512")
    add_agent(site, "vmq-agent", offline=True)
    entry = _passwd.read_entries(site.passwd)["vmq-agent"]
    assert entry.startswith("$6$") and entry.count("$") == 3  # vmq_passwd's exact shape
    # mosquitto_passwd's own sha512 lines and ours verify the same way
    pw = tmp_path / "pw"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-H", "sha512", "-b", str(pw), "u", "pw1"], check=True
    )
    assert _passwd.verify_password("pw1", _passwd.read_entries(pw)["u"])
    device = site.device_dir("vmq-agent")
    password = (
        (device / tomllib.loads((device / "foa.toml").read_text())["broker"]["password_file"])
        .read_text()
        .strip()
    )
    assert _passwd.verify_password(password, entry)
    with Mosquitto(
        config=CONFIG_DIR / "prod.conf", files_dir=site.broker_dir, workdir=tmp_path / "b"
    ) as broker:
        good = Client(broker, "vmq-agent", Credentials("vmq-agent", password, device / "ca.crt"))
        bad = Client(broker, "vmq-agent-2", Credentials("vmq-agent", "nope", device / "ca.crt"))
        assert good.connected and not bad.connected
        good.close()


def _handshake(broker, ca_file, *, version, ciphers: str | None = None) -> str | None:
    """The cipher suite the broker agreed to, or ``None`` when it refused the handshake."""
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    try:
        with (
            socket.create_connection((broker.host, broker.port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return tls.cipher()[0]
    except ssl.SSLError:
        return None


def test_tls_offers_aead_suites_only(prod_broker, provisioned):
    import ssl

    ca, v12 = provisioned.site.ca_cert, ssl.TLSVersion.TLSv1_2
    for cbc in (
        "ECDHE-ECDSA-AES128-SHA",  # CBC with a SHA-1 MAC
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-ECDSA-AES128-SHA256",  # CBC
        "ECDHE-ECDSA-AES256-SHA384",
    ):
        assert _handshake(prod_broker, ca, version=v12, ciphers=cbc) is None, cbc
    assert _handshake(prod_broker, ca, version=v12) in (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    )
    assert _handshake(prod_broker, ca, version=ssl.TLSVersion.TLSv1_3) is not None
