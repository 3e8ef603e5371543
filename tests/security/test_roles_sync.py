"""``atp service roles``: a site whose roles predate a policy change is brought in line.

A site of its own, made with the real commands and a production-config broker; then its
roles are taken back to what a site made before protocol 1.4's per-party market topics had
(FMAR reading ``atp/v1/m/+/bid``, no per-party rules, no ``dso`` role or group) through the
broker's admin socket. FMAR is then refused the per-party bids, agents cannot trade and
``atp service add dso`` gives no rights; ``atp service roles`` restores every rule, and a
second run changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cloud.broker import CONFIG_DIR, Mosquitto
from cloud.provision import Site
from cloud.provision._admin import BrokerAdmin
from protocol import topics

from .conftest import Provisioned
from .mqtt import Client


@pytest.fixture
def old_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Provisioned, Mosquitto]]:
    p = Provisioned(site=Site(root=tmp_path_factory.mktemp("old-site")))
    p.run("pki", "init", "--hostname", "localhost", "--hostname", "127.0.0.1")
    with Mosquitto(
        config=CONFIG_DIR / "prod.conf",
        files_dir=p.site.broker_dir,
        workdir=tmp_path_factory.mktemp("old-broker"),
    ) as m:
        p.admin = m.admin_socket
        p.run("service", "add", "fmar")
        p.run("device", "add", "agent-a")
        password = p.site.admin_passwords()["atp-admin"]
        with BrokerAdmin(socket_path=m.admin_socket, password=password) as a:
            a.run(
                [
                    {"command": "deleteGroup", "groupname": "dso"},
                    {"command": "deleteRole", "rolename": "dso"},
                    *(
                        {"command": "removeRoleACL", "rolename": "fmar", "acltype": t, "topic": f}
                        for t, f in (
                            ("subscribePattern", "atp/v1/m/+/bid/+"),
                            ("publishClientReceive", "atp/v1/m/+/bid/+"),
                            ("publishClientSend", "atp/v1/m/+/ack/+"),
                        )
                    ),
                    {
                        "command": "addRoleACL",
                        "rolename": "fmar",
                        "acltype": "subscribePattern",
                        "topic": "atp/v1/m/+/bid",
                        "priority": 0,
                        "allow": True,
                    },
                    {
                        "command": "removeRoleACL",
                        "rolename": "agent/agent-a",
                        "acltype": "publishClientSend",
                        "topic": "atp/v1/m/+/bid/agent-a",
                    },
                ]
            )
        yield p, m


def _client(p: Provisioned, m: Mosquitto, account: str) -> Client:
    return Client(m, account, p.creds(account))


def test_roles_made_before_the_market_topics_are_brought_in_line(old_site):
    p, m = old_site
    fmar = _client(p, m, "fmar")
    try:
        assert fmar.subscribe(topics.all_market_bids()) == ["Not authorized"]
    finally:
        fmar.close()

    out = p.run("service", "roles", "--json")
    changed = json.loads(out.stdout)["changed"]
    assert set(changed) == {"fmar", "dso", "agent/agent-a"}
    assert json.loads(p.run("service", "roles", "--json").stdout)["changed"] == []

    p.run("service", "add", "dso")
    fmar, agent, dso = (_client(p, m, a) for a in ("fmar", "agent-a", "dso"))
    try:
        assert (
            fmar.subscribe(topics.all_market_bids(), topics.ALL_DSO_REQUESTS)
            == ["Granted QoS 1"] * 2
        )
        # the rule the old role had and the policy has not is gone
        assert fmar.subscribe("atp/v1/m/+/bid") == ["Not authorized"]
        agent.publish(topics.market_bid_topic("m1", "agent-a"), b"an order")
        dso.publish(topics.dso_request_topic("dso", "congestion"), b"a registration")
        assert fmar.wait_for(topics.market_bid_topic("m1", "agent-a"), b"an order")
        assert fmar.wait_for(topics.dso_request_topic("dso", "congestion"), b"a registration")
    finally:
        for c in (fmar, agent, dso):
            c.close()


def test_before_the_first_start_the_roles_are_brought_in_line_in_the_file(tmp_path):
    p = Provisioned(site=Site(root=tmp_path / "site"))
    p.run("pki", "init", "--hostname", "localhost")
    p.run("service", "add", "fmar", "--offline")
    path = p.site.dynsec
    fresh = json.loads(path.read_text())
    old = json.loads(path.read_text())
    old["groups"] = [g for g in old["groups"] if g["groupname"] != "dso"]
    old["roles"] = [r for r in old["roles"] if r["rolename"] != "dso"]
    fmar = next(r for r in old["roles"] if r["rolename"] == "fmar")
    fmar["acls"] = [a for a in fmar["acls"] if "/ack/" not in a["topic"]]
    path.write_text(json.dumps(old))

    out = json.loads(p.run("service", "roles", "--offline", "--json").stdout)
    assert set(out["changed"]) == {"fmar", "dso"} and out["broker"] == "file"

    def shape(config: dict) -> tuple:
        roles = {
            r["rolename"]: sorted((a["acltype"], a["topic"]) for a in r["acls"])
            for r in config["roles"]
        }
        groups = {
            g["groupname"]: sorted(r["rolename"] for r in g.get("roles", []))
            for g in config["groups"]
        }
        return roles, groups

    assert shape(json.loads(path.read_text())) == shape(fresh)
    assert path.stat().st_mode & 0o777 == 0o600
