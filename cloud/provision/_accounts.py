"""Provisioning operations on a site: initialise it, add and revoke accounts.

Every operation leaves the site consistent on disk and returns the paths it wrote, never a
secret: the only copies of a password are the 0600 files handed to the account's owner and
the hashes the brokers check it against.

The broker learns of a change at once: the change goes to it through its admin socket
(:mod:`._admin`), and it saves its dynamic-security file itself. Before the broker's first
start (``offline``), the same change is written into the site's
``broker/dynamic-security.json``, which the broker reads when it starts; once a broker has
saved that file itself, it is the broker's, and offline changes are refused (they would be
lost the next time the running broker saves its own state over them).

An account's directory is built beside its final place and moved there last, so a failure
at any step leaves no partial directory (and, with ``--rotate``, the previous one intact).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import _admin, _dynsec, _passwd, _pki, _policy
from ._edge import render_edge_config
from ._errors import AccountError, ProvisionError, SiteError
from ._files import write_file, write_secret
from ._foa_config import FoaConfig, read_devices, render_foa_toml
from ._ids import ADMIN, SESSIONS, check_agent_id, service_account
from ._site import DEFAULT_ADMIN_SOCKET, SERVICE_ROLES, Account, Registry, Site, now_s
from ._toml import table

DEFAULT_PORT = 8883
#: Where an agent with an edge broker connects (the gateway's own Mosquitto).
EDGE_URL = "mqtt://127.0.0.1:1883"
#: A device certificate outlives a gateway's usual service interval; the server's as well.
CERT_DAYS = 825
#: Files of an account directory that hold its secrets, deleted when it is revoked.
SECRET_FILES = ("foa.toml", "client.key", "password", "credentials", "edge")


@dataclass(frozen=True, slots=True)
class Written:
    """What an operation wrote: paths, the secret ones (mode 0600) listed apart; how the
    broker learnt of it (``live``: the running broker; ``file``: at its next start); and
    anything the operator must still do."""

    files: list[Path] = field(default_factory=list)
    secrets: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    broker: list[str] = field(default_factory=list)

    def public(self, path: Path, data: str | bytes) -> None:
        write_file(path, data)
        self.files.append(path)

    def secret(self, path: Path, data: str | bytes) -> None:
        write_secret(path, data)
        self.secrets.append(path)


class _Staged:
    """An account directory written beside its final place, then swapped in whole."""

    def __init__(self, final: Path, out: Written) -> None:
        self.final = final
        self.out = out
        self.tmp = final.parent / f".{final.name}.new-{secrets.token_hex(4)}"

    def public(self, rel: str, data: str | bytes) -> None:
        write_file(self.tmp / rel, data)
        self.out.files.append(self.final / rel)

    def secret(self, rel: str, data: str | bytes) -> None:
        write_secret(self.tmp / rel, data)
        self.out.secrets.append(self.final / rel)

    def commit(self) -> None:
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            os.chmod(self.tmp, 0o755)
            if self.final.exists():
                old = self.final.parent / f".{self.final.name}.old-{secrets.token_hex(4)}"
                os.replace(self.final, old)
                os.replace(self.tmp, self.final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.tmp, self.final)
        except OSError as exc:
            raise SiteError(f"{self.final}: cannot move the new files in ({exc.strerror})") from exc

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class _Broker:
    """Where dynamic-security commands go: the running broker, or (``offline``, before its
    first start) the site's file."""

    def __init__(self, site: Site, socket_path: Path | None, *, offline: bool = False) -> None:
        self.site = site
        self.socket = Path(socket_path) if socket_path else site.admin_socket()
        running = _admin.running(self.socket)
        if offline and running:
            raise _admin.BrokerAdminError(
                f"a broker answers on {self.socket}: change it there (leave out --offline)"
            )
        if not offline and not running:
            raise _admin.BrokerAdminError(
                f"no broker answers on its admin socket {self.socket}: start it (or give "
                "its socket with --broker-admin / $ATP_BROKER_ADMIN); before the broker's "
                "first start, pass --offline to write the change into "
                f"{site.dynsec}"
            )
        if offline and _OFFLINE_MARK not in _read_dynsec(site):
            raise SiteError(
                f"{site.dynsec} has been saved by the broker itself: it is the running "
                "broker's now; start the broker and make the change through it"
            )
        self.live = running

    def admin(self) -> _admin.BrokerAdmin:
        return _admin.BrokerAdmin(
            socket_path=self.socket, password=self.site.admin_passwords()[ADMIN]
        )

    def apply(self, commands: list[_dynsec.Json], *, missing_ok: bool = False) -> None:
        if self.live:
            with self.admin() as a:
                a.run(commands, missing_ok=missing_ok)
            return
        config = _read_dynsec(self.site)
        if missing_ok:
            names = {c["username"] for c in config.get("clients", [])}
            commands = [
                c for c in commands if c["command"] != "deleteClient" or c["username"] in names
            ]
        _write_dynsec(self.site, _dynsec.apply(config, commands))

    def note(self, out: Written) -> None:
        out.broker.append("live" if self.live else "file")


#: A key the plugin ignores when it loads its file and drops when it saves it: present, the
#: file has only ever been written by provisioning, and may still be changed offline.
_OFFLINE_MARK = "atpWrittenOffline"


def _read_dynsec(site: Site) -> _dynsec.Json:
    try:
        data = json.loads(site.dynsec.read_text())
    except FileNotFoundError as exc:
        raise SiteError(f"{site.dynsec} is missing: run `atp pki init` first") from exc
    except (OSError, ValueError) as exc:
        raise SiteError(f"{site.dynsec}: cannot read it ({exc})") from exc
    if not isinstance(data, dict):
        raise SiteError(f"{site.dynsec}: not a dynamic-security file")
    return data


def _write_dynsec(site: Site, config: _dynsec.Json) -> None:
    marked = {
        _OFFLINE_MARK: "by atp, before the broker's first start; the broker drops this key "
        "when it saves the file, after which only the running broker changes it",
        **{k: v for k, v in config.items() if k != _OFFLINE_MARK},
    }
    write_secret(site.dynsec, json.dumps(marked, indent=2) + "\n")


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


def _write_acl(site: Site, registry: Registry, out: Written) -> None:
    """The site's ACL for a VerneMQ cluster: the policy, FMAN's block per worker account."""
    fman = sorted(a.id for a in registry.accounts.values() if a.role == "fman" and a.active)
    out.public(site.acl, _policy.render_acl(_policy.SOURCE.read_text(), fman))


def init_site(
    site: Site,
    *,
    hostnames: Sequence[str],
    port: int = DEFAULT_PORT,
    organisation: str = "ATP flexibility platform",
    days: int = CERT_DAYS,
    force: bool = False,
    password_hash: str = _passwd.SCHEMES[0],
    admin_socket: str = DEFAULT_ADMIN_SOCKET,
) -> Written:
    """A development CA, the broker's certificate and the broker directory (the
    dynamic-security file with the broker's admin accounts, CRL, and the VerneMQ password
    file and ACL).

    Refuses to replace an existing CA unless ``force``: every certificate and ``foa.toml``
    handed out so far trusts that CA, and a new one would cut off the whole fleet."""
    if not hostnames:
        raise SiteError("give at least one --hostname: the name agents use to reach the broker")
    if password_hash not in _passwd.SCHEMES:
        raise SiteError(f"unknown password hash {password_hash!r}: {', '.join(_passwd.SCHEMES)}")
    if site.ca_key.exists() and not force:
        raise SiteError(f"{site.ca_key} exists: this site has a CA already (--force replaces it)")
    policy = _policy.load()
    out = Written()
    ca = _pki.make_ca(common_name=f"{organisation} CA", organisation=organisation, days=days)
    server = _pki.make_server_cert(ca, hostnames=hostnames, organisation=organisation, days=days)
    out.secret(site.ca_key, ca.key_pem)
    out.public(site.ca_cert, ca.cert_pem)
    out.public(site.broker_dir / "ca.crt", ca.cert_pem)
    out.public(site.broker_dir / "server.crt", server.cert_pem)
    out.secret(site.broker_dir / "server.key", server.key_pem)
    out.public(
        site.settings_file,
        "# Written by `atp pki init`; `atp device add` puts this URL in each foa.toml, and\n"
        "# provisioning reaches the running broker through its admin socket.\n"
        + table(
            "broker",
            {
                "url": f"mqtts://{hostnames[0]}:{port}",
                "password_hash": password_hash,
                "admin_socket": admin_socket,
            },
        )
        + "\n"
        + table("pki", {"organisation": organisation, "hostnames": list(hostnames)}),
    )
    if site.admin_credentials.exists():
        passwords = site.admin_passwords()
    else:
        passwords = {ADMIN: _passwd.new_password(), SESSIONS: _passwd.new_password()}
        out.secret(site.admin_credentials, "".join(f"{u}:{p}\n" for u, p in passwords.items()))
    if not site.dynsec.exists():
        _write_dynsec(
            site,
            _dynsec.seed(
                policy, admin_password=passwords[ADMIN], sessions_password=passwords[SESSIONS]
            ),
        )
        out.secrets.append(site.dynsec)
    if not site.passwd.exists():
        _passwd.write_entries(site.passwd, {})
        out.secrets.append(site.passwd)
    registry = site.registry()
    _write_acl(site, registry, out)
    _write_crl(site, registry, out)
    return out


def _provision(
    site: Site,
    account_id: str,
    role: str,
    *,
    client_cert: bool,
    rotate: bool,
    admin_socket: Path | None,
    offline: bool,
    write_credentials: Callable[[_Staged, str], None],
) -> Written:
    """The steps every account shares: registry check, password, optional certificate, the
    broker, and the account's directory moved into place last."""
    site.require_ca()
    registry = site.registry()
    old = registry.accounts.get(account_id)
    if old is not None and old.role != role:
        raise AccountError(f"{account_id!r} is a {old.role} account, not a {role} one")
    if old is not None and old.active and not rotate:
        raise AccountError(
            f"{account_id!r} is provisioned already (revoke it first, or --rotate its secrets)"
        )
    rotating = old is not None and old.active
    policy = _policy.load()
    broker = _Broker(site, admin_socket, offline=offline)
    now = now_s()
    out = Written()
    stage = _Staged(site.account_dir(Account(id=account_id, role=role, created=now)), out)
    try:
        serial = None
        if client_cert:
            issued = _pki.make_client_cert(
                _ca(site), common_name=account_id, organisation=_organisation(site), days=CERT_DAYS
            )
            stage.public("client.crt", issued.cert_pem)
            stage.secret("client.key", issued.key_pem)
            serial = format(issued.serial, "x")
        stage.public("ca.crt", site.ca_cert.read_bytes())
        password = _passwd.new_password()
        write_credentials(stage, password)
        if rotating:
            broker.apply(_dynsec.password_commands(account_id, password))
        else:
            broker.apply(_dynsec.add_commands(policy, account_id, role, password))
    except BaseException:
        stage.discard()
        raise
    try:
        _passwd.set_password(
            site.passwd, account_id, password, replace=True, scheme=site.password_hash()
        )
        if old is not None and rotating:
            registry.revoke_cert(old, now)  # the previous certificate is void

        registry.accounts[account_id] = Account(
            id=account_id, role=role, created=now, cert_serial=serial
        )
        site.save_registry(registry)
        _write_acl(site, registry, out)
        _write_crl(site, registry, out)
        stage.commit()
    except BaseException:
        stage.discard()
        if not rotating:  # take the account back out of the broker: nobody has its password
            with contextlib.suppress(ProvisionError):
                broker.apply(_dynsec.remove_commands(account_id, role), missing_ok=True)
        raise
    broker.note(out)
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
    admin_socket: Path | None = None,
    offline: bool = False,
) -> Written:
    """Credentials and a ready ``foa.toml`` for one agent, and its account at the broker;
    ``devices`` is a TOML file of ``[devices.<id>]`` tables to put in ``foa.toml``.

    With ``edge_bridge`` the agent talks to a Mosquitto on its own gateway, bridged to the
    cloud (``mosquitto/edge-bridge.conf``): its ``foa.toml`` names the loopback broker, and
    ``edge/`` holds that broker's configuration, password file and CA certificate."""
    check_agent_id(agent_id)
    url = broker_url or site.broker_url()
    devices_toml = read_devices(devices) if devices else ""

    def credentials(stage: _Staged, password: str) -> None:
        stage.secret("password", password + "\n")
        if edge_bridge:
            stage.secret(
                "edge/atp-edge.conf",
                render_edge_config(agent_id=agent_id, cloud_url=url, password=password),
            )
            stage.secret("edge/passwd", f"{agent_id}:{_passwd.hash_password(password)}\n")
            stage.public("edge/ca.crt", site.ca_cert.read_bytes())
        config = FoaConfig(
            agent_id=agent_id,
            broker_url=EDGE_URL if edge_bridge else url,
            password_file="password",
            ca_file="ca.crt",
            cert_file="client.crt" if client_cert else None,
            key_file="client.key" if client_cert else None,
            devices_toml=devices_toml,
        )
        stage.secret("foa.toml", render_foa_toml(config))

    return _provision(
        site,
        agent_id,
        "agent",
        client_cert=client_cert,
        rotate=rotate,
        admin_socket=admin_socket,
        offline=offline,
        write_credentials=credentials,
    )


def add_service(
    site: Site,
    name: str,
    *,
    worker: str | None = None,
    client_cert: bool = False,
    rotate: bool = False,
    admin_socket: Path | None = None,
    offline: bool = False,
) -> Written:
    """Credentials of one service account: ``fman-<worker>`` for an FMAN worker (each worker
    has its own, so that the broker can pin it to its client id), ``fmar`` or ``dso``. Writes
    ``credentials`` (one ``account:password`` line, mode 0600, as the workers read it) and,
    for FMAN, a ``fman.toml`` naming the worker's id, the broker and that file."""
    if name not in SERVICE_ROLES:
        raise AccountError(f"unknown service {name!r}; the policy knows {', '.join(SERVICE_ROLES)}")
    account = service_account(name, worker)
    url = site.broker_url()

    def credentials(stage: _Staged, password: str) -> None:
        stage.secret("credentials", f"{account}:{password}\n")
        if name == "fman":
            stage.public(
                "fman.toml",
                f"# FMAN worker {account} of this site, written by `atp service add fman`.\n"
                "# The broker pins this account to the client id below. The credentials and\n"
                "# CA files are relative to the working directory (the unit runs in its\n"
                "# credentials directory, where both are handed over).\n"
                + table(
                    "worker",
                    {
                        "id": account,
                        "broker": url,
                        "credentials_file": "credentials",
                        "ca_file": "ca.crt",
                    },
                ),
            )

    return _provision(
        site,
        account,
        name,
        client_cert=client_cert,
        rotate=rotate,
        admin_socket=admin_socket,
        offline=offline,
        write_credentials=credentials,
    )


def sync_roles(
    site: Site, *, admin_socket: Path | None = None, offline: bool = False
) -> tuple[Written, list[str]]:
    """Bring the broker's roles in line with ``mosquitto/acl``: every service role and group,
    and the role of every active agent, gain the rules the policy has and lose those it no
    longer has. Roles are written when they are made, so a site made before a policy change
    (protocol 1.4's per-party market topics, the ``dso`` role) needs this once. Returns what
    was written and the roles changed."""
    policy = _policy.load()
    registry = site.registry()
    desired = [_dynsec.service_role(policy, s) for s in sorted(policy.services)]
    desired += [
        _dynsec.agent_role(policy, a.id)
        for a in sorted(registry.accounts.values(), key=lambda a: a.id)
        if a.role == "agent" and a.active
    ]
    broker = _Broker(site, admin_socket, offline=offline)
    if broker.live:
        with broker.admin() as a:
            asks = [{"command": "getRole", "rolename": r["rolename"]} for r in desired]
            asks += [{"command": "getGroup", "groupname": s} for s in sorted(policy.services)]
            answers = a.run(asks, missing_ok=True)
            roles = [ans.get("data", {}).get("role") for ans in answers[: len(desired)]]
            groups = [ans.get("data", {}).get("group") for ans in answers[len(desired) :]]
            commands, changed = _sync(desired, roles, sorted(policy.services), groups)
            a.run(commands)
    else:
        config = _read_dynsec(site)

        def named(items: list[_dynsec.Json], key: str, name: str) -> _dynsec.Json | None:
            return next((x for x in items if x.get(key) == name), None)

        roles = [named(config.get("roles", []), "rolename", r["rolename"]) for r in desired]
        groups = [named(config.get("groups", []), "groupname", s) for s in sorted(policy.services)]
        commands, changed = _sync(desired, roles, sorted(policy.services), groups)
        _write_dynsec(site, _dynsec.apply(config, commands))
    out = Written()
    if not broker.live:
        out.secrets.append(site.dynsec)
    broker.note(out)
    return out, changed


def _sync(
    desired: list[_dynsec.Json],
    roles: list[_dynsec.Json | None],
    services: list[str],
    groups: list[_dynsec.Json | None],
) -> tuple[list[_dynsec.Json], list[str]]:
    commands: list[_dynsec.Json] = []
    changed: list[str] = []
    for want, have in zip(desired, roles, strict=True):
        cmds = _dynsec.sync_commands(want, have)
        if cmds:
            changed.append(want["rolename"])
        commands += cmds
    for service, group in zip(services, groups, strict=True):
        cmds = _dynsec.group_commands(service, group)
        if cmds and service not in changed:
            changed.append(service)
        commands += cmds
    return commands, changed


def revoke(
    site: Site, account_id: str, *, admin_socket: Path | None = None, offline: bool = False
) -> Written:
    """Refuse ``account_id`` from now on and end everything it holds at the broker.

    With the broker running: the account is deleted (the broker drops its connections),
    the session the broker keeps for its client id is discarded (offline persistent ones
    too), and the retained messages it left (its status) are cleared. The password-file
    entry goes, its client certificate joins the CRL (applied at the broker's next reload),
    and the secrets kept in the site are deleted. Revoking an account that is revoked
    already ends whatever the broker still holds of it (after an offline revocation)."""
    registry = site.registry()
    account = registry.accounts.get(account_id)
    if account is None:
        raise AccountError(f"no account {account_id!r} in {site.registry_file}")
    broker = _Broker(site, admin_socket, offline=offline)
    if not account.active and not broker.live:
        raise AccountError(f"{account_id!r} was revoked already")
    out = Written()
    broker.apply(_dynsec.remove_commands(account_id, account.role), missing_ok=True)
    if broker.live:
        passwords = site.admin_passwords()
        _admin.end_session(broker.socket, password=passwords[SESSIONS], client_id=account_id)
        if account.role == "agent":
            with broker.admin() as a:
                a.clear_retained(a.retained(f"atp/v1/a/{account_id}/#"))
    else:
        out.notes.append(
            f"revoked offline: if a broker ever ran with this account, the session and "
            f"retained messages it keeps for {account_id} stay until you run "
            f"`atp device revoke {account_id}` again with the broker up"
        )
    broker.note(out)
    if not account.active:
        return out
    _passwd.remove_user(site.passwd, account_id)
    out.secrets.append(site.passwd)
    now = now_s()
    registry.revoke_cert(account, now)
    registry.accounts[account_id] = replace(account, revoked=now)
    site.save_registry(registry)
    _write_acl(site, registry, out)
    _write_crl(site, registry, out)
    if account.cert_serial:
        out.notes.append("reload the broker to apply the CRL: systemctl reload mosquitto")
    directory = site.account_dir(account)
    for name in SECRET_FILES:
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return out
