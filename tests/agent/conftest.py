"""Fixtures of the agent tests."""

from __future__ import annotations

import getpass
from collections.abc import Iterator

import pytest

from cloud.broker import Mosquitto


@pytest.fixture
def durable_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker of this test's own whose persistence survives a stop and start.

    Mosquitto started as root drops to the ``mosquitto`` user and then cannot write its
    persistence file in a root-owned temporary directory, so sessions would not survive a
    restart; ``user`` keeps it as the user running the tests (ignored when not root)."""
    m = Mosquitto(
        workdir=tmp_path_factory.mktemp("mosquitto-durable"),
        listener_options=f"user {getpass.getuser()}",
    )
    m.start()
    try:
        yield m
    finally:
        m.close()
