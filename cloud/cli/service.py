"""``atp service``: broker accounts of the FMAN workers and of FMAR."""

from __future__ import annotations

from pathlib import Path

import click

from cloud.provision import SERVICE_ROLES, Site, add_service, service_account, sync_roles

from ._site import admin_option, json_option, report, reported, site_option


@click.group()
def service() -> None:
    """Service accounts: one per FMAN worker (fman-<worker>), one for FMAR, one for the DSO."""


@service.command("add")
@click.argument("name", type=click.Choice(SERVICE_ROLES))
@click.option(
    "--worker",
    help="FMAN only: the worker's name (systemd's atp-fman@WORKER), default 1; its account "
    "and MQTT client id are fman-WORKER. One command per worker.",
)
@site_option
@click.option("--client-cert", is_flag=True, help="Also issue a TLS client certificate.")
@click.option("--rotate", is_flag=True, help="Replace the account's credentials.")
@admin_option
@json_option
@reported
def add(
    name: str,
    worker: str | None,
    site: Site,
    client_cert: bool,
    rotate: bool,
    admin_socket: Path | None,
    offline: bool,
    as_json: bool,
) -> None:
    """Create the account of one FMAN worker (or of FMAR, or of the DSO that registers
    congestion with the markets), its password (and certificate) under the site's
    services/ACCOUNT/."""
    account = service_account(name, worker)
    written = add_service(
        site,
        name,
        worker=worker,
        client_cert=client_cert,
        rotate=rotate,
        admin_socket=admin_socket,
        offline=offline,
    )
    applied = (
        "applied to the running broker"
        if written.broker == ["live"]
        else "the broker reads it when it starts"
    )
    report(
        written,
        as_json=as_json,
        title=f"service account {account}: credentials written; {applied}",
        extra={"service": name, "account": account, "directory": str(site.service_dir(account))},
    )


@service.command("roles")
@site_option
@admin_option
@json_option
@reported
def roles(site: Site, admin_socket: Path | None, offline: bool, as_json: bool) -> None:
    """Bring the broker's roles in line with the access policy (mosquitto/acl): every
    service's role and group and every agent's role gain the rules the policy has and lose
    those it no longer has. Roles are written when they are made, so a site made before a
    policy change needs this once (protocol 1.4's per-party market topics and the dso
    account are such a change). Running it again changes nothing."""
    written, changed = sync_roles(site, admin_socket=admin_socket, offline=offline)
    applied = "on the running broker" if written.broker == ["live"] else "in the broker's file"
    title = (
        f"{len(changed)} role(s) brought in line with the policy {applied}: {', '.join(changed)}"
        if changed
        else "every role already follows the policy"
    )
    report(written, as_json=as_json, title=title, extra={"changed": changed})
