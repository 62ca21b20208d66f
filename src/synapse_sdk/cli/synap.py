"""``synapse synap``: drive the Synap client from the shell.

By default every command runs against an embedded :class:`~synapse_sdk.emulator.synap.SynapEmulator`
whose CA and SQLite database persist under ``--emulator-state`` (default:
``<credentials-dir>/emulator``), so ``init`` then ``ingest`` then ``context`` talk to the same
certificate authority and data. Pass ``--url`` and ``--trust-root`` to use a real Synap.

::

    synapse synap init                               # registers an instance, bootstraps it
                                                     # (once: again needs --force)
    synapse synap ingest "likes tea" --user-id u-1
    synapse synap context --user-id u-1
    synapse synap listen --count 1                   # prints stream events (backlog first)

Errors print their class, what went wrong and what to do (the seed's resolution column), and
exit 1; a bootstrap token or key material is never printed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from synapse_sdk.exceptions import (
    ContextNotFoundError,
    SynapError,
    SynapTransientError,
    validate_instance_id,
)

_DEFAULT_CREDENTIALS = Path("~/.synapse/synap")
_DEFAULT_INSTANCE_FILE = "default-instance"

#: What a caller should do about each error (the seed's "Resolution" column).
RESOLUTIONS: dict[str, str] = {
    "NetworkTimeoutError": "check connectivity; increase timeouts",
    "RateLimitError": "reduce request frequency",
    "ServiceUnavailableError": "wait and retry; check the status page",
    "AgentUnavailableError": "the SDK retried already; queue the work and retry later",
    "InvalidInputError": "fix the input parameters",
    "InvalidInstanceIdError": "verify the instance id in the Dashboard",
    "InvalidConversationIdError": "check that the conversation exists",
    "AuthenticationError": "bootstrap the instance again with a new token "
    "(synapse synap init --instance-id {instance}) or check the configuration",
    "CertificateExpiredError": "bootstrap the instance again with a new token "
    "(synapse synap init --instance-id {instance})",
    "CertificateRenewalError": "contact support with the correlation id",
    "BootstrapKeyInvalidError": "generate a new bootstrap token in the Dashboard",
    "BootstrapError": "check connectivity; run init again",
    "ContextNotFoundError": "treat as empty state; ingest memories first",
    "SessionExpiredError": "re-initialize (any command opens a new session)",
    "ListeningAlreadyActiveError": "skip: the existing stream is still active",
    "ListeningNotActiveError": "safe to ignore",
}


@dataclass
class _Settings:
    credentials_dir: Path
    url: str | None
    trust_root: Path | None
    emulator_state: Path | None


def _semantic_name(error: SynapError) -> str:
    for cls in type(error).__mro__:
        if cls.__name__ in RESOLUTIONS:
            return cls.__name__
    return type(error).__name__


#: The advice for a server certificate this machine does not trust: no bootstrap can fix that.
TLS_RESOLUTION = (
    "the server's certificate is not signed by a CA this machine trusts: pass the CA "
    "certificate (PEM) that signed it, synapse synap --url URL --trust-root CA.pem ..."
)


def _untrusted_server(error: BaseException) -> bool:
    """Whether ``error`` comes from a server certificate that failed verification."""
    from synapse_sdk.failures import walk_chain

    # httpcore keeps the ssl error as a suppressed context, which walk_chain does not follow.
    return any(
        isinstance(candidate, ssl.SSLCertVerificationError)
        for link in walk_chain(error)
        for candidate in (link, link.__context__)
    )


def _fail(error: SynapError, instance_id: str | None = None) -> click.ClickException:
    """The CLI error for ``error``: its class, whether it is transient, and what to do."""
    name = _semantic_name(error)
    kind = "transient" if isinstance(error, SynapTransientError) else "permanent"
    if _untrusted_server(error):
        hint = TLS_RESOLUTION
    else:
        hint = RESOLUTIONS.get(name, "see docs/synap.md").format(instance=instance_id or "ID")
    return click.ClickException(f"{name} ({kind}): {error}\n  what to do: {hint}")


@click.group()
@click.option(
    "--credentials-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_DEFAULT_CREDENTIALS,
    show_default=True,
    envvar="SYNAPSE_SYNAP_CREDENTIALS_DIR",
    help="Where instance credentials are stored (directories 0700, files 0600).",
)
@click.option("--url", default=None, help="A real Synap API (https://...); default: embedded.")
@click.option(
    "--trust-root",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="CA certificate (PEM) that verifies --url.",
)
@click.option(
    "--emulator-state",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State directory of the embedded emulator [default: <credentials-dir>/emulator].",
)
@click.pass_context
def synap(
    ctx: click.Context,
    credentials_dir: Path,
    url: str | None,
    trust_root: Path | None,
    emulator_state: Path | None,
) -> None:
    """Bootstrap a Synap instance, ingest memories, fetch context, listen to its stream."""
    if url is not None and emulator_state is not None:
        raise click.UsageError("--emulator-state applies to the embedded emulator, not --url")
    ctx.obj = _Settings(credentials_dir.expanduser(), url, trust_root, emulator_state)


@dataclass
class _Target:
    """Where a command's client connects, and the embedded emulator if there is one."""

    options: dict[str, Any]
    emulator: Any


@contextmanager
def _target(settings: _Settings) -> Iterator[_Target]:
    if settings.url is not None:
        yield _Target({"url": settings.url, "trust_root": settings.trust_root}, None)
        return
    from synapse_sdk.emulator.synap import SynapEmulator

    state = settings.emulator_state or settings.credentials_dir / "emulator"
    with SynapEmulator(state_dir=state) as emulator:
        yield _Target({"url": emulator.url, "trust_root": emulator.ca_pem}, emulator)


def _instance_file(settings: _Settings) -> Path:
    return settings.credentials_dir / _DEFAULT_INSTANCE_FILE


def _default_instance(settings: _Settings) -> str | None:
    """The instance ``init`` made the default, or None when there is none."""
    try:
        return _instance_file(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def _resolve_instance(settings: _Settings, instance_id: str | None) -> str:
    found = instance_id if instance_id is not None else _default_instance(settings)
    if found is None:
        raise click.UsageError("no instance: pass --instance-id or run `synapse synap init` first")
    return found


def _client(settings: _Settings, target: _Target, instance_id: str) -> Any:
    from synapse_sdk.clients.synap import SynapClient

    return SynapClient(instance_id, credentials_dir=settings.credentials_dir, **target.options)


_instance_option = click.option(
    "--instance-id", default=None, help="inst_<hex16> [default: the one `init` set up]."
)


@synap.command()
@_instance_option
@click.option(
    "--bootstrap-token",
    envvar="SYNAPSE_SYNAP_BOOTSTRAP_TOKEN",
    default=None,
    help="Single-use bootstrap token (prefer the environment variable). The embedded "
    "emulator issues one when omitted.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Register a new instance and make it the default even though one is set up already.",
)
@click.pass_obj
def init(
    settings: _Settings, instance_id: str | None, bootstrap_token: str | None, force: bool
) -> None:
    """Bootstrap an instance: key, CSR, client certificate, first session.

    Without --instance-id it sets up a new instance and makes it the default, once: when a
    default instance exists already it refuses (--instance-id bootstraps that one again,
    --force sets up another).
    """
    existing = _default_instance(settings)
    if instance_id is None and existing is not None and not force:
        raise click.UsageError(
            f"instance {existing} is already set up ({_instance_file(settings)}). "
            f"`synapse synap init --instance-id {existing}` bootstraps it again; "
            "`synapse synap init --force` sets up a new instance and makes it the default."
        )
    try:
        if instance_id is not None:
            validate_instance_id(instance_id)
        with _target(settings) as target:
            if target.emulator is not None:
                if instance_id is None:
                    instance_id = target.emulator.register_instance()
                elif target.emulator.service.store.instance(instance_id) is None:
                    target.emulator.register_instance(instance_id)
                if bootstrap_token is None:
                    bootstrap_token = target.emulator.issue_bootstrap_token(instance_id)
            if instance_id is None or bootstrap_token is None:
                raise click.UsageError("--url needs --instance-id and a bootstrap token")
            with _client(settings, target, instance_id) as client:
                info = client.initialize(bootstrap_token=bootstrap_token)
    except SynapError as exc:
        raise _fail(exc, instance_id) from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    _instance_file(settings).write_text(info.instance_id + "\n")
    cert = info.certificate
    click.echo(f"instance:     {info.instance_id}")
    click.echo(f"credentials:  {settings.credentials_dir / info.instance_id}")
    click.echo(f"certificate:  {cert.state}, expires {_local_time(cert.expires_at)}")
    click.echo(f"session:      {info.session_id}")


def _local_time(epoch_seconds: float) -> str:
    """An epoch time as ISO 8601 in the local zone, with its offset and name."""
    moment = dt.datetime.fromtimestamp(epoch_seconds, dt.UTC).astimezone()
    return f"{moment.isoformat(timespec='seconds')} ({moment.tzname()})"


@synap.command()
@_instance_option
@click.argument("memories", nargs=-1, required=True)
@click.option("--user-id", default=None, help="Store the memories for this user.")
@click.option("--conversation-id", default=None, help="Store them in this conversation.")
@click.option("--new-conversation", is_flag=True, help="Create a conversation and use it.")
@click.pass_obj
def ingest(
    settings: _Settings,
    instance_id: str | None,
    memories: tuple[str, ...],
    user_id: str | None,
    conversation_id: str | None,
    new_conversation: bool,
) -> None:
    """Ingest MEMORIES (one argument each) for a user or a conversation."""
    instance = _resolve_instance(settings, instance_id)
    try:
        with _target(settings) as target, _client(settings, target, instance) as client:
            client.initialize()
            if new_conversation:
                conversation_id = client.create_conversation()
                click.echo(f"conversation: {conversation_id}")
            result = client.ingest(list(memories), user_id=user_id, conversation_id=conversation_id)
    except SynapError as exc:
        raise _fail(exc, instance) from exc
    for memory_id in result.memory_ids:
        click.echo(memory_id)


@synap.command()
@_instance_option
@click.option("--user-id", default=None, help="Context of this user.")
@click.option("--conversation-id", default=None, help="Context of this conversation.")
@click.option("--limit", type=click.IntRange(1, 200), default=None, help="Newest N memories.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def context(
    settings: _Settings,
    instance_id: str | None,
    user_id: str | None,
    conversation_id: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Print the memories stored for a user or a conversation (empty: nothing stored yet)."""
    instance = _resolve_instance(settings, instance_id)
    try:
        with _target(settings) as target, _client(settings, target, instance) as client:
            client.initialize()
            try:
                found = client.get_context(
                    user_id=user_id, conversation_id=conversation_id, limit=limit
                )
                memories = [
                    {"memory_id": m.memory_id, "content": m.content, "metadata": dict(m.metadata)}
                    for m in found.memories
                ]
            except ContextNotFoundError:
                memories = []  # the seed's advice: no context is an empty state, not a failure
    except SynapError as exc:
        raise _fail(exc, instance) from exc
    if as_json:
        click.echo(json.dumps({"memories": memories}, indent=2))
    elif not memories:
        click.echo("(no memories stored yet)")
    else:
        for memory in memories:
            click.echo(f"{memory['memory_id']}  {memory['content']}")


@synap.command()
@_instance_option
@click.option(
    "--count", type=click.IntRange(1), default=None, help="Stop after N events [default: never]."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds [default: never].",
)
@click.pass_obj
def listen(
    settings: _Settings, instance_id: str | None, count: int | None, timeout: float | None
) -> None:
    """Print the instance's stream events (backlog first) until --count, --timeout or Ctrl-C."""
    instance = _resolve_instance(settings, instance_id)
    done = threading.Event()
    failure: list[SynapError] = []
    received = 0

    def on_message(message: Any) -> None:
        nonlocal received
        received += 1
        where = message.conversation_id or message.user_id or "-"
        click.echo(f"#{message.sequence} {message.kind} [{where}] {message.content}")
        if count is not None and received >= count:
            done.set()

    def on_error(error: SynapError) -> None:
        failure.append(error)
        done.set()

    try:
        with _target(settings) as target, _client(settings, target, instance) as client:
            client.initialize()
            client.listen(on_message, on_error=on_error)
            try:
                done.wait(timeout)
            except KeyboardInterrupt:
                pass
            if client.listening:
                client.stop_listening()
    except SynapError as exc:
        raise _fail(exc, instance) from exc
    if failure:
        raise _fail(failure[0], instance)


@synap.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the CA and the SQLite store here [default: a temporary directory].",
)
@click.option(
    "--instances",
    type=click.IntRange(0, 100),
    default=1,
    show_default=True,
    help="Instances to register, each with a fresh bootstrap token.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write {instance_id: bootstrap_token} here (mode 0600); tokens are never printed.",
)
def serve(state_dir: Path | None, instances: int, token_file: Path | None) -> None:
    """Run a standalone Synap emulator until Ctrl-C or SIGTERM (for other processes' tests)."""
    from synapse_sdk.emulator.synap import SynapEmulator

    if instances and token_file is None:
        raise click.UsageError("--token-file is required to hand out bootstrap tokens")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with SynapEmulator(state_dir=state_dir) as emulator:
            tokens = {}
            for _ in range(instances):
                instance_id = emulator.register_instance()
                tokens[instance_id] = emulator.issue_bootstrap_token(instance_id)
            if token_file is not None:
                fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                # The mode above only applies to a new file: tighten one that already existed.
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump(tokens, fh)
            for key, value in emulator.describe().items():
                click.echo(f"{key + ':':<15}{value}")
            for instance_id in tokens:
                click.echo(f"{'instance:':<15}{instance_id}")
            click.echo("Press Ctrl-C to stop.")
            while not stop.is_set() and emulator.running:
                stop.wait(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
