"""``atp offer``: check and convert Flex-Offer files (project JSON, GOFLEX JSON, MessagePack)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

import protocol


@click.group()
def offer() -> None:
    """Work with Flex-Offer files."""


def _read(path: Path) -> bytes:
    return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()


@offer.command()
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(file: Path, as_json: bool) -> None:
    """Check FILE (one offer or a list; project JSON, GOFLEX JSON or MessagePack).

    Exits 0 when every offer is valid; else prints one line per error, with its field path,
    and exits 1."""
    data = _read(file)
    fmt = protocol.detect_format(data)
    try:
        offers = protocol.read_offers(data)
    except protocol.DecodeError as exc:
        if as_json:
            errors = [{"path": e.path, "message": e.message} for e in exc.errors]
            click.echo(json.dumps({"valid": False, "format": fmt, "errors": errors}))
        else:
            for e in exc.errors:
                click.echo(f"{file}: {e}")
        sys.exit(1)
    if as_json:
        ids = [o.id for o in offers]
        click.echo(json.dumps({"valid": True, "format": fmt, "offers": ids}))
    else:
        click.echo(f"{file}: {len(offers)} valid offer(s) ({fmt})")


@offer.command()
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option(
    "--to",
    "fmt",
    type=click.Choice(["json", "goflex", "msgpack"]),
    required=True,
    help="Output form.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    show_default=True,
    help="Output file.",
)
def convert(file: Path, fmt: str, output: Path) -> None:
    """Convert the offers in FILE to another form; invalid offers are refused (exit 1)."""
    data = _read(file)
    try:
        offers = protocol.read_offers(data)
    except protocol.DecodeError as exc:
        for e in exc.errors:
            click.echo(f"{file}: {e}", err=True)
        sys.exit(1)
    out = protocol.write_offers(offers, fmt, ts=int(time.time()))  # type: ignore[arg-type]
    if str(output) == "-":
        sys.stdout.buffer.write(out if fmt == "msgpack" else out + b"\n")
        sys.stdout.flush()
    else:
        output.write_bytes(out)
        click.echo(f"wrote {len(offers)} offer(s) to {output} ({fmt})", err=True)
