"""The provisioning exception tree.

    ProvisionError              anything provisioning refuses or cannot do
    ├── SiteError               the site directory is missing, incomplete or not writable
    ├── AccountError            an agent or service account id is unusable, unknown or taken
    └── BundleError             a gateway bundle could not be built (pip, missing files)

Foreign errors (OSError, cryptography's, pip's exit status) are wrapped at the boundary, so
the CLI catches these and prints one line that names what and where.
"""

from __future__ import annotations


class ProvisionError(Exception):
    """Root of the provisioning errors."""


class SiteError(ProvisionError):
    """The site directory cannot be used as it is."""


class AccountError(ProvisionError):
    """An account id is invalid, reserved, unknown or already provisioned."""


class BundleError(ProvisionError):
    """A gateway bundle could not be built."""
