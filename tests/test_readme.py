"""The README documents every CLI command (subcommands too) and every option a command takes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click

from helpers import PROJECT_ROOT
from newsletter.cli import cli

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command below ``command`` (the group itself first), with the words that invoke it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))


def test_the_walk_reaches_subcommands() -> None:
    found = {" ".join(path) for path, _ in commands(cli)}
    assert {"ingest", "subscribers", "subscribers add", "subscribers export", "send", "serve"} <= found


def test_every_command_is_in_the_readme() -> None:
    missing = [
        " ".join(path) for path, _ in commands(cli)
        if path and not any(f"`newsletter {' '.join(path)}{end}" in README for end in (" ", "`"))
    ]
    assert not missing, f"document these commands in README.md (as `newsletter COMMAND ...`): {missing}"


def test_every_option_is_in_the_readme() -> None:
    missing = [
        f"{' '.join(('newsletter', *path))} {flag}"
        for path, command in commands(cli)
        for param in command.params if isinstance(param, click.Option)
        for flag in (*param.opts, *param.secondary_opts) if flag.startswith("--") and flag not in README
    ]
    assert not missing, f"document these options in README.md: {missing}"


def table_rows(path: tuple[str, ...]) -> str:
    """The README's command-table rows for ``newsletter PATH`` (send has two), joined."""
    start = f"| `newsletter {' '.join(path)}"
    return "\n".join(line for line in README.splitlines()
                     if line.startswith(start) and line[len(start)] in " `")


def test_every_option_is_in_its_commands_table_row() -> None:
    missing = [
        f"{' '.join(('newsletter', *path))} {flag}"
        for path, command in commands(cli) if path and not isinstance(command, click.Group)
        for param in command.params if isinstance(param, click.Option)
        for flag in (*param.opts, *param.secondary_opts)
        if flag.startswith("--") and not re.search(rf"{re.escape(flag)}(?![\w-])", table_rows(path))
    ]
    assert not missing, f"add these options to their command's row of the README's table: {missing}"
