"""Every option of every ``foa`` and ``atp`` command says what it does; a simulation's start
is spelled one way everywhere; shell completion works as the README says.

The walk loads every subcommand the way a user reaches it (``atp``'s entry points included), so
a command added later is checked without being listed here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agent.cli import main as foa
from cloud.cli import main as atp

ROOT = Path(__file__).resolve().parents[1]

#: Options in modules maintained elsewhere that had no help text when this test was written;
#: each still needs one there. Nothing may be added to this set.
KNOWN_WITHOUT_HELP = {
    ("atp schedules show", "--limit"),
    ("atp pki init", "--organisation"),
    ("atp pki init", "--days"),
}

#: Commands that run on simulated time, and so take the simulation's start.
SIMULATING = ("foa run", "atp fman run", "atp sim fleet", "atp demo")


def _commands(
    group: click.Command, ctx: click.Context, path: str
) -> Iterator[tuple[str, click.Command]]:
    yield path, group
    if isinstance(group, click.Group):
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            assert sub is not None, f"{path} {name} does not load"
            yield from _commands(
                sub, click.Context(sub, parent=ctx, info_name=name), f"{path} {name}"
            )


def all_commands() -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for root, name in ((foa, "foa"), (atp, "atp")):
        out.update(_commands(root, click.Context(root, info_name=name), name))
    return out


def test_every_option_of_every_command_has_help():
    commands = all_commands()
    assert {"foa run", "foa config check", "atp plan", "atp demo", "atp sim fleet"} <= set(commands)
    options = [
        (path, p)
        for path, cmd in commands.items()
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden
    ]
    assert len(options) > 100
    missing = {(path, max(p.opts, key=len)) for path, p in options if not (p.help or "").strip()}
    assert missing <= KNOWN_WITHOUT_HELP, sorted(missing - KNOWN_WITHOUT_HELP)
    for path, cmd in commands.items():
        assert (cmd.help or cmd.short_help or "").strip(), f"{path} has no description"


def test_the_start_of_a_simulation_is_spelled_sim_start_everywhere():
    commands = all_commands()
    for path in SIMULATING:
        visible = {o for p in commands[path].params if not p.hidden for o in p.opts}
        assert "--sim-start" in visible, path
        assert "--start" not in visible, path
        for p in commands[path].params:
            if "--start" in getattr(p, "opts", ()):
                assert p.hidden and p.deprecated, f"{path}: --start must be a deprecated alias"


def test_the_old_spellings_still_work_and_say_they_are_deprecated(tmp_path: Path):
    # both parse into the same value as --sim-start, which the command then checks
    fleet = CliRunner().invoke(atp, ["sim", "fleet", "--start", "1767225600", "--agents", "0"])
    assert fleet.exit_code == 2 and "at least one agent" in fleet.output
    assert "deprecated" in fleet.output and "--sim-start" in fleet.output
    demo = CliRunner().invoke(
        atp, ["demo", "--start", "2026-01-01T06:00", "--out", str(tmp_path / "d")]
    )
    assert demo.exit_code == 2 and "not a midnight" in demo.output, demo.output
    assert "deprecated" in demo.output
    assert not (tmp_path / "d").exists()  # refused before anything was made


@pytest.mark.parametrize("prog", ["foa", "atp"])
def test_shell_completion_as_the_readme_says(prog: str):
    var = f"_{prog.upper()}_COMPLETE"
    readme = (ROOT / "README.md").read_text()
    assert f'eval "$({var}=bash_source {prog})"' in readme
    exe = Path(sys.executable).with_name(prog)
    out = subprocess.run(
        [str(exe)],
        env={**os.environ, var: "bash_source"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert f"complete -o nosort -F _{prog}_completion {prog}" in out.stdout
    # and it completes: the subcommands of the top level
    words = subprocess.run(
        [str(exe)],
        env={**os.environ, var: "bash_complete", "COMP_WORDS": f"{prog} ", "COMP_CWORD": "1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "plain,run" in words.stdout if prog == "foa" else "plain,plan" in words.stdout
