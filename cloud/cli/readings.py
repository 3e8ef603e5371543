"""``atp readings``: meter readings FMAN set aside."""

from __future__ import annotations

from dataclasses import asdict

import click

from ._fmandb import TIME, db_option, emit_json, json_option, more_note, open_db, table, when


@click.group(invoke_without_command=True)
@click.pass_context
def readings(ctx: click.Context) -> None:
    """Meter readings in the FMAN store: `atp readings list` (what bare `atp readings`
    runs, on the default store), and those set aside with `atp readings quarantine`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


@readings.command("list")
@db_option
@click.option("--agent", help="Only this agent's readings.")
@click.option("--device", help="Only this device's readings (of any agent unless --agent).")
@click.option("--from", "start", type=TIME, help="Starting at or after (epoch or ISO 8601, UTC).")
@click.option("--to", "end", type=TIME, help="Starting before (epoch or ISO 8601, UTC).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="At most this many rows; standard error says when there are more.",
)
@json_option
def list_(
    db: str,
    agent: str | None,
    device: str | None,
    start: int | None,
    end: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """Readings FMAN kept, by agent, device and start, with the offer each was metered for
    (empty: none; the execution check then matches it by device and time)."""
    with open_db(db) as store:
        rows = [
            asdict(r)
            for r in store.readings(agent=agent, device=device, start=start, end=end, limit=limit)
        ]
        total = (
            store.count_readings(agent=agent, device=device, start=start, end=end)
            if len(rows) >= limit
            else len(rows)
        )
    if as_json:
        emit_json(rows)
        more_note(len(rows), total, "readings")
        return
    table(
        rows,
        [
            ("agent", "AGENT"),
            ("device", "DEVICE"),
            ("start", "START"),
            ("duration_s", "SECONDS"),
            ("energy_kwh", "KWH"),
            ("offer_id", "OFFER"),
        ],
        {"start": when, "offer_id": lambda v: v or "-"},
    )
    click.echo(f"{len(rows)} reading(s), {sum(r['energy_kwh'] for r in rows):.3f} kWh")
    more_note(len(rows), total, "readings")


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
