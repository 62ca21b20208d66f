"""Certificates, sessions and recovery: the paths around the errors, driven through the client."""

from __future__ import annotations

import json
import stat
from typing import Any

import pytest

from synapse_sdk import exceptions as exc
from synapse_sdk.clients.synap import SynapClient
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import FakeClock
from synapse_sdk.emulator.synap import CertificateAuthority, Lifetimes, SynapEmulator

DAY = 86_400.0
HOUR = 3_600.0

Env = Any


def _serial(env: Env, client: Any) -> str:
    return str(client.certificate_status().serial)


def test_initialize_stores_private_credentials(env: Env) -> None:
    client = env.ready()
    directory = client.credentials_dir
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o700
    for name in ("credentials.json", "tls-identity.pem"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in directory.iterdir()) == ["credentials.json", "tls-identity.pem"]


def test_certificate_lifetime_is_seven_days_with_renewal_at_thirty_percent(env: Env) -> None:
    status = env.ready().certificate_status()
    assert status.state == "valid"
    assert status.expires_at - status.issued_at == 7 * DAY
    assert status.expires_at - status.renew_at == pytest.approx(0.3 * 7 * DAY)
    assert status.grace_ends_at - status.expires_at == 48 * HOUR


def test_no_renewal_while_more_than_thirty_percent_remains(env: Env) -> None:
    client = env.ready()
    before = _serial(env, client)
    env.clock.advance(4.8 * DAY)  # 2.2 days (31 %) left
    client.initialize()  # a restart: loads the credentials, opens a session
    assert _serial(env, client) == before
    assert client.certificate_status().state == "valid"


def test_renews_automatically_once_less_than_thirty_percent_remains(env: Env) -> None:
    client = env.ready()
    client.ingest(["kept across renewal"], user_id="u")
    before = _serial(env, client)
    env.clock.advance(5 * DAY)  # 2 days (29 %) left
    assert client.certificate_status().state == "renew_due"
    client.initialize()  # renews first, then opens a session over the new certificate
    status = client.certificate_status()
    assert status.serial != before and status.state == "valid"
    assert status.issued_at == env.clock()
    assert [m.content for m in client.get_context(user_id="u").memories] == ["kept across renewal"]


def test_a_call_renews_the_certificate_by_itself(tmp_path: Any) -> None:
    # Production lifetimes put renewal (day 4.9) far beyond a session's life (12 h), so this
    # test runs its own emulator with a one-hour TTL and a longer idle window: a live session
    # meets a certificate that needs renewing, and the call renews it before it is sent.
    clock = FakeClock()
    lifetimes = Lifetimes(certificate_ttl=HOUR, grace=600, session_idle=2 * HOUR)
    with SynapEmulator(clock=clock, lifetimes=lifetimes) as emu:
        instance_id = emu.register_instance()
        client = SynapClient(
            instance_id, credentials_dir=tmp_path, sleep=clock.sleep, **emu.client_options()
        )
        with client:
            client.initialize(bootstrap_token=emu.issue_bootstrap_token(instance_id))
            client.ingest(["before"], user_id="u")
            before = client.certificate_status()
            clock.advance(0.71 * HOUR)  # 29 % of the TTL left
            client.ingest(["after"], user_id="u")
            after = client.certificate_status()
            assert after.serial != before.serial and after.state == "valid"
            assert after.expires_at == clock() + HOUR
            assert [m.content for m in client.get_context(user_id="u").memories] == [
                "before",
                "after",
            ]


def test_an_expired_certificate_still_renews_inside_the_grace_period(env: Env) -> None:
    client = env.ready()
    env.clock.advance(7 * DAY + 47 * HOUR)  # expired 47 h ago; grace is 48 h
    assert client.certificate_status().state == "in_grace"
    client.initialize()
    assert client.certificate_status().state == "valid"
    client.ingest(["back online"], user_id="u")


def test_a_fresh_bootstrap_recovers_from_an_expired_certificate(env: Env) -> None:
    client = env.ready()
    env.clock.advance(9 * DAY + 1)
    with pytest.raises(exc.CertificateExpiredError):
        client.initialize()
    client.initialize(bootstrap_token=env.emu.issue_bootstrap_token(client.instance_id))
    assert client.certificate_status().state == "valid"
    client.ingest(["recovered"], user_id="u")


def test_the_authority_enforces_expiry_when_the_client_clock_lags(env: Env) -> None:
    instance_id, token = env.fresh()
    lagging = FakeClock(env.clock())  # the client's own clock, not advanced below
    client = env.client(instance_id, clock=lagging)
    client.initialize(bootstrap_token=token)
    env.clock.advance(7 * DAY + 1)  # only the server's time moves
    with pytest.raises(exc.CertificateExpiredError) as raised:
        client.get_context(user_id="u")
    assert isinstance(raised.value, exc.BackendError)
    assert raised.value.error_code == "certificate_expired"


def test_reinitializing_recovers_an_expired_session(env: Env) -> None:
    client = env.ready()
    env.clock.advance(31 * 60)
    with pytest.raises(exc.SessionExpiredError):
        client.get_context(user_id="u")
    client.initialize()
    with pytest.raises(exc.ContextNotFoundError):
        client.get_context(user_id="u")


def test_a_session_stays_alive_while_used(env: Env) -> None:
    client = env.ready()
    client.ingest(["a"], user_id="u")
    for _ in range(4):  # 100 minutes in all, never 30 idle
        env.clock.advance(25 * 60)
        assert len(client.get_context(user_id="u").memories) == 1


def test_a_closed_session_needs_initialize(env: Env) -> None:
    client = env.ready()
    client.close_session()
    with pytest.raises(RuntimeError, match="initialize"):
        client.get_context(user_id="u")
    client.initialize()
    client.ingest(["after re-initialize"], user_id="u")


def test_rebootstrap_recovers_rotated_credentials(env: Env) -> None:
    client = env.ready()
    env.emu.rotate_credentials(client.instance_id)
    with pytest.raises(exc.AuthenticationError):
        client.initialize()
    client.initialize(bootstrap_token=env.emu.issue_bootstrap_token(client.instance_id))
    client.ingest(["after rotation"], user_id="u")


def test_rebootstrap_recovers_a_revoked_binding(env: Env) -> None:
    client = env.ready()
    env.emu.revoke_binding(client.instance_id)
    with pytest.raises(exc.AuthenticationError):
        client.get_context(user_id="u")
    client.initialize(bootstrap_token=env.emu.issue_bootstrap_token(client.instance_id))
    client.ingest(["rebound"], user_id="u")


def test_credentials_survive_a_restart(env: Env) -> None:
    client = env.ready()
    client.ingest(["persisted"], user_id="u")
    client.close()
    restarted = env.client(client.instance_id, credentials_dir=client.credentials_dir.parent)
    restarted.initialize()
    assert restarted.get_context(user_id="u").memories[0].content == "persisted"
    assert _serial(env, restarted) == _serial(env, client)


def test_a_key_that_does_not_match_its_certificate_is_refused(env: Env) -> None:
    first, second = env.ready(), env.ready()
    path = first.credentials_dir / "credentials.json"
    document = json.loads(path.read_text())
    other = json.loads((second.credentials_dir / "credentials.json").read_text())
    document["private_key"] = other["private_key"]
    path.write_text(json.dumps(document))
    restarted = env.client(first.instance_id, credentials_dir=first.credentials_dir.parent)
    with pytest.raises(exc.AuthenticationError, match="does not match the private key"):
        restarted.initialize()


def test_short_rate_limits_are_absorbed_by_the_policy(env: Env) -> None:
    client = env.ready()
    client.ingest(["x"], user_id="u")
    env.emu.faults.inject("context", "rate_limit", times=2, retry_after=0.25)
    assert len(client.get_context(user_id="u").memories) == 1
    assert env.clock.sleeps == [0.25, 0.25]


def test_retries_off_surface_the_first_transient_error(env: Env) -> None:
    client = env.ready(config=SDKConfig(retry_policy=None))
    env.emu.faults.inject("context", "agent_unavailable")
    with pytest.raises(exc.AgentUnavailableError) as raised:
        client.get_context(user_id="u")
    assert len(raised.value.attempts) == 1 and env.clock.sleeps == []


def test_a_dropped_ingest_is_retried_with_its_idempotency_key(env: Env) -> None:
    client = env.ready()
    env.emu.faults.inject("ingest", "drop")  # the connection dies: outcome unknown
    result = client.ingest(["exactly once"], user_id="u")
    assert len(result.memory_ids) == 1
    assert [m.content for m in client.get_context(user_id="u").memories] == ["exactly once"]
    assert env.emu.faults.served[("ingest", "drop")] == 1


def test_a_bootstrap_outage_is_retried_without_burning_the_token(env: Env) -> None:
    instance_id, token = env.fresh()
    env.emu.faults.inject("bootstrap", "service_unavailable", times=2)
    client = env.client(instance_id)
    client.initialize(bootstrap_token=token)
    assert client.certificate_status().state == "valid"
    assert len(env.clock.sleeps) == 2


def test_an_untrusted_server_is_an_authentication_error_and_sends_nothing(env: Env) -> None:
    instance_id, token = env.fresh()
    stranger = CertificateAuthority.generate().certificate_pem
    client = env.client(instance_id, trust_root=stranger)
    with pytest.raises(exc.AuthenticationError):
        client.initialize(bootstrap_token=token)
    # Verification failed before the token left the machine: it is still usable.
    env.client(instance_id).initialize(bootstrap_token=token)


def test_retry_policy_exhaustion_keeps_the_correlation_id_across_attempts(env: Env) -> None:
    client = env.ready(config=SDKConfig(retry_policy=RetryPolicy(max_attempts=2)))
    env.emu.faults.inject("context", "service_unavailable", times=2)
    before = len(env.emu.requests)
    with pytest.raises(exc.ServiceUnavailableError) as raised:
        client.get_context(user_id="u")
    correlation_id = raised.value.correlation_id
    assert correlation_id
    assert correlation_id in str(raised.value)
    sent = [cid for operation, cid in env.emu.requests[before:] if operation == "context"]
    assert sent == [correlation_id, correlation_id]  # both attempts, one logical call
    with pytest.raises(exc.ContextNotFoundError):  # nothing stored for "u"
        client.get_context(user_id="u")  # a new call gets a new id
    assert env.emu.requests[-1][1] not in (None, correlation_id)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"url": "http://127.0.0.1:1"}, ValueError),
        ({"url": None}, ValueError),
        ({"trust_root": b"not a certificate"}, ValueError),
        ({"trust_root": 42}, TypeError),
        ({"config": "not a config"}, TypeError),
    ],
)
def test_bad_construction_arguments_are_usage_errors(
    env: Env, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    instance_id, _ = env.fresh()
    with pytest.raises(error):
        env.client(instance_id, **kwargs)


def test_calls_before_initialize_are_usage_errors(env: Env) -> None:
    instance_id, _ = env.fresh()
    client = env.client(instance_id)
    with pytest.raises(RuntimeError, match="initialize"):
        client.get_context(user_id="u")
    with pytest.raises(RuntimeError, match="initialize"):
        client.listen(on_message=print)
    with pytest.raises(TypeError):
        client.initialize(bootstrap_token=123)  # type: ignore[arg-type]


def test_bad_memory_arguments_are_type_errors(env: Env) -> None:
    client = env.ready()
    with pytest.raises(TypeError):
        client.ingest("a bare string", user_id="u")
    with pytest.raises(TypeError):
        client.ingest([42], user_id="u")  # type: ignore[list-item]


def test_memories_carry_metadata_and_forget_empties_the_context(env: Env) -> None:
    client = env.ready()
    conversation = client.create_conversation()
    client.ingest(
        [{"content": "ordered pizza", "metadata": {"channel": "chat"}}, "likes olives"],
        conversation_id=conversation,
    )
    context = client.get_context(conversation_id=conversation, limit=1)
    assert context.conversation_id == conversation and context.user_id is None
    assert [m.content for m in context.memories] == ["likes olives"]
    full = client.get_context(conversation_id=conversation)
    assert full.memories[0].metadata == {"channel": "chat"}
    assert client.forget(conversation_id=conversation) == 2
    with pytest.raises(exc.ContextNotFoundError):
        client.get_context(conversation_id=conversation)


@pytest.mark.anyio
async def test_async_client_covers_the_same_lifecycle(env: Env) -> None:
    instance_id, token = env.fresh()
    async with env.async_client(instance_id) as client:
        with pytest.raises(exc.BootstrapKeyInvalidError):
            await client.initialize(bootstrap_token="sbt_bad")
        await client.initialize(bootstrap_token=token)
        with pytest.raises(exc.ContextNotFoundError):
            await client.get_context(user_id="u")
        env.emu.faults.inject("ingest", "rate_limit", times=2, retry_after=1.5)
        await client.ingest(["async memory"], user_id="u")
        assert env.clock.sleeps == [1.5, 1.5]
        conversation = await client.create_conversation()
        with pytest.raises(exc.InvalidConversationIdError):
            await client.get_context(conversation_id="conv_ffffffffffffffff")
        await client.ingest(["in a conversation"], conversation_id=conversation)
        assert (await client.get_context(user_id="u")).memories[0].content == "async memory"
        before = client.certificate_status().serial
        env.clock.advance(5.5 * DAY)
        await client.initialize()
        assert client.certificate_status().serial != before
        env.clock.advance(31 * 60)
        with pytest.raises(exc.SessionExpiredError):
            await client.forget(user_id="u")
        await client.initialize()
        assert await client.forget(user_id="u") == 1
        await client.delete_conversation(conversation)
        await client.close_session()


def test_a_dropped_conversation_create_is_retried_without_a_duplicate(env: Env) -> None:
    client = env.ready()
    env.emu.faults.inject("conversation", "drop")
    conversation = client.create_conversation()
    client.ingest(["first words"], conversation_id=conversation)
    assert client.get_context(conversation_id=conversation).memories[0].content == "first words"
    assert env.emu.faults.served[("conversation", "drop")] == 1
