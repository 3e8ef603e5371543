"""Shared fixtures: a real Mosquitto broker, started and stopped by the tests themselves."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from cloud.broker import Mosquitto


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One development-config Mosquitto on a free loopback port for the whole session.

    Tests that stop or kill the broker must use :func:`own_broker` instead."""
    with Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto")) as m:
        yield m


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker of this test's own, free to be stopped, killed and restarted."""
    m = Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto-own"))
    m.start()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def topic_root(request: pytest.FixtureRequest) -> str:
    """A topic-safe id derived from the test's name, so tests sharing a broker never cross."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[-80:]
