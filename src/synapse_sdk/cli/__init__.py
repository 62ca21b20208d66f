"""The ``synapse`` command line.

Subcommands live in their own modules under ``synapse_sdk.cli`` and are imported only when
invoked, so ``synapse --help`` stays fast and one subcommand's dependencies never slow another.
"""

from __future__ import annotations

import importlib
import importlib.util
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
    """A click group whose subcommands are imported on first use."""

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


@click.group(cls=_LazyGroup)
@click.version_option(package_name="synapse-sdk")
def main() -> None:
    """synapse: export data, classify failures and run the local backend emulator."""
