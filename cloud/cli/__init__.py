"""The operator CLI ``atp``.

Each subcommand lives in its own module and is registered in the ``atp.commands`` entry-point
group (see ``pyproject.toml``); the group imports a module only when its command runs, so
``atp offer validate`` never loads OR-Tools and ``atp --help`` stays fast. The fleet simulator
registers itself the same way from the agent side, which keeps ``cloud`` free of agent imports.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

GROUP = "atp.commands"


class LazyGroup(click.Group):
    """A click group whose subcommands are entry points, loaded on first use."""

    def _entry_points(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        ep = self._entry_points().get(cmd_name)
        if ep is None:
            return None
        loaded = ep.load()
        if not isinstance(loaded, click.Command):
            raise click.ClickException(f"entry point {ep.value} is not a click command")
        return loaded


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="atp-flex", prog_name="atp")
def main() -> None:
    """Operate the flexibility trading platform: the broker, the aggregator (FMAN), offers,
    schedules, planning, provisioning of devices and gateways, and the simulated fleet."""
