"""``synapse demo``: a one-minute tour of what the SDK does about failure.

1. **The error tree**, drawn: every error, its stable code, transient or permanent, and whether
   the default retry policy retries it.
2. **A call retried live**: the embedded emulator is started with an outage window at its start;
   a real ``BackendV2Client`` lists tasks from it, and each retry the engine schedules is shown
   as it happens (the error, its code, the wait), then the answer.
3. **A classification**: a few everyday exceptions turned into export log-message codes and
   rendered in English and Korean.

Nothing is mocked: the waits are the engine's own (they follow the emulator's ``Retry-After``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import click

from synapse_sdk.cli._common import SynapseCommand, make_stdout_tolerant

if TYPE_CHECKING:
    from rich.console import Console
    from rich.tree import Tree

__all__ = ["demo"]


@click.command(cls=SynapseCommand)
@click.option(
    "--outage",
    default=1.5,
    show_default=True,
    type=click.FloatRange(0.0, 10.0),
    help="Seconds the emulator is down at its start (what the live call waits through).",
)
def demo(outage: float) -> None:
    """A one-minute tour: the error tree, a call retried live against the embedded emulator,
    and failures classified into messages in English and Korean."""
    from rich.console import Console

    make_stdout_tolerant()
    console = Console(highlight=False)
    console.rule("1. The error tree")
    console.print(_error_tree())
    console.rule("2. A call retried live (embedded emulator, down for the first "
                 f"{outage:g} s)")
    _live_call(console, outage)
    console.rule("3. Failures classified, in English and Korean")
    _classifications(console)


def _error_tree() -> Tree:
    """Every ``SynapError`` subclass under its parent: code, branch, retried by default?"""
    from rich.tree import Tree

    from synapse_sdk import exceptions
    from synapse_sdk.config import RetryPolicy

    policy = RetryPolicy()
    classes = [
        cls for name in exceptions.__all__
        if isinstance(cls := getattr(exceptions, name), type)
        and issubclass(cls, exceptions.SynapError)
        # The Backend<Semantic>Error combinations repeat their semantic parent's line.
        and not (name.startswith("Backend") and cls is not exceptions.BackendError)
    ]  # fmt: skip

    def label(cls: type[exceptions.SynapError]) -> str:
        retried = "retried" if issubclass(cls, policy.retryable_errors) else "not retried"
        return f"[bold]{cls.__name__}[/bold]  {cls.code}  [dim]({retried})[/dim]"

    root = Tree(label(exceptions.SynapError))
    nodes: dict[type, Tree] = {exceptions.SynapError: root}
    for cls in sorted(classes, key=lambda c: len(c.__mro__)):
        if cls in nodes:
            continue
        parent = next((base for base in cls.__mro__[1:] if base in nodes), exceptions.SynapError)
        nodes[cls] = nodes[parent].add(label(cls))
    return root


class _ShowRetries(logging.Handler):
    """Prints each retry the engine schedules, when it schedules it."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        from synapse_sdk.retry import EVENT_SCHEDULED

        fields: dict[str, Any] = vars(record)
        if fields.get("event") != EVENT_SCHEDULED:
            return
        self._console.print(
            f"  attempt {fields.get('attempt')} failed: {fields.get('error_type')} "
            f"({fields.get('error_code')}); retrying in {fields.get('wait') or 0.0:.1f} s"
        )


def _live_call(console: Console, outage: float) -> None:
    from synapse_sdk.clients import BackendV2Client
    from synapse_sdk.config import SDKConfig
    from synapse_sdk.emulator import Emulator, FaultProfile
    from synapse_sdk.exceptions import SynapError

    faults = FaultProfile(outages=((0.0, outage),)) if outage > 0 else FaultProfile()
    logger = logging.getLogger("synapse_sdk.retry")
    handler = _ShowRetries(console)
    level = logger.level
    with Emulator(items=50, faults=faults) as emu:
        console.print(f"  emulator at {emu.url}; faults: {faults.describe()}")
        console.print("  client.tasks.list_page(limit=5) ...")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        started = time.monotonic()
        try:
            config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant)
            with BackendV2Client(config=config) as client:
                page = client.tasks.list_page(limit=5)
        except SynapError as exc:  # the outage outlasted the retry policy
            console.print(f"  gave up: {type(exc).__name__} ({exc.code})")
            return
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        ids = ", ".join(str(item["id"]) for item in page.items)
        console.print(
            f"  [green]got tasks {ids}[/green] after {time.monotonic() - started:.1f} s"
        )


def _classifications(console: Console) -> None:
    from rich.text import Text

    from synapse_sdk.exceptions import BackendError
    from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
    from synapse_sdk.plugins.log_messages import resolve_log_message

    examples: list[BaseException] = [
        TimeoutError("read timed out"),
        PermissionError(13, "Permission denied", "/data/export"),
        ConnectionResetError(104, "Connection reset by peer"),
        BackendError(
            'bulk fetch failed: {"error": {"code": "rate_limited", "retry_after": 2}}',
            status_code=429,
        ),
    ]
    for exc in examples:
        code = classify_export_error(exc)
        if code is None:
            continue
        console.print(Text(f"{type(exc).__name__}: {exc}", style="dim"))
        console.print(Text("  → ").append(code.value, style="bold"))
        for language in ("en", "ko"):
            console.print(f"    {language}: {resolve_log_message(code, language).text}")
