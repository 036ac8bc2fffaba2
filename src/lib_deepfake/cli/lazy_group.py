"""A click group whose subcommands are imported only when they run or show their help.

The group holds a table ``{name: LazyCommand("module:attribute", "short help")}``. ``GROUP --help`` lists the
commands from the table's short help without importing any of them; ``GROUP NAME ...`` imports ``module`` and runs
its click command. A command module that fails to import raises (it never vanishes from the list quietly).
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import click


class LazyCommand(NamedTuple):
    """Where a subcommand lives (``"package.module:attribute"``) and its one-line help for the group's listing."""

    target: str
    short_help: str


class LazyGroup(click.Group):
    """:class:`click.Group` with subcommands from a table of :class:`LazyCommand` (``lazy_commands=``)."""

    def __init__(self, *args: Any, lazy_commands: dict[str, LazyCommand] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, LazyCommand] = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            return self.load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, cmd_name: str) -> click.Command:
        """Import the command called ``cmd_name`` from its module."""
        module_name, _, attribute = self.lazy_commands[cmd_name].target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: list[tuple[str, str]] = []
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        for name in names:
            lazy = self.lazy_commands.get(name)
            if lazy is not None:
                # A bare Command shortens the line exactly as click does for a loaded command.
                rows.append((name, click.Command(name, help=lazy.short_help).get_short_help_str(limit)))
                continue
            cmd = super().get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
