"""``atp contract``: the contracts between the aggregator and its prosumers and DSOs, kept as
versions in FMAN's store (never edited: a change or an end is a new version)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ._fmandb import (
    TIME,
    emit_json,
    json_option,
    now_option,
    open_db,
    open_writer,
    store_location,
    store_options,
    table,
    when,
)


@click.group()
def contract() -> None:
    """Contracts in the FMAN store: add, list, show, end (docs/settlement.md)."""


@contract.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@store_options
@now_option
@json_option
def add(
    files: tuple[Path, ...],
    db: str | None,
    config_path: Path | None,
    now: int | None,
    as_json: bool,
) -> None:
    """Add contract versions from TOML or JSON files (examples/contracts/). A version already
    kept with the same content changes nothing; with other content it is refused (a change
    is a new version)."""
    from cloud.fman.settlement import add_contract
    from cloud.settle import ContractError, load_contract

    at = time.time() if now is None else now
    out = []
    with open_writer(store_location(db, config_path)) as store:
        for path in files:
            try:
                c = load_contract(path)
                new = add_contract(store, c, now=at)
            except ContractError as exc:
                raise click.ClickException(str(exc) if exc.source else f"{path}: {exc}") from None
            out.append({"id": c.id, "version": c.version, "party": c.party.id, "added": new})
    if as_json:
        emit_json(out)
        return
    for r in out:
        state = "added" if r["added"] else "already kept"
        click.echo(f"{r['id']} version {r['version']} ({r['party']}): {state}")


@contract.command("list")
@store_options
@click.option("--party", help="Only this party's contracts.")
@click.option("--all", "all_versions", is_flag=True, help="Every version, not only the latest.")
@json_option
def list_(
    db: str | None,
    config_path: Path | None,
    party: str | None,
    all_versions: bool,
    as_json: bool,
) -> None:
    """Contracts, the latest version of each (or --all)."""
    from cloud.fman.settlement import contract_of
    from cloud.settle import terms_kind

    with open_db(store_location(db, config_path)) as store:
        rows = store.contracts()
    latest = {r.id: r for r in rows}
    chosen = rows if all_versions else list(latest.values())
    out = []
    for r in chosen:
        if party and r.party != party:
            continue
        c = contract_of(r)
        out.append(
            {
                "id": r.id,
                "version": r.version,
                "party": r.party,
                "mode": r.mode,
                "terms": terms_kind(c.terms),
                "devices": list(c.devices),
                "valid_from": r.valid_from,
                "valid_until": r.valid_until,
            }
        )
    if as_json:
        emit_json(out)
        return
    table(
        out,
        [
            ("id", "ID"),
            ("version", "V"),
            ("party", "PARTY"),
            ("mode", "MODE"),
            ("terms", "TERMS"),
            ("valid_from", "FROM"),
            ("valid_until", "UNTIL"),
        ],
        {"valid_from": when, "valid_until": when},
    )
    click.echo(f"{len(out)} contract(s)")


@contract.command()
@click.argument("contract_id")
@store_options
@click.option("--version", "version", type=int, help="This version (default: the latest).")
@json_option
def show(
    contract_id: str,
    db: str | None,
    config_path: Path | None,
    version: int | None,
    as_json: bool,
) -> None:
    """One contract version, as TOML (or JSON with --json)."""
    from cloud.fman.settlement import contract_of
    from cloud.settle import dump_contract

    with open_db(store_location(db, config_path)) as store:
        rows = store.contracts(contract_id)
    if not rows:
        raise click.ClickException(f"no contract {contract_id!r} in the store")
    if version is not None:
        rows = [r for r in rows if r.version == version]
        if not rows:
            raise click.ClickException(f"contract {contract_id!r} has no version {version}")
    c = contract_of(rows[-1])
    click.echo(dump_contract(c, fmt="json" if as_json else "toml").rstrip("\n"))


@contract.command()
@click.argument("contract_id")
@click.option("--at", "at", type=TIME, required=True, help="When it ends (epoch or ISO 8601).")
@store_options
@now_option
@json_option
def end(
    contract_id: str,
    at: int,
    db: str | None,
    config_path: Path | None,
    now: int | None,
    as_json: bool,
) -> None:
    """End a contract at --at: a new version from now until then (deliveries before keep
    the version they had)."""
    from cloud.fman.settlement import end_contract
    from cloud.settle import ContractError

    t = int(time.time()) if now is None else now
    with open_writer(store_location(db, config_path)) as store:
        try:
            c = end_contract(store, contract_id, at=at, now=t)
        except ContractError as exc:
            raise click.ClickException(f"contract {contract_id}: {exc}") from None
    if as_json:
        emit_json({"id": c.id, "version": c.version, "valid_until": c.valid_until})
        return
    click.echo(f"{c.id} version {c.version}: ends {when(c.valid_until)} UTC")
