"""The ``synapse`` command line.

Subcommands live in their own modules under ``synapse_sdk.cli`` and are imported only when
invoked, so ``synapse --help`` stays fast and one subcommand's dependencies never slow another.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

#: subcommand name -> "module:attribute" of its click command.
SUBCOMMANDS: dict[str, str] = {
    "demo": "synapse_sdk.cli.demo:demo",
    "classify": "synapse_sdk.cli.classify:classify",
    "messages": "synapse_sdk.cli.messages:messages",
    "emulator": "synapse_sdk.cli.emulator:emulator",
    "export": "synapse_sdk.cli.export:export",
    "synap": "synapse_sdk.cli.synap:synap",
}


def _available(name: str) -> bool:
    module = SUBCOMMANDS[name].partition(":")[0]
    return importlib.util.find_spec(module) is not None


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use.

    Ctrl-C that no subcommand handled itself (one landing while click still parses options,
    say) ends the process with the shell's 130 and one localized line, not click's
    "Aborted!" and exit 1.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        raw = list(args)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:
            raise _interrupted(raw) from None

    def invoke(self, ctx: click.Context) -> Any:
        raw = list(ctx.args)  # the subcommand's own arguments (its --lang among them)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _interrupted(raw) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in SUBCOMMANDS if _available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None or not _available(cmd_name):
            return None
        module_name, _, attr = target.partition(":")
        command: Any = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


def _interrupted(args: list[str]) -> click.exceptions.Exit:
    """Say "interrupted" in the language of ``args`` and end with 130."""
    from synapse_sdk.cli._common import EXIT_INTERRUPTED, _peek_language, cli_text

    click.echo(file=sys.stderr)
    click.echo(cli_text(_peek_language(args), "interrupted"), err=True)
    return click.exceptions.Exit(EXIT_INTERRUPTED)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="synapse-sdk")
def main() -> None:
    """synapse: export data, classify failures and run the local backend emulator."""
