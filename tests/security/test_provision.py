"""The provisioning commands: what they write, with which modes, and what they refuse."""

from __future__ import annotations

import json
import stat
import subprocess
import tomllib

import pytest

from cloud.provision import Site

from .conftest import atp


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_files_are_mode_0600_and_public_ones_are_not_secret(provisioned):
    site = provisioned.site
    secrets = [
        site.ca_key,
        site.passwd,
        site.broker_dir / "server.key",
        site.device_dir("agent-a") / "foa.toml",
        site.device_dir("agent-a") / "password",
        site.device_dir("agent-cert") / "client.key",
        site.service_dir("fman-1") / "credentials",
        site.dynsec,
        site.admin_credentials,
    ]
    for path in secrets:
        assert _mode(path) == 0o600, path
    for path in (site.ca_cert, site.broker_dir / "acl", site.device_dir("agent-a") / "ca.crt"):
        assert "PRIVATE KEY" not in path.read_text()
        assert _mode(path) == 0o644, path


def test_the_fman_toml_names_the_credentials_and_the_ca_file(provisioned):
    site = provisioned.site
    fman = tomllib.loads((site.service_dir("fman-2") / "fman.toml").read_text())["worker"]
    assert (fman["credentials_file"], fman["ca_file"]) == ("credentials", "ca.crt")
    assert fman["id"] == "fman-2"  # the client id the broker pins this account to
    assert (site.service_dir("fman-2") / "credentials").read_text().startswith("fman-2:")
    assert (site.service_dir("fman-2") / "ca.crt").read_bytes() == site.ca_cert.read_bytes()


def test_foa_toml_is_ready_for_the_agent(provisioned):
    config = tomllib.loads((provisioned.site.device_dir("agent-a") / "foa.toml").read_text())
    assert config["agent"]["id"] == "agent-a"
    broker = config["broker"]
    assert broker["url"] == "mqtts://localhost:8883"
    assert broker["username"] == "agent-a"
    assert broker["password_file"] == "password"  # the file itself holds no secret
    assert "password" not in broker
    assert len((provisioned.site.device_dir("agent-a") / "password").read_text().strip()) >= 40
    assert broker["ca_file"] == "ca.crt"
    assert "cert_file" not in broker
    with_cert = tomllib.loads((provisioned.site.device_dir("agent-cert") / "foa.toml").read_text())
    assert with_cert["broker"]["cert_file"] == "client.crt"


def test_the_password_file_holds_one_pbkdf2_entry_per_active_account(provisioned):
    lines = provisioned.site.passwd.read_text().splitlines()
    users = [line.split(":")[0] for line in lines]
    assert {"agent-a", "agent-b", "fman-1", "fman-2", "fmar"} <= set(users)
    assert len(users) == len(set(users))
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in lines)


def test_device_list_is_json_for_scripts(provisioned):
    rows = json.loads(provisioned.run("device", "list", "--json").stdout)
    by_id = {r["id"]: r for r in rows}
    assert by_id["agent-a"]["role"] == "agent" and by_id["agent-a"]["revoked"] is None
    assert by_id["fman-1"]["role"] == "fman"
    assert by_id["agent-cert"]["client_cert"] is True


@pytest.mark.parametrize(
    ("agent_id", "message"),
    [
        ("a/b", "is not allowed"),
        ("a+", "is not allowed"),
        ("fman", "service account"),
        ("fman-9", "service account"),
        ("agent-a", "provisioned already"),
    ],
)
def test_unusable_agent_ids_are_refused_with_the_reason(provisioned, agent_id, message):
    with pytest.raises(subprocess.CalledProcessError) as info:
        atp("device", "add", agent_id, site=provisioned.site.root)
    assert message in info.value.stderr
    assert "Traceback" not in info.value.stderr


def test_revoking_an_unknown_agent_says_so(provisioned):
    with pytest.raises(subprocess.CalledProcessError) as info:
        atp("device", "revoke", "nobody", site=provisioned.site.root)
    assert "no account 'nobody'" in info.value.stderr


def test_commands_on_an_uninitialised_site_say_what_to_do(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as info:
        atp("device", "add", "house-1", site=tmp_path / "empty")
    assert "atp pki init" in info.value.stderr


def test_pki_init_refuses_to_replace_a_ca(provisioned):
    with pytest.raises(subprocess.CalledProcessError) as info:
        atp("pki", "init", site=provisioned.site.root)
    assert "--force" in info.value.stderr


def test_the_server_certificate_names_the_broker_and_chains_to_the_ca(provisioned):
    from cryptography import x509

    site: Site = provisioned.site
    server = x509.load_pem_x509_certificate((site.broker_dir / "server.crt").read_bytes())
    ca = x509.load_pem_x509_certificate(site.ca_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


BAD_IDS = ["house:1", "house-1\n", "house 1", ".hidden", "..", "house\t1", "$house", "h\u00e9"]


@pytest.mark.parametrize("n", range(len(BAD_IDS)))
def test_ids_that_would_corrupt_a_shared_file_are_refused(provisioned, n):
    agent_id = BAD_IDS[n]
    """':' ends a password-file user name, a newline starts a new entry: either corrupted
    the file, after which every add, revoke and rotation failed."""
    site = provisioned.site
    shared = [site.passwd, site.registry_file, site.broker_dir / "dynamic-security.json"]
    before = [f.read_text() for f in shared if f.exists()]
    proc = provisioned.run("device", "add", agent_id, check=False)
    assert proc.returncode == 1
    assert "is not allowed" in proc.stderr and "Traceback" not in proc.stderr
    assert [f.read_text() for f in shared if f.exists()] == before
    assert sorted(p.name for p in (site.root / "devices").iterdir()) == sorted(
        p.name for p in (site.root / "devices").iterdir() if not p.name.startswith(".")
    )
    # ... and the site still works
    assert provisioned.run("device", "add", f"agent-ok-{n}").returncode == 0


def test_a_failed_add_leaves_no_partial_directory_and_no_account(provisioned, connect):
    site = provisioned.site
    before = sorted(p.name for p in (site.root / "devices").iterdir())
    # the edge broker's configuration needs an mqtts:// URL: this fails half-way through
    proc = provisioned.run(
        "device", "add", "agent-half", "--edge-bridge", "--broker-url", "mqtt://h:1", check=False
    )
    assert proc.returncode == 1 and "mqtts://" in proc.stderr
    assert sorted(p.name for p in (site.root / "devices").iterdir()) == before
    assert "agent-half" not in site.registry().accounts
    assert "agent-half:" not in site.passwd.read_text()


def test_a_failed_rotation_keeps_the_previous_credentials(provisioned, connect):
    device = provisioned.site.device_dir("agent-b")
    old = {p.name: p.read_bytes() for p in device.iterdir()}
    proc = provisioned.run(
        "device",
        "add",
        "agent-b",
        "--rotate",
        "--edge-bridge",
        "--broker-url",
        "mqtt://h:1",
        check=False,
    )
    assert proc.returncode == 1
    assert {p.name: p.read_bytes() for p in device.iterdir()} == old
    assert connect("agent-b").connected  # the old password still works
