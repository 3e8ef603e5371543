"""The gateway's edge broker (mosquitto/edge-bridge.conf, rendered by ``atp device add
--edge-bridge``) bridged over TLS to the production broker, with the agent's own account."""

from __future__ import annotations

import pytest

from cloud.broker import CONFIG_DIR, Mosquitto
from cloud.provision import Site, add_agent, add_service, init_site
from protocol import topics
from tests.waiting import wait_for

from .mqtt import Client, Credentials

AGENT = "edge-gw"


@pytest.fixture
def edge_world(tmp_path):
    site = Site(root=tmp_path / "site")
    init_site(site, hostnames=["127.0.0.1"])
    add_service(site, "fman", offline=True)  # before the broker's first start
    cloud = Mosquitto(
        config=CONFIG_DIR / "prod.conf", files_dir=site.broker_dir, workdir=tmp_path / "cloud"
    )
    add_agent(
        site, AGENT, edge_bridge=True, broker_url=f"mqtts://127.0.0.1:{cloud.port}", offline=True
    )
    cloud.start()
    edge_dir = site.device_dir(AGENT) / "edge"
    edge = Mosquitto(
        config=edge_dir / "atp-edge.conf", files_dir=edge_dir, workdir=tmp_path / "edge"
    )
    edge.start()
    fman_pw = (site.service_dir("fman-1") / "credentials").read_text().strip().partition(":")[2]
    fman = Client(
        cloud, "fman-1", Credentials("fman-1", fman_pw, site.ca_cert), session_expiry_s=600
    )
    password = (site.device_dir(AGENT) / "password").read_text().strip()
    agent = Client(edge, AGENT, Credentials(AGENT, password, None), session_expiry_s=600)
    yield site, cloud, edge, fman, agent
    for c in (agent, fman):
        c.close()
    edge.close()
    cloud.close()


def test_the_agent_reaches_the_cloud_through_its_edge_broker(edge_world):
    site, cloud, edge, fman, agent = edge_world
    assert fman.connected and agent.connected
    fman.subscribe(topics.shared("fman", topics.all_agents("offer")))
    agent.subscribe(topics.agent_topic(AGENT, "schedule"))
    # the bridge comes up with the agent's own account over TLS
    wait_for(  # MQTT 3.1.1, persistent session
        lambda: f"as {AGENT} (p2, c0" in cloud.log_tail(50),
        what="the bridge's connection in the cloud broker's log",
        step=0.1,
    )
    agent.publish(topics.agent_topic(AGENT, "offer"), b"o1")
    assert fman.wait_for(topics.agent_topic(AGENT, "offer"), b"o1", timeout=20)
    fman.publish(topics.agent_topic(AGENT, "schedule"), b"s1")
    assert agent.wait_for(topics.agent_topic(AGENT, "schedule"), b"s1", timeout=20)
    # the local listener refuses anonymous clients too
    assert not Client(edge, "nobody", Credentials(None, None, None)).connected
    secret = (site.device_dir(AGENT) / "password").read_text().strip()
    assert secret not in edge.log_path.read_text() + cloud.log_path.read_text()


def test_store_and_forward_both_ways_across_outages(edge_world):
    _site, cloud, edge, fman, agent = edge_world
    # A plain subscription in a persistent session: Mosquitto 2.0.11 restores it after a
    # restart, whereas a shared one is gone until the client subscribes again (docs/deploy.md).
    fman.subscribe(topics.all_agents("meter"))
    agent.subscribe(topics.agent_topic(AGENT, "schedule"))
    agent.publish(topics.agent_topic(AGENT, "meter"), b"m-before")
    assert fman.wait_for(topics.agent_topic(AGENT, "meter"), b"m-before", timeout=20)
    # The cloud goes away: the gateway keeps the agent's readings ...
    cloud.stop()
    sent = [f"m{i}".encode() for i in range(30)]
    for payload in sent:
        agent.publish(topics.agent_topic(AGENT, "meter"), payload)
    cloud.start()
    # ... and delivers every one, in order, when it is back.
    got = [p for _, p in fman.collect(len(sent), timeout=60)]
    assert got == sent
    # The gateway goes away: the cloud keeps the bridge's session and its schedule ...
    edge.stop()
    fman.publish(topics.agent_topic(AGENT, "schedule"), b"s-while-down")
    edge.start()
    # ... which reaches the agent when its gateway is back.
    assert agent.wait_for(topics.agent_topic(AGENT, "schedule"), b"s-while-down", timeout=60)
