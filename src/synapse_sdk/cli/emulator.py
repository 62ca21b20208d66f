"""``synapse emulator``: run the local backend emulator.

``synapse emulator serve`` prints the URL, access token and tenant (in English or Korean,
``--lang``), then serves until Ctrl-C or SIGTERM and exits 0 after a clean shutdown; Ctrl-C
before it serves exits 130 with nothing left running. Binding to anything but loopback needs
``--allow-non-loopback`` and prints a warning: the emulator has no real security.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from types import FrameType
from typing import Any

import click

from synapse_sdk.cli._common import EXIT_INTERRUPTED, ByteSize

_POLL_SECONDS = 0.2

#: The banner and status lines of ``serve``, per language.
_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "starting": "starting the emulator ({items} items per resource)...",
        "serving": "synapse emulator serving at {url}",
        "url": "  url:    {url}",
        "token": "  token:  {token}",
        "tenant": "  tenant: {tenant}",
        "items": "  items:  {items} per resource (tasks, assignments, ground-truths), seed {seed}",
        "faults": "  faults: {faults}",
        "ca": "  ca:     {ca_file} (the CA that signed the server certificate)",
        "stop": "Press Ctrl-C to stop.",
        "stopped": "stopped after {requests} requests",
        "interrupted": "interrupted before the emulator was serving; nothing is left running",
    },
    "ko": {
        "starting": "에뮬레이터를 시작하는 중입니다 (리소스마다 항목 {items}개)...",
        "serving": "synapse 에뮬레이터가 {url}에서 실행 중입니다",
        "url": "  주소:   {url}",
        "token": "  토큰:   {token}",
        "tenant": "  테넌트: {tenant}",
        "items": "  항목:   리소스마다 {items}개 (tasks, assignments, ground-truths), 시드 {seed}",
        "faults": "  장애:   {faults}",
        "ca": "  CA:     {ca_file} (서버 인증서에 서명한 CA)",
        "stop": "멈추려면 Ctrl-C를 누르세요.",
        "stopped": "요청 {requests}건을 처리하고 멈췄습니다",
        "interrupted": (
            "에뮬레이터가 준비되기 전에 중단했습니다. 실행 중인 서버는 남아 있지 않습니다"
        ),
    },
}


def _check_language(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """Click callback: the language of the banner (``--lang``, else ``$SYNAPSE_LANGUAGE``,
    else English). A tag without a translation falls back to English, saying so on stderr;
    a malformed tag is a usage error."""
    from synapse_sdk.i18n import locale_candidates, normalize_language, resolve_language

    try:
        language = resolve_language() if value is None else normalize_language(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    chosen = next(c for c in locale_candidates(language) if c in _TEXT)  # ends with "en"
    if chosen != language.split("-")[0]:
        click.echo(f"unknown language {language!r}; using {chosen}", err=True)
    return chosen


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
    "--original-bytes",
    type=ByteSize(),
    default=None,
    help="Make every original file this size (65536, 300M, 1G; 1 K = 1024), generated from "
    "the seed and streamed, never held in memory; its manifest gives file_size, no checksum "
    "[default: small demo files].",
)
@click.option(
    "--faults",
    default="mild",
    show_default=True,
    callback=check_faults,
    help="Fault profile: none, mild, heavy, optionally with overrides "
    "such as 'heavy,drop_rate=0,rate_limit=10/20'.",
)
@click.option(
    "--token",
    envvar="SYNAPSE_EMULATOR_TOKEN",
    default=None,
    help="Access token to accept (default: a random one). Env: SYNAPSE_EMULATOR_TOKEN.",
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
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON line with url, token and tenant."
)
@click.option(
    "--lang",
    "language",
    callback=_check_language,
    help="Language of the banner: en, ko, ko-KR... [default: $SYNAPSE_LANGUAGE, then en]",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    items: int,
    seed: int,
    original_bytes: int | None,
    faults: str,
    token: str | None,
    allow_non_loopback: bool,
    tls: bool,
    as_json: bool,
    language: str,
) -> None:
    """Serve the emulator until Ctrl-C or SIGTERM (Ctrl-C before it serves: exit 130).

    Items are built on demand from the seed, so even a million per resource serve at once.
    """
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
    text = _TEXT[language]
    try:
        emu = Emulator(
            items=items,
            seed=seed,
            faults=faults,
            host=host,
            port=port,
            token=token,
            allow_non_loopback=allow_non_loopback,
            tls=tls,
            original_bytes=original_bytes,
        )
    except ValueError as exc:
        raise click.ClickException(f"cannot start the emulator: {exc}") from exc

    stopping: list[int] = []

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous: dict[int, Any] = {}
    try:
        if not as_json:
            click.echo(text["starting"].format(items=items), err=True)
        emu.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _stop)
    except KeyboardInterrupt:
        emu.stop()
        _restore(previous)
        click.echo(text["interrupted"], err=True)
        ctx.exit(EXIT_INTERRUPTED)
    except (OSError, ValueError, RuntimeError) as exc:
        emu.stop()
        _restore(previous)
        raise click.ClickException(f"cannot start the emulator: {exc}") from exc
    try:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "url": emu.url,
                        "token": emu.token,
                        "tenant": emu.tenant,
                        "items": items,
                        "seed": seed,
                        "original_bytes": original_bytes,
                        "faults": faults,
                        **({"ca_file": emu.ca_file} if tls else {}),
                    }
                )
            )
        else:
            click.echo(text["serving"].format(url=emu.url))
            click.echo(text["url"].format(url=emu.url))
            click.echo(text["token"].format(token=emu.token))
            click.echo(text["tenant"].format(tenant=emu.tenant))
            click.echo(text["items"].format(items=items, seed=seed))
            click.echo(text["faults"].format(faults=emu.faults.describe(language)))
            if tls:
                click.echo(text["ca"].format(ca_file=emu.ca_file))
            click.echo(text["stop"])
        sys.stdout.flush()
        while not stopping and emu.running:
            time.sleep(_POLL_SECONDS)
    finally:
        emu.stop()
        _restore(previous)
    if not stopping:
        raise click.ClickException("the emulator's server stopped unexpectedly")
    if not as_json:
        click.echo(text["stopped"].format(requests=len(emu.requests)))


def _restore(handlers: dict[int, Any]) -> None:
    """Put back the signal handlers ``serve`` replaced."""
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
