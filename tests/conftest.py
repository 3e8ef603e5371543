"""Shared fixtures: a real Mosquitto broker and a real PostgreSQL, started and stopped by the
tests themselves."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from cloud.broker import Mosquitto
from cloud.pgcluster import PgCluster


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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster (Debian's packages) for the whole session, on a free
    loopback port. Durability is off: it holds nothing past the session, and a test that
    kills a process kills a client, never the server."""
    with PgCluster(
        settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    ) as pg:
        yield pg


_databases = itertools.count()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A database of this test's own on the session's cluster; dropped afterwards."""
    name = f"t{next(_databases)}"
    url = pg_cluster.create_database(name)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)
