"""``atp export``: offers, schedules or a series out of the FMAN store, in the files the other
commands read."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from cloud.fman import export as forms
from cloud.fman.store import StoreReader, describe

from ._fmandb import TIME, db_option, open_db
from .offers import STATES


@click.command()
@db_option
@click.option(
    "--what",
    type=click.Choice(["offers", "schedules", "all", "series"]),
    default="offers",
    show_default=True,
    help="offers: a JSON list `atp plan --offers` reads; schedules: the schedules in force "
    "as sent; all: the offers and their schedules in force, one list `atp offer validate` "
    "checks together; series: CSV time,value `atp plan --target` reads.",
)
@click.option(
    "--series",
    "series_name",
    type=click.Choice(["target", "prices"]),
    default="target",
    show_default=True,
    help="With --what series: which series.",
)
@click.option("--agent", help="Only this agent's offers and schedules.")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only offers in this state (repeatable); default: every state.",
)
@click.option("--from", "start_from", type=TIME, help="Offers whose start window ends at or after.")
@click.option("--to", "start_to", type=TIME, help="Offers whose start window begins at or before.")
@click.option(
    "--all-versions", is_flag=True, help="With --what schedules: every version, not only in force."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    show_default=True,
    help="File to write (- for standard output).",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export(
    db: str,
    what: str,
    series_name: str,
    agent: str | None,
    states: tuple[str, ...],
    start_from: int | None,
    start_to: int | None,
    all_versions: bool,
    out: Path,
    force: bool,
) -> None:
    """Write the store's offers, schedules or objective series to --out in one go, in the
    forms `atp plan`, `atp plan --target` and `atp offer validate` read. A summary goes to
    standard error."""
    if str(out) != "-" and out.exists() and not force:
        raise click.ClickException(f"{out} exists: pass --force to replace it")
    with open_db(db) as store:
        if what == "series":
            values = store.series(series_name)
            if not values:
                raise click.ClickException(f"no {series_name} series in {describe(db)}")
            data = forms.series_csv(values).encode()
            said = f"{len(values)} {series_name} value(s)"
        else:
            filters = forms.OfferFilter(agent=agent, states=states, start_from=start_from)
            offers: list = []
            if what in ("offers", "all"):
                offers = forms.offer_bodies(store, **filters, start_to=start_to)
            schedules: list = []
            if what in ("schedules", "all"):
                offer_ids = None  # every offer's
                if what == "all":
                    offer_ids = [o["id"] for o in offers]
                elif states or start_from is not None or start_to is not None:
                    offer_ids = _offer_ids(store, filters, start_to)
                schedules = forms.schedule_bodies(
                    store, agent=agent, offer_ids=offer_ids, all_versions=all_versions
                )
            data = forms.to_json([*offers, *schedules])
            counted = [f"{len(offers)} offer(s)"] if what in ("offers", "all") else []
            if what in ("schedules", "all"):
                counted.append(f"{len(schedules)} schedule(s)")
            said = " and ".join(counted)
    _write(out, data)
    click.echo(f"wrote {said} to {'standard output' if str(out) == '-' else out}", err=True)


def _offer_ids(store: StoreReader, filters: forms.OfferFilter, start_to: int | None) -> list[str]:
    n = store.count_offers(**filters, start_to=start_to)
    return [o.id for o in store.list_offers(**filters, start_to=start_to, limit=max(1, n))]


def _write(out: Path, data: bytes) -> None:
    """All or nothing: a file half written by an interrupted export never replaces a good one."""
    if str(out) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    fd, tmp = tempfile.mkstemp(dir=out.parent or Path("."), prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
