"""``atp device``: provision and revoke agents' broker credentials."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cloud.provision import Site, Written, add_agent, revoke

from ._site import admin_option, json_option, report, reported, site_option


def _applied(written: Written) -> str:
    if written.broker == ["live"]:
        return "applied to the running broker"
    return "the broker reads it when it starts"


@click.group()
def device() -> None:
    """Agents' credentials: password-file entries, client certificates, foa.toml."""


@device.command("add")
@click.argument("agent_id")
@site_option
@click.option("--broker-url", help="URL agents use (default: the site's, from `atp pki init`).")
@click.option("--client-cert", is_flag=True, help="Also issue a TLS client certificate.")
@click.option("--rotate", is_flag=True, help="Replace the credentials of an existing agent.")
@click.option(
    "--devices",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file of [devices.<id>] tables (the site survey) to put in foa.toml.",
)
@click.option(
    "--edge-bridge",
    is_flag=True,
    help="The agent talks to a Mosquitto on its gateway, bridged to the cloud "
    "(store-and-forward); also writes that broker's configuration under edge/.",
)
@admin_option
@json_option
@reported
def add(
    agent_id: str,
    site: Site,
    broker_url: str | None,
    client_cert: bool,
    rotate: bool,
    devices: Path | None,
    edge_bridge: bool,
    admin_socket: Path | None,
    offline: bool,
    as_json: bool,
) -> None:
    """Create AGENT_ID's account at the broker, its credentials and a ready foa.toml under
    the site's devices/. AGENT_ID: letters, digits and _.@- (starting with a letter or a
    digit, at most 128 characters)."""
    written = add_agent(
        site,
        agent_id,
        broker_url=broker_url,
        client_cert=client_cert,
        rotate=rotate,
        devices=devices,
        edge_bridge=edge_bridge,
        admin_socket=admin_socket,
        offline=offline,
    )
    if devices is None:
        click.echo(
            f"note: {agent_id}'s foa.toml has no devices yet; add them (or --rotate --devices "
            "FILE) before the agent can start",
            err=True,
        )
    report(
        written,
        as_json=as_json,
        title=f"agent {agent_id}: credentials written; {_applied(written)}",
        extra={"agent": agent_id, "directory": str(site.device_dir(agent_id))},
    )


@device.command("revoke")
@click.argument("agent_id")
@site_option
@admin_option
@json_option
@reported
def revoke_cmd(
    agent_id: str, site: Site, admin_socket: Path | None, offline: bool, as_json: bool
) -> None:
    """Refuse AGENT_ID (or a service account) at once: with the broker running, its
    connections and persistent session end and its retained messages are cleared."""
    site.account(agent_id)  # a clear error for an unknown id, before anything changes
    written = revoke(site, agent_id, admin_socket=admin_socket, offline=offline)
    report(
        written,
        as_json=as_json,
        title=f"account {agent_id}: revoked; {_applied(written)}",
        extra={"agent": agent_id, "revoked": True},
    )


@device.command("list")
@site_option
@json_option
@reported
def list_cmd(site: Site, as_json: bool) -> None:
    """List the site's accounts (agents and services), active and revoked."""
    accounts = sorted(site.registry().accounts.values(), key=lambda a: (a.role != "agent", a.id))
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": a.id,
                        "role": a.role,
                        "created": a.created,
                        "revoked": a.revoked,
                        "client_cert": a.cert_serial is not None,
                    }
                    for a in accounts
                ]
            )
        )
        return
    for a in accounts:
        state = "active" if a.active else "revoked"
        cert = " +cert" if a.cert_serial else ""
        click.echo(f"{a.id:32} {a.role:6} {state}{cert}")
