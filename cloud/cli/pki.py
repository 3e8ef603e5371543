"""``atp pki``: the site's development certificate authority and the broker's certificate."""

from __future__ import annotations

import click

from cloud.provision import Site, init_site
from cloud.provision._passwd import SCHEMES

from ._site import json_option, report, reported, site_option


@click.group()
def pki() -> None:
    """Certificates for the broker's TLS listener."""


@pki.command("init")
@site_option
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    default=("localhost", "127.0.0.1"),
    show_default=True,
    help="Name or IP address agents use to reach the broker (repeat; the first goes in "
    "every foa.toml).",
)
@click.option("--port", type=int, default=8883, show_default=True, help="Broker TLS port.")
@click.option("--organisation", default="ATP flexibility platform", show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=825, show_default=True)
@click.option(
    "--password-hash",
    type=click.Choice(SCHEMES),
    default=SCHEMES[0],
    show_default=True,
    help="Password-file scheme: sha512 for a VerneMQ cluster (deploy/cloud), which reads no "
    "other; Mosquitto reads both.",
)
@click.option("--force", is_flag=True, help="Replace an existing CA (cuts off every device).")
@json_option
@reported
def init(
    site: Site,
    hostnames: tuple[str, ...],
    port: int,
    organisation: str,
    days: int,
    password_hash: str,
    force: bool,
    as_json: bool,
) -> None:
    """Create the site: a development CA, the broker's server certificate, and the broker
    directory (ACL, empty password file, CRL) that becomes /etc/mosquitto/atp."""
    written = init_site(
        site,
        hostnames=hostnames,
        port=port,
        organisation=organisation,
        days=days,
        force=force,
        password_hash=password_hash,
    )
    report(
        written,
        as_json=as_json,
        title=f"site {site.root}: CA and server certificate for {', '.join(hostnames)}",
        extra={"site": str(site.root), "broker_url": site.broker_url()},
    )
