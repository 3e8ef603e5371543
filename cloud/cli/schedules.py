"""``atp schedules``: the schedules FMAN sent, and what the agents answered."""

from __future__ import annotations

import click

from cloud.fman import report
from cloud.fman.store import describe

from ._fmandb import db_option, emit_json, json_option, more_note, open_db, table, when


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
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="At most this many rows; standard error says when there are more.",
)
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
    with open_db(db) as store:
        if offer_id is not None and store.offer(offer_id) is None:
            raise click.ClickException(f"no offer {offer_id!r} in {describe(db)}")
        rows = report.schedules(
            store,
            offer_id=offer_id,
            agent=agent,
            status=status,
            all_versions=all_versions,
            limit=limit,
        )
        total = (
            store.count_schedules(
                offer_id=offer_id, agent=agent, status=status, all_versions=all_versions
            )
            if len(rows) >= limit
            else len(rows)
        )
    if as_json:
        emit_json(rows)
        more_note(len(rows), total, "schedules")
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
    more_note(len(rows), total, "schedules")
