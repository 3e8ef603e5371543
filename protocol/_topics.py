"""MQTT topic names: build them, parse them, and the subscription filters the services use.

    atp/v1/a/{agent}/offer             agent -> FMAN   Flex-Offer insert or update
    atp/v1/a/{agent}/offer/delete      agent -> FMAN   withdraw an offer
    atp/v1/a/{agent}/meter             agent -> FMAN   batch of meter readings
    atp/v1/a/{agent}/status            agent, retained, also the Last Will
    atp/v1/a/{agent}/ack               FMAN  -> agent  accepted or rejected (reasons)
    atp/v1/a/{agent}/schedule          FMAN  -> agent  an assignment
    atp/v1/a/{agent}/schedule/ack      agent -> FMAN   schedule taken or refused (reasons)
    atp/v1/a/{agent}/req/{method}      agent -> FMAN   request (MQTT v5 response topic below)
    atp/v1/a/{agent}/resp/{tag}        FMAN  -> agent  response
    atp/v1/m/{market}/bid/{party}      party -> FMAR   sell order or request (protocol 1.4);
                                                       the party is the topic's, bound by the ACL
    atp/v1/m/{market}/ack/{party}      FMAR  -> party  the order stored or refused (reasons)
    atp/v1/m/{market}/result           FMAR  -> all    a cleared gate's awards and prices
    atp/v1/m/{market}/gate             FMAR, retained  the gate calendar
    atp/v1/d/{dso}/req/{method}        DSO   -> FMAR   congestion registrations and queries
    atp/v1/d/{dso}/resp/{tag}          FMAR  -> DSO    response

Every topic an agent writes or reads sits under its own ``atp/v1/a/{agent}/`` so that one ACL
pattern per direction confines it (see ``mosquitto/``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "atp/v1"

#: Topic suffixes under ``atp/v1/a/{agent}/`` and the message kinds they carry.
AGENT_CHANNELS: dict[str, str] = {
    "offer": "offer",
    "offer/delete": "offer.delete",
    "meter": "meter",
    "status": "status",
    "ack": "ack|reject",
    "schedule": "schedule",
    "schedule/ack": "ack|reject",
}
MARKET_CHANNELS = ("bid", "result", "gate")

_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"{what} {value!r} cannot be used in a topic (letters, digits, _.:@- only)"
        )
    return value


def agent_topic(agent: str, channel: str) -> str:
    """``atp/v1/a/{agent}/{channel}`` for a channel of :data:`AGENT_CHANNELS`."""
    if channel not in AGENT_CHANNELS:
        raise ValueError(f"unknown agent channel {channel!r}")
    return f"{PREFIX}/a/{_check_id(agent, 'agent id')}/{channel}"


def _check_method(method: str) -> str:
    """A method is one or two topic levels (``bill``, ``flexoffer/range``)."""
    levels = method.split("/")
    if len(levels) > 2:
        raise ValueError(f"method {method!r} has more than two levels")
    for level in levels:
        _check_id(level, "method")
    return method


def request_topic(agent: str, method: str) -> str:
    return f"{PREFIX}/a/{_check_id(agent, 'agent id')}/req/{_check_method(method)}"


def response_topic(agent: str, tag: str) -> str:
    return f"{PREFIX}/a/{_check_id(agent, 'agent id')}/resp/{_check_id(tag, 'tag')}"


def market_topic(market: str, channel: str) -> str:
    if channel not in MARKET_CHANNELS:
        raise ValueError(f"unknown market channel {channel!r}")
    return f"{PREFIX}/m/{_check_id(market, 'market id')}/{channel}"


def market_bid_topic(market: str, party: str) -> str:
    """``atp/v1/m/{market}/bid/{party}``: where ``party`` sends its orders. The ACL lets an
    account write only under its own name, so FMAR takes the party from this level and never
    from the message (docs/market.md, "Who may trade")."""
    return f"{PREFIX}/m/{_check_id(market, 'market id')}/bid/{_check_id(party, 'party id')}"


def all_market_bids() -> str:
    """Filter for every party's orders on every market: ``atp/v1/m/+/bid/+``."""
    return f"{PREFIX}/m/+/bid/+"


def dso_request_topic(dso: str, method: str) -> str:
    """``atp/v1/d/{dso}/req/{method}``: a DSO's request to FMAR (docs/market.md)."""
    return f"{PREFIX}/d/{_check_id(dso, 'dso id')}/req/{_check_method(method)}"


def dso_response_topic(dso: str, tag: str) -> str:
    return f"{PREFIX}/d/{_check_id(dso, 'dso id')}/resp/{_check_id(tag, 'tag')}"


#: Filter for every DSO's requests (FMAR subscribes it).
ALL_DSO_REQUESTS = f"{PREFIX}/d/+/req/#"


def market_answer_topic(market: str, party: str) -> str:
    """``atp/v1/m/{market}/ack/{party}``: FMAR's answers to one party's orders, under the
    party's own name so that one ACL pattern lets it read its answers and no one else's."""
    return f"{PREFIX}/m/{_check_id(market, 'market id')}/ack/{_check_id(party, 'party id')}"


def all_markets(channel: str) -> str:
    """Filter for one channel of every market, e.g. ``atp/v1/m/+/bid``."""
    if channel not in MARKET_CHANNELS:
        raise ValueError(f"unknown market channel {channel!r}")
    return f"{PREFIX}/m/+/{channel}"


def all_agents(channel: str) -> str:
    """Filter for one channel of every agent, e.g. ``atp/v1/a/+/offer``."""
    if channel not in AGENT_CHANNELS and channel not in ("req/#", "req/+"):
        raise ValueError(f"unknown agent channel {channel!r}")
    return f"{PREFIX}/a/+/{channel}"


def shared(group: str, topic_filter: str) -> str:
    """A shared subscription: the broker hands each message to one member of ``group``."""
    return f"$share/{_check_id(group, 'group')}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic: ``scope`` is ``"a"`` (agent), ``"m"`` (market) or ``"d"`` (a DSO);
    ``owner`` the agent, market or DSO id; ``channel`` the rest (``offer``, ``req/bill``,
    ``bid/{party}``, …)."""

    scope: str
    owner: str
    channel: str

    @property
    def method(self) -> str | None:
        """The method of a request topic, else ``None``."""
        return self.channel[4:] if self.channel.startswith("req/") else None


def parse(topic: str) -> Topic:
    """Parse a concrete topic; raises ``ValueError`` naming what is wrong."""
    if topic.startswith("$share/"):
        raise ValueError("a shared-subscription filter is not a topic")
    parts = topic.split("/", 4)
    if len(parts) < 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise ValueError(f"{topic!r} is not an {PREFIX}/<scope>/<id>/<channel> topic")
    _, _, scope, owner, channel = parts
    if not _ID.match(owner):
        raise ValueError(f"{topic!r}: bad id {owner!r}")
    if scope in ("a", "d"):
        head, _, rest = channel.partition("/")
        levels = rest.split("/")
        ok = (scope == "a" and channel in AGENT_CHANNELS) or (
            ((head == "resp" and len(levels) == 1) or (head == "req" and len(levels) <= 2))
            and all(_ID.match(lvl) is not None for lvl in levels)
        )
    elif scope == "m":
        ok = channel in MARKET_CHANNELS or (
            channel.count("/") == 1
            and channel.split("/")[0] in ("ack", "bid")
            and _ID.match(channel.split("/")[1]) is not None
        )
    else:
        raise ValueError(f"{topic!r}: unknown scope {scope!r}")
    if not ok:
        raise ValueError(f"{topic!r}: unknown channel {channel!r}")
    return Topic(scope=scope, owner=owner, channel=channel)
