"""systemd notify over a real Unix datagram socket: READY=1 after the probe, the watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

import pytest

from agent.clock import SimClock
from agent.config import load_config
from agent.runtime import AgentRuntime
from agent.systemd import Notifier
from cloud.broker import free_port
from tests.agent.helpers import T0, write_config
from tests.waiting import until


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    else:
        name = f"foa-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    sock.settimeout(5)
    yield sock, address
    sock.close()


def test_notifier_sends_datagrams(listener):
    sock, address = listener
    n = Notifier(environ={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
    assert n.enabled and n.watchdog_s == 2.0
    assert n.ready("running")
    assert sock.recv(4096) == b"READY=1\nSTATUS=running"


def test_outside_systemd_nothing_is_sent():
    n = Notifier(environ={})
    assert not n.enabled and not n.ready() and n.watchdog_s is None
    other = Notifier(environ={"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"})
    assert other.watchdog_s is None  # meant for another process


def test_ready_after_store_and_probe_then_watchdog_from_the_loop(listener, tmp_path):
    sock, address = listener
    state = tmp_path / "d1.json"
    cfg = load_config(
        write_config(
            tmp_path / "foa.toml",
            agent_id="notify-test",
            broker_url=f"mqtt://127.0.0.1:{free_port()}",  # nobody there: the agent runs anyway
            devices={"d1": {"state_file": str(state)}},
        )
    )
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid())}
    runtime = AgentRuntime(
        config=cfg, clock=SimClock(start=T0, speed=600), notifier=Notifier(environ=env)
    )

    def receive() -> bytes:
        try:
            return sock.recv(4096)
        except TimeoutError:
            return b""

    async def scenario():
        task = asyncio.create_task(runtime.run(until=T0 + 600 * 0.6))
        ready = await asyncio.to_thread(sock.recv, 4096)
        # READY came after the store was opened and the device was read once
        assert cfg.store.exists() and state.exists()
        sock.settimeout(0.2)
        kicks = 0
        while not task.done():
            kicks += (await asyncio.to_thread(receive)).count(b"WATCHDOG=1")
        await task
        return ready, kicks

    ready, kicks = asyncio.run(scenario())
    assert ready.startswith(b"READY=1")
    assert kicks >= 3  # every 50 ms for about 0.6 s


def test_the_kicks_stop_while_the_main_loop_is_stuck_in_a_step(listener):
    # a device call that never returns keeps the event loop alive but the agent dead: systemd
    # must see the kicks stop and restart the service
    sock, address = listener
    n = Notifier(environ={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})

    def kicks_while(stuck_s: float) -> tuple[int, int]:
        """Run the watchdog until it has judged the main loop three times, with the loop in
        its step for ``stuck_s``; how many judgements, and how many kicks were sent."""
        judged = 0

        def stuck_for() -> float:
            nonlocal judged
            judged += 1
            return stuck_s

        async def run() -> None:
            task = asyncio.create_task(n.watchdog(stuck_for, limit_s=0.2))
            await until(lambda: judged >= 3, what="three turns of the watchdog")
            task.cancel()

        asyncio.run(run())
        # the datagrams were sent before the turns that follow them: all are here now
        sock.setblocking(False)
        got = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                got += sock.recv(4096).count(b"WATCHDOG=1")
        return judged, got

    judged, kicks = kicks_while(0.0)
    assert kicks == judged >= 3  # a kick every turn while the loop makes progress
    judged, kicks = kicks_while(0.25)  # longer than the step limit
    assert judged >= 3 and kicks == 0
