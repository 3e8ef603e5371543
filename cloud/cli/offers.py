"""``atp offers``: the offers FMAN holds, filtered by agent, state and time."""

from __future__ import annotations

import typing

import click

import protocol
from cloud.fman import report
from cloud.fman.export import offer_body
from cloud.fman.store import describe

from ._fmandb import (
    TIME,
    db_option,
    emit_json,
    json_option,
    more_note,
    open_db,
    table,
    when,
)

#: the offer states of the protocol's lifecycle, in its order
STATES = list(typing.get_args(protocol.OfferState))


@click.group()
def offers() -> None:
    """List and inspect the offers in the FMAN store."""


@offers.command("list")
@db_option
@click.option("--agent", help="Only this agent's offers.")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only offers in this state (repeatable).",
)
@click.option("--from", "start_from", type=TIME, help="Start window ends at or after (epoch/ISO).")
@click.option("--to", "start_to", type=TIME, help="Start window begins at or before (epoch/ISO).")
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
    states: tuple[str, ...],
    start_from: int | None,
    start_to: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """Offers, latest start window first."""
    with open_db(db) as store:
        rows = report.list_offers(
            store,
            agent=agent,
            states=states,
            start_from=start_from,
            start_to=start_to,
            limit=limit,
        )
        bodies = store.offer_payloads([r["id"] for r in rows]) if as_json else {}
        total = (
            store.count_offers(agent=agent, states=states, start_from=start_from, start_to=start_to)
            if len(rows) >= limit
            else len(rows)
        )
    if as_json:  # with each offer's body, so that `atp plan --offers` reads the listing
        emit_json(
            [
                {**r, "offer": offer_body(bodies[r["id"]]) if r["id"] in bodies else None}
                for r in rows
            ]
        )
        more_note(len(rows), total, "offers")
        return
    table(
        rows,
        [
            ("id", "OFFER"),
            ("issuer", "AGENT"),
            ("load_type", "TYPE"),
            ("state", "STATE"),
            ("revision", "REV"),
            ("start_after", "EARLIEST START"),
            ("start_before", "LATEST START"),
            ("schedule_version", "SCHED"),
            ("metered_slots", "METERED"),
        ],
        {"start_after": when, "start_before": when},
    )
    click.echo(f"{len(rows)} offer(s)")
    more_note(len(rows), total, "offers")


@offers.command("show")
@db_option
@click.argument("offer_id")
@json_option
def show(db: str, offer_id: str, as_json: bool) -> None:
    """One offer: its body, every schedule version and the execution check per slot."""
    detail = report.offer_detail(open_db(db), offer_id)
    if detail is None:
        raise click.ClickException(f"no offer {offer_id!r} in {describe(db)}")
    if as_json:
        emit_json(detail)
        return
    for key in (
        "id",
        "issuer",
        "device",
        "load_type",
        "grid_node",
        "mode",
        "state",
        "revision",
        "reason",
    ):
        value = detail.get(key)
        click.echo(f"{key:18} {'-' if value in (None, '') else value}")
    for key in ("start_after", "start_before", "assignment_before"):
        click.echo(f"{key:18} {when(detail.get(key))}")
    click.echo(
        f"{'executed':18} {detail['metered_slots']} slot(s) metered, "
        f"{detail['flagged_slots']} deviating"
    )
    click.echo("\nschedules:")
    table(
        detail["schedules"],
        [
            ("version", "V"),
            ("start", "START"),
            ("kind", "KIND"),
            ("status", "STATUS"),
            ("in_force", "IN FORCE"),
            ("energy_kwh", "ENERGY kWh"),
        ],
        {"start": when, "energy_kwh": lambda e: " ".join(f"{x:.2f}" for x in e)},
    )
    if detail["execution"]:
        click.echo("\nexecution:")
        table(
            detail["execution"],
            [
                ("slot", "SLOT"),
                ("scheduled_kwh", "SCHEDULED"),
                ("baseline_kwh", "BASELINE"),
                ("metered_kwh", "METERED"),
                ("flagged", "DEVIATES"),
            ],
            {"slot": when},
        )
