"""BackendV2Client: pagination, bulk fetch (chunks, 207 item retries, order, partial failures,
invalid ids), original downloads and argument checks, over httpx.MockTransport."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from typing import Any

import httpx
import pytest
from clients_support import (
    BASE,
    TOKEN,
    Clock,
    FakeBulk,
    Scripted,
    async_client,
    config,
    envelope,
    ids_of,
    item,
    reply,
    sync_client,
)

from synapse_sdk.clients import BackendV2Client
from synapse_sdk.clients.backend_v2 import Page, succeeded_items, validate_ids
from synapse_sdk.config import SDKConfig
from synapse_sdk.envelopes import find_envelope
from synapse_sdk.exceptions import (
    BackendAuthenticationError,
    BackendError,
    BackendInvalidInputError,
    BackendServiceUnavailableError,
)

# --- pagination ----------------------------------------------------------------------------------


def test_list_page_sends_cursor_and_per_page(clock: Clock) -> None:
    backend = FakeBulk(total=250)
    client = sync_client(backend, clock)
    page = client.tasks.list_page(limit=100)
    assert isinstance(page, Page)
    assert ids_of(page.items) == list(range(100))
    assert (page.next_cursor, page.previous_cursor, page.per_page) == ("100", None, 100)
    last = client.tasks.list_page(cursor="200", limit=100)
    assert ids_of(last.items) == list(range(200, 250))
    assert last.next_cursor is None
    urls = [str(r.url) for r in backend.requests]
    assert urls == [
        f"{BASE}/v2/tasks/?per_page=100", f"{BASE}/v2/tasks/?per_page=100&cursor=200"
    ]


def test_resource_paths(clock: Clock) -> None:
    backend = FakeBulk(total=1)
    client = sync_client(backend, clock)
    for resource in (client.tasks, client.assignments, client.ground_truths):
        resource.list_page()
    assert [r.url.path for r in backend.requests] == [
        "/v2/tasks/", "/v2/assignments/", "/v2/ground-truths/",
    ]


def test_iter_streams_page_by_page(clock: Clock) -> None:
    backend = FakeBulk(total=250)
    client = sync_client(backend, clock)
    iterator = client.assignments.iter(limit=100)
    assert backend.requests == []  # nothing fetched before iteration starts
    first = [next(iterator) for _ in range(5)]
    assert ids_of(first) == [0, 1, 2, 3, 4]
    assert len(backend.requests) == 1
    rest = list(iterator)
    assert ids_of(first + rest) == list(range(250))
    assert len(backend.requests) == 3


@pytest.mark.parametrize(
    ("limit", "error"),
    [(0, ValueError), (501, ValueError), (-3, ValueError), (True, TypeError), ("5", TypeError),
     (2.0, TypeError)],
)
def test_bad_limits_raise_at_once(clock: Clock, limit: Any, error: type) -> None:
    client = sync_client(Scripted([]), clock)
    with pytest.raises(error, match="limit"):
        client.tasks.iter(limit=limit)
    with pytest.raises(error, match="limit"):
        client.tasks.list_page(limit=limit)


def test_bad_cursor_type(clock: Clock) -> None:
    with pytest.raises(TypeError, match="cursor"):
        sync_client(Scripted([]), clock).tasks.list_page(cursor=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([1, 2], "not a JSON object"),
        ({"data": {"id": 1}}, "'data' is not a list"),
        ({"data": [1]}, "'data' is not a list of objects"),
        ({"data": []}, "no 'meta.pagination'"),
        ({"data": [], "meta": {"next_cursor": "c2"}}, "no 'meta.pagination'"),
        ({"data": [], "meta": {"pagination": None}}, "no 'meta.pagination'"),
        ({"data": [], "meta": {"pagination": {"next_cursor": 5}}}, "next_cursor"),
        ({"data": [], "meta": {"pagination": {"previous_cursor": []}}}, "previous_cursor"),
        ({"data": [], "meta": {"pagination": {"next_cursor": "c1"}}}, "did not advance"),
    ],
)
def test_malformed_pages_are_permanent_errors(clock: Clock, body: Any, match: str) -> None:
    client = sync_client(Scripted([reply(200, body)]), clock)
    with pytest.raises(BackendError, match=match) as info:
        client.tasks.list_page(cursor="c1")
    assert info.value.error_code == "malformed_response"


def test_a_server_without_pagination_makes_iter_raise_not_stop_early(clock: Clock) -> None:
    # The symptom: a schema-shaped server answered 50 of 120 items and iter() ended.
    first = {"data": [{"id": i} for i in range(50)], "meta": {"next": "?cursor=x"}}
    client = sync_client(Scripted([reply(200, first)]), clock)
    seen: list[int] = []
    with pytest.raises(BackendError) as info:
        seen.extend(item["id"] for item in client.tasks.iter(limit=50))
    assert info.value.error_code == "malformed_response"
    assert seen == []  # never a silent short list


def test_retrieve_gets_one_detail_object(clock: Clock) -> None:
    handler = Scripted([reply(200, {"data": {"id": 7, "data": {"a": 1}}, "meta": {}}),
                        reply(200, {"data": [{"id": 7}]})])
    client = sync_client(handler, clock)
    assert client.ground_truths.retrieve(7) == {"id": 7, "data": {"a": 1}}
    assert handler.requests[0].url.path == "/v2/ground-truths/7/"
    with pytest.raises(BackendError, match="'data' is not an object"):
        client.tasks.retrieve(7)
    for bad, error in ((0, ValueError), ("7", TypeError), (True, TypeError)):
        with pytest.raises(error, match="item_id"):
            client.tasks.retrieve(bad)


# --- bulk fetch: argument checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        ("123", TypeError),
        (b"12", TypeError),
        ({1: 2}, TypeError),
        ({1, 2}, TypeError),
        (None, TypeError),
        (iter([1]), TypeError),
        ([], ValueError),
        ([True], TypeError),
        ([1, None], TypeError),
        ([{"id": 1}], TypeError),
        ([1.5], TypeError),
        ([""], ValueError),
        (["   "], ValueError),
        (["x" * 300], ValueError),
    ],
)
def test_bulk_fetch_rejects_bad_ids_without_a_request(clock: Clock, ids: Any, error: type) -> None:
    backend = FakeBulk()
    with pytest.raises(error):
        sync_client(backend, clock).assignments.bulk_fetch(ids)
    assert backend.requests == []


def test_validate_ids_error_names_the_position() -> None:
    with pytest.raises(TypeError, match=r"ids\[2\] must be an int or str, not bool"):
        validate_ids([1, 2, False])
    assert validate_ids((1, "a")) == [1, "a"]


# --- bulk fetch: chunks, order, retries ----------------------------------------------------------


def test_450_ids_are_sent_in_three_chunks_in_order(clock: Clock) -> None:
    backend = FakeBulk()
    client = sync_client(backend, clock)
    ids = list(range(1000, 1450))
    items = client.assignments.bulk_fetch(ids=ids)
    assert ids_of(items) == ids
    bodies = backend.bulk_bodies()
    assert [len(b) for b in bodies] == [200, 200, 50]
    assert [i for body in bodies for i in body] == ids
    posts = [r for r in backend.requests if r.method == "POST"]
    assert len({r.headers["x-correlation-id"] for r in posts}) == 1
    assert len({r.headers["idempotency-key"] for r in posts}) == 3
    assert client.stats.as_dict() == {"requests": 3, "retries": 0, "items_retried": 0}
    assert clock.sleeps == []


def test_results_follow_input_order_not_response_order(clock: Clock) -> None:
    def shuffled(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        return reply(200, {"data": [item(i) for i in reversed(ids)]})

    items = sync_client(shuffled, clock).tasks.bulk_fetch([5, 3, 9, 1])
    assert ids_of(items) == [5, 3, 9, 1]


def test_207_retries_only_the_failed_retryable_items(clock: Clock) -> None:
    backend = FakeBulk(fail={3: ["item_unavailable"], 7: ["item_unavailable"]})
    client = sync_client(backend, clock)
    ids = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    items = client.assignments.bulk_fetch(ids)
    assert ids_of(items) == ids
    assert backend.bulk_bodies() == [ids, [7, 3]]
    assert clock.sleeps == [0.5]  # backoff_delay(policy, 0) with jitter "none"
    assert client.stats.as_dict() == {"requests": 2, "retries": 0, "items_retried": 2}


def test_permanently_failing_items_are_reported_with_codes(clock: Clock) -> None:
    backend = FakeBulk(fail={5: ["item_corrupted"], 3: ["item_unavailable"],
                             8: ["item_unavailable"] * 10})
    client = sync_client(backend, clock)
    ids = list(range(1, 11))
    with pytest.raises(BackendError) as info:
        client.assignments.bulk_fetch(ids=ids)
    exc = info.value
    assert type(exc) is BackendError
    assert exc.error_code == "partial_failure"
    assert exc.status_code == 207
    assert exc.failed_ids == (5, 8)
    assert exc.failed_codes == {5: "item_corrupted", 8: "item_unavailable"}
    assert ids_of(succeeded_items(exc)) == [1, 2, 3, 4, 6, 7, 9, 10]
    assert ids_of(exc.succeeded) == [1, 2, 3, 4, 6, 7, 9, 10]  # type: ignore[attr-defined]
    # Round 1: all; round 2: the retryable 3 and 8; round 3: 8 alone (max_attempts=3).
    assert backend.bulk_bodies() == [ids, [3, 8], [8]]
    assert clock.sleeps == [0.5, 1.0]
    assert exc.envelope is not None
    assert exc.envelope.code == "partial_failure"
    assert {(f.id, f.code, f.retryable) for f in exc.envelope.failed} == {
        (5, "item_corrupted", False), (8, "item_unavailable", True),
    }
    found = find_envelope(str(exc))
    assert found is not None and found.code == "partial_failure"
    assert exc.correlation_id == backend.requests[0].headers["x-correlation-id"]
    # Every id is either fetched or failed, exactly once.
    assert sorted(ids_of(succeeded_items(exc)) + list(exc.failed_ids)) == ids


def test_partial_failure_survives_pickle(clock: Clock) -> None:
    backend = FakeBulk(fail={2: ["item_corrupted"]})
    with pytest.raises(BackendError) as info:
        sync_client(backend, clock).tasks.bulk_fetch([1, 2, 3])
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.failed_codes == {2: "item_corrupted"}
    assert ids_of(succeeded_items(copy)) == [1, 3]
    assert str(copy) == str(info.value)


def test_partial_failure_message_stays_bounded(clock: Clock) -> None:
    backend = FakeBulk(fail={i: ["item_corrupted"] for i in range(300)})
    with pytest.raises(BackendError) as info:
        sync_client(backend, clock).tasks.bulk_fetch(list(range(300)))
    assert len(info.value.failed_ids) == 300
    assert len(info.value.envelope.failed) == 300  # type: ignore[union-attr]
    assert "+280 more failed items" in str(info.value)
    assert len(str(info.value)) < 4000
    assert succeeded_items(info.value) == []


def test_207_retry_after_hint_paces_the_next_round(clock: Clock) -> None:
    first = reply(207, {"data": [item(1)], "error": {
        "code": "partial_failure", "retry_after": 2.5,
        "failed": [{"id": 2, "code": "item_unavailable", "retryable": True}]}})
    handler = Scripted([first, reply(200, {"data": [item(2)]})])
    assert ids_of(sync_client(handler, clock).tasks.bulk_fetch([1, 2])) == [1, 2]
    assert clock.sleeps == [2.5]


def test_retries_disabled_means_one_round(clock: Clock) -> None:
    backend = FakeBulk(fail={2: ["item_unavailable"]})
    client = sync_client(backend, clock, SDKConfig(retry_policy=None, backend_url=BASE,
                                                    token=TOKEN))
    with pytest.raises(BackendError) as info:
        client.tasks.bulk_fetch([1, 2])
    assert info.value.failed_codes == {2: "item_unavailable"}
    assert len(backend.requests) == 1
    assert clock.sleeps == []


def test_invalid_ids_are_not_retried(clock: Clock) -> None:
    backend = FakeBulk(invalid={999, 998})
    client = sync_client(backend, clock)
    with pytest.raises(BackendInvalidInputError) as info:
        client.assignments.bulk_fetch([1, 999, 2, 998])
    assert info.value.error_code == "invalid_ids"
    assert info.value.failed_ids == (999, 998)
    assert info.value.status_code == 400
    assert len(backend.requests) == 1
    assert clock.sleeps == []


def test_rate_limit_mid_bulk_waits_exactly_and_completes(clock: Clock) -> None:
    backend = FakeBulk()
    limited = reply(429, {"error": {"code": "rate_limited"}}, {"Retry-After": "2"})
    handler = Scripted([backend, limited, backend, backend])
    items = sync_client(handler, clock).tasks.bulk_fetch(list(range(450)))
    assert ids_of(items) == list(range(450))
    assert clock.sleeps == [2.0]
    bodies = [json.loads(r.content)["ids"] for r in handler.requests]
    assert bodies[1] == bodies[2]  # the limited chunk was sent again, unchanged
    keys = [r.headers["idempotency-key"] for r in handler.requests]
    assert keys[1] == keys[2] and keys[0] != keys[1]


def test_dropped_connection_mid_bulk_is_retried_with_the_same_key(clock: Clock) -> None:
    backend = FakeBulk()
    handler = Scripted([httpx.RemoteProtocolError("Server disconnected"), backend])
    assert ids_of(sync_client(handler, clock).tasks.bulk_fetch([1, 2])) == [1, 2]
    assert handler.requests[0].headers["idempotency-key"] == (
        handler.requests[1].headers["idempotency-key"]
    )


def test_outage_after_progress_becomes_a_partial_failure(clock: Clock) -> None:
    backend = FakeBulk(fail={3: ["item_unavailable"]})
    down = envelope("service_unavailable", 503)
    handler = Scripted([backend, down, down, down])
    ids = list(range(450))
    with pytest.raises(BackendError) as info:
        sync_client(handler, clock).tasks.bulk_fetch(ids)
    exc = info.value
    assert type(exc) is BackendError and exc.error_code == "partial_failure"
    assert isinstance(exc.__cause__, BackendServiceUnavailableError)
    assert ids_of(succeeded_items(exc)) == [i for i in range(200) if i != 3]
    assert exc.failed_ids == (3, *range(200, 450))
    assert exc.failed_codes[3] == "item_unavailable"
    assert {exc.failed_codes[i] for i in range(200, 450)} == {"service_unavailable"}
    assert len(handler.requests) == 4  # no request after the policy gave up


def test_outage_before_any_progress_raises_the_outage_itself(clock: Clock) -> None:
    down = envelope("service_unavailable", 503)
    handler = Scripted([down, down, down])
    with pytest.raises(BackendServiceUnavailableError) as info:
        sync_client(handler, clock).tasks.bulk_fetch([1, 2, 3])
    assert len(info.value.attempts) == 3


def test_authentication_failure_propagates(clock: Clock) -> None:
    handler = Scripted([FakeBulk(), envelope("unauthorized", 401)])
    with pytest.raises(BackendAuthenticationError):
        sync_client(handler, clock).tasks.bulk_fetch(list(range(300)))


def test_duplicates_are_fetched_once(clock: Clock) -> None:
    backend = FakeBulk()
    items = sync_client(backend, clock).tasks.bulk_fetch([1, 2, 1, "2", 3])
    assert ids_of(items) == [1, 2, 3]
    assert backend.bulk_bodies() == [[1, 2, 3]]


def test_string_ids_match_integer_items(clock: Clock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        return reply(200, {"data": [item(int(i)) for i in ids]})

    assert ids_of(sync_client(handler, clock).tasks.bulk_fetch(["4", "2"])) == [4, 2]


def test_ids_missing_from_a_200_are_not_served_at_once_without_a_retry(clock: Clock) -> None:
    def forgetful(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        return reply(200, {"data": [item(i) for i in ids if i != 2]})

    handler = Scripted([forgetful] * 3)
    with pytest.raises(BackendError) as info:
        sync_client(handler, clock).tasks.bulk_fetch([1, 2, 3])
    assert info.value.failed_codes == {2: "not_served"}
    assert info.value.envelope.failed[0].retryable is False
    assert [json.loads(r.content)["ids"] for r in handler.requests] == [[1, 2, 3]]
    assert handler.requests[0].url.params["response_mode"] == "inline"


def test_ids_a_207_leaves_out_unnamed_are_still_retried(clock: Clock) -> None:
    def forgetful(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        served = [item(i) for i in ids if i != 2]
        if ids == [2]:
            return reply(200, {"data": [item(2)]})
        return reply(207, {"data": served, "error": {"code": "partial_failure", "failed": []}})

    handler = Scripted([forgetful] * 2)
    assert ids_of(sync_client(handler, clock).tasks.bulk_fetch([1, 2, 3])) == [1, 2, 3]
    assert [json.loads(r.content)["ids"] for r in handler.requests] == [[1, 2, 3], [2]]


def test_malformed_bulk_answer_is_permanent(clock: Clock) -> None:
    with pytest.raises(BackendError, match="malformed") as info:
        sync_client(Scripted([reply(200, {"data": "nope"})]), clock).tasks.bulk_fetch([1])
    assert info.value.error_code == "malformed_response"


def test_token_never_in_partial_failure_or_logs(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = FakeBulk(fail={1: ["item_corrupted"]})
    with pytest.raises(BackendError) as info:
        sync_client(backend, clock).tasks.bulk_fetch([1, 2])
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert all(TOKEN not in repr(vars(r)) for r in caplog.records)


# --- downloads -----------------------------------------------------------------------------------


def original_item(content: bytes, *, url: str = "/v2/files/tasks/7/original",
                  size: int | None = None, sha: str | None = None) -> dict[str, Any]:
    return {
        "id": 7,
        "resource": "tasks",
        "original": {
            "url": url,
            "size": len(content) if size is None else size,
            "sha256": hashlib.sha256(content).hexdigest() if sha is None else sha,
        },
    }


def test_download_original_checks_size_and_sha(clock: Clock) -> None:
    content = b"original bytes \x00\x01"
    handler = Scripted([reply(200, content)])
    client = sync_client(handler, clock)
    assert client.download_original(original_item(content)) == content
    assert str(handler.requests[0].url) == f"{BASE}/v2/files/tasks/7/original"
    assert handler.requests[0].headers["synapse-access-token"] == TOKEN


def test_checksum_mismatch_is_a_clear_error(clock: Clock) -> None:
    handler = Scripted([reply(200, b"tampered!"), reply(200, b"tampered!")])
    client = sync_client(handler, clock)
    with pytest.raises(BackendError, match="SHA-256") as info:
        client.download_original(original_item(b"original!"))
    assert info.value.error_code == "checksum_mismatch"
    assert info.value.failed_ids == (7,)
    assert info.value.failed_codes == {7: "checksum_mismatch"}
    assert len(handler.requests) == 1  # not retried


def test_size_mismatch(clock: Clock) -> None:
    client = sync_client(Scripted([reply(200, b"abc")]), clock)
    with pytest.raises(BackendError) as info:
        client.download_original(original_item(b"abcd"))
    assert info.value.error_code == "size_mismatch"


def test_download_is_bounded(clock: Clock) -> None:
    handler = Scripted([reply(200, b"x" * 100)])
    client = sync_client(handler, clock)
    with pytest.raises(BackendError) as declared:
        client.download_original(original_item(b"x" * 100), max_bytes=10)
    assert declared.value.error_code == "response_too_large"
    assert handler.requests == []  # refused from the declared size, nothing sent
    unsized = original_item(b"x" * 100)
    del unsized["original"]["size"]
    with pytest.raises(BackendError) as streamed:
        client.download_original(unsized, max_bytes=10)
    assert streamed.value.error_code == "response_too_large"


def test_download_from_another_origin_sends_no_token(clock: Clock) -> None:
    content = b"abc"
    handler = Scripted([reply(200, content)])
    client = sync_client(handler, clock)
    client.download_original(original_item(content, url="https://cdn.example/f/7?sig=1"))
    assert "synapse-access-token" not in handler.requests[0].headers
    assert "synapse-tenant" not in handler.requests[0].headers


@pytest.mark.parametrize(
    "url",
    ["http://cdn.example/f/7", "http://backend.test:8080/f/7", "http://127.0.0.1:9/f/7"],
)
def test_a_plain_http_original_on_another_origin_is_refused_unsent(
    clock: Clock, url: str
) -> None:
    handler = Scripted([reply(200, b"abc")])
    with pytest.raises(ValueError, match="must come over https"):
        sync_client(handler, clock).download_original(original_item(b"abc", url=url))
    assert handler.requests == []


def test_a_plain_http_backend_on_loopback_may_use_plain_http_elsewhere(clock: Clock) -> None:
    handler = Scripted([reply(200, b"abc")])
    cfg = SDKConfig(backend_url="http://127.0.0.1:8000", token="syn_t", tenant="t")
    client = sync_client(handler, clock, cfg)
    assert client.download_original(original_item(b"abc", url="http://127.0.0.1:9001/f")) == b"abc"


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("not a dict", TypeError),
        ({"id": 1}, TypeError),
        ({"id": 1, "original": {"url": "ftp://x"}}, ValueError),
        ({"id": 1, "original": {"url": "/f", "size": -1}}, ValueError),
        ({"id": 1, "original": {"url": "/f", "sha256": "abc"}}, ValueError),
        ({"id": 1, "original": {"url": "/f", "sha256": 5}}, TypeError),
    ],
)
def test_download_rejects_malformed_items(clock: Clock, bad: Any, error: type) -> None:
    with pytest.raises(error):
        sync_client(Scripted([]), clock).download_original(bad)


def test_download_rejects_bad_max_bytes(clock: Clock) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        sync_client(Scripted([]), clock).download_original(original_item(b"a"), max_bytes=0)


# --- construction --------------------------------------------------------------------------------


def test_client_from_config_and_overrides() -> None:
    with BackendV2Client(config(), base_url="https://other.test/") as client:
        assert client.base_url == "https://other.test"
        assert TOKEN not in repr(client)
        assert repr(client.tasks) == "Resource('tasks')"
        assert client.transport.base_url == client.base_url
        assert client.config.token == TOKEN


def test_client_without_url_is_refused() -> None:
    with pytest.raises(ValueError, match="no backend URL"):
        BackendV2Client()


def test_client_refuses_disabled_tls() -> None:
    with pytest.raises(ValueError):
        BackendV2Client(config(), verify=False)  # type: ignore[arg-type]



# --- one request at a time -----------------------------------------------------------------------


def test_bulk_fetch_once_sorts_one_answer_without_follow_ups(clock: Clock) -> None:
    backend = FakeBulk(fail={2: ["item_unavailable"], 4: ["item_corrupted"]})
    client = sync_client(backend, clock)
    answer = client.tasks.bulk_fetch_once([5, 4, 3, 2, 1, 5])
    assert ids_of(answer.items) == [5, 3, 1]
    assert answer.retry == {2: "item_unavailable"}
    assert answer.failed == {4: "item_corrupted"}
    assert answer.status_code == 207
    assert backend.bulk_bodies() == [[5, 4, 3, 2, 1]]  # deduplicated, one request
    assert clock.sleeps == []


def test_bulk_fetch_once_refuses_more_than_one_request(clock: Clock) -> None:
    backend = FakeBulk()
    with pytest.raises(ValueError, match="at most 200 ids"):
        sync_client(backend, clock).tasks.bulk_fetch_once(list(range(201)))
    assert backend.requests == []


def test_bulk_fetch_once_reports_missing_ids_and_retry_after(clock: Clock) -> None:
    answer_body = {"data": [item(1)], "error": {"code": "partial_failure", "retry_after": 1.5,
                                                 "failed": []}}
    answer = sync_client(Scripted([reply(207, answer_body)]), clock).tasks.bulk_fetch_once([1, 2])
    assert answer.retry == {2: "missing_from_response"}
    assert answer.retry_after == 1.5


@pytest.mark.anyio
async def test_async_bulk_fetch_once(clock: Clock) -> None:
    backend = FakeBulk(fail={1: ["item_unavailable"]})
    answer = await async_client(backend, clock).tasks.bulk_fetch_once((1, 2))
    assert ids_of(answer.items) == [2] and answer.retry == {1: "item_unavailable"}


def manifest_item(content: bytes, *, url: str = f"{BASE}/storage/tasks/7?sig=1",
                  size: int | None = None, checksum: str | None = None,
                  described: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {"url": url, "file_name_original": "photo.JPG", "is_primary": True}
    if described:
        entry["file_size"] = len(content) if size is None else size
        entry["checksum"] = hashlib.sha1(content).hexdigest() if checksum is None else checksum
    thumb = {"url": f"{BASE}/storage/thumb", "file_name_original": "t.png", "is_primary": False}
    return {"id": 7, "files_manifest": {"thumbnail": thumb, "image_1": entry}}


def test_download_reads_the_primary_manifest_entry_without_credentials(clock: Clock) -> None:
    content = b"jpeg bytes"
    handler = Scripted([reply(200, content)])
    client = sync_client(handler, clock)
    assert client.download_original(manifest_item(content)) == content
    sent = handler.requests[0]
    assert str(sent.url) == f"{BASE}/storage/tasks/7?sig=1"  # the primary entry, same origin
    assert "synapse-access-token" not in sent.headers and "synapse-tenant" not in sent.headers
    assert "authorization" not in sent.headers


@pytest.mark.parametrize(
    ("item", "code"),
    [
        (manifest_item(b"jpeg bytes", checksum="0" * 40), "checksum_mismatch"),
        (manifest_item(b"jpeg bytes", size=3), "size_mismatch"),
    ],
)
def test_manifest_size_and_sha1_are_checked(clock: Clock, item: dict[str, Any], code: str) -> None:
    client = sync_client(Scripted([reply(200, b"jpeg bytes")]), clock)
    with pytest.raises(BackendError) as info:
        client.download_original(item)
    assert info.value.error_code == code and info.value.failed_ids == (7,)


def test_without_size_or_checksum_the_length_is_checked_against_content_length(
    clock: Clock,
) -> None:
    short = httpx.Response(200, content=b"abc", headers={"Content-Length": "3"})
    client = sync_client(Scripted([short]), clock)
    assert client.download_original(manifest_item(b"abc", described=False)) == b"abc"


def test_the_export_names_the_original_after_file_name_original() -> None:
    from synapse_sdk.plugins.actions.export.steps import original_extension

    assert original_extension(manifest_item(b"x")) == "jpg"
