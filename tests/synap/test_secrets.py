"""Secrets stay secret, and certificate verification stays on.

Planted secrets — the bootstrap token, the private key, the certificate PEM and the session
token — are driven through success and failure paths (bootstrap, refusals, retries, renewal,
the listening stream, corrupted credentials) with every logger at DEBUG; none may appear in any
captured log record (message, extra fields, formatted traceback), repr or error message.
"""

from __future__ import annotations

import json
import logging
import queue
import re
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk import exceptions as exc

Env = Any
DAY = 86_400.0
SRC = Path(__file__).resolve().parents[2] / "src" / "synapse_sdk"


def _pem_body(pem: str) -> list[str]:
    """The base64 lines of a PEM block (the part that is the secret)."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def _record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), record.exc_text or ""]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(repr(record.exc_info[1]))
        parts.append(str(record.exc_info[1]))
    parts.extend(f"{key}={value!r}" for key, value in vars(record).items())
    return "\n".join(parts)


def test_planted_secrets_never_reach_logs_reprs_or_messages(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[object] = []

    def expect(error_type: type[Exception], fn: Any, *args: Any, **kwargs: Any) -> None:
        with pytest.raises(error_type) as raised:
            fn(*args, **kwargs)
        seen.append(raised.value)
        seen.append(raised.value.__cause__)

    instance_id, token = env.fresh()
    client = env.client(instance_id)
    # The token in refusals: a near-miss, then an outage during bootstrap, then success.
    expect(exc.BootstrapKeyInvalidError, env.client(instance_id).initialize, token[:-2] + "xx")
    env.emu.faults.inject("bootstrap", "service_unavailable", times=3)
    expect(exc.BootstrapError, env.client(instance_id).initialize, bootstrap_token=token)
    info = client.initialize(bootstrap_token=token)
    expect(exc.BootstrapKeyInvalidError, env.client(instance_id).initialize, token)
    seen.extend([info, client, client.certificate_status(), client._core.session, env.emu])

    document = json.loads((client.credentials_dir / "credentials.json").read_text())
    first_key, first_cert = document["private_key"], document["certificate"]
    session_token = client._core.session.token

    # Calls, retried faults, refusals and the listening stream.
    env.emu.faults.inject("ingest", "rate_limit", times=1, retry_after=1)
    client.ingest(["note"], user_id="u")
    expect(exc.ContextNotFoundError, client.get_context, user_id="nobody")
    env.emu.faults.inject("context", "agent_unavailable", times=3)
    expect(exc.AgentUnavailableError, client.get_context, user_id="u")
    inbox: queue.Queue[object] = queue.Queue()
    client.listen(on_message=inbox.put, on_error=inbox.put)
    env.emu.publish(instance_id, "hello")
    seen.append(inbox.get(timeout=10))
    seen.append(client.listening_status())
    env.emu.drop_streams(instance_id)
    env.emu.publish(instance_id, "again")
    seen.append(inbox.get(timeout=10))
    client.stop_listening()
    expect(exc.ListeningNotActiveError, client.stop_listening)

    # Renewal (a second key and certificate), then expiry and a corrupted file.
    env.clock.advance(5 * DAY)
    client.initialize()
    renewed = json.loads((client.credentials_dir / "credentials.json").read_text())
    expect(exc.SessionExpiredError, lambda: (env.clock.advance(3600), client.forget(user_id="u")))
    env.clock.advance(9 * DAY)
    expect(exc.CertificateExpiredError, client.get_context, user_id="u")
    path = client.credentials_dir / "credentials.json"
    path.write_text(path.read_text().replace("PRIVATE KEY", "PRIVATE KYE", 1))
    restarted = env.client(instance_id, credentials_dir=client.credentials_dir.parent)
    expect(exc.AuthenticationError, restarted.initialize)
    client.close()

    secrets = [token, session_token]
    for pem in (first_key, first_cert, renewed["private_key"], renewed["certificate"]):
        secrets.extend(_pem_body(pem))
    assert all(len(secret) >= 40 for secret in secrets)

    texts = [_record_text(record) for record in caplog.records]
    texts += [repr(obj) for obj in seen] + [str(obj) for obj in seen]
    blob = "\n".join(texts)
    assert caplog.records, "nothing was logged: the test would prove nothing"
    assert "synap.bootstrap.completed" in blob and "synap.certificate.renewed" in blob
    for secret in secrets:
        assert secret not in blob


def test_synap_code_never_turns_certificate_verification_off() -> None:
    forbidden = re.compile(
        r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context"
        r"|ssl_target_name_override"
    )
    synap_code = [
        *SRC.glob("clients/synap/*.py"),
        *(SRC / "emulator" / "synap").rglob("*.py"),
        SRC / "cli" / "synap.py",
    ]
    assert len(synap_code) >= 12
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in sorted(synap_code)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []


def test_the_client_verifies_the_server_and_presents_its_certificate(env: Env) -> None:
    client = env.ready()
    http = next(iter(client._transport._certified.values()))  # presents the certificate
    context = http._transport._pool._ssl_context
    import ssl

    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The emulator refuses API calls without a registered client certificate: the session
    # request above only succeeded because the client presented one.
    assert env.emu.service.store.certificate(client.certificate_status().serial) is not None
