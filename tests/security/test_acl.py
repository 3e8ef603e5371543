"""What each account may publish and receive, decided on the subscriber's side.

A denied publish is dropped silently (the publisher still gets its PUBACK), so every "cannot"
below is shown by a subscriber that is allowed to see the topic and never does: it receives an
allowed message sent after the denied ones (so it was listening), and nothing before it. The
broker passes on what it accepted in the order it accepted it, and every publish here waits for
its PUBACK, so a denied message let through would have come before that marker.
A subscription the policy does not allow is refused outright (SUBACK "Not authorized").
Every FMAN worker has its own account (fman-1, fman-2, ...): the broker pins a client id
to its account, so two connections of one account would take each other's place.
"""

from __future__ import annotations

import pytest

from protocol import topics

UPLINK = ("offer", "offer/delete", "meter", "status", "schedule/ack")
DOWNLINK = ("ack", "schedule")


def before(client, topic: str, payload: bytes) -> list[bytes]:
    """The payloads ``client`` received before the marker ``(topic, payload)``, which must
    arrive."""
    got = client.received_until(topic, payload)
    assert got, f"the marker {payload!r} never arrived"
    return [p for _, p in got[:-1]]


@pytest.fixture
def fman(connect):
    client = connect("fman-1")
    assert client.connected
    client.subscribe(
        *(topics.shared("fman", topics.all_agents(ch)) for ch in UPLINK),
        topics.shared("fman", topics.all_agents("req/#")),
    )
    return client


def test_an_agent_cannot_publish_on_another_agents_topics(connect, fman):
    a, b = connect("agent-a"), connect("agent-b")
    b.subscribe(*(topics.agent_topic("agent-b", ch) for ch in DOWNLINK))
    assert b.subscribe("atp/v1/a/agent-b/resp/#") == [
        "Granted QoS 1"
    ]  # exactly the policy's filter
    forged = b"forged by agent-a"
    for ch in (*UPLINK, *DOWNLINK):
        a.publish(topics.agent_topic("agent-b", ch), forged)
    a.publish(topics.request_topic("agent-b", "bill"), forged)
    a.publish(topics.response_topic("agent-b", "t1"), forged)
    # ...while its own uplink message, sent last, does arrive, after none of them: FMAN was
    # listening.
    a.publish(topics.agent_topic("agent-a", "offer"), b"genuine")
    assert forged not in before(fman, topics.agent_topic("agent-a", "offer"), b"genuine")
    # Agent-b, listening on its downlink, gets FMAN's next message there, and nothing before.
    fman.publish(topics.agent_topic("agent-b", "ack"), b"marker")
    assert before(b, topics.agent_topic("agent-b", "ack"), b"marker") == []


def test_an_agent_cannot_receive_another_agents_schedules(connect):
    a = connect("agent-a")
    # Every wider subscription is refused outright ...
    wide = (topics.agent_topic("agent-b", "schedule"), topics.all_agents("schedule"), "atp/v1/#")
    assert a.subscribe(*wide, "#") == ["Not authorized"] * 4
    assert a.subscribe(topics.agent_topic("agent-a", "schedule")) == ["Granted QoS 1"]
    fman = connect("fman-2")
    fman.publish(topics.agent_topic("agent-b", "schedule"), b"for b only")
    fman.publish(topics.agent_topic("agent-a", "schedule"), b"for a")
    # ... and agent-a gets its own schedule, sent after b's, alone.
    assert before(a, topics.agent_topic("agent-a", "schedule"), b"for a") == []


def test_an_agent_cannot_read_the_fleets_uplink(connect):
    a, b = connect("agent-a"), connect("agent-b")
    refused = a.subscribe(
        topics.all_agents("offer"), topics.shared("fman", topics.all_agents("meter"))
    )
    assert refused == ["Not authorized"] * 2
    assert a.subscribe(topics.agent_topic("agent-a", "schedule")) == ["Granted QoS 1"]
    b.publish(topics.agent_topic("agent-b", "offer"), b"b's offer")
    b.publish(topics.agent_topic("agent-b", "meter"), b"b's readings")
    # a schedule for agent-a, sent after b's uplink, is all it gets
    connect("fman-2").publish(topics.agent_topic("agent-a", "schedule"), b"marker")
    assert before(a, topics.agent_topic("agent-a", "schedule"), b"marker") == []


def test_fman_receives_every_agents_uplink_and_reaches_every_agent(connect, fman):
    a, b = connect("agent-a"), connect("agent-b")
    b.subscribe(topics.agent_topic("agent-b", "schedule"), topics.agent_topic("agent-b", "ack"))
    assert b.subscribe("atp/v1/a/agent-b/resp/#") == [
        "Granted QoS 1"
    ]  # exactly the policy's filter
    # FMAN receives B's uplink (through its shared subscription) ...
    b.publish(topics.agent_topic("agent-b", "offer"), b"offer")
    b.publish(topics.request_topic("agent-b", "bill"), b"request")
    assert fman.wait_for(topics.agent_topic("agent-b", "offer"), b"offer")
    assert fman.wait_for(topics.request_topic("agent-b", "bill"), b"request")
    # ... publishes on B's downlink topics, and B gets it ...
    fman.publish(topics.agent_topic("agent-b", "schedule"), b"schedule")
    fman.publish(topics.agent_topic("agent-b", "ack"), b"ack")
    fman.publish(topics.response_topic("agent-b", "t1"), b"response")
    assert b.wait_for(topics.agent_topic("agent-b", "schedule"), b"schedule")
    assert b.wait_for(topics.agent_topic("agent-b", "ack"), b"ack")
    assert b.wait_for(topics.response_topic("agent-b", "t1"), b"response")
    # ... and may read B's schedules too (a second worker or an operator's monitor).
    monitor = connect("fman-2")
    monitor.subscribe(topics.all_agents("schedule"))
    fman.publish(topics.agent_topic("agent-b", "schedule"), b"v2")
    assert monitor.wait_for(topics.agent_topic("agent-b", "schedule"), b"v2")
    assert a.connected


def test_fman_cannot_forge_an_agents_uplink(connect, fman):
    other = connect("fman-2")
    other.publish(topics.agent_topic("agent-b", "offer"), b"forged by fman")
    other.publish(topics.agent_topic("agent-b", "meter"), b"forged by fman")
    # agent-b's own offer, sent after, is all FMAN gets
    connect("agent-b").publish(topics.agent_topic("agent-b", "offer"), b"genuine")
    got = before(fman, topics.agent_topic("agent-b", "offer"), b"genuine")
    assert b"forged by fman" not in got


def test_the_market_topics_belong_to_fman_and_fmar(connect):
    fmar, fman, agent = (
        connect("fmar"),
        connect("fman-2"),
        connect("agent-a"),
    )
    fmar.subscribe("atp/v1/m/day-ahead/bid/+")
    fman.subscribe(topics.market_topic("day-ahead", "result"))
    market = (topics.all_market_bids(), topics.market_topic("day-ahead", "result"))
    assert agent.subscribe(*market) == ["Not authorized"] * 2
    assert agent.subscribe(topics.agent_topic("agent-a", "schedule")) == ["Granted QoS 1"]
    # FMAN sends under its own name only, never under an agent's
    fman.publish(topics.market_bid_topic("day-ahead", "agent-a"), b"forged by fman")
    fman.publish(topics.market_topic("day-ahead", "bid"), b"fman on the old topic")
    fman.publish(topics.market_bid_topic("day-ahead", "fman"), b"fman bid")
    fmar.publish(topics.market_topic("day-ahead", "result"), b"cleared")
    assert before(fmar, topics.market_bid_topic("day-ahead", "fman"), b"fman bid") == []
    assert fman.wait_for(market[1], b"cleared")
    # the agent sees no result: its schedule, sent after them all, comes alone
    fman.publish(topics.agent_topic("agent-a", "schedule"), b"marker")
    assert before(agent, topics.agent_topic("agent-a", "schedule"), b"marker") == []


def test_an_agent_trades_under_its_own_name_and_sees_only_its_own_answers(connect):
    fmar, a, b = connect("fmar"), connect("agent-a"), connect("agent-b")
    assert fmar.subscribe(topics.all_market_bids()) == ["Granted QoS 1"]
    # every filter that would show another party's orders or answers is refused ...
    assert (
        a.subscribe(
            topics.all_market_bids(),
            topics.market_answer_topic("m1", "agent-b"),
            "atp/v1/m/+/ack/+",
            "atp/v1/m/#",
        )
        == ["Not authorized"] * 4
    )
    # ... its own answers, of every market, and the gate calendars are granted
    assert a.subscribe("atp/v1/m/+/ack/agent-a", "atp/v1/m/+/gate") == ["Granted QoS 1"] * 2
    assert b.subscribe("atp/v1/m/+/ack/agent-b") == ["Granted QoS 1"]
    # an order in another's name never reaches FMAR; one in its own does, after it
    a.publish(topics.market_bid_topic("m1", "agent-b"), b"forged by agent-a")
    a.publish(topics.market_bid_topic("m1", "fman"), b"forged as fman")
    a.publish(topics.market_topic("m1", "bid"), b"on the old topic")
    a.publish(topics.market_bid_topic("m1", "agent-a"), b"agent-a's order")
    got = before(fmar, topics.market_bid_topic("m1", "agent-a"), b"agent-a's order")
    assert got == []
    # FMAR answers each on its own topic: agent-a gets its answer alone
    fmar.publish(topics.market_answer_topic("m1", "agent-b"), b"for b")
    fmar.publish(topics.market_answer_topic("m1", "agent-a"), b"for a")
    assert before(a, topics.market_answer_topic("m1", "agent-a"), b"for a") == []
    assert b.wait_for(topics.market_answer_topic("m1", "agent-b"), b"for b")
    # an agent cannot answer in FMAR's place
    a.publish(topics.market_answer_topic("m1", "agent-b"), b"forged answer")
    fmar.publish(topics.market_answer_topic("m1", "agent-b"), b"marker")
    assert before(b, topics.market_answer_topic("m1", "agent-b"), b"marker") == []


def test_the_dso_asks_fmar_under_its_own_name_and_reads_only_its_answers(connect):
    fmar, dso, agent = connect("fmar"), connect("dso"), connect("agent-a")
    assert dso.connected
    assert fmar.subscribe(topics.ALL_DSO_REQUESTS) == ["Granted QoS 1"]
    # the DSO reads its responses, not the results (every party's awards), not the bids
    assert (
        dso.subscribe(
            topics.market_topic("m1", "result"), topics.all_market_bids(), "atp/v1/d/+/resp/#"
        )
        == ["Not authorized"] * 3
    )
    assert dso.subscribe("atp/v1/d/dso/resp/#", "atp/v1/m/+/ack/dso") == ["Granted QoS 1"] * 2
    # nobody else asks in the DSO's name
    agent.publish(topics.dso_request_topic("dso", "congestion"), b"forged by an agent")
    assert agent.subscribe("atp/v1/d/dso/resp/#") == ["Not authorized"]
    dso.publish(topics.dso_request_topic("other-dso", "congestion"), b"as another dso")
    dso.publish(topics.market_bid_topic("m1", "agent-a"), b"an order as an agent")
    dso.publish(topics.dso_request_topic("dso", "congestion"), b"the dso's request")
    got = before(fmar, topics.dso_request_topic("dso", "congestion"), b"the dso's request")
    assert got == []
    fmar.publish(topics.dso_response_topic("dso", "t1"), b"answer")
    assert dso.wait_for(topics.dso_response_topic("dso", "t1"), b"answer")


def test_a_shared_subscription_splits_the_fleet_between_fman_workers(connect):
    w1, w2 = connect("fman-1"), connect("fman-2")
    shared = topics.shared("fman-split", topics.all_agents("meter"))
    # each also follows agent-a's status on its own: a status sent after the readings reaches
    # both, after whatever share of the readings each was given
    status = (topics.agent_topic("agent-a", "status"), b"split marker")
    w1.subscribe(shared, status[0])
    w2.subscribe(shared, status[0])
    a = connect("agent-a")
    for i in range(20):
        a.publish(topics.agent_topic("agent-a", "meter"), f"r{i}".encode())
    a.publish(*status)
    got1, got2 = ([p for t, p in w.received_until(*status) if t != status[0]] for w in (w1, w2))
    assert sorted(got1 + got2) == sorted(f"r{i}".encode() for i in range(20))
    assert got1 and got2  # both workers got a share, no message twice
