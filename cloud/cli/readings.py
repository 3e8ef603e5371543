"""``atp readings``: meter readings FMAN set aside."""

from __future__ import annotations

from dataclasses import asdict

import click

from ._fmandb import TIME, db_option, emit_json, json_option, open_db, table, when


@click.group()
def readings() -> None:
    """Meter readings in the FMAN store."""


@readings.command()
@db_option
@click.option("--agent", help="Only this agent's readings.")
@click.option("--since", type=TIME, help="Received at or after (epoch or ISO 8601, UTC).")
@click.option("--limit", default=100, show_default=True, help="At most this many, newest first.")
@json_option
def quarantine(db: str, agent: str | None, since: int | None, limit: int, as_json: bool) -> None:
    """Readings ingest set aside instead of keeping (implausible, an unknown device, in the
    future), with the reason; the agent was told in its meter batch's ack, and the batch's
    other readings were kept."""
    with open_db(db) as store:
        rows = [asdict(q) for q in store.quarantined(agent=agent, since=since, limit=limit)]
    if as_json:
        emit_json(rows)
        return
    table(
        rows,
        [
            ("agent", "AGENT"),
            ("device", "DEVICE"),
            ("start", "START"),
            ("duration_s", "SECONDS"),
            ("energy_kwh", "KWH"),
            ("code", "CODE"),
            ("message", "REASON"),
        ],
        {"start": when},
    )
    click.echo(f"{len(rows)} quarantined reading(s)")
