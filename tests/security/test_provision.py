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
        site.service_dir("fman") / "credentials",
    ]
    for path in secrets:
        assert _mode(path) == 0o600, path
    for path in (site.ca_cert, site.broker_dir / "acl", site.device_dir("agent-a") / "ca.crt"):
        assert "PRIVATE KEY" not in path.read_text()
        assert _mode(path) == 0o644, path


def test_the_fman_toml_names_the_credentials_and_the_ca_file(provisioned):
    site = provisioned.site
    fman = tomllib.loads((site.service_dir("fman") / "fman.toml").read_text())["worker"]
    assert (fman["credentials_file"], fman["ca_file"]) == ("credentials", "ca.crt")
    assert (site.service_dir("fman") / "ca.crt").read_bytes() == site.ca_cert.read_bytes()


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
    assert {"agent-a", "agent-b", "fman", "fmar"} <= set(users)
    assert len(users) == len(set(users))
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in lines)


def test_device_list_is_json_for_scripts(provisioned):
    rows = json.loads(provisioned.run("device", "list", "--json").stdout)
    by_id = {r["id"]: r for r in rows}
    assert by_id["agent-a"]["role"] == "agent" and by_id["agent-a"]["revoked"] is None
    assert by_id["fman"]["role"] == "fman"
    assert by_id["agent-cert"]["client_cert"] is True


@pytest.mark.parametrize(
    ("agent_id", "message"),
    [
        ("a/b", "cannot be used in a topic"),
        ("a+", "cannot be used in a topic"),
        ("fman", "service account"),
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
