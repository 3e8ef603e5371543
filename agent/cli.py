"""The agent's command line, ``foa``."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="atp-flex", prog_name="foa")
def main() -> None:
    """FOA, the Flex-Offer Agent: turns devices into Flex-Offers and executes schedules."""
