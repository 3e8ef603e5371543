"""The MQTT session against a real Mosquitto: will, status, persistent session, stored-before-
acknowledged, outbox order, backoff, TLS with a password."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

import protocol
from agent.clock import RealClock
from agent.errors import StoreError
from agent.store import Store
from agent.uplink import BrokerSettings, Uplink, backoff_delay
from cloud.broker import Mosquitto
from protocol import Schedule, topics
from protocol.samples import two_slot_offer
from tests.agent.helpers import T0, Peer
from tests.waiting import until


def make_uplink(store, broker, agent_id, handler=lambda t, p: None, **kw) -> Uplink:
    return Uplink(
        agent_id=agent_id,
        settings=BrokerSettings(
            host=broker.host,
            port=broker.port,
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            **kw.pop("settings", {}),
        ),
        store=store,
        clock=RealClock(),
        handler=handler,
        health=lambda: {"devices": 3},
        devices=("hp", "ev", "pv"),
        **kw,
    )


async def session(up: Uplink, done: Callable[[], object]) -> None:
    """One connection, run until ``done()`` holds, then closed cleanly: the retained offline
    status goes out after everything the uplink queued before it (subscriptions, the PUBACKs
    of the messages it handled) and its own PUBACK means the broker has taken them all. A
    task cancelled at once could drop them with the socket."""
    task = asyncio.create_task(up.run())
    await until(done, what="the session's condition")
    await up.close(timeout=20)
    await task


def statuses(peer: Peer) -> list[str]:
    return [r.msg.body.state for r in peer.of("status", unique=False)]


def test_backoff_is_jittered_exponential_and_capped():
    rng = random.Random(1)
    delays = [backoff_delay(a, initial=1, cap=60, rng=rng) for a in range(12)]
    for attempt, d in enumerate(delays):
        ceiling = min(60, 2**attempt)
        assert ceiling / 2 <= d <= ceiling
    assert len({round(d, 6) for d in delays[6:]}) == 6  # jittered, not all at the cap


def test_online_status_then_last_will_on_a_lost_connection(broker, topic_root, tmp_path):
    peer = Peer(host=broker.host, port=broker.port, agent_id=topic_root)
    store = Store(path=tmp_path / "s.db", durability="normal")
    up = make_uplink(store, broker, topic_root)

    async def scenario():
        task = asyncio.create_task(up.run())
        await until(lambda: "online" in statuses(peer))
        task.cancel()  # the socket closes without DISCONNECT, as on a crash or a cut cable
        await asyncio.gather(task, return_exceptions=True)
        await until(lambda: statuses(peer)[-1:] == ["offline"])

    asyncio.run(scenario())
    online = next(r.msg.body for r in peer.of("status") if r.msg.body.state == "online")
    assert online.health == {"devices": 3} and online.since is not None
    assert online.devices == ["hp", "ev", "pv"]  # announced with the online status only
    offline = next(r.msg.body for r in peer.of("status") if r.msg.body.state == "offline")
    assert offline.devices == []
    assert store.get("connected") == "0"
    peer.close()
    # both were retained: a subscriber arriving now learns the agent is offline
    late = Peer(host=broker.host, port=broker.port, agent_id=topic_root, client_id="late")
    late.wait_for(lambda p: bool(p.of("status")), timeout=5)
    assert statuses(late) == ["offline"]
    late.close()
    store.close()


def test_schedule_sent_while_away_arrives_and_is_acked_only_once_stored(
    broker, topic_root, tmp_path
):
    """Persistent session: what FMAN sends while the agent is away waits at the broker. A
    message whose handling failed to store (StoreError) is not acknowledged, so the broker
    delivers it again on the next connection; once handled, it is acknowledged and gone."""
    peer = Peer(host=broker.host, port=broker.port, agent_id=topic_root)
    store = Store(path=tmp_path / "s.db", durability="normal")
    calls: list[bytes] = []

    def handler(topic: str, payload: bytes) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise StoreError("disk full")  # the first attempt cannot be stored

    def ids() -> list[str]:
        return [protocol.decode(c).id for c in calls]

    first = make_uplink(store, broker, topic_root, handler)
    asyncio.run(session(first, first.connected.is_set))  # session and subscriptions
    sched = Schedule(offer_id="o1", version=1, start=T0 + 3600, energy_kwh=[0.5])
    peer.send("schedule", sched, ts=T0, msg_id="sched-1")
    second = make_uplink(store, broker, topic_root, handler)
    asyncio.run(session(second, lambda: len(calls) >= 2 and second.connected.is_set()))
    assert ids() == ["sched-1", "sched-1"]
    assert second.stats.connects >= 2  # the failed store dropped the connection
    # acknowledged after the second, successful handling: not delivered a third time. A
    # later schedule, sent while the agent is away again, is the proof: the broker delivers
    # a session's messages in order, so sched-1 would come before it.
    later = Schedule(offer_id="o2", version=1, start=T0 + 3600, energy_kwh=[0.5])
    peer.send("schedule", later, ts=T0, msg_id="sched-2")
    third = make_uplink(store, broker, topic_root, handler)
    asyncio.run(session(third, lambda: "sched-2" in ids()))
    assert ids() == ["sched-1", "sched-1", "sched-2"]
    peer.close()
    store.close()


def test_outbox_goes_out_in_order_and_is_emptied(broker, topic_root, tmp_path):
    peer = Peer(host=broker.host, port=broker.port, agent_id=topic_root)
    store = Store(path=tmp_path / "s.db", durability="normal")
    topic = topics.agent_topic(topic_root, "offer/delete")
    for i in range(300):
        body = protocol.Withdraw(offer_id=f"o{i}")
        store.enqueue(
            topic=topic, payload=protocol.encode(body, ts=T0, msg_id=f"w{i}"), kind="w", now=T0
        )
    up = make_uplink(store, broker, topic_root, window=7)

    async def scenario():
        task = asyncio.create_task(up.run())
        await until(lambda: store.outbox_size() == 0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    peer.wait_for(lambda p: len(p.of("offer/delete")) == 300)
    assert [r.msg.id for r in peer.of("offer/delete")] == [f"w{i}" for i in range(300)]
    assert up.stats.acked == 300
    peer.close()
    store.close()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    """Mosquitto with TLS (a CA made here) and a password file, no anonymous access."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=atp-test-ca", cwd=d)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
             cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf",
             cwd=d)  # fmt: skip
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(d / "passwd"), "agent-tls", "right-password"],
        check=True,
        capture_output=True,
    )
    os.chmod(d / "passwd", 0o600)
    conf = d / "tls.conf"
    conf.write_text(
        f"per_listener_settings false\nallow_anonymous false\npassword_file {d / 'passwd'}\n"
        "persistence true\nlog_type error\n"
    )
    options = f"cafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}"
    with Mosquitto(config=conf, listener_options=options, workdir=d / "broker") as m:
        yield m, d


@pytest.mark.parametrize("password", ["right-password", "wrong-password"])
def test_tls_and_password_from_the_config(tls_broker, tmp_path, password):
    from agent.config import load_config

    broker, certs = tls_broker
    secret = tmp_path / "password"
    secret.write_text(password)
    os.chmod(secret, 0o600)
    cfg_path = tmp_path / "foa.toml"
    cfg_path.write_text(
        f'[agent]\nid = "agent-tls"\n\n[broker]\nurl = "mqtts://localhost:{broker.port}"\n'
        f'username = "agent-tls"\npassword_file = "password"\nca_file = "{certs / "ca.crt"}"\n'
        f'\n[devices.d]\ndriver = "tests.agent.plugins:FileMeter"\nstate_file = "d.json"\n'
    )
    cfg = load_config(cfg_path)
    store = Store(path=tmp_path / "s.db", durability="normal")
    up = Uplink(
        agent_id=cfg.id,
        settings=BrokerSettings(
            host=cfg.broker.host,
            port=cfg.broker.port,
            tls=cfg.broker.ssl_context(),
            username=cfg.broker.username,
            password=cfg.broker.password.reveal(),
            backoff_initial_s=0.1,
            backoff_max_s=0.2,
        ),
        store=store,
        clock=RealClock(),
        handler=lambda t, p: None,
    )
    assert password not in repr(up.settings)

    async def scenario():
        task = asyncio.create_task(up.run())
        if password == "right-password":
            await until(up.connected.is_set)
            await up.close()
        else:
            await until(lambda: "refused" in up.stats.last_error)
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    if password == "right-password":
        assert up.stats.connects == 1 and store.get("connected") == "0"
    else:
        assert up.stats.connects == 0 and "Not authorized" in up.stats.last_error
    store.close()


def test_a_message_that_can_never_be_stored_is_not_redelivered_forever(
    broker, topic_root, tmp_path
):
    """A broken constraint (a bug) fails on every delivery: it is logged and acknowledged,
    rather than dropping the connection again and again."""
    peer = Peer(host=broker.host, port=broker.port, agent_id=topic_root)
    store = Store(path=tmp_path / "s.db", durability="normal")
    calls: list[str] = []

    def handler(topic: str, payload: bytes) -> None:
        calls.append(protocol.decode(payload).id)
        if calls[-1] == "poison":
            raise StoreError("UNIQUE constraint failed", transient=False)

    def send(msg_id: str) -> None:
        sched = Schedule(offer_id=msg_id, version=1, start=T0 + 3600, energy_kwh=[0.5])
        peer.send("schedule", sched, ts=T0, msg_id=msg_id)

    async def scenario() -> None:
        up = make_uplink(store, broker, topic_root, handler)
        task = asyncio.create_task(up.run())
        # subscribed: the uplink marks the store connected once the broker confirmed them
        await until(lambda: store.get("connected") == "1")
        send("poison")
        send("after")  # the next message comes on the same connection: it stayed up
        await until(lambda: "after" in calls)
        assert up.stats.connects == 1
        await up.close(timeout=20)
        await task
        # nor is it delivered on the next connection: a later message comes alone
        send("later")
        again = make_uplink(store, broker, topic_root, handler)
        await session(again, lambda: "later" in calls)

    asyncio.run(scenario())
    assert calls == ["poison", "after", "later"]
    peer.close()
    store.close()


def _queue_offers(store: Store, agent: str, n: int) -> None:
    topic = topics.agent_topic(agent, "offer")
    for i in range(n):
        offer = msgspec.structs.replace(two_slot_offer(), id=f"o{i}", issuer=agent)
        store.enqueue(topic=topic, payload=protocol.encode(offer, ts=T0, msg_id=f"o{i}.r0"),
                      kind="offer", ref=offer.id, now=T0, msg_id=f"o{i}.r0")  # fmt: skip


def _answers(store: Store, up_ref: list) -> Callable[[str, bytes], None]:
    """What the core does with FMAN's answers: the answered row leaves the outbox."""

    def handler(topic: str, payload: bytes) -> None:
        body = protocol.decode(payload).body
        store.outbox_answered(body.ref_kind, body.ref_id, body.revision)
        up_ref[0].kick()

    return handler


def test_a_message_the_broker_dropped_is_sent_again_until_fman_answers(
    broker, topic_root, tmp_path
):
    """Nobody listens at first: the broker acknowledges the offers and drops them (as Mosquitto
    does for a shared subscription it has not restored). They stay in the outbox and go again,
    with backoff, until an answer comes."""
    store = Store(path=tmp_path / "s.db", durability="normal")
    _queue_offers(store, topic_root, 3)
    ref: list = []
    up = make_uplink(
        store, broker, topic_root, _answers(store, ref),
        settings={"answer_timeout_s": 0.3, "answer_backoff_max_s": 1.0},
    )  # fmt: skip
    ref.append(up)
    peers: list[Peer] = []

    async def scenario() -> None:
        task = asyncio.create_task(up.run())
        await until(lambda: store.outbox_awaiting() == 3)  # PUBACKed, dropped, kept
        assert store.outbox_size() == 3
        peers.append(
            await asyncio.to_thread(
                Peer, host=broker.host, port=broker.port, agent_id=topic_root, answer=("offer",)
            )
        )
        await until(lambda: store.outbox_size() == 0, timeout=15)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert up.stats.resent >= 3
    (peer,) = peers
    assert sorted(r.msg.id for r in peer.of("offer")) == ["o0.r0", "o1.r0", "o2.r0"]
    peer.close()
    store.close()


def test_at_most_max_unanswered_messages_are_out_at_once(broker, topic_root, tmp_path):
    store = Store(path=tmp_path / "s.db", durability="normal")
    _queue_offers(store, topic_root, 10)
    peer = Peer(host=broker.host, port=broker.port, agent_id=topic_root)  # never answers
    up = make_uplink(store, broker, topic_root, settings={"max_unanswered": 3})

    async def scenario() -> None:
        task = asyncio.create_task(up.run())
        await until(lambda: store.outbox_awaiting() == 3)
        await asyncio.to_thread(peer.wait_for, lambda p: len(p.of("offer")) == 3)
        await until(lambda: up.stats.throttled > 0)  # the next one waits for an answer
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert [r.msg.id for r in peer.of("offer")] == ["o0.r0", "o1.r0", "o2.r0"]
    assert up.stats.sent - up.stats.resent == 3 and up.stats.throttled > 0
    assert store.outbox_size() == 10
    peer.close()
    store.close()
