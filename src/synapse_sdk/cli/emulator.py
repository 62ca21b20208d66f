"""``synapse emulator``: run the local backend emulator.

``synapse emulator serve`` prints the URL and bearer token, then serves until Ctrl-C or
SIGTERM and exits 0 after a clean shutdown. Binding to anything but loopback needs
``--allow-non-loopback`` and prints a warning: the emulator has no real security.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click

_POLL_SECONDS = 0.2


def check_faults(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback validating a ``--faults`` option at parse time (None passes through).

    Takes a preset name or spec such as ``heavy,drop_rate=0`` (see ``FaultProfile.from_spec``);
    raises ``click.BadParameter`` with the reason otherwise. Shared by every command that starts
    an emulator.
    """
    from synapse_sdk.emulator import FaultProfile

    if value is None:
        return None
    try:
        FaultProfile.from_spec(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    return value


@click.group()
def emulator() -> None:
    """Run the local emulator of the Synapse backend (v2 API, seeded data, fault injection)."""


@emulator.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one.",
)
@click.option(
    "--items",
    default=2000,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="Items per resource (tasks, assignments, ground truths).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of data and faults.")
@click.option(
    "--faults",
    default="mild",
    show_default=True,
    callback=check_faults,
    help="Fault profile: none, mild, heavy, optionally with overrides "
    "such as 'heavy,drop_rate=0,rate_limit=10/20'.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the data in this SQLite file (default: in memory).",
)
@click.option(
    "--token",
    envvar="SYNAPSE_EMULATOR_TOKEN",
    default=None,
    help="Bearer token to accept (default: a random one). Env: SYNAPSE_EMULATOR_TOKEN.",
)
@click.option(
    "--allow-non-loopback",
    is_flag=True,
    help="Allow a host other than loopback (the emulator is not secure).",
)
@click.option(
    "--tls",
    is_flag=True,
    help="Serve HTTPS with a throwaway CA; its certificate file is printed (ca_file). Point "
    "clients at it, e.g. SSL_CERT_FILE=<ca_file> synapse export --backend <url> ...",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line with url and token.")
def serve(
    host: str,
    port: int,
    items: int,
    seed: int,
    faults: str,
    db: Path | None,
    token: str | None,
    allow_non_loopback: bool,
    tls: bool,
    as_json: bool,
) -> None:
    """Serve the emulator until Ctrl-C or SIGTERM."""
    from synapse_sdk.emulator import Emulator, is_loopback

    if not is_loopback(host):
        if not allow_non_loopback:
            raise click.UsageError(
                f"--host {host} is not a loopback address; add --allow-non-loopback to serve "
                "on it anyway"
            )
        click.echo(
            f"warning: serving on {host}: anyone who can reach it can read the demo data "
            "with the printed token; the emulator is for tests and demos only",
            err=True,
        )
    try:
        emu = Emulator(
            items=items,
            seed=seed,
            faults=faults,
            host=host,
            port=port,
            db=db,
            token=token,
            allow_non_loopback=allow_non_loopback,
            tls=tls,
        )
        emu.start()
    except (OSError, ValueError, RuntimeError) as exc:
        raise click.ClickException(f"cannot start the emulator: {exc}") from exc

    stopping: list[int] = []

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "url": emu.url,
                        "token": emu.token,
                        "items": items,
                        "seed": seed,
                        "faults": faults,
                        **({"ca_file": emu.ca_file} if tls else {}),
                    }
                )
            )
        else:
            click.echo(f"synapse emulator serving at {emu.url}")
            click.echo(f"  url:    {emu.url}")
            click.echo(f"  token:  {emu.token}")
            click.echo(
                f"  items:  {items} per resource (tasks, assignments, ground-truths), seed {seed}"
            )
            click.echo(f"  faults: {emu.faults.describe()}")
            click.echo(f"  data:   {db if db is not None else 'in memory'}")
            if tls:
                click.echo(f"  ca:     {emu.ca_file} (the CA that signed the server certificate)")
            click.echo("Press Ctrl-C to stop.")
        sys.stdout.flush()
        while not stopping and emu.running:
            time.sleep(_POLL_SECONDS)
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not stopping:
        raise click.ClickException("the emulator's server stopped unexpectedly")
    if not as_json:
        click.echo(f"stopped after {len(emu.requests)} requests")
