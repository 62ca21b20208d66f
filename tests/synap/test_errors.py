"""The sixteen errors of the seed, each driven through the SDK's real code path.

One table: error → the seed's situation, reproduced against the Synap emulator → what the
caller sees. Every row calls public client methods; nothing constructs an error by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from synapse_sdk import exceptions as exc
from synapse_sdk.clients.synap import SynapClient
from synapse_sdk.config import RetryPolicy, SDKConfig, TimeoutConfig
from synapse_sdk.exceptions import SynapError, SynapPermanentError, SynapTransientError

DAY = 86_400.0
HOUR = 3_600.0
MINUTE = 60.0

Env = Any  # the conftest's Env (conftest modules are not importable under importlib mode)


@dataclass(frozen=True)
class Case:
    """error → situation → what the caller sees."""

    error: type[SynapError]
    situation: str
    run: Callable[[Env], object]
    sees: Callable[[Any, Env], None]

    @property
    def id(self) -> str:
        return f"{self.error.__name__}-{self.situation}"


def _nothing_more(_error: Any, _env: Env) -> None:
    return None


# --- transient: retried by the policy, surfacing only when it gives up ----------------------


def _stalled_context(env: Env) -> object:
    config = SDKConfig(
        retry_policy=RetryPolicy(max_attempts=2, jitter="none"),
        timeouts=TimeoutConfig(read=0.2),
    )
    client = env.ready(config=config)
    # The one test that waits for real: two read timeouts of 0.2 s against a held response.
    env.emu.faults.inject("context", "stall", times=2, stall_seconds=5.0)
    return client.get_context(user_id="u-1")


def _sees_timeout(error: Any, env: Env) -> None:
    assert error.outcome_unknown is True  # the request was sent; the answer never came
    assert len(error.attempts) == 2
    assert env.clock.sleeps == [0.5]  # the policy's backoff, on the injected clock


def _fault_then(operation: str, kind: str, call: Callable[[SynapClient], object], **kw: Any):
    def run(env: Env) -> object:
        client = env.ready()
        env.emu.faults.inject(operation, kind, times=3, **kw)  # type: ignore[arg-type]
        return call(client)

    return run


def _sees_rate_limit(error: Any, env: Env) -> None:
    assert error.retry_after_seconds == 2.5
    assert isinstance(error, exc.BackendError) and error.status_code == 429
    assert len(error.attempts) == 3
    assert env.clock.sleeps == [2.5, 2.5]  # the server's Retry-After, honoured exactly


def _sees_exhausted(status: int) -> Callable[[Any, Env], None]:
    def sees(error: Any, env: Env) -> None:
        assert isinstance(error, exc.BackendError) and error.status_code == status
        assert len(error.attempts) == 3
        assert len(env.clock.sleeps) == 2

    return sees


def _outage_loses_nothing(error: Any, env: Env) -> None:
    _sees_exhausted(503)(error, env)
    # The outage refused the request before storing anything.
    client = env._clients[-1]
    with pytest.raises(exc.ContextNotFoundError):
        client.get_context(user_id="u-1")


# --- permanent ------------------------------------------------------------------------------


def _empty_memory(env: Env) -> object:
    return env.ready().ingest([""], user_id="u-1")


def _both_ids(env: Env) -> object:
    client = env.ready()
    conversation = client.create_conversation()
    return client.ingest(["x"], user_id="u-1", conversation_id=conversation)


def _sees_not_retried(error: Any, env: Env) -> None:
    assert isinstance(error, exc.BackendError) and error.status_code == 400
    assert len(error.attempts) == 1 and env.clock.sleeps == []


def _malformed_instance(env: Env) -> object:
    return SynapClient("inst_NOT-HEX", **env.options(credentials_dir=env.creds_dir()))


def _sees_instance(value: str | None) -> Callable[[Any, Env], None]:
    def sees(error: Any, env: Env) -> None:
        expected = value if value is not None else env._clients[-1].instance_id
        assert error.instance_id == expected

    return sees


def _deactivated_instance(env: Env) -> object:
    client = env.ready()
    env.emu.deactivate_instance(client.instance_id)
    return client.get_context(user_id="u-1")


def _unknown_conversation(env: Env) -> object:
    return env.ready().get_context(conversation_id="conv_0123456789abcdef")


def _deleted_conversation(env: Env) -> object:
    client = env.ready()
    conversation = client.create_conversation()
    client.ingest(["said hello"], conversation_id=conversation)
    client.delete_conversation(conversation)
    env.deleted = conversation
    return client.ingest(["too late"], conversation_id=conversation)


def _sees_conversation(value: str | None) -> Callable[[Any, Env], None]:
    def sees(error: Any, env: Env) -> None:
        assert error.conversation_id == (value if value is not None else env.deleted)
        assert error.correlation_id

    return sees


def _corrupted_credentials(env: Env) -> object:
    client = env.ready()
    path = client.credentials_dir / "credentials.json"
    document = json.loads(path.read_text())
    document["certificate"] = document["certificate"].replace("MII", "XYZ", 1)
    path.write_text(json.dumps(document))
    restarted = env.client(client.instance_id, credentials_dir=client.credentials_dir.parent)
    return restarted.initialize()


def _truncated_credentials(env: Env) -> object:
    client = env.ready()
    path = client.credentials_dir / "credentials.json"
    path.write_bytes(path.read_bytes()[:100])
    restarted = env.client(client.instance_id, credentials_dir=client.credentials_dir.parent)
    return restarted.initialize()


def _missing_credentials(env: Env) -> object:
    instance_id, _token = env.fresh()
    return env.client(instance_id).initialize()


def _rotated_credentials(env: Env) -> object:
    client = env.ready()
    env.emu.rotate_credentials(client.instance_id)
    return client.get_context(user_id="u-1")


def _sees_message(*words: str) -> Callable[[Any, Env], None]:
    def sees(error: Any, env: Env) -> None:
        for word in words:
            assert word in str(error)

    return sees


def _offline_too_long(env: Env) -> object:
    client = env.ready()
    env.clock.advance(7 * DAY + 48 * HOUR + 1)
    return client.get_context(user_id="u-1")


def _restart_after_offline(env: Env) -> object:
    client = env.ready()
    env.clock.advance(10 * DAY)
    restarted = env.client(client.instance_id, credentials_dir=client.credentials_dir.parent)
    return restarted.initialize()


def _revoked_binding(env: Env) -> object:
    client = env.ready()
    env.emu.revoke_binding(client.instance_id)
    env.clock.advance(5.5 * DAY)  # under 30 % of the TTL left: the next call renews first
    return client.get_context(user_id="u-1")


def _ca_unreachable(env: Env) -> object:
    client = env.ready()
    env.emu.faults.inject("renew", "service_unavailable", times=3)
    env.clock.advance(6 * DAY)
    return client.get_context(user_id="u-1")


def _sees_renewal_cause(cause: type[SynapError], code: str) -> Callable[[Any, Env], None]:
    """The renewal failed for the scenario's own reason: the authority's answer (its error
    code) is on the raised error or on its cause."""

    def sees(error: Any, env: Env) -> None:
        chained = error.__cause__ if error.__cause__ is not None else error
        assert isinstance(chained, cause)
        assert code in {getattr(error, "error_code", None), getattr(chained, "error_code", None)}
        assert not isinstance(error, exc.CertificateExpiredError)

    return sees


def _consumed_token(env: Env) -> object:
    instance_id, token = env.fresh()
    env.client(instance_id).initialize(bootstrap_token=token)
    return env.client(instance_id).initialize(bootstrap_token=token)


def _expired_token(env: Env) -> object:
    instance_id, token = env.fresh()
    env.clock.advance(HOUR + 1)  # bootstrap tokens are valid for an hour
    return env.client(instance_id).initialize(bootstrap_token=token)


def _malformed_token(env: Env) -> object:
    instance_id, _token = env.fresh()
    return env.client(instance_id).initialize(bootstrap_token="not-a-bootstrap-token")


def _foreign_token(env: Env) -> object:
    instance_id, _token = env.fresh()
    _other, other_token = env.fresh()
    return env.client(instance_id).initialize(bootstrap_token=other_token)


def _sees_no_credentials(error: Any, env: Env) -> None:
    client = env._clients[-1]
    assert not (client.credentials_dir / "credentials.json").exists()


def _unreachable_bootstrap(env: Env) -> object:
    instance_id, token = env.fresh()
    client = env.client(instance_id, url=f"https://127.0.0.1:{env.closed_port()}")
    return client.initialize(bootstrap_token=token)


def _sees_unreachable(error: Any, env: Env) -> None:
    assert isinstance(error.__cause__, exc.ServiceUnavailableError)
    assert len(error.attempts) == 3  # connection refused is transient: retried, then wrapped


def _nothing_stored(env: Env) -> object:
    client = env.ready()
    client.ingest(["likes tea"], user_id="someone-else")
    return client.get_context(user_id="u-1")


def _idle_session(env: Env) -> object:
    client = env.ready()
    env.clock.advance(31 * MINUTE)  # sessions expire after 30 idle minutes
    return client.get_context(user_id="u-1")


def _invalidated_session(env: Env) -> object:
    client = env.ready()
    env.emu.invalidate_sessions(client.instance_id, "credential rotation")
    return client.ingest(["x"], user_id="u-1")


def _listen_twice(env: Env) -> object:
    client = env.ready()
    client.listen(on_message=lambda _m: None)
    return client.listen(on_message=lambda _m: None)


def _sees_still_listening(error: Any, env: Env) -> None:
    client = env._clients[-1]
    assert client.listening  # the first stream is untouched
    client.stop_listening()


def _stop_without_listen(env: Env) -> object:
    env.ready().stop_listening()
    return None


def _status_after_stop(env: Env) -> object:
    client = env.ready()
    client.listen(on_message=lambda _m: None)
    client.stop_listening()
    return client.listening_status()


CASES = [
    Case(exc.NetworkTimeoutError, "read-timeout", _stalled_context, _sees_timeout),
    Case(
        exc.RateLimitError,
        "429-retry-after",
        _fault_then(
            "context", "rate_limit", lambda c: c.get_context(user_id="u-1"), retry_after=2.5
        ),
        _sees_rate_limit,
    ),
    Case(
        exc.ServiceUnavailableError,
        "outage",
        _fault_then("ingest", "service_unavailable", lambda c: c.ingest(["x"], user_id="u-1")),
        _outage_loses_nothing,
    ),
    Case(
        exc.AgentUnavailableError,
        "agent-restarting",
        _fault_then("context", "agent_unavailable", lambda c: c.get_context(user_id="u-1")),
        _sees_exhausted(503),
    ),
    Case(exc.InvalidInputError, "empty-memory", _empty_memory, _sees_not_retried),
    Case(exc.InvalidInputError, "user-and-conversation", _both_ids, _sees_not_retried),
    Case(
        exc.InvalidInstanceIdError, "malformed", _malformed_instance, _sees_instance("inst_NOT-HEX")
    ),
    Case(exc.InvalidInstanceIdError, "deactivated", _deactivated_instance, _sees_instance(None)),
    Case(
        exc.InvalidConversationIdError,
        "unknown",
        _unknown_conversation,
        _sees_conversation("conv_0123456789abcdef"),
    ),
    Case(
        exc.InvalidConversationIdError, "deleted", _deleted_conversation, _sees_conversation(None)
    ),
    Case(
        exc.AuthenticationError,
        "corrupted-file",
        _corrupted_credentials,
        _sees_message("corrupted", "bootstrap token"),
    ),
    Case(
        exc.AuthenticationError,
        "truncated-file",
        _truncated_credentials,
        _sees_message("not valid JSON"),
    ),
    Case(
        exc.AuthenticationError,
        "missing-file",
        _missing_credentials,
        _sees_message("no stored credentials"),
    ),
    Case(
        exc.AuthenticationError,
        "rotated-server-side",
        _rotated_credentials,
        _sees_message("credentials_rotated"),
    ),
    Case(
        exc.CertificateExpiredError,
        "offline-beyond-grace",
        _offline_too_long,
        _sees_message("grace period", "bootstrap token"),
    ),
    Case(
        exc.CertificateExpiredError, "restart-beyond-grace", _restart_after_offline, _nothing_more
    ),
    Case(
        exc.CertificateRenewalError,
        "binding-revoked",
        _revoked_binding,
        _sees_renewal_cause(exc.CertificateRenewalError, "binding_revoked"),
    ),
    Case(
        exc.CertificateRenewalError,
        "ca-unreachable",
        _ca_unreachable,
        _sees_renewal_cause(exc.ServiceUnavailableError, "service_unavailable"),
    ),
    Case(exc.BootstrapKeyInvalidError, "consumed", _consumed_token, _sees_no_credentials),
    Case(exc.BootstrapKeyInvalidError, "expired", _expired_token, _sees_no_credentials),
    Case(exc.BootstrapKeyInvalidError, "malformed", _malformed_token, _sees_no_credentials),
    Case(exc.BootstrapKeyInvalidError, "other-instance", _foreign_token, _sees_no_credentials),
    Case(exc.BootstrapError, "synap-unreachable", _unreachable_bootstrap, _sees_unreachable),
    Case(
        exc.ContextNotFoundError, "no-memories", _nothing_stored, _sees_message("context_not_found")
    ),
    Case(exc.SessionExpiredError, "idle", _idle_session, _sees_message("idle")),
    Case(
        exc.SessionExpiredError,
        "invalidated",
        _invalidated_session,
        _sees_message("credential rotation"),
    ),
    Case(exc.ListeningAlreadyActiveError, "listen-twice", _listen_twice, _sees_still_listening),
    Case(exc.ListeningNotActiveError, "stop-without-listen", _stop_without_listen, _nothing_more),
    Case(exc.ListeningNotActiveError, "status-after-stop", _status_after_stop, _nothing_more),
]

SEED_ERRORS = {
    exc.NetworkTimeoutError,
    exc.RateLimitError,
    exc.ServiceUnavailableError,
    exc.AgentUnavailableError,
    exc.InvalidInputError,
    exc.InvalidInstanceIdError,
    exc.InvalidConversationIdError,
    exc.AuthenticationError,
    exc.CertificateExpiredError,
    exc.CertificateRenewalError,
    exc.BootstrapKeyInvalidError,
    exc.BootstrapError,
    exc.ContextNotFoundError,
    exc.SessionExpiredError,
    exc.ListeningAlreadyActiveError,
    exc.ListeningNotActiveError,
}


def test_the_table_covers_all_sixteen_seed_errors() -> None:
    assert len(SEED_ERRORS) == 16
    assert {case.error for case in CASES} == SEED_ERRORS


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_seed_situation_raises_its_error(case: Case, env: Env) -> None:
    with pytest.raises(case.error) as raised:
        case.run(env)
    error = raised.value
    # Exactly this error (not a subclass with another meaning), on the seed's branch.
    assert error.code == case.error.code
    transient = issubclass(case.error, SynapTransientError)
    assert isinstance(error, SynapTransientError) is transient
    assert isinstance(error, SynapPermanentError) is not transient
    assert RetryPolicy().is_retryable(error) is transient
    case.sees(error, env)


# --- one HTTP boundary ----------------------------------------------------------------------


def test_every_http_call_goes_through_the_one_transport(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="synapse_sdk.http")
    client = env.ready()
    client.ingest(["prefers tea"], user_id="u-1")
    sent = [r for r in caplog.records if r.getMessage() == "synapse_sdk.http.request"]
    paths = [r.path for r in sent]  # type: ignore[attr-defined]
    assert paths == ["/v1/bootstrap", "/v1/sessions", "/v1/memories"]
    assert client._transport.stats.requests == 3
    # The session token travels as a header the transport redacts in its logs.
    assert all(r.headers.get("x-synap-session", "[REDACTED]") == "[REDACTED]"  # type: ignore[attr-defined]
               for r in sent)
    assert not hasattr(SynapClient, "_send")
    env.emu.faults.inject("ingest", "agent_unavailable", times=99)
    with pytest.raises(exc.BackendAgentUnavailableError) as info:  # mapped by the registry
        client.ingest(["and biscuits"], user_id="u-1")
    assert info.value.status_code == 503 and info.value.error_code == "agent_unavailable"
