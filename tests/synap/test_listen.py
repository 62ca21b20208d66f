"""The listening stream: gRPC server streaming over mutual TLS, reconnects, stream errors."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from synapse_sdk import exceptions as exc
from synapse_sdk.clients.synap import ListenMessage
from synapse_sdk.config import RetryPolicy, SDKConfig

Env = Any
WAIT = 10.0  # generous bound for a cross-thread hand-off; tests finish far sooner


class Inbox:
    """Collects stream messages and errors from the listener thread."""

    def __init__(self) -> None:
        self.messages: queue.Queue[ListenMessage] = queue.Queue()
        self.errors: queue.Queue[exc.SynapError] = queue.Queue()

    def next(self) -> ListenMessage:
        return self.messages.get(timeout=WAIT)

    def error(self) -> exc.SynapError:
        return self.errors.get(timeout=WAIT)

    def listen(self, client: Any) -> None:
        client.listen(on_message=self.messages.put, on_error=self.errors.put)


def test_messages_arrive_in_order_with_the_backlog_first(env: Env) -> None:
    client, inbox = env.ready(), Inbox()
    client.ingest(["before listening"], user_id="u-1")
    inbox.listen(client)
    first = inbox.next()
    assert (first.kind, first.user_id, first.sequence) == ("memory_ingested", "u-1", 1)
    env.emu.publish(client.instance_id, "hello", conversation_id="conv_0123456789abcdef")
    second = inbox.next()
    assert (second.kind, second.content, second.sequence) == ("message", "hello", 2)
    assert second.conversation_id == "conv_0123456789abcdef" and second.user_id is None
    status = client.listening_status()
    assert status.connected and status.messages == 2 and status.last_sequence == 2
    client.stop_listening()
    assert not client.listening
    assert env.emu.open_streams(client.instance_id) in (0, 1)  # the server notices shortly


def test_a_dropped_stream_reconnects_and_resumes_without_loss_or_repeats(env: Env) -> None:
    client, inbox = env.ready(), Inbox()
    inbox.listen(client)
    env.emu.publish(client.instance_id, "one")
    assert inbox.next().content == "one"
    env.emu.faults.inject("listen", "service_unavailable")  # the first reconnect fails too
    assert env.emu.drop_streams(client.instance_id) == 1
    env.emu.publish(client.instance_id, "two")  # published while the client is away
    assert inbox.next().content == "two"
    env.emu.publish(client.instance_id, "three")
    assert inbox.next().content == "three"
    status = client.listening_status()
    assert status.reconnects == 2 and status.connections == 2 and status.messages == 3
    assert len(env.clock.sleeps) == 2  # backoff on the injected clock
    assert inbox.messages.empty() and inbox.errors.empty()
    client.stop_listening()


def test_a_rate_limited_reconnect_waits_the_servers_retry_after(env: Env) -> None:
    client, inbox = env.ready(), Inbox()
    inbox.listen(client)
    # Once a live event has arrived the server is past its backlog replay, so the drop below
    # ends the stream before the next event can be sent on it.
    env.emu.publish(client.instance_id, "live")
    assert inbox.next().content == "live"
    env.emu.faults.inject("listen", "rate_limit", retry_after=7.0)
    assert env.emu.drop_streams(client.instance_id) == 1
    env.emu.publish(client.instance_id, "after the limit")
    assert inbox.next().content == "after the limit"
    assert env.clock.sleeps[-1] == 7.0
    assert env.emu.faults.served[("listen", "rate_limit")] == 1
    client.stop_listening()


def test_listen_raises_when_the_first_connection_is_refused(env: Env) -> None:
    client = env.ready()
    env.clock.advance(31 * 60)
    with pytest.raises(exc.SessionExpiredError):
        client.listen(on_message=print)
    assert not client.listening
    with pytest.raises(exc.ListeningNotActiveError):
        client.stop_listening()
    client.initialize()
    client.listen(on_message=print)
    assert client.listening
    client.stop_listening()


def test_listen_gives_up_on_an_outage_after_the_policys_attempts(env: Env) -> None:
    client = env.ready(config=SDKConfig(retry_policy=RetryPolicy(max_attempts=3)))
    env.emu.faults.inject("listen", "agent_unavailable", times=3)
    with pytest.raises(exc.AgentUnavailableError):
        client.listen(on_message=print)
    assert len(env.clock.sleeps) == 2 and not client.listening


def test_a_permanent_error_mid_stream_ends_it_and_reaches_on_error(env: Env) -> None:
    client, inbox = env.ready(), Inbox()
    inbox.listen(client)
    env.emu.rotate_credentials(client.instance_id)
    error = inbox.error()
    assert isinstance(error, exc.AuthenticationError)
    assert "credentials" in str(error)
    assert not client.listening
    with pytest.raises(exc.ListeningNotActiveError):
        client.listening_status()


def test_an_invalidated_session_ends_the_stream_with_session_expired(env: Env) -> None:
    client, inbox = env.ready(), Inbox()
    inbox.listen(client)
    env.emu.invalidate_sessions(client.instance_id)
    assert isinstance(inbox.error(), exc.SessionExpiredError)
    client.initialize()  # recovers: a new session, and listening may start again
    inbox.listen(client)
    env.emu.publish(client.instance_id, "resumed")
    assert inbox.next().content == "resumed"
    client.stop_listening()


def test_retries_off_means_a_drop_ends_the_stream(env: Env) -> None:
    client, inbox = env.ready(config=SDKConfig(retry_policy=None)), Inbox()
    inbox.listen(client)
    env.emu.drop_streams(client.instance_id)
    assert isinstance(inbox.error(), exc.ServiceUnavailableError)


def test_a_failing_callback_does_not_end_the_stream(env: Env) -> None:
    client, inbox = env.ready(), Inbox()

    def on_message(message: ListenMessage) -> None:
        if message.content == "boom":
            raise ValueError("callback bug")
        inbox.messages.put(message)

    client.listen(on_message=on_message)
    env.emu.publish(client.instance_id, "boom")
    env.emu.publish(client.instance_id, "fine")
    assert inbox.next().content == "fine"
    client.stop_listening()


def test_the_stream_renews_the_certificate_before_reconnecting(env: Env) -> None:
    client, inbox = env.ready(), Inbox()
    inbox.listen(client)
    before = client.certificate_status().serial
    # 5 days pass while connected (the stream keeps running); then the server drops it. The
    # session expired meanwhile, so the reconnect renews the certificate, then is refused.
    env.clock.advance(5 * 86_400)
    env.emu.drop_streams(client.instance_id)
    assert isinstance(inbox.error(), exc.SessionExpiredError)
    assert client.certificate_status().serial != before


@pytest.mark.anyio
async def test_async_listen_and_stream_errors(env: Env) -> None:
    instance_id, token = env.fresh()
    received: list[ListenMessage] = []
    arrived = __import__("asyncio").Event()

    async def on_message(message: ListenMessage) -> None:
        received.append(message)
        arrived.set()

    async with env.async_client(instance_id) as client:
        await client.initialize(bootstrap_token=token)
        with pytest.raises(exc.ListeningNotActiveError):
            await client.stop_listening()
        await client.listen(on_message)
        with pytest.raises(exc.ListeningAlreadyActiveError):
            await client.listen(on_message)
        env.emu.publish(instance_id, "async hello")
        await __import__("asyncio").wait_for(arrived.wait(), WAIT)
        assert received[0].content == "async hello"
        assert client.listening_status().messages == 1
        await client.stop_listening()
        with pytest.raises(exc.ListeningNotActiveError):
            client.listening_status()


def test_closing_the_session_ends_the_stream_at_its_next_reconnect(env: Env) -> None:
    client, inbox = env.ready(), Inbox()
    inbox.listen(client)
    client.close_session()
    env.emu.drop_streams(client.instance_id)
    error = inbox.error()
    assert isinstance(error, exc.SessionExpiredError) and "closed" in str(error)
    assert not client.listening
