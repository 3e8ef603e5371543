"""``atp service``: broker credentials of the FMAN and FMAR service accounts."""

from __future__ import annotations

import click

from cloud.provision import SERVICE_ROLES, Site, add_service

from ._site import json_option, report, reported, site_option


@click.group()
def service() -> None:
    """Service accounts (fman, fmar): every worker of a service shares its account."""


@service.command("add")
@click.argument("name", type=click.Choice(SERVICE_ROLES))
@site_option
@click.option("--client-cert", is_flag=True, help="Also issue a TLS client certificate.")
@click.option("--rotate", is_flag=True, help="Replace the service's credentials.")
@json_option
@reported
def add(name: str, site: Site, client_cert: bool, rotate: bool, as_json: bool) -> None:
    """Create NAME's password (and certificate) under the site's services/."""
    written = add_service(site, name, client_cert=client_cert, rotate=rotate)
    report(
        written,
        as_json=as_json,
        title=f"service {name}: credentials written; reload the broker to apply",
        extra={"service": name, "directory": str(site.service_dir(name))},
    )
