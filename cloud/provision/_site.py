"""The site directory: everything an operator provisions, in one place, in a fixed layout.

    site/
      site.toml          public broker URL and organisation (written by ``atp pki init``)
      accounts.json      every account: role, created, revoked, client-certificate serial
      pki/ca.key         the CA's private key (0600): stays on the operator's machine
      pki/ca.crt
      pki/broker-admin   the passwords of the broker's admin-socket accounts (0600)
      broker/            what Mosquitto reads, i.e. /etc/mosquitto/atp on the broker host
        ca.crt  server.crt  server.key (0600)  crl.pem
        dynamic-security.json (0600)   accounts and roles; the running broker keeps it
        passwd (0600)  acl             the same accounts and policy for a VerneMQ cluster
      devices/AGENT/     foa.toml (0600, holds the password), ca.crt, client.crt, client.key
      services/ACCOUNT/  credentials of a service account (fman-<worker>, fmar, dso)

``mosquitto/prod.conf`` names its files under ``/etc/mosquitto/atp``; ``broker/`` is that
directory, so deploying the broker's side is one copy (or a symlink on a single machine).
"""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._errors import AccountError, SiteError
from ._files import write_file

#: Services, each a role of the policy (``mosquitto/acl``'s ``user`` blocks) and a group of
#: accounts: ``fman-<worker>`` for every FMAN worker, ``fmar``, ``dso``.
SERVICE_ROLES = ("fman", "fmar", "dso")
#: Where a running broker's admin socket is, unless ``site.toml`` or ``--broker-admin`` say.
DEFAULT_ADMIN_SOCKET = "/run/mosquitto/atp-admin.sock"


@dataclass(frozen=True, slots=True)
class Account:
    """One MQTT account as the registry records it (never its secret)."""

    id: str
    role: str  # "agent" or a service role
    created: int
    revoked: int | None = None
    cert_serial: str | None = None  # hex, when a client certificate was issued

    @property
    def active(self) -> bool:
        return self.revoked is None


@dataclass(frozen=True, slots=True)
class RevokedCert:
    """A client certificate that the CRL lists (its account revoked, or its key rotated)."""

    serial: str  # hex
    account: str
    revoked: int


@dataclass(slots=True)
class Registry:
    """``accounts.json``: the accounts, and the certificates the CRL must list."""

    accounts: dict[str, Account] = field(default_factory=dict)
    revoked_certs: list[RevokedCert] = field(default_factory=list)

    def revoke_cert(self, account: Account, when: int) -> None:
        if account.cert_serial:
            self.revoked_certs.append(RevokedCert(account.cert_serial, account.id, when))


@dataclass(frozen=True, slots=True)
class Site:
    """Paths of a site directory; building one touches nothing on disk."""

    root: Path

    @property
    def settings_file(self) -> Path:
        return self.root / "site.toml"

    @property
    def registry_file(self) -> Path:
        return self.root / "accounts.json"

    @property
    def ca_key(self) -> Path:
        return self.root / "pki" / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    @property
    def passwd(self) -> Path:
        return self.broker_dir / "passwd"

    @property
    def crl(self) -> Path:
        return self.broker_dir / "crl.pem"

    @property
    def dynsec(self) -> Path:
        return self.broker_dir / "dynamic-security.json"

    @property
    def acl(self) -> Path:
        return self.broker_dir / "acl"

    @property
    def admin_credentials(self) -> Path:
        return self.root / "pki" / "broker-admin"

    def admin_passwords(self) -> dict[str, str]:
        """``{account: password}`` of the admin-socket accounts (``pki/broker-admin``)."""
        try:
            text = self.admin_credentials.read_text()
        except FileNotFoundError as exc:
            raise SiteError(
                f"{self.admin_credentials} is missing: this site predates the broker's "
                "dynamic-security accounts; make a new site with `atp pki init`"
            ) from exc
        except OSError as exc:
            raise SiteError(f"{self.admin_credentials}: {exc.strerror}") from exc
        pairs = (line.partition(":") for line in text.splitlines() if line.strip())
        return {user: pw for user, _, pw in pairs}

    def admin_socket(self) -> Path:
        return Path(
            str(self.settings().get("broker", {}).get("admin_socket", DEFAULT_ADMIN_SOCKET))
        )

    def device_dir(self, agent_id: str) -> Path:
        return self.root / "devices" / agent_id

    def service_dir(self, name: str) -> Path:
        return self.root / "services" / name

    def account_dir(self, account: Account) -> Path:
        if account.role == "agent":
            return self.device_dir(account.id)
        return self.service_dir(account.id)

    # -- settings ------------------------------------------------------------------------

    def settings(self) -> dict[str, dict[str, str]]:
        """``site.toml`` as a dict; :class:`SiteError` when the site was never initialised."""
        try:
            data = tomllib.loads(self.settings_file.read_text())
        except FileNotFoundError as exc:
            raise SiteError(
                f"{self.root} is not an initialised site (no site.toml): run `atp pki init` first"
            ) from exc
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SiteError(f"{self.settings_file}: {exc}") from exc
        return data

    def broker_url(self) -> str:
        try:
            return str(self.settings()["broker"]["url"])
        except KeyError as exc:
            raise SiteError(f"{self.settings_file}: missing [broker] url") from exc

    def password_hash(self) -> str:
        """The password-file scheme the site's broker reads (``atp pki init --password-hash``)."""
        return str(self.settings().get("broker", {}).get("password_hash", "pbkdf2-sha512"))

    def require_ca(self) -> None:
        for path in (self.ca_key, self.ca_cert):
            if not path.exists():
                raise SiteError(f"{path} is missing: run `atp pki init` first")

    # -- the account registry ---------------------------------------------------------------

    def registry(self) -> Registry:
        try:
            raw = json.loads(self.registry_file.read_text())
            return Registry(
                accounts={a["id"]: Account(**a) for a in raw.get("accounts", [])},
                revoked_certs=[RevokedCert(**r) for r in raw.get("revoked_certs", [])],
            )
        except FileNotFoundError:
            return Registry()
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise SiteError(f"{self.registry_file}: cannot read the registry ({exc})") from exc

    def save_registry(self, registry: Registry) -> None:
        data = {
            "accounts": [asdict(a) for a in sorted(registry.accounts.values(), key=lambda a: a.id)],
            "revoked_certs": [asdict(r) for r in registry.revoked_certs],
        }
        write_file(self.registry_file, json.dumps(data, indent=2) + "\n")

    def account(self, account_id: str) -> Account:
        try:
            return self.registry().accounts[account_id]
        except KeyError as exc:
            raise AccountError(f"no account {account_id!r} in {self.registry_file}") from exc


def now_s() -> int:
    return int(time.time())
