"""The transport: every status and httpx error mapped to the tree, the chain intact, correlation
ids and idempotency keys reused across retries, Retry-After honoured, secrets kept out."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
from clients_support import (
    BASE,
    TENANT,
    TOKEN,
    Clock,
    Scripted,
    config,
    envelope,
    policy,
    reply,
)

from synapse_sdk.clients import _transport as transport_module
from synapse_sdk.clients._transport import (
    ERROR_BODY_LIMIT,
    HTTPX_ERROR_MAP,
    HTTPX_NOT_MAPPED,
    AsyncTransport,
    ClientCertificate,
    ErrorContext,
    Response,
    Transport,
    map_transport_error,
    redact_headers,
)
from synapse_sdk.config import SDKConfig
from synapse_sdk.envelopes import find_envelope
from synapse_sdk.exceptions import (
    AuthenticationError,
    BackendAgentUnavailableError,
    BackendAuthenticationError,
    BackendCertificateRenewalError,
    BackendError,
    BackendInvalidConversationIdError,
    BackendInvalidInputError,
    BackendRateLimitError,
    BackendServiceUnavailableError,
    InvalidInputError,
    NetworkTimeoutError,
    ServiceUnavailableError,
    SessionExpiredError,
    SynapError,
    SynapTransientError,
)

NO_RETRY = config(SDKConfig().effective_retry_policy.disabled())


def make_sync(handler: Callable[..., Any], clock: Clock, cfg: SDKConfig | None = None) -> Transport:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Transport(cfg or config(), http_client=http, sleep=clock.sleep, clock=clock)


def make_async(
    handler: Callable[..., Any], clock: Clock, cfg: SDKConfig | None = None
) -> AsyncTransport:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AsyncTransport(cfg or config(), http_client=http, sleep=clock.asleep, clock=clock)


Call = Callable[..., Response]


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest, clock: Clock) -> Callable[..., Call]:
    """``call(handler, cfg)`` → a function sending one request through a sync or async
    transport (the async one run on its own event loop) and returning the response."""

    def factory(handler: Callable[..., Any], cfg: SDKConfig | None = None) -> Call:
        if request.param == "sync":
            transport = make_sync(handler, clock, cfg)
            return lambda method="GET", path="/v2/tasks/", **kw: transport.request(
                method, path, **kw
            )
        atransport = make_async(handler, clock, cfg)

        def run(method: str = "GET", path: str = "/v2/tasks/", **kw: Any) -> Response:
            return asyncio.run(atransport.request(method, path, **kw))

        return run

    return factory


# --- statuses --------------------------------------------------------------------------------

STATUS_TABLE = [
    # status, code, expected class, outcome_unknown
    (400, "invalid_ids", BackendInvalidInputError, False),
    (422, "validation_failed", BackendInvalidInputError, False),
    (401, "unauthorized", BackendAuthenticationError, False),
    (403, "forbidden", BackendAuthenticationError, False),
    (404, "not_found", BackendInvalidInputError, False),
    (408, "request_timeout", BackendServiceUnavailableError, False),
    (409, "conflict", BackendError, False),
    (410, "gone", BackendError, False),
    (429, "rate_limited", BackendRateLimitError, False),
    (500, "internal", BackendServiceUnavailableError, True),
    (502, "bad_gateway", BackendServiceUnavailableError, True),
    (503, "service_unavailable", BackendServiceUnavailableError, False),
    (503, "agent_unavailable", BackendAgentUnavailableError, False),
    (504, "gateway_timeout", BackendServiceUnavailableError, True),
    (501, "not_implemented", BackendError, False),
    (505, "http_version", BackendError, False),
    (301, "moved", BackendError, False),
    # The platform's v2 codes (docs/backend-api.md).
    (400, "VALIDATION_ERROR", BackendInvalidInputError, False),
    (400, "ids_limit_exceeded", BackendInvalidInputError, False),
    (401, "NOT_AUTHENTICATED", BackendAuthenticationError, False),
    (401, "AUTHENTICATION_FAILED", BackendAuthenticationError, False),
    (403, "PERMISSION_DENIED", BackendAuthenticationError, False),
    (404, "NOT_FOUND", BackendInvalidInputError, False),
]


def test_the_real_error_body_gives_code_message_and_its_request_id(
    call: Callable[..., Call]
) -> None:
    body = {"error": {"code": "VALIDATION_ERROR", "message": "ids: not a list",
                      "details": [{"field": "ids", "message": "not a list"}]},
            "meta": {"request_id": "req_abc123def456"}}
    handler = Scripted([reply(400, body)])
    with pytest.raises(BackendInvalidInputError) as info:
        call(handler, NO_RETRY)()
    assert info.value.error_code == "VALIDATION_ERROR"
    assert info.value.detail == "ids: not a list"
    assert "request_id=req_abc123def456" in str(info.value)


@pytest.mark.parametrize(("status", "code", "cls", "unknown"), STATUS_TABLE)
def test_status_mapping(
    call: Callable[..., Call], status: int, code: str, cls: type[BackendError], unknown: bool
) -> None:
    handler = Scripted([envelope(code, status, invalid_ids=[7]) if status == 400 else
                        envelope(code, status)])
    send = call(handler, NO_RETRY)
    with pytest.raises(BackendError) as info:
        send()
    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.error_code == code
    assert exc.detail == f"{code} happened"
    assert exc.outcome_unknown is unknown
    assert exc.correlation_id == handler.requests[0].headers["x-correlation-id"]
    assert exc.envelope is not None
    assert exc.envelope.to_json() in str(exc)
    assert find_envelope(str(exc)) == exc.envelope
    if status == 400:
        assert exc.failed_ids == (7,)
    assert isinstance(exc, SynapTransientError) is (
        cls in (BackendServiceUnavailableError, BackendRateLimitError,
                BackendAgentUnavailableError)
    )


@pytest.mark.parametrize("status", [200, 201, 204, 207])
def test_success_statuses_return_the_response(call: Callable[..., Call], status: int) -> None:
    body = {"data": [], "meta": {"request_id": "r1"}}
    send = call(Scripted([reply(status, body, {"X-Request-ID": "r1"})]))
    response = send("POST", "/v2/tasks/bulk-fetch/", json={"ids": [1]})
    assert response.status_code == status
    assert response.json() == body
    assert response.request_id == "r1"


def test_non_json_error_body_still_gives_the_right_class(call: Callable[..., Call]) -> None:
    send = call(Scripted([reply(503, b"<html>upstream down</html>")]), NO_RETRY)
    with pytest.raises(BackendServiceUnavailableError) as info:
        send()
    assert info.value.envelope is None
    assert info.value.error_code is None
    assert "upstream down" in str(info.value)


def test_truncated_json_error_body_gives_the_class_without_envelope(
    call: Callable[..., Call],
) -> None:
    send = call(Scripted([reply(429, b'{"error": {"code": "rate_li', {"Retry-After": "2"})]),
                NO_RETRY)
    with pytest.raises(BackendRateLimitError) as info:
        send()
    assert info.value.envelope is None
    assert info.value.retry_after_seconds == 2.0


def test_error_body_read_is_bounded(clock: Clock) -> None:
    pulled: list[int] = []

    def body() -> Iterator[bytes]:
        for _ in range(1024):  # 8 MB offered
            pulled.append(8192)
            yield b"x" * 8192

    transport = make_sync(lambda request: httpx.Response(500, content=body()), clock, NO_RETRY)
    with pytest.raises(BackendServiceUnavailableError):
        transport.request("GET", "/v2/tasks/")
    assert sum(pulled) <= ERROR_BODY_LIMIT + 8192


def test_success_body_over_the_bound_is_refused(call: Callable[..., Call]) -> None:
    send = call(Scripted([reply(200, b"y" * 5000)]), NO_RETRY)
    with pytest.raises(BackendError) as info:
        send(max_bytes=1000)
    assert info.value.error_code == "response_too_large"
    assert not isinstance(info.value, SynapTransientError)


def test_streamed_success_body_over_the_bound_is_refused(clock: Clock) -> None:
    def body() -> Iterator[bytes]:
        yield from (b"z" * 600 for _ in range(10))

    transport = make_sync(lambda request: httpx.Response(200, content=body()), clock, NO_RETRY)
    with pytest.raises(BackendError, match="1000-byte bound") as info:
        transport.request("GET", "/v2/tasks/", max_bytes=1000)
    assert info.value.error_code == "response_too_large"


def test_malformed_success_json_is_a_permanent_backend_error(call: Callable[..., Call]) -> None:
    response = call(Scripted([reply(200, b"{not json")]))()
    with pytest.raises(BackendError) as info:
        response.json()
    assert info.value.error_code == "malformed_response"
    assert isinstance(info.value.__cause__, ValueError)


# --- httpx and OS errors ------------------------------------------------------------------------

REQ = httpx.Request("GET", BASE)


def _instance(cls: type[Exception]) -> Exception:
    """An instance of any httpx exception class, whatever its constructor wants."""
    params = inspect.signature(cls.__init__).parameters
    if "response" in params:
        return cls("boom", request=REQ, response=httpx.Response(500, request=REQ))  # type: ignore[call-arg]
    if "request" in params:
        return cls("boom", request=REQ)  # type: ignore[call-arg]
    if "message" in params:
        return cls("boom")
    return cls()


ERROR_TABLE = [
    (httpx.ConnectTimeout, NetworkTimeoutError, False),
    (httpx.PoolTimeout, NetworkTimeoutError, False),
    (httpx.ReadTimeout, NetworkTimeoutError, True),
    (httpx.WriteTimeout, NetworkTimeoutError, True),
    (httpx.ConnectError, ServiceUnavailableError, False),
    (httpx.ProxyError, ServiceUnavailableError, False),
    (httpx.ReadError, ServiceUnavailableError, True),
    (httpx.WriteError, ServiceUnavailableError, True),
    (httpx.CloseError, ServiceUnavailableError, True),
    (httpx.RemoteProtocolError, ServiceUnavailableError, True),
    (httpx.LocalProtocolError, InvalidInputError, False),
    (httpx.UnsupportedProtocol, InvalidInputError, False),
    (httpx.InvalidURL, InvalidInputError, False),
    (httpx.DecodingError, ServiceUnavailableError, True),
    (httpx.TooManyRedirects, BackendError, False),
]


@pytest.mark.parametrize(("raised", "cls", "unknown"), ERROR_TABLE)
def test_httpx_error_mapping(
    call: Callable[..., Call], raised: type[Exception], cls: type[SynapError], unknown: bool
) -> None:
    original = _instance(raised)
    handler = Scripted([original])
    with pytest.raises(SynapError) as info:
        call(handler, NO_RETRY)()
    exc = info.value
    assert type(exc) is cls or (cls is BackendError and type(exc) is BackendError)
    assert exc.__cause__ is original
    assert exc.outcome_unknown is unknown
    assert exc.correlation_id == handler.requests[0].headers["x-correlation-id"]
    assert type(original).__name__ in str(exc)


def test_every_httpx_exception_class_is_mapped_or_deliberately_not() -> None:
    exported = {
        obj
        for obj in vars(httpx).values()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    }
    assert exported, "httpx exports no exception classes?"
    unaccounted = exported - set(HTTPX_ERROR_MAP) - set(HTTPX_NOT_MAPPED)
    assert not unaccounted, f"map these httpx exceptions: {sorted(c.__name__ for c in unaccounted)}"
    assert not set(HTTPX_ERROR_MAP) & set(HTTPX_NOT_MAPPED)
    for cls in HTTPX_NOT_MAPPED:
        assert not issubclass(cls, httpx.HTTPError)


@pytest.mark.parametrize("cls", sorted(HTTPX_ERROR_MAP, key=lambda c: c.__name__))
def test_every_mapped_class_yields_an_sdk_error(cls: type[Exception]) -> None:
    error = map_transport_error(_instance(cls), method="GET", path="/p", correlation_id="c")
    assert isinstance(error, SynapError)
    assert error.correlation_id == "c"


def test_http_status_error_from_a_hook_is_mapped_by_its_status() -> None:
    response = httpx.Response(429, json={"error": {"code": "rate_limited", "retry_after": 3}},
                              request=REQ)
    response.read()
    exc = httpx.HTTPStatusError("429", request=REQ, response=response)
    error = map_transport_error(exc, method="GET", path="/p")
    assert isinstance(error, BackendRateLimitError)
    assert error.retry_after_seconds == 3


def test_unmapped_foreign_errors_are_refused_by_the_mapper() -> None:
    with pytest.raises(TypeError):
        map_transport_error(KeyError("x"), method="GET", path="/p")


def test_tls_verification_failure_is_permanent_authentication_error(
    call: Callable[..., Call],
) -> None:
    cause = ssl.SSLCertVerificationError("certificate verify failed: self-signed certificate")
    connect = httpx.ConnectError("verify failed")
    connect.__cause__ = cause
    handler = Scripted([connect])
    with pytest.raises(AuthenticationError) as info:
        call(handler)()
    assert info.value.__cause__ is connect
    assert len(handler.requests) == 1  # not retried


def test_a_bare_tls_verification_error_from_a_custom_transport_is_not_retried(
    call: Callable[..., Call],
) -> None:
    bare = ssl.SSLCertVerificationError("certificate verify failed: unable to get local issuer")
    handler = Scripted([bare])
    with pytest.raises(AuthenticationError) as info:
        call(handler)()
    assert info.value.__cause__ is bare
    assert len(handler.requests) == 1  # permanent: not a broken connection to retry


def test_raw_os_error_counts_as_a_broken_connection(call: Callable[..., Call]) -> None:
    original = ConnectionResetError(104, "Connection reset by peer")
    with pytest.raises(ServiceUnavailableError) as info:
        call(Scripted([original]), NO_RETRY)()
    assert info.value.__cause__ is original
    assert info.value.outcome_unknown


def test_stream_misuse_passes_through_unmapped(call: Callable[..., Call]) -> None:
    with pytest.raises(httpx.StreamConsumed):
        call(Scripted([httpx.StreamConsumed()]))()


# --- retries, correlation ids, idempotency keys --------------------------------------------------


def test_correlation_id_is_reused_across_retries_and_attached(
    call: Callable[..., Call], clock: Clock
) -> None:
    handler = Scripted([envelope("service_unavailable", 503)] * 3)
    with pytest.raises(BackendServiceUnavailableError) as info:
        call(handler)()
    sent = {r.headers["x-correlation-id"] for r in handler.requests}
    assert len(handler.requests) == 3
    assert len(sent) == 1
    assert info.value.correlation_id == sent.pop()
    assert len(info.value.attempts) == 3
    assert clock.sleeps == [0.5, 1.0]


def test_each_logical_call_gets_its_own_correlation_id(clock: Clock) -> None:
    handler = Scripted([reply(200, {}), reply(200, {})])
    transport = make_sync(handler, clock)
    first = transport.request("GET", "/v2/tasks/")
    second = transport.request("GET", "/v2/tasks/")
    assert first.correlation_id != second.correlation_id
    assert [r.headers["x-correlation-id"] for r in handler.requests] == [
        first.correlation_id, second.correlation_id,
    ]


def test_idempotency_key_is_reused_across_retries(call: Callable[..., Call]) -> None:
    handler = Scripted([httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"),
                        reply(200, {"data": []})])
    response = call(handler)("POST", "/v2/tasks/bulk-fetch/", json={"ids": [1]})
    assert response.status_code == 200
    keys = [r.headers["idempotency-key"] for r in handler.requests]
    assert len(keys) == 3 and len(set(keys)) == 1 and len(keys[0]) == 32


def test_get_carries_no_idempotency_key(call: Callable[..., Call]) -> None:
    handler = Scripted([reply(200, {})])
    call(handler)()
    assert "idempotency-key" not in handler.requests[0].headers


def test_caller_supplied_idempotency_key_is_used(call: Callable[..., Call]) -> None:
    handler = Scripted([httpx.ReadTimeout("slow"), reply(200, {})])
    call(handler)("POST", "/v2/x/", json={}, idempotency_key="my-key")
    assert [r.headers["idempotency-key"] for r in handler.requests] == ["my-key", "my-key"]


@pytest.mark.parametrize(
    "failure",
    [lambda: httpx.ReadTimeout("slow"), lambda: httpx.RemoteProtocolError("peer closed"),
     lambda: envelope("internal", 500)],
    ids=["read-timeout", "dropped", "500"],
)
def test_outcome_unknown_on_an_unkeyed_post_is_not_retried(
    call: Callable[..., Call], failure: Callable[[], Any]
) -> None:
    handler = Scripted([failure(), reply(200, {})])
    with pytest.raises(SynapTransientError) as info:
        call(handler)("POST", "/v2/x/", json={}, idempotency_key=False)
    assert info.value.outcome_unknown
    assert len(handler.requests) == 1
    assert "idempotency-key" not in handler.requests[0].headers


def test_outcome_known_failure_on_an_unkeyed_post_is_retried(call: Callable[..., Call]) -> None:
    handler = Scripted([httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"),
                        reply(200, {})])
    assert call(handler)("POST", "/v2/x/", json={}, idempotency_key=False).status_code == 200
    assert len(handler.requests) == 3


def test_get_is_retried_after_an_outcome_unknown_failure(call: Callable[..., Call]) -> None:
    handler = Scripted([httpx.ReadTimeout("slow"), envelope("internal", 502), reply(200, {})])
    assert call(handler)().status_code == 200


def test_permanent_errors_are_not_retried(call: Callable[..., Call]) -> None:
    handler = Scripted([envelope("unauthorized", 401), reply(200, {})])
    with pytest.raises(BackendAuthenticationError):
        call(handler)()
    assert len(handler.requests) == 1


# --- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body_retry_after", "expected"),
    [
        ({"Retry-After": "1.5"}, None, 1.5),
        ({"Retry-After": "3", "retry-after-ms": "250"}, None, 0.25),
        ({}, 2.5, 2.5),
        ({"Retry-After": "4"}, 9.0, 4.0),
    ],
    ids=["seconds", "ms-first", "envelope-fallback", "header-over-envelope"],
)
def test_retry_after_is_honoured_exactly(
    call: Callable[..., Call],
    clock: Clock,
    headers: dict[str, str],
    body_retry_after: float | None,
    expected: float,
) -> None:
    extra = {} if body_retry_after is None else {"retry_after": body_retry_after}
    limited = reply(429, {"error": {"code": "rate_limited", **extra}}, headers)
    handler = Scripted([limited, reply(200, {})])
    call(handler)()
    assert clock.sleeps == [expected]


def test_retry_after_over_the_policy_cap_surfaces_at_once(
    call: Callable[..., Call], clock: Clock
) -> None:
    handler = Scripted([envelope("rate_limited", 429, retry_after=600)])
    with pytest.raises(BackendRateLimitError) as info:
        call(handler)()
    assert info.value.retry_after_seconds == 600
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3600", None),
        ("DAY_AHEAD", None),
        ("1e999", None),
        ("9" * 400, None),
        ("0", 0.0),
        ("garbage", 0.5),  # no hint: the policy's backoff
    ],
)
def test_hostile_retry_after_headers_never_wait_past_the_policy(
    call: Callable[..., Call], clock: Clock, header: str, expected: float | None
) -> None:
    if header == "DAY_AHEAD":
        header = formatdate(time.time() + 86_400, usegmt=True)
    handler = Scripted([reply(429, {}, {"Retry-After": header}), reply(200, {})])
    if expected is None:
        with pytest.raises(BackendRateLimitError):
            call(handler)()
        assert clock.sleeps == [] and len(handler.requests) == 1
    else:
        call(handler)()
        assert clock.sleeps == ([expected] if expected else [])


def test_the_transport_builds_its_retry_engine_once(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    built: list[object] = []
    original = transport_module.Retrying.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(transport_module.Retrying, "__init__", counting)
    handler = Scripted([reply(200, {})] * 3)
    transport = make_sync(handler, clock)
    for _ in range(3):
        transport.request("GET", "/v2/tasks/")
    assert len(built) == 1


# --- deadline and per-attempt timeouts -----------------------------------------------------------


def test_attempt_timeout_is_capped_by_the_remaining_deadline(
    call: Callable[..., Call], clock: Clock
) -> None:
    cfg = config(policy(deadline=10.0))
    handler = Scripted([envelope("service_unavailable", 503), reply(200, {})])
    call(handler, cfg)()
    first, second = (r.extensions["timeout"] for r in handler.requests)
    assert first == {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 5.0}
    assert second["read"] == pytest.approx(9.5)
    assert second["connect"] == 5.0
    plain = Scripted([reply(200, {})])
    call(plain)()
    assert plain.requests[0].extensions["timeout"]["read"] == 30.0


# --- secrets and logs ----------------------------------------------------------------------------


def test_token_never_in_messages_reprs_or_logs(
    call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    echoed = reply(401, {"error": {"code": "unauthorized", "detail": f"bad token {TOKEN}"}},
                   {"X-Request-ID": f"req-{TOKEN}"})
    raw = reply(500, f"<pre>Authorization: Bearer {TOKEN}</pre>".encode())
    caplog.set_level(logging.DEBUG)
    for failure in (echoed, raw, httpx.ConnectError(f"cannot reach with {TOKEN}")):
        handler = Scripted([failure])
        with pytest.raises(SynapError) as info:
            call(handler, NO_RETRY)()
        assert handler.requests[0].headers["synapse-access-token"] == TOKEN
        assert TOKEN not in str(info.value)
        assert TOKEN not in repr(info.value)
        assert "[REDACTED]" in str(info.value)
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(vars(record))


def test_reprs_do_not_show_the_token(clock: Clock) -> None:
    transport = make_sync(Scripted([]), clock)
    assert TOKEN not in repr(transport)
    assert TOKEN not in repr(transport.config)
    assert "backend.test" in repr(transport)


def test_log_events_carry_structured_fields(
    call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="synapse_sdk.http")
    handler = Scripted([envelope("service_unavailable", 503), reply(200, {})])
    call(handler)("GET", "/v2/tasks/")
    events = [(r.getMessage(), r) for r in caplog.records if r.name == "synapse_sdk.http"]
    names = [name for name, _ in events]
    assert names == [
        "synapse_sdk.http.request",
        "synapse_sdk.http.response",
        "synapse_sdk.http.error",
        "synapse_sdk.http.request",
        "synapse_sdk.http.response",
    ]
    cid = handler.requests[0].headers["x-correlation-id"]
    request_record = events[0][1]
    assert request_record.method == "GET"  # type: ignore[attr-defined]
    assert request_record.path == "/v2/tasks/"  # type: ignore[attr-defined]
    assert request_record.correlation_id == cid  # type: ignore[attr-defined]
    assert request_record.attempt == 1  # type: ignore[attr-defined]
    logged = request_record.headers  # type: ignore[attr-defined]
    assert logged["SYNAPSE-ACCESS-TOKEN"] == "[REDACTED]"
    assert logged["SYNAPSE-Tenant"] == TENANT  # the tenant code is not a secret
    assert events[2][1].status == 503  # type: ignore[attr-defined]
    assert events[3][1].attempt == 2  # type: ignore[attr-defined]


def test_redact_headers() -> None:
    headers = {"Authorization": "Token x", "cookie": "a=b", "X-Correlation-ID": "c",
               "SYNAPSE-ACCESS-TOKEN": "syn_x"}
    assert redact_headers(headers) == {
        "Authorization": "[REDACTED]", "cookie": "[REDACTED]", "X-Correlation-ID": "c",
        "SYNAPSE-ACCESS-TOKEN": "[REDACTED]",
    }


# --- URLs, stats, construction -------------------------------------------------------------------


def test_token_is_sent_only_to_the_backend_origin(clock: Clock) -> None:
    handler = Scripted([reply(200, {}), reply(200, {}), reply(200, {})])
    transport = make_sync(handler, clock)
    transport.request("GET", "/v2/files/tasks/1/original")
    transport.request("GET", f"{BASE}/v2/files/tasks/2/original")
    transport.request("GET", "https://storage.example/bucket/3?sig=abc")
    assert str(handler.requests[0].url) == f"{BASE}/v2/files/tasks/1/original"
    sent = [(r.headers.get("synapse-access-token"), r.headers.get("synapse-tenant"))
            for r in handler.requests]
    assert sent == [(TOKEN, TENANT), (TOKEN, TENANT), (None, None)]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("access", {"synapse-access-token": TOKEN, "synapse-tenant": TENANT}),
     ("drf", {"authorization": f"Token {TOKEN}", "synapse-tenant": TENANT})],
)
def test_the_token_kind_picks_the_credential_header(
    clock: Clock, kind: str, expected: dict[str, str]
) -> None:
    handler = Scripted([reply(200, {})])
    http = httpx.Client(transport=httpx.MockTransport(handler))
    Transport(config(token_kind=kind), http_client=http).request("GET", "/v2/tasks/")
    sent = {k: v for k, v in handler.requests[0].headers.items()
            if k in ("authorization", "synapse-access-token", "synapse-tenant")}
    assert sent == expected


def test_a_tenant_argument_overrides_the_config_and_is_validated(clock: Clock) -> None:
    handler = Scripted([reply(200, {})])
    http = httpx.Client(transport=httpx.MockTransport(handler))
    transport = Transport(config(), tenant="other", http_client=http)
    transport.request("GET", "/v2/tasks/")
    assert handler.requests[0].headers["synapse-tenant"] == "other"
    assert "tenant='other'" in repr(transport) and TOKEN not in repr(transport)
    for bad in ("", "a b", "x\ny"):
        with pytest.raises(ValueError, match="tenant"):
            Transport(config(), tenant=bad, http_client=http)


def test_stats_count_requests_and_retries(clock: Clock) -> None:
    handler = Scripted([httpx.ConnectError("refused"), reply(200, {}), reply(200, {})])
    transport = make_sync(handler, clock)
    transport.request("GET", "/a")
    transport.request("GET", "/b")
    assert transport.stats.as_dict() == {"requests": 3, "retries": 1, "items_retried": 0}


def test_tls_verification_cannot_be_switched_off() -> None:
    with pytest.raises(ValueError, match="cannot be switched off"):
        Transport(config(), verify=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be switched off"):
        Transport(config(), verify=True)  # type: ignore[arg-type]
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="does not verify"):
        Transport(config(), verify=lax)
    with pytest.raises(ValueError, match="disables TLS verification"):
        Transport(config(), http_client=httpx.Client(verify=False))
    with pytest.raises(ValueError, match="disables TLS verification"):
        AsyncTransport(config(), http_client=httpx.AsyncClient(verify=False))


def test_custom_ca_bundle_or_context_is_accepted(tmp_path: Any) -> None:
    with Transport(config(), verify=ssl.create_default_context()) as transport:
        assert transport.base_url == BASE
    with Transport(config(), verify=ssl.get_default_verify_paths().openssl_cafile
                   or "/etc/ssl/certs/ca-certificates.crt"):
        pass
    with pytest.raises(ValueError, match="cannot load the CA certificates of verify="):
        Transport(config(), verify=tmp_path / "missing.pem")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"config": SDKConfig()}, ValueError, "no backend URL"),
        ({"base_url": "ftp://x"}, ValueError, "http"),
        ({"base_url": "not a url"}, ValueError, "http"),
        ({"base_url": "https://user:pw@host"}, ValueError, "credentials"),
        ({"base_url": 5}, TypeError, "base_url"),
        ({"token": "a\nb"}, ValueError, "token"),
        ({"token": ""}, ValueError, "token"),
        ({"token": 12}, TypeError, "token"),
        ({"config": {"backend_url": BASE}}, TypeError, "SDKConfig"),
        ({"http_client": httpx.AsyncClient()}, TypeError, "httpx.Client"),
        ({"verify": 3}, TypeError, "verify"),
    ],
)
def test_bad_construction_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    args = {"config": config()} | kwargs
    with pytest.raises(error, match=match):
        Transport(**args)


def test_bad_token_error_never_echoes_it() -> None:
    with pytest.raises(ValueError) as info:
        Transport(config(), token=" secret-value-xyz ")
    assert "secret-value-xyz" not in str(info.value)


def test_bad_paths_are_refused(clock: Clock) -> None:
    transport = make_sync(Scripted([]), clock)
    with pytest.raises(ValueError, match="start with '/'"):
        transport.request("GET", "v2/tasks/")
    with pytest.raises(ValueError, match="max_bytes"):
        transport.request("GET", "/v2/tasks/", max_bytes=0)


def test_base_url_with_prefix_and_trailing_slash(clock: Clock) -> None:
    handler = Scripted([reply(200, {})])
    http = httpx.Client(transport=httpx.MockTransport(handler))
    transport = Transport(config(), base_url="https://h.test/api/", http_client=http)
    transport.request("GET", "/v2/tasks/")
    assert str(handler.requests[0].url) == "https://h.test/api/v2/tasks/"


def test_own_client_is_closed_and_callers_client_is_not() -> None:
    own = Transport(config())
    own.close()
    assert own._client.is_closed
    http = httpx.Client()
    with Transport(config(), http_client=http):
        pass
    assert not http.is_closed
    http.close()


# --- async-specific ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_retry_reuses_correlation_and_key(clock: Clock) -> None:
    handler = Scripted([envelope("rate_limited", 429, retry_after=1.25),
                        httpx.ReadError("reset"), reply(207, {"data": []})])
    async with make_async(handler, clock) as transport:
        response = await transport.request("POST", "/v2/tasks/bulk-fetch/", json={"ids": [1]})
    assert response.status_code == 207
    assert len({r.headers["x-correlation-id"] for r in handler.requests}) == 1
    assert len({r.headers["idempotency-key"] for r in handler.requests}) == 1
    assert clock.sleeps == [1.25, 1.0]  # Retry-After exactly, then backoff for retry #2
    assert transport.stats.as_dict()["retries"] == 2


@pytest.mark.anyio
async def test_async_error_chain_and_correlation(clock: Clock) -> None:
    original = httpx.ConnectError("refused")
    handler = Scripted([original] * 3)
    transport = make_async(handler, clock)
    with pytest.raises(ServiceUnavailableError) as info:
        await transport.request("GET", "/v2/tasks/")
    assert info.value.__cause__ is original
    assert info.value.correlation_id == handler.requests[-1].headers["x-correlation-id"]
    assert len(info.value.attempts) == 3


def test_bad_header_values_and_urls_are_refused(clock: Clock) -> None:
    transport = make_sync(Scripted([]), clock)
    with pytest.raises(ValueError, match="idempotency_key"):
        transport.request("POST", "/v2/x/", idempotency_key="")
    with pytest.raises(ValueError, match="idempotency_key"):
        transport.request("POST", "/v2/x/", idempotency_key="a\r\nX-Evil: 1")
    with pytest.raises(TypeError, match="correlation_id"):
        transport.request("GET", "/v2/x/", correlation_id=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid URL"):
        transport.request("GET", "http://[::1/oops")


def test_http_status_error_with_an_unread_stream_is_mapped_by_status() -> None:
    response = httpx.Response(503, stream=httpx.ByteStream(b"{}"), request=REQ)
    exc = httpx.HTTPStatusError("503", request=REQ, response=response)
    error = map_transport_error(exc, method="GET", path="/p", correlation_id="c")
    assert isinstance(error, BackendServiceUnavailableError)
    assert error.envelope is None and error.correlation_id == "c"


# --- per-call options: extra and secret headers, client certificates, error context ---------


def _certificate_file(tmp_path: Path, name: str) -> tuple[Path, bytes]:
    """A self-signed certificate with its key in one PEM file, and the certificate alone."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / f"{name}.pem"
    path.write_bytes(key_pem + cert_pem)
    return path, cert_pem


def _call_with(transport: Transport, certificate: ClientCertificate | None) -> Any:
    call = transport._core.new_call(
        "GET", "/x", params=None, json_body=None, correlation_id=None, idempotency_key=None,
        max_bytes=None,
    )
    return transport._core.add_options(call, None, certificate, None)


def test_a_client_certificate_gets_a_client_of_its_own(tmp_path: Path) -> None:
    first, ca_pem = _certificate_file(tmp_path, "first")
    second, _ = _certificate_file(tmp_path, "second")
    transport = Transport(config(), verify=ca_pem)  # PEM bytes: the CA to trust
    plain = transport._client_for(_call_with(transport, None))
    one = transport._client_for(_call_with(transport, ClientCertificate("1", first)))
    assert one is not plain
    assert transport._client_for(_call_with(transport, ClientCertificate("1", first))) is one
    context = one._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "first"),),)]
    # A renewed certificate: a new client; the earlier one stays open for calls still on it.
    two = transport._client_for(_call_with(transport, ClientCertificate("2", second)))
    assert two is not one and not one.is_closed
    transport.close()
    assert plain.is_closed and one.is_closed and two.is_closed
    transport.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        transport._client_for(_call_with(transport, ClientCertificate("1", first)))


def test_client_certificates_need_a_transport_that_builds_its_clients(tmp_path: Path) -> None:
    path, _ = _certificate_file(tmp_path, "c")
    certificate = ClientCertificate("c", path)
    with Transport(config(), http_client=httpx.Client()) as theirs, \
            pytest.raises(ValueError, match="http_client"):
        theirs._client_for(_call_with(theirs, certificate))
    with Transport(config(), verify=ssl.create_default_context()) as context_given, \
            pytest.raises(ValueError, match=r"ssl\.SSLContext"):
        context_given._client_for(_call_with(context_given, certificate))
    with pytest.raises(ValueError, match="PEM"):
        Transport(config(), verify=b"not a certificate")
    with Transport(config()) as transport, pytest.raises(TypeError, match="ClientCertificate"):
        _call_with(transport, path)  # type: ignore[arg-type]


def test_secret_headers_are_sent_and_kept_out_of_logs_and_messages(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    session = "sess-SECRET-0987654321"
    handler = Scripted([reply(401, {"error": {"code": "session_expired",
                                              "detail": f"session {session} is idle"}})])
    http = httpx.Client(transport=httpx.MockTransport(handler))
    transport = Transport(NO_RETRY, http_client=http, secret_headers=("X-Session",))
    caplog.set_level(logging.DEBUG, logger="synapse_sdk.http")
    with pytest.raises(SessionExpiredError) as info:
        transport.request("GET", "/v1/context", headers={"X-Session": session})
    assert handler.requests[0].headers["x-session"] == session
    assert handler.requests[0].headers["synapse-access-token"] == TOKEN
    texts = [str(info.value), repr(info.value), *(str(r.__dict__) for r in caplog.records)]
    assert session not in "\n".join(texts)
    with pytest.raises(ValueError):
        transport.request("GET", "/x", headers={"X-Bad": "a\nb"})


@pytest.mark.parametrize(
    ("status", "code", "operation", "expected"),
    [
        (403, "binding_revoked", None, BackendAuthenticationError),
        (403, "binding_revoked", "renew", BackendCertificateRenewalError),
        (404, "invalid_conversation_id", None, BackendInvalidConversationIdError),
    ],
)
def test_the_error_context_reaches_the_registry(
    call: Callable[..., Call], status: int, code: str, operation: str | None, expected: type
) -> None:
    send = call(Scripted([envelope(code, status)]), NO_RETRY)
    context = ErrorContext(operation, {"conversation_id": "conv-7"})
    with pytest.raises(expected) as info:
        send(context=context)
    if isinstance(info.value, BackendInvalidConversationIdError):
        assert info.value.conversation_id == "conv-7"
