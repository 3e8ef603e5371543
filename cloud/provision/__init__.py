"""Provisioning: the site's PKI, per-account broker credentials, gateway bundles.

Everything an operator hands out to agents and services is made here and kept in a *site*
directory (see :class:`Site`): the development CA and the broker's certificate
(``atp pki init``), one password-file entry, optional client certificate and ``foa.toml`` per
agent (``atp device add`` / ``atp device revoke``), service accounts for each FMAN worker and for
FMAR (``atp service add``), and offline installation bundles for gateways
(``atp gateway bundle``). A running broker learns of every account change at once, through
its admin socket (Mosquitto's dynamic-security plugin, see ``_dynsec``).

Secrets are written once, mode 0600, and never returned, printed or logged: functions return
the paths they wrote.
"""

from ._accounts import Written, add_agent, add_service, init_site, revoke, sync_roles
from ._admin import BrokerAdminError
from ._errors import AccountError, BundleError, ProvisionError, SiteError
from ._ids import check_account_id, check_agent_id, service_account
from ._site import SERVICE_ROLES, Account, Site

__all__ = [
    "SERVICE_ROLES",
    "Account",
    "AccountError",
    "BrokerAdminError",
    "BundleError",
    "ProvisionError",
    "Site",
    "SiteError",
    "Written",
    "add_agent",
    "add_service",
    "check_account_id",
    "check_agent_id",
    "init_site",
    "revoke",
    "service_account",
    "sync_roles",
]
