"""Provisioning operations on a site: initialise it, add and revoke accounts.

Every operation leaves the site consistent on disk (files are replaced atomically, the
registry last) and returns the paths it wrote, never a secret: the only copies of a password
are the 0600 files handed to the account's owner and the hash in the broker's password file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from protocol import topics

from . import _passwd, _pki
from ._edge import render_edge_config
from ._errors import AccountError, SiteError
from ._files import write_file, write_secret
from ._foa_config import FoaConfig, read_devices, render_foa_toml
from ._site import SERVICE_ROLES, Account, Registry, Site, now_s
from ._toml import table

#: The repository's ACL; ``init_site`` copies it into the site's broker directory.
ACL_SOURCE = Path(__file__).resolve().parents[2] / "mosquitto" / "acl"
DEFAULT_PORT = 8883
#: Where an agent with an edge broker connects (the gateway's own Mosquitto).
EDGE_URL = "mqtt://127.0.0.1:1883"
#: A device certificate outlives a gateway's usual service interval; the server's as well.
CERT_DAYS = 825


@dataclass(frozen=True, slots=True)
class Written:
    """What an operation wrote: paths, the secret ones (mode 0600) listed apart."""

    files: list[Path] = field(default_factory=list)
    secrets: list[Path] = field(default_factory=list)

    def public(self, path: Path, data: str | bytes) -> None:
        write_file(path, data)
        self.files.append(path)

    def secret(self, path: Path, data: str | bytes) -> None:
        write_secret(path, data)
        self.secrets.append(path)


def _ca(site: Site) -> _pki.Issued:
    site.require_ca()
    return _pki.Issued(site.ca_key.read_bytes(), site.ca_cert.read_bytes(), serial=0)


def _organisation(site: Site) -> str:
    return str(site.settings().get("pki", {}).get("organisation", "ATP"))


def _write_crl(site: Site, registry: Registry, out: Written) -> None:
    revoked = [
        (int(r.serial, 16), dt.datetime.fromtimestamp(r.revoked, dt.UTC))
        for r in registry.revoked_certs
    ]
    out.public(site.crl, _pki.make_crl(_ca(site), revoked=revoked))


def init_site(
    site: Site,
    *,
    hostnames: Sequence[str],
    port: int = DEFAULT_PORT,
    organisation: str = "ATP flexibility platform",
    days: int = CERT_DAYS,
    force: bool = False,
    password_hash: str = _passwd.SCHEMES[0],
) -> Written:
    """A development CA, the broker's certificate and the broker directory (ACL, password
    file, CRL).

    Refuses to replace an existing CA unless ``force``: every certificate and ``foa.toml``
    handed out so far trusts that CA, and a new one would cut off the whole fleet."""
    if not hostnames:
        raise SiteError("give at least one --hostname: the name agents use to reach the broker")
    if password_hash not in _passwd.SCHEMES:
        raise SiteError(f"unknown password hash {password_hash!r}: {', '.join(_passwd.SCHEMES)}")
    if site.ca_key.exists() and not force:
        raise SiteError(f"{site.ca_key} exists: this site has a CA already (--force replaces it)")
    out = Written()
    ca = _pki.make_ca(common_name=f"{organisation} CA", organisation=organisation, days=days)
    server = _pki.make_server_cert(ca, hostnames=hostnames, organisation=organisation, days=days)
    out.secret(site.ca_key, ca.key_pem)
    out.public(site.ca_cert, ca.cert_pem)
    out.public(site.broker_dir / "ca.crt", ca.cert_pem)
    out.public(site.broker_dir / "server.crt", server.cert_pem)
    out.secret(site.broker_dir / "server.key", server.key_pem)
    out.public(site.broker_dir / "acl", ACL_SOURCE.read_text())
    out.public(
        site.settings_file,
        "# Written by `atp pki init`; `atp device add` puts this URL in each foa.toml.\n"
        + table("broker", {"url": f"mqtts://{hostnames[0]}:{port}", "password_hash": password_hash})
        + "\n"
        + table("pki", {"organisation": organisation, "hostnames": list(hostnames)}),
    )
    if not site.passwd.exists():
        _passwd.write_entries(site.passwd, {})
        out.secrets.append(site.passwd)
    _write_crl(site, site.registry(), out)
    return out


def check_agent_id(agent_id: str) -> str:
    """The id if an agent may have it; else :class:`AccountError` saying why."""
    try:
        topics.agent_topic(agent_id, "offer")
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    if agent_id in SERVICE_ROLES:
        raise AccountError(f"{agent_id!r} is a service account's name; pick another agent id")
    return agent_id


def _provision(
    site: Site,
    account_id: str,
    role: str,
    *,
    client_cert: bool,
    rotate: bool,
    write_credentials: Callable[[Path, str, Written], None],
) -> Written:
    """The steps every account shares: registry check, password, optional certificate."""
    site.require_ca()
    registry = site.registry()
    old = registry.accounts.get(account_id)
    if old is not None and old.role != role:
        raise AccountError(f"{account_id!r} is a {old.role} account, not a {role} one")
    if old is not None and old.active and not rotate:
        raise AccountError(
            f"{account_id!r} is provisioned already (revoke it first, or --rotate its secrets)"
        )
    now = now_s()
    if old is not None and old.active:
        registry.revoke_cert(old, now)  # rotation: the previous certificate is void
    directory = site.account_dir(Account(id=account_id, role=role, created=now))
    out = Written()
    serial = None
    if client_cert:
        issued = _pki.make_client_cert(
            _ca(site), common_name=account_id, organisation=_organisation(site), days=CERT_DAYS
        )
        out.public(directory / "client.crt", issued.cert_pem)
        out.secret(directory / "client.key", issued.key_pem)
        serial = format(issued.serial, "x")
    out.public(directory / "ca.crt", site.ca_cert.read_bytes())
    password = _passwd.new_password()
    write_credentials(directory, password, out)
    _passwd.set_password(
        site.passwd, account_id, password, replace=True, scheme=site.password_hash()
    )
    registry.accounts[account_id] = Account(
        id=account_id, role=role, created=now, cert_serial=serial
    )
    site.save_registry(registry)
    _write_crl(site, registry, out)
    return out


def add_agent(
    site: Site,
    agent_id: str,
    *,
    broker_url: str | None = None,
    client_cert: bool = False,
    rotate: bool = False,
    devices: Path | None = None,
    edge_bridge: bool = False,
) -> Written:
    """Credentials and a ready ``foa.toml`` for one agent, and its password-file entry;
    ``devices`` is a TOML file of ``[devices.<id>]`` tables to put in ``foa.toml``.

    With ``edge_bridge`` the agent talks to a Mosquitto on its own gateway, bridged to the
    cloud (``mosquitto/edge-bridge.conf``): its ``foa.toml`` names the loopback broker, and
    ``edge/`` holds that broker's configuration, password file and CA certificate."""
    check_agent_id(agent_id)
    url = broker_url or site.broker_url()
    devices_toml = read_devices(devices) if devices else ""

    def credentials(directory: Path, password: str, out: Written) -> None:
        out.secret(directory / "password", password + "\n")
        if edge_bridge:
            edge = directory / "edge"
            out.secret(
                edge / "atp-edge.conf",
                render_edge_config(agent_id=agent_id, cloud_url=url, password=password),
            )
            out.secret(edge / "passwd", f"{agent_id}:{_passwd.hash_password(password)}\n")
            out.public(edge / "ca.crt", site.ca_cert.read_bytes())
        config = FoaConfig(
            agent_id=agent_id,
            broker_url=EDGE_URL if edge_bridge else url,
            password_file="password",
            ca_file="ca.crt",
            cert_file="client.crt" if client_cert else None,
            key_file="client.key" if client_cert else None,
            devices_toml=devices_toml,
        )
        out.secret(directory / "foa.toml", render_foa_toml(config))

    return _provision(
        site,
        agent_id,
        "agent",
        client_cert=client_cert,
        rotate=rotate,
        write_credentials=credentials,
    )


def add_service(
    site: Site, name: str, *, client_cert: bool = False, rotate: bool = False
) -> Written:
    """Credentials of a service account (``fman`` or ``fmar``), shared by its workers:
    ``credentials`` (one ``username:password`` line, mode 0600, as the workers read it) and,
    for FMAN, a ``fman.toml`` naming the broker and that file."""
    if name not in SERVICE_ROLES:
        raise AccountError(f"unknown service {name!r}; the ACL knows {', '.join(SERVICE_ROLES)}")
    url = site.broker_url()

    def credentials(directory: Path, password: str, out: Written) -> None:
        out.secret(directory / "credentials", f"{name}:{password}\n")
        if name == "fman":
            out.public(
                directory / "fman.toml",
                "# FMAN workers of this site, written by `atp service add fman`. The\n"
                "# credentials and CA files are relative to the working directory (the unit\n"
                "# runs in its credentials directory, where both are handed over).\n"
                + table(
                    "worker",
                    {"broker": url, "credentials_file": "credentials", "ca_file": "ca.crt"},
                ),
            )

    return _provision(
        site, name, name, client_cert=client_cert, rotate=rotate, write_credentials=credentials
    )


def revoke(site: Site, account_id: str) -> Written:
    """Refuse ``account_id`` from the broker's next reload on.

    Removes its password-file entry (Mosquitto 2.0 also disconnects a session of that user
    when it reloads), lists its client certificate in the CRL, and deletes the secrets kept
    in the site, which are worthless from now on."""
    registry = site.registry()
    account = registry.accounts.get(account_id)
    if account is None:
        raise AccountError(f"no account {account_id!r} in {site.registry_file}")
    if not account.active:
        raise AccountError(f"{account_id!r} was revoked already")
    out = Written()
    _passwd.remove_user(site.passwd, account_id)
    out.secrets.append(site.passwd)
    now = now_s()
    registry.revoke_cert(account, now)
    registry.accounts[account_id] = replace(account, revoked=now)
    site.save_registry(registry)
    _write_crl(site, registry, out)
    directory = site.account_dir(account)
    for name in ("foa.toml", "client.key", "password", "credentials"):
        (directory / name).unlink(missing_ok=True)
    return out
