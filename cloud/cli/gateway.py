"""``atp gateway``: offline installation bundles for gateway boxes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cloud.provision import Site
from cloud.provision._bundle import Target, build_bundle

from ._site import json_option, reported, site_option


@click.group()
def gateway() -> None:
    """Gateway boxes: bundles to flash or install offline."""


@gateway.command("bundle")
@click.option("--agent", "agent_id", required=True, help="Agent id (provisioned already).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for foa-bundle-AGENT.tar.gz.",
)
@site_option
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    help="Wheel platform tag of the box (repeatable), e.g. manylinux2014_aarch64 for a "
    "64-bit Raspberry Pi; default: this machine's.",
)
@click.option("--python-version", help="The box's Python, e.g. 3.11 (with --platform).")
@click.option(
    "--wheelhouse",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Extra wheels to take from (compiled on a box of the target platform).",
)
@json_option
@reported
def bundle(
    agent_id: str,
    out_dir: Path,
    site: Site,
    platforms: tuple[str, ...],
    python_version: str | None,
    wheelhouse: Path | None,
    as_json: bool,
) -> None:
    """Build an offline-installable bundle for AGENT_ID: the agent's wheels (base
    dependencies, no cloud extra), foa.toml, credentials, CA certificate, foa.service and
    install.sh. Copy it with deploy/gateway/firstrun.sh onto a fresh Raspberry Pi OS card,
    or run its install.sh on an existing gateway."""
    if platforms and not python_version:
        raise click.UsageError("--platform needs --python-version (the box's Python, e.g. 3.11)")
    target = Target(platforms=platforms, python_version=python_version, wheelhouse=wheelhouse)
    steps: list[str] = []

    def step(msg: str) -> None:
        steps.append(msg)
        if not as_json:
            click.echo(f"[{len(steps)}/4] {msg}")

    archive = build_bundle(site, agent_id, out_dir, target=target, step=step)
    if as_json:
        click.echo(json.dumps({"agent": agent_id, "bundle": str(archive)}))
    else:
        click.echo(f"bundle: {archive} ({archive.stat().st_size // 1024} KiB, mode 0600)")
