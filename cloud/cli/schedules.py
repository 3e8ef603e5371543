"""``atp schedules``: the schedules FMAN sent, and what the agents answered."""

from __future__ import annotations

import click

from cloud.fman import report

from ._fmandb import db_option, emit_json, json_option, open_db, table, when


@click.group()
def schedules() -> None:
    """Inspect the schedules in the FMAN store."""


@schedules.command("show")
@db_option
@click.argument("offer_id", required=False)
@click.option("--agent", help="Only this agent's schedules.")
@click.option(
    "--status",
    type=click.Choice(["pending", "sent", "acked", "rejected", "superseded", "implicit"]),
    help="Only schedules in this status.",
)
@click.option("--all-versions", is_flag=True, help="Every version, not only those in force.")
@click.option("--limit", default=1000, show_default=True)
@json_option
def show(
    db: str,
    offer_id: str | None,
    agent: str | None,
    status: str | None,
    all_versions: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Schedules in force (of one offer, or all), with the agent's answer."""
    rows = report.schedules(
        open_db(db),
        offer_id=offer_id,
        agent=agent,
        status=status,
        all_versions=all_versions,
        limit=limit,
    )
    if as_json:
        emit_json(rows)
        return
    table(
        rows,
        [
            ("offer_id", "OFFER"),
            ("version", "V"),
            ("issuer", "AGENT"),
            ("start", "START"),
            ("kind", "KIND"),
            ("status", "STATUS"),
            ("energy_kwh", "kWh"),
        ],
        {"start": when, "energy_kwh": lambda e: f"{sum(e):.2f} in {len(e)} slots"},
    )
    click.echo(f"{len(rows)} schedule(s)")
