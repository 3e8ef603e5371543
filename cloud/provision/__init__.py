"""Provisioning: the site's PKI, per-account broker credentials, gateway bundles.

Everything an operator hands out to agents and services is made here and kept in a *site*
directory (see :class:`Site`): the development CA and the broker's certificate
(``atp pki init``), one password-file entry, optional client certificate and ``foa.toml`` per
agent (``atp device add`` / ``atp device revoke``), service accounts for FMAN and FMAR
(``atp service add``), and offline installation bundles for gateways (``atp gateway bundle``).

Secrets are written once, mode 0600, and never returned, printed or logged: functions return
the paths they wrote.
"""

from ._accounts import Written, add_agent, add_service, check_agent_id, init_site, revoke
from ._errors import AccountError, BundleError, ProvisionError, SiteError
from ._site import SERVICE_ROLES, Account, Site

__all__ = [
    "SERVICE_ROLES",
    "Account",
    "AccountError",
    "BundleError",
    "ProvisionError",
    "Site",
    "SiteError",
    "Written",
    "add_agent",
    "add_service",
    "check_agent_id",
    "init_site",
    "revoke",
]
