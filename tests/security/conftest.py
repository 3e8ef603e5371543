"""A provisioned site and a production-config Mosquitto for the security tests.

The site is made with the real ``atp`` commands (as an operator would), their output kept so
that a test can check no secret ever reached it; the broker runs ``mosquitto/prod.conf``
itself, moved to a loopback port with the site's ``broker/`` standing in for
``/etc/mosquitto/atp`` and its admin socket in its working directory: TLS with the
development CA, the dynamic-security plugin's accounts and roles. As in production, the
broker is started right after ``atp pki init``, and every account after that is added to
the running broker through its admin socket (``$ATP_BROKER_ADMIN``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cloud.broker import CONFIG_DIR, Mosquitto
from cloud.provision import Site

from .mqtt import Client, Credentials

AGENTS = ("agent-a", "agent-b", "agent-revoked", "agent-cert", "agent-evil")
#: One account per FMAN worker; tests that need several FMAN connections at once use several.
FMAN = ("fman-1", "fman-2", "fman-3", "fman-4")
SERVICES = (*FMAN, "fmar", "dso")


def atp(
    *args: str, site: Path, admin: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real ``atp`` command line (the module, so the test venv's code runs);
    ``admin`` is the running broker's admin socket, given as an operator would."""
    env = dict(os.environ)
    env.pop("ATP_BROKER_ADMIN", None)
    if admin is not None:
        env["ATP_BROKER_ADMIN"] = str(admin)
    return subprocess.run(
        [sys.executable, "-c", "from cloud.cli import main; main()", *args, "--site", str(site)],
        capture_output=True,
        text=True,
        check=check,
        env=env,
    )


@dataclass
class Provisioned:
    """A site made by the CLI, and every line the CLI printed while making it."""

    site: Site
    output: list[str] = field(default_factory=list)
    #: Every secret the site ever held, revoked and rotated ones included.
    known_secrets: set[str] = field(default_factory=set)
    #: The running broker's admin socket, once it runs.
    admin: Path | None = None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.known_secrets |= set(self.secrets())
        proc = atp(*args, site=self.site.root, admin=self.admin, check=check)
        self.output += [proc.stdout, proc.stderr]
        self.known_secrets |= set(self.secrets())
        return proc

    def creds(self, account: str, *, tls: bool = True, cert: bool = False) -> Credentials:
        if account in SERVICES or account.startswith("fman-"):
            directory = self.site.service_dir(account)
            password = (directory / "credentials").read_text().strip().partition(":")[2]
        else:
            directory = self.site.device_dir(account)
            config = tomllib.loads((directory / "foa.toml").read_text())
            password = (directory / config["broker"]["password_file"]).read_text().strip()
        return Credentials(
            username=account,
            password=password,
            ca_file=directory / "ca.crt" if tls else None,
            cert_file=directory / "client.crt" if cert else None,
            key_file=directory / "client.key" if cert else None,
        )

    def secrets(self) -> list[str]:
        """Every secret of the site: passwords and the private keys' base64 bodies."""
        found = []
        for path in self.site.root.rglob("*"):
            if path.name == "password":
                found.append(path.read_text().strip())
            elif path.name in ("credentials", "broker-admin"):
                found += [ln.partition(":")[2] for ln in path.read_text().splitlines()]
            elif path.suffix == ".key":
                body = [ln for ln in path.read_text().splitlines() if "-----" not in ln]
                found += [ln for ln in body if len(ln) >= 16]
        return found


@dataclass
class World:
    provisioned: Provisioned
    broker: Mosquitto


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    p = Provisioned(site=Site(root=tmp_path_factory.mktemp("site")))
    p.run("pki", "init", "--hostname", "localhost", "--hostname", "127.0.0.1")
    with Mosquitto(
        config=CONFIG_DIR / "prod.conf",
        files_dir=p.site.broker_dir,
        workdir=tmp_path_factory.mktemp("prod-broker"),
    ) as m:
        p.admin = m.admin_socket
        for agent in AGENTS:
            extra = ("--client-cert",) if agent == "agent-cert" else ()
            p.run("device", "add", agent, *extra)
        for account in FMAN:
            p.run("service", "add", "fman", "--worker", account.removeprefix("fman-"))
        p.run("service", "add", "fmar")
        p.run("service", "add", "dso")
        yield World(p, m)


@pytest.fixture(scope="session")
def provisioned(world: World) -> Provisioned:
    return world.provisioned


@pytest.fixture(scope="session")
def prod_broker(world: World) -> Mosquitto:
    """Mosquitto running ``mosquitto/prod.conf`` on a loopback port."""
    return world.broker


@pytest.fixture
def connect(prod_broker: Mosquitto, provisioned: Provisioned, request: pytest.FixtureRequest):
    """``connect(account, ...)``: a client of the production broker, closed after the test."""
    clients: list[Client] = []

    def _connect(
        account: str | None,
        *,
        client_id: str | None = None,
        creds: Credentials | None = None,
        session_expiry_s: int = 0,
        **kw,
    ) -> Client:
        if creds is None:
            creds = (
                provisioned.creds(account, **kw)
                if account
                else Credentials(None, None, provisioned.site.ca_cert)  # TLS, no username
            )
        cid = client_id or account or f"anon-{request.node.name}"[:64]
        client = Client(prod_broker, cid, creds, session_expiry_s=session_expiry_s)
        clients.append(client)
        return client

    yield _connect
    for c in clients:
        c.close()
