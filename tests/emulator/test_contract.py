"""The emulator's OpenAPI document is its contract: served at ``/api-schema/v2/``, checked by
schemathesis against the running emulator, and matched by every response the client parses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from synapse_sdk.clients import BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RateLimit
from synapse_sdk.emulator.app import OPENAPI_DOCUMENT
from synapse_sdk.exceptions import BackendError

DOCUMENT: dict[str, Any] = json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def test_the_emulator_serves_its_openapi_document(emu: Emulator) -> None:
    response = httpx.get(emu.url + "/api-schema/v2/")  # no credentials needed
    assert response.status_code == 200
    assert response.json() == DOCUMENT
    assert DOCUMENT["openapi"].startswith("3.0")
    for path in ("/v2/tasks/", "/v2/tasks/{id}/", "/v2/ground-truths/bulk-data/",
                 "/storage/{resource}/{id}", "/api-schema/v2/"):
        assert path in DOCUMENT["paths"]


def test_schemathesis_finds_nothing_wrong_with_the_emulator() -> None:
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    failures: dict[str, str] = {}
    with Emulator(items=30) as emu:
        schema.config.update(base_url=emu.url, headers=emu.auth_headers)
        operations = [result.ok() for result in schema.get_all_operations()]
        for operation in operations:

            @settings(max_examples=15, derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate])
            @given(operation.as_strategy())
            def check(case: Any) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                check()
            except Exception as exc:  # collected and shown together
                failures[operation.label] = str(exc)[:2000]
    methods = {"get", "post", "patch", "put", "delete"}
    assert len(operations) == sum(len(methods & set(item)) for item in DOCUMENT["paths"].values())
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


class _Recording:
    """Keeps every answer (body read) for validation: a ``MockTransport`` (the SDK accepts
    those) whose handler forwards each request over a real socket to the emulator."""

    def __init__(self) -> None:
        self._inner = httpx.Client(follow_redirects=False)
        self.seen: list[httpx.Response] = []
        self.transport = httpx.MockTransport(self._forward)

    def _forward(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.send(request)
        content = response.read()
        copy = httpx.Response(response.status_code, headers=response.headers, content=content,
                              request=request)
        copy.elapsed = timedelta(0)  # set by a client, which this handler is below
        self.seen.append(copy)
        return httpx.Response(response.status_code, headers=response.headers, content=content,
                              request=request)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def recorded() -> Iterator[tuple[Emulator, _Recording, FakeClock]]:
    clock = FakeClock()
    faults = FaultProfile(seed=5, partial_failure_rate=0.3, permanent_failure_rate=0.1,
                          rate_limit=RateLimit(per_second=4.0, burst=4))
    with Emulator(items=60, faults=faults, clock=clock) as emu:
        yield emu, _Recording(), clock


def test_every_response_the_client_parses_matches_the_document(
    recorded: tuple[Emulator, _Recording, FakeClock],
) -> None:
    emu, recording, clock = recorded
    policy = RetryPolicy(max_attempts=6, backoff_base=0.1, budget_capacity=None)
    http = httpx.Client(transport=recording.transport)
    with BackendV2Client(SDKConfig(retry_policy=policy), base_url=emu.url, token=emu.token,
                         tenant=emu.tenant, http_client=http, sleep=clock.sleep,
                         clock=clock) as client:
        for resource in (client.tasks, client.assignments, client.ground_truths):
            ids = [item["id"] for item in resource.iter(limit=25)]
            assert resource.retrieve(ids[0])["id"] == ids[0]
            try:
                items = resource.bulk_fetch([*ids, 10_000])
            except BackendError as exc:  # 207 leftovers, item_corrupted, not_served
                items = list(exc.succeeded)  # type: ignore[attr-defined]
            assert client.download_original(items[0])
        with pytest.raises(BackendError):
            client.tasks.retrieve(10_000)  # a 404 in the error envelope
        job_id = emu.create_job()
        client.jobs.update(job_id, status="RUNNING", progress_record={"percent": 5})
        entry = {"event": "export", "data": {"code": "EXPORT_FETCHING"},
                 "datetime": "2026-12-03T10:00:00Z"}
        client.jobs.create_log(job_id, entry)
        client.jobs.create_logs(job_id, [entry, {**entry, "level": "warning"}])
        with pytest.raises(BackendError):
            client.jobs.update(job_id, status="PENDING")  # 400 INVALID_TRANSITION
    with BackendV2Client(SDKConfig(retry_policy=policy), base_url=emu.url, token=emu.token,
                         tenant=emu.tenant, http_client=http, sleep=clock.sleep,
                         clock=clock, response_mode="presigned") as presigned:
        answer = presigned.ground_truths.bulk_fetch_once(list(range(1, 21)))
        assert answer.items  # the wrappers and the payload route are validated below
        assert presigned.ground_truths.retrieve(1)["id"] == 1
    http.close()
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    statuses = set()
    for response in recording.seen:
        path = response.request.url.path
        operation = schema.find_operation_by_path(response.request.method, path)
        assert operation is not None, f"{path} is not in the document"
        operation.validate_response(response)  # raises on any mismatch
        statuses.add(response.status_code)
    assert {200, 201, 207, 400, 404, 429} <= statuses  # the extensions were exercised too


def test_the_document_rejects_the_old_shapes() -> None:
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    request = httpx.Request("GET", "http://127.0.0.1/v2/tasks/")
    old_page = httpx.Response(200, json={"data": [], "meta": {"next_cursor": None}},
                              request=request)
    old_error = httpx.Response(404, json={"error": {"code": "not_found", "detail": "x"}},
                               request=request)
    operation = schema.find_operation_by_path("GET", "/v2/tasks/")
    for response in (old_page, old_error):
        response.elapsed = timedelta(0)
        with pytest.raises((AssertionError, BaseExceptionGroup)) as info:
            operation.validate_response(response)
        found = getattr(info.value, "exceptions", (info.value,))
        assert any("violates schema" in str(failure) for failure in found)
