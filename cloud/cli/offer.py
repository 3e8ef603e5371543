"""``atp offer``: check and convert Flex-Offer files (project JSON, GOFLEX JSON, the FlexOffer
specification's JSON, MessagePack), offers and the schedules that travel with them."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

import protocol

FORMS_HELP = (
    "json: the project's form; goflex: GOFLEX JSON; flexoffer: the FlexOffer specification's "
    '{"flexOffer": [...]} form (positive energy is production there); msgpack: wire messages.'
)


@click.group()
def offer() -> None:
    """Work with Flex-Offer files: offers, and the schedules assigned to them."""


def _read(path: Path) -> bytes:
    return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()


def _summary(content: protocol.OfferFile) -> str:
    parts = []
    if content.offers or not content.schedules:
        parts.append(f"{len(content.offers)} valid offer(s)")
    if content.schedules:
        parts.append(f"{len(content.schedules)} valid schedule(s)")
    text = " and ".join(parts)
    alone = len(content.unmatched())
    if alone:
        text += f"; {alone} schedule(s) checked on their own (their offer is not in the file)"
    return text


@offer.command()
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(file: Path, as_json: bool) -> None:
    """Check FILE: one offer or schedule, or a list of them, in any of the forms (json, goflex,
    flexoffer, msgpack; judged from the content). A schedule is checked against its offer when
    the file holds it.

    Exits 0 when everything is valid; else prints one line per error, with its field path,
    and exits 1."""
    data = _read(file)
    fmt = protocol.detect_format(data)
    try:
        content = protocol.read_offer_file(data)
    except protocol.DecodeError as exc:
        if as_json:
            errors = [{"path": e.path, "message": e.message} for e in exc.errors]
            click.echo(json.dumps({"valid": False, "format": fmt, "errors": errors}))
        else:
            for e in exc.errors:
                click.echo(f"{file}: {e}")
        sys.exit(1)
    if as_json:
        alone = {id(s) for s in content.unmatched()}
        doc = {
            "valid": True,
            "format": content.format,
            "offers": [o.id for o in content.offers],
            "schedules": [
                {
                    "offer_id": s.offer_id,
                    "version": s.version,
                    "checked_against_offer": id(s) not in alone,
                }
                for s in content.schedules
            ],
        }
        click.echo(json.dumps(doc))
    else:
        click.echo(f"{file}: {_summary(content)} ({content.format})")


@offer.command()
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option(
    "--to",
    "fmt",
    type=click.Choice(protocol.FORMATS),
    required=True,
    help=f"Output form. {FORMS_HELP}",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    show_default=True,
    help="Output file (- for standard output; MessagePack is never written to a terminal).",
)
def convert(file: Path, fmt: str, output: Path) -> None:
    """Convert the offers and schedules in FILE to another form; invalid input is refused
    (exit 1), and so is content the output form cannot carry (a GOFLEX document holds a
    schedule only inside its offer)."""
    to_stdout = str(output) == "-"
    if fmt == "msgpack" and to_stdout and sys.stdout.isatty():
        raise click.ClickException(
            "MessagePack is binary and standard output is a terminal: "
            "give -o FILE (or redirect the output)"
        )
    data = _read(file)
    try:
        content = protocol.read_offer_file(data)
        out = protocol.write_offer_file(content, fmt, ts=int(time.time()))  # type: ignore[arg-type]  # click.Choice checked fmt
    except (protocol.DecodeError, protocol.ConversionError) as exc:
        for e in exc.errors:
            click.echo(f"{file}: {e}", err=True)
        sys.exit(1)
    if to_stdout:
        sys.stdout.buffer.write(out if fmt == "msgpack" else out + b"\n")
        sys.stdout.flush()
    else:
        output.write_bytes(out)
        what = f"{len(content.offers)} offer(s)"
        if content.schedules:
            what += f" and {len(content.schedules)} schedule(s)"
        click.echo(f"wrote {what} to {output} ({fmt})", err=True)
