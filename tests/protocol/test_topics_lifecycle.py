"""Topic building and parsing; the offer state machine."""

from __future__ import annotations

import pytest

import protocol
from protocol import LifecycleError, topics


@pytest.mark.parametrize("channel", list(topics.AGENT_CHANNELS))
def test_agent_topics_roundtrip(channel):
    t = topics.agent_topic("agent-7", channel)
    assert t == f"atp/v1/a/agent-7/{channel}"
    parsed = topics.parse(t)
    assert (parsed.scope, parsed.owner, parsed.channel) == ("a", "agent-7", channel)


def test_request_response_and_market_topics():
    assert topics.parse(topics.request_topic("a1", "bill")).method == "bill"
    assert topics.parse(topics.response_topic("a1", "c0ffee")).channel == "resp/c0ffee"
    for ch in topics.MARKET_CHANNELS:
        p = topics.parse(topics.market_topic("dayahead", ch))
        assert (p.scope, p.owner, p.channel) == ("m", "dayahead", ch)


def test_filters_and_shared_subscriptions():
    assert topics.all_agents("offer") == "atp/v1/a/+/offer"
    assert topics.shared("fman", topics.all_agents("meter")) == "$share/fman/atp/v1/a/+/meter"


@pytest.mark.parametrize(
    "bad",
    [
        "a/b",
        "atp/v1/a/x",
        "atp/v2/a/x/offer",
        "atp/v1/a/x/teleport",
        "atp/v1/z/x/offer",
        "atp/v1/a/x+y/offer",
        "$share/g/atp/v1/a/x/offer",
    ],
)
def test_parse_refuses_foreign_topics(bad):
    with pytest.raises(ValueError):
        topics.parse(bad)


@pytest.mark.parametrize("agent", ["a/b", "+", "#", "", "a b"])
def test_ids_that_would_break_topics_are_refused(agent):
    with pytest.raises(ValueError):
        topics.agent_topic(agent, "offer")


def test_happy_path_of_an_offer():
    s = "offered"
    for nxt in ("accepted", "assigned", "assigned", "executing", "executed", "settled"):
        s = protocol.transition(s, nxt)
    assert s == "settled"


def test_default_runs_without_any_schedule():
    assert protocol.transition("accepted", "executing") == "executing"
    assert protocol.transition("offered", "executing") == "executing"


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("rejected", "accepted"),
        ("settled", "offered"),
        ("executed", "assigned"),
        ("withdrawn", "accepted"),
        ("executing", "withdrawn"),
        ("offered", "settled"),
    ],
)
def test_illegal_transitions_raise(current, target):
    with pytest.raises(LifecycleError, match=f"{current}.*{target}"):
        protocol.transition(current, target)
    assert not protocol.can_transition(current, target)


def test_final_states_have_no_way_out():
    final = {"rejected", "withdrawn", "expired", "settled"}
    assert set(protocol.FINAL_STATES) == final
