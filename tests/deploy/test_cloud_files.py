"""The scale-out files (deploy/cloud) and the first-boot user-data, checked without Docker.

No Docker engine runs on this machine, so nothing here starts a container. What can be
checked is: the compose file with ``docker-compose config`` (the Compose schema, anchors and
variables resolved), the load balancer with ``haproxy -c``, and the broker configuration
against the single-machine one: same ACL file (in the syntax VerneMQ's parser accepts), same
limits, TLS only, no anonymous access.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cloud.fman.config import load_config

REPO = Path(__file__).resolve().parents[2]
CLOUD = REPO / "deploy" / "cloud"


def tool(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    assert found, f"{name} is missing: `make setup` installs it (apt-get install {name})"
    return found


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    """The compose file as Docker Compose resolves it."""
    site = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [tool("docker-compose"), "-f", str(CLOUD / "compose.yaml"), "config"],
        env={"PATH": "/usr/bin:/bin", "ATP_SITE": str(site)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout) | {"_site": str(site)}


def test_compose_runs_a_three_node_cluster_behind_one_tls_port(compose):
    services = compose["services"]
    nodes = [name for name in services if name.startswith("vmq")]
    assert len(nodes) == 3
    ports = [(s, p) for s, svc in services.items() for p in svc.get("ports", [])]
    assert [(s, p["published"], p["target"]) for s, p in ports] == [("broker", 8883, 8883)]
    for name in nodes:
        mounts = [v.split(":") for v in services[name]["volumes"]]  # source:target[:mode]
        assert [compose["_site"] + "/broker", "/etc/atp-broker", "ro"] in mounts
    joining = [n for n in nodes if services[n].get("environment", {}).get("VERNEMQ_DISCOVERY_NODE")]
    assert sorted(joining) == ["vmq2", "vmq3"]


def test_compose_runs_fman_workers_with_stable_distinct_ids_on_one_group(compose):
    services = compose["services"]
    workers = {n: s for n, s in services.items() if n.startswith("fman-")}
    assert len(workers) >= 2
    ids = [s["command"][s["command"].index("--id") + 1] for s in workers.values()]
    assert len(set(ids)) == len(ids) == len(workers)
    for name, s in workers.items():
        assert s["command"][:2] == ["fman", "run"]
        assert s["command"][s["command"].index("--id") + 1] == name  # its account's pinned id
        assert s["read_only"] is True and s["cap_drop"] == ["ALL"]
        by_target = {x.get("target", x["source"]): x["source"] for x in s["secrets"]}
        # each worker its own account, under the one name fman.toml reads; the store's passfile
        assert by_target == {
            "fman-credentials": f"{name}-credentials",
            "ca-cert": "ca-cert",
            "fman-pgpass": "fman-pgpass",
        }
        assert compose["secrets"][f"{name}-credentials"]["file"].endswith(
            f"/services/{name}/credentials"
        )
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
    toml = (CLOUD / "fman.toml").read_text()
    assert 'group = "fman"' in toml and "mqtts://broker:8883" in toml


def test_the_workers_share_one_postgresql_store_without_a_password_in_the_configuration(
    compose,
):
    cfg = load_config(CLOUD / "fman.toml")
    store = cfg.worker.store
    assert store.startswith("postgresql://fman@postgres:5432/fman")
    assert ":" not in store.split("://", 1)[1].split("@", 1)[0]  # no password in the URL
    assert "passfile=/run/secrets/fman-pgpass" in store
    pg = compose["services"]["postgres"]
    assert pg["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/pg-password"
    assert "ports" not in pg  # on the compose network only, until published on purpose
    assert compose["secrets"]["fman-pgpass"]["file"].endswith("/postgres/pgpass")


def test_haproxy_config_is_valid():
    proc = subprocess.run(
        [tool("haproxy"), "-c", "-f", str(CLOUD / "haproxy.cfg")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Configuration file is valid" in proc.stdout + proc.stderr


#: Line shapes VerneMQ's vmq_acl parser knows; anything else is misread or crashes it.
_VMQ_ACL = re.compile(r"^(#.*|user \S+|topic (read |write )?\S+|pattern (read |write )?\S+|)$")


def test_the_acl_is_one_file_both_brokers_read():
    text = (REPO / "mosquitto" / "acl").read_text()
    assert text.endswith("\n")  # vmq_acl drops the last line without a newline
    for n, line in enumerate(text.splitlines(), start=1):
        assert _VMQ_ACL.match(line), f"mosquitto/acl:{n}: VerneMQ cannot read {line!r}"
        assert line == line.rstrip(), f"mosquitto/acl:{n}: trailing whitespace"
        if not line.startswith("#"):
            assert "readwrite" not in line and " deny " not in line
    # %u fills whole levels only (Mosquitto expands it nowhere else)
    for line in text.splitlines():
        if line.startswith("pattern"):
            assert all(level == "%u" or "%" not in level for level in line.split()[-1].split("/"))


def _mosquitto(name: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in (REPO / "mosquitto" / name).read_text().splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2 and not p[0].startswith("#")}


def _vernemq() -> dict[str, str]:
    text = (CLOUD / "vernemq" / "vernemq.conf").read_text()
    return dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition("=") for line in text.splitlines())
        if k.strip() and not k.startswith("#")
    )


def test_the_cluster_keeps_the_single_broker_security_and_limits():
    prod, vmq = _mosquitto("prod.conf"), _vernemq()
    assert prod["allow_anonymous"] == "false" and vmq["allow_anonymous"] == "off"
    assert vmq["listener.tcp.default"] == "off"  # TLS only
    assert vmq["listener.ssl.default"].endswith(":8883")
    assert prod["tls_version"] == vmq["listener.ssl.tls_version"] == "tlsv1.2"
    assert prod["ciphers"] == vmq["listener.ssl.ciphers"]
    assert all(
        c.endswith(("GCM-SHA256", "GCM-SHA384", "POLY1305")) for c in prod["ciphers"].split(":")
    )
    assert vmq["vmq_acl.acl_file"] == "/etc/atp-broker/acl"
    assert vmq["vmq_passwd.password_file"] == "/etc/atp-broker/passwd"
    assert prod["max_inflight_messages"] == vmq["max_inflight_messages"]
    assert prod["max_queued_messages"] == vmq["max_offline_messages"]
    assert prod["max_packet_size"] == vmq["max_message_size"]
    assert prod["persistent_client_expiration"] == vmq["persistent_client_expiration"]
    assert "distributed_cookie" not in vmq  # a secret: added by start.sh from a compose secret


@pytest.mark.parametrize(
    "script",
    ["deploy/gateway/install.sh", "deploy/gateway/firstrun.sh", "deploy/cloud/vernemq/start.sh"],
)
def test_shell_scripts_parse(script):
    proc = subprocess.run(["sh", "-n", str(REPO / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_cloud_init_user_data_installs_the_bundle_once():
    text = (REPO / "deploy" / "gateway" / "user-data").read_text()
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    (script,) = data["runcmd"]
    assert "install.sh" in script and "shred -u" in script
    proc = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_compose_runs_the_market_service_on_its_configuration(compose):
    from cloud.fmar.config import load_config as load_fmar_config

    fmar = compose["services"]["fmar"]
    assert "profiles" not in fmar  # runs with the rest
    assert fmar["command"] == ["fmar", "run", "--config", "/etc/atp/fmar.toml"]
    assert f"{CLOUD / 'fmar.toml'}:/etc/atp/fmar.toml:ro" in fmar["volumes"]
    cfg = load_fmar_config(CLOUD / "fmar.toml")
    assert cfg.markets and cfg.service.broker == "mqtts://broker:8883"
    assert cfg.service.credentials_file == "/run/secrets/fmar-credentials"
    assert cfg.service.store.startswith("/var/lib/atp/")  # the fmar-data volume
