"""What one provisioned but hostile agent can do to the others: nothing.

Each attack here was measured against the broker's earlier configuration (password file and
acl_file): joining FMAN's shared subscription lost half of the fleet's offers, a borrowed
client id kicked its owner and took over its session, QoS 2 messages piled up unreleased,
and retained messages and subscriptions had no bound. Decided on the receiving side, since
the broker acknowledges what it then drops.
"""

from __future__ import annotations

from protocol import topics

EVIL = "agent-evil"


def test_an_agent_cannot_join_fmans_shared_subscription(connect):
    offers = topics.all_agents("offer")
    fman = connect("fman-1")
    assert fman.subscribe(topics.shared("fman", offers)) == ["Granted QoS 1"]
    evil = connect(EVIL)
    tries = [
        topics.shared("fman", offers),
        topics.shared("fman", topics.all_agents("meter")),
        topics.shared("fman", "atp/v1/a/#"),
        topics.shared(EVIL, topics.agent_topic(EVIL, "schedule")),
    ]
    assert evil.subscribe(*tries) == ["Not authorized"] * len(tries)
    a = connect("agent-a")
    sent = [f"offer {i}".encode() for i in range(30)]
    for payload in sent:
        a.publish(topics.agent_topic("agent-a", "offer"), payload)
    got = fman.collect(len(sent))
    # all 30 reached FMAN, so none went to agent-evil (a shared subscription gives each
    # message to one member), which has nothing
    assert sorted(p for _, p in got) == sorted(sent)
    assert evil.received() == []


def test_an_agent_cannot_take_another_accounts_client_id(connect, prod_broker):
    b = connect("agent-b", session_expiry_s=600)
    worker = connect("fman-2")
    assert b.subscribe(topics.agent_topic("agent-b", "schedule")) == ["Granted QoS 1"]
    # agent-evil asks for agent-b's and a worker's client id: the broker gives it its own
    impostors = [connect(EVIL, client_id="agent-b"), connect(EVIL, client_id="fman-2")]
    assert impostors[-1].connected
    assert f"as {EVIL} (p5" in prod_broker.log_tail(30)
    worker.publish(topics.agent_topic("agent-b", "schedule"), b"for b")
    assert b.wait_for(topics.agent_topic("agent-b", "schedule"), b"for b")
    assert b.connected and not b.disconnected
    assert worker.connected and not worker.disconnected


def test_an_account_has_one_connection_at_a_time(connect, prod_broker):
    first = connect(EVIL, client_id="evil-1")
    second = connect(EVIL, client_id="evil-2")
    assert second.connected
    assert first.wait_disconnected()  # the second took the first one's place
    assert f"Client {EVIL} already connected, closing old connection" in prod_broker.log_tail(40)


def test_qos_2_is_refused(connect):
    fman = connect("fman-1")
    fman.subscribe(topics.shared("fman", topics.all_agents("offer")))
    evil = connect(EVIL)
    evil.publish(topics.agent_topic(EVIL, "offer"), b"qos 2", qos=2)
    assert evil.wait_disconnected()
    assert evil.disconnect_reason == "QoS not supported"
    # ... so the broker holds no QoS 2 message for it, released or not; QoS 1 still works
    again = connect(EVIL)
    again.publish(topics.agent_topic(EVIL, "offer"), b"qos 1")
    got = fman.received_until(topics.agent_topic(EVIL, "offer"), b"qos 1")
    assert got and all(p != b"qos 2" for _, p in got)  # nothing came before it


def test_an_agent_holds_few_subscriptions_and_retained_messages(connect):
    evil = connect(EVIL)
    own = [topics.agent_topic(EVIL, "ack"), topics.agent_topic(EVIL, "schedule")]
    wider = [f"atp/v1/a/{EVIL}/resp/t{i}" for i in range(20)]
    wider += [f"atp/v1/a/{EVIL}/schedule/x{i}" for i in range(20)]
    wider += [f"atp/v1/a/{EVIL}/+", f"atp/v1/a/{EVIL}/#"]
    assert evil.subscribe(*own, f"atp/v1/a/{EVIL}/resp/#") == ["Granted QoS 1"] * 3
    assert evil.subscribe(*wider) == ["Not authorized"] * len(wider)
    # Retained messages only on the topics the policy names: one per topic at most.
    for i in range(50):
        evil.publish(f"atp/v1/a/{EVIL}/req/x{i}", b"hoard", retain=True)
    evil.publish(topics.request_topic(EVIL, "bill"), b"one", retain=True)
    a = connect("agent-a")
    a.publish(topics.agent_topic("agent-a", "status"), b"marker", retain=True)
    reader = connect("fman-3")
    reader.subscribe(f"atp/v1/a/{EVIL}/req/#", topics.agent_topic("agent-a", "status"))
    # agent-a's status, asked for last, arrives after every retained request of agent-evil
    got = reader.received_until(topics.agent_topic("agent-a", "status"), b"marker")
    assert got, "the marker never arrived"
    assert [t for t, _ in got[:-1]] == [topics.request_topic(EVIL, "bill")]
    evil.publish(topics.request_topic(EVIL, "bill"), b"", retain=True)  # tidy up
