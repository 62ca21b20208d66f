"""The v2 API over a real socket: lists, bulk fetch, errors, files, request ids, idempotency."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile
from synapse_sdk.emulator.backend_v2 import bulk_path

RESOURCES = ("tasks", "assignments", "ground-truths")


def _error(response: httpx.Response) -> tuple[int, str]:
    """The status and the v2 envelope's ``error.code`` of an error answer."""
    return response.status_code, response.json()["error"]["code"]


def test_list_pagination_covers_every_item_exactly_once(client: httpx.Client) -> None:
    for resource in RESOURCES:
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"per_page": 100}
            if cursor:
                params["cursor"] = cursor
            response = client.get(f"/v2/{resource}/", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["meta"]["request_id"] == response.headers["x-request-id"]
            seen.extend(item["id"] for item in body["data"])
            assert all("data" not in item for item in body["data"])  # slim list items
            assert body["meta"]["pagination"]["per_page"] == 100
            pages += 1
            cursor = body["meta"]["pagination"]["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(1, 451))
        assert pages == 5


def test_list_default_and_maximum_page_sizes(client: httpx.Client) -> None:
    default = client.get("/v2/tasks/").json()
    assert len(default["data"]) == 100
    biggest = client.get("/v2/tasks/", params={"per_page": 500}).json()
    assert len(biggest["data"]) == 450
    assert biggest["meta"]["pagination"] == {
        "next_cursor": None, "previous_cursor": None, "per_page": 500,
    }
    assert set(biggest["data"][0]) == {
        "id", "project_id", "data_unit_id", "is_discarded", "has_data", "created",
    }


@pytest.mark.parametrize(
    ("per_page", "applied"), [("0", 100), ("-3", 100), ("ten", 100), ("501", 500), ("7", 7)]
)
def test_per_page_is_applied_like_drf(client: httpx.Client, per_page: str, applied: int) -> None:
    body = client.get("/v2/tasks/", params={"per_page": per_page}).json()
    assert body["meta"]["pagination"]["per_page"] == applied
    assert len(body["data"]) == min(applied, 450)


@pytest.mark.parametrize(
    "cursor", ["not-a-cursor!", "YzE6dGFza3M6LTU"]  # the last one decodes to a negative id
)
def test_a_cursor_the_list_did_not_issue_is_404(client: httpx.Client, cursor: str) -> None:
    response = client.get("/v2/tasks/", params={"cursor": cursor})
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "NOT_FOUND", "message": "Invalid cursor", "details": None,
    }


def test_a_cursor_of_one_list_is_refused_by_another(client: httpx.Client) -> None:
    first = client.get("/v2/tasks/", params={"per_page": 5}).json()
    response = client.get(
        "/v2/assignments/", params={"cursor": first["meta"]["pagination"]["next_cursor"]}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("resource", "fields"),
    [
        ("tasks", {"id", "project_id", "data_unit_id", "workshop_id", "meta", "data", "schema",
                   "is_discarded", "has_data", "created"}),
        ("assignments", {"id", "user_id", "task_id", "reviewer_id", "status_label",
                         "status_review", "is_confirmed", "is_discarded", "data", "tags",
                         "created"}),
        ("ground-truths", {"id", "ground_truth_dataset_id", "data_unit_id", "project_id",
                           "category", "data", "classes"}),
    ],
)
def test_retrieve_serves_the_detail_object(
    client: httpx.Client, resource: str, fields: set[str]
) -> None:
    response = client.get(f"/v2/{resource}/7/")
    assert response.status_code == 200
    body = response.json()
    assert set(body["data"]) == fields and body["data"]["id"] == 7
    bulk = client.post(bulk_path(resource), json={"ids": [7]}).json()
    assert body["data"]["data"] == bulk["data"][0]["data"]
    assert body["meta"] == {"request_id": response.headers["x-request-id"]}
    missing = client.get(f"/v2/{resource}/451/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


def test_bulk_fetch_returns_items_in_request_order(client: httpx.Client) -> None:
    ids = [17, 3, 250, 1, 99]
    response = client.post("/v2/tasks/bulk-fetch/", json={"ids": ids})
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["data"]] == ids
    assert body["meta"] == {"request_id": response.headers["x-request-id"]}
    item = body["data"][0]
    assert set(item) == {"id", "project_id", "data_unit_id", "data", "files_manifest"}
    assert item["project_id"] == 1
    assert "/storage/tasks/17?" in item["files_manifest"]["original"]["url"]


def test_bulk_fetch_of_200_ids_is_allowed_and_201_is_too_many(client: httpx.Client) -> None:
    ok = client.post("/v2/assignments/bulk-fetch/", json={"ids": list(range(1, 201))})
    assert ok.status_code == 200
    assert len(ok.json()["data"]) == 200
    refused = client.post("/v2/assignments/bulk-fetch/", json={"ids": list(range(1, 202))})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "ids_limit_exceeded"
    assert error["max_ids"] == 200
    assert "201" in error["message"]


def test_empty_bulk_fetch_is_an_empty_page(client: httpx.Client) -> None:
    response = client.post("/v2/tasks/bulk-fetch/", json={"ids": []})
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_unknown_ids_are_silently_left_out_of_a_200_like_the_real_api(
    client: httpx.Client,
) -> None:
    response = client.post("/v2/tasks/bulk-fetch/", json={"ids": [3, 9999, 1, "x", 0, 3]})
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["data"]] == [3, 1, 3]
    assert "error" not in response.json()


def test_each_resource_has_its_bulk_route_and_response_mode_is_checked(
    client: httpx.Client,
) -> None:
    assert bulk_path("ground-truths") == "/v2/ground-truths/bulk-data/"
    for resource in RESOURCES:
        wrong = "bulk-fetch" if resource == "ground-truths" else "bulk-data"
        refused = client.post(f"/v2/{resource}/{wrong}/", json={"ids": [1]})
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "NOT_FOUND"
        for mode in ("inline", "presigned"):
            served = client.post(bulk_path(resource), params={"response_mode": mode},
                                 json={"ids": [1]})
            assert served.status_code == 200, served.text
    bad = client.post(bulk_path("tasks"), params={"response_mode": "s3"}, json={"ids": [1]})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["field"] == "response_mode"


def test_invalid_ids_names_the_unknown_ids_under_the_seeds_profile() -> None:
    seeds = FaultProfile(unknown_ids="invalid_ids")
    with Emulator(items=10, faults=seeds) as emu, emu.client() as client:
        response = client.post("/v2/tasks/bulk-fetch/", json={"ids": [1, 9999, 2, "x", 0, 9999]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_ids"
    assert error["invalid_ids"] == [9999, "x", 0]
    assert "9999" in error["message"]
    assert "data" not in response.json()


@pytest.mark.parametrize(
    "content",
    [
        b"{nope",
        b"",
        b"[1, 2]",
        b'{"id": [1]}',
        b'{"ids": 5}',
        b'{"ids": [1.5]}',
        b'{"ids": [true]}',
        b'{"ids": [null]}',
        b"\xff\xfe",
    ],
)
def test_malformed_bulk_fetch_body_is_400_not_500(client: httpx.Client, content: bytes) -> None:
    response = client.post(
        "/v2/tasks/bulk-fetch/", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_oversized_body_is_413(client: httpx.Client) -> None:
    response = client.post("/v2/tasks/bulk-fetch/", content=b" " * (1 << 20 + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "NOT_AUTHENTICATED"),
        ({"Authorization": "Bearer wrong-token"}, "NOT_AUTHENTICATED"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "NOT_AUTHENTICATED"),
        ({"Authorization": "Token"}, "NOT_AUTHENTICATED"),
        ({"SYNAPSE-ACCESS-TOKEN": ""}, "NOT_AUTHENTICATED"),
        ({"Authorization": "Token syn_wrong"}, "AUTHENTICATION_FAILED"),
        ({"SYNAPSE-ACCESS-TOKEN": "syn_wrong", "SYNAPSE-Tenant": "emulator"},
         "AUTHENTICATION_FAILED"),
    ],
)
def test_missing_or_bad_token_is_401(emu: Emulator, headers: dict[str, str], code: str) -> None:
    requests = (
        ("GET", "/v2/tasks/"),
        ("POST", "/v2/tasks/bulk-fetch/"),
        ("GET", "/v2/tasks/1/"),
    )
    with httpx.Client(base_url=emu.url, headers=headers) as anonymous:
        responses = [anonymous.request(m, path, json={"ids": [1]}) for m, path in requests]
    for response in responses:
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
        assert response.headers["www-authenticate"] == "Token"
        assert emu.token not in response.text
    assert not any(record.authenticated for record in emu.requests)


@pytest.mark.parametrize("tenant", [None, "", "another-tenant", "Token another-tenant"])
def test_a_valid_token_without_this_tenant_is_403(emu: Emulator, tenant: str | None) -> None:
    headers = {"SYNAPSE-ACCESS-TOKEN": emu.token}
    if tenant is not None:
        headers["SYNAPSE-Tenant"] = tenant
    with httpx.Client(base_url=emu.url, headers=headers) as foreign:
        response = foreign.get("/v2/tasks/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"
    assert emu.token not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"SYNAPSE-Tenant": "emulator"},
        {"SYNAPSE-Tenant": "Token emulator"},  # the v1-compatible tenant form
    ],
)
@pytest.mark.parametrize("legacy", [False, True], ids=["access-token", "drf-token"])
def test_the_access_token_or_the_legacy_drf_token_with_the_tenant_is_let_in(
    emu: Emulator, headers: dict[str, str], legacy: bool
) -> None:
    assert emu.token.startswith("syn_") and emu.tenant == "emulator"
    token = {"Authorization": f"Token {emu.token}"} if legacy else {
        "SYNAPSE-ACCESS-TOKEN": emu.token
    }
    with httpx.Client(base_url=emu.url, headers={**headers, **token}) as http:
        assert http.get("/v2/tasks/").status_code == 200


def test_unknown_resource_route_and_method_are_json_errors(client: httpx.Client) -> None:
    unknown = client.get("/v2/projects/")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "NOT_FOUND"
    route = client.get("/v3/nothing")
    assert route.status_code == 404
    assert route.json()["error"]["code"] == "NOT_FOUND"
    method = client.delete("/v2/tasks/bulk-fetch/")
    assert method.status_code == 405
    assert method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    missing_item = client.get("/v2/tasks/451/")
    assert missing_item.status_code == 404
    assert missing_item.json()["error"]["code"] == "NOT_FOUND"


def test_the_manifest_file_matches_its_recorded_size_and_checksum(client: httpx.Client) -> None:
    kinds = {}
    for resource in RESOURCES:
        item = client.post(bulk_path(resource), json={"ids": [42]}).json()["data"][0]
        entry = item["files_manifest"]["original"]
        with httpx.Client() as anonymous:  # presigned: no API credentials
            response = anonymous.get(entry["url"])
        assert response.status_code == 200
        assert len(response.content) == entry["file_size"]
        assert hashlib.sha1(response.content).hexdigest() == entry["checksum"]
        assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
        kinds[resource] = response.headers["content-type"]
    assert kinds["tasks"] == "image/png"
    assert kinds["assignments"] == "application/json"
    assert kinds["ground-truths"].startswith("text/plain")


def test_files_manifest_urls_are_presigned_expiring_and_serve_ranges(clock: FakeClock) -> None:
    with Emulator(items=5, clock=clock) as emu, emu.client() as api:
        item = api.post("/v2/tasks/bulk-fetch/", json={"ids": [3]}).json()["data"][0]
        entry = item["files_manifest"]["original"]
        assert entry["is_primary"] and entry["file_name_original"]
        url = entry["url"]
        assert url.startswith(emu.url + "/storage/tasks/3?expires=")
        with httpx.Client() as anonymous:  # no token, no tenant: the signature is enough
            whole = anonymous.get(url)
            assert whole.status_code == 200 and len(whole.content) == entry["file_size"]
            assert hashlib.sha1(whole.content).hexdigest() == entry["checksum"]
            part = anonymous.get(url, headers={"Range": "bytes=2-5"})
            assert part.status_code == 206 and part.content == whole.content[2:6]
            assert part.headers["content-range"] == f"bytes 2-5/{len(whole.content)}"
            tail = anonymous.get(url, headers={"Range": "bytes=-3"})
            assert tail.content == whole.content[-3:]
            assert anonymous.get(url, headers={"Range": "bytes=9999-"}).status_code == 416
            forged = anonymous.get(url.replace("/tasks/3?", "/tasks/4?"))
            assert forged.status_code == 403
            assert forged.json()["error"]["code"] == "SIGNATURE_INVALID"
            clock.advance(3601.0)
            expired = anonymous.get(url)
            assert expired.status_code == 403 and "expired" in expired.json()["error"]["message"]
    assert not any(r.authenticated for r in emu.requests if r.path.startswith("/storage/"))


def test_every_response_has_a_request_id_and_echoes_the_correlation_id(emu: Emulator) -> None:
    with emu.client(headers={"X-Correlation-ID": "corr-123"}) as http:
        responses = [
            http.get("/v2/tasks/"),
            http.post("/v2/tasks/bulk-fetch/", json={"ids": [1, 10**6]}),
            http.get("/v2/nowhere/"),
            http.get("/healthz"),
        ]
    unauthenticated = httpx.get(emu.url + "/v2/tasks/")
    ids = [r.headers["x-request-id"] for r in [*responses, unauthenticated]]
    assert len(set(ids)) == len(ids)
    assert all(r.headers["x-correlation-id"] == "corr-123" for r in responses)
    records = emu.requests
    assert [r.request_id for r in records] == ids
    assert [r.correlation_id for r in records] == ["corr-123"] * 4 + [None]
    assert [r.status for r in records] == [200, 200, 404, 200, 401]
    assert records[1].ids == (1, 10**6)
    assert [r.seq for r in records] == sorted(r.seq for r in records)


def test_health_needs_no_token(emu: Emulator) -> None:
    response = httpx.get(emu.url + "/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_idempotency_key_replays_a_recorded_200(emu: Emulator) -> None:
    with emu.client() as http:
        first = http.post(
            "/v2/tasks/bulk-fetch/", json={"ids": [1, 2]}, headers={"Idempotency-Key": "k1"}
        )
        again = http.post(
            "/v2/tasks/bulk-fetch/", json={"ids": [1, 2]}, headers={"Idempotency-Key": "k1"}
        )
        other_body = http.post(
            "/v2/tasks/bulk-fetch/", json={"ids": [3]}, headers={"Idempotency-Key": "k1"}
        )
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert "idempotent-replayed" not in other_body.headers
    assert [item["id"] for item in other_body.json()["data"]] == [3]
    records = emu.requests
    assert [r.idempotency_key for r in records] == ["k1", "k1", "k1"]
    assert [r.faults for r in records] == [(), ("idempotent_replay",), ()]


def test_a_207_is_not_replayed_so_a_retry_can_succeed() -> None:
    faults = FaultProfile(seed=3, partial_failure_rate=0.5)
    with Emulator(items=20, faults=faults) as emu, emu.client() as http:
        statuses = [
            http.post(
                "/v2/tasks/bulk-fetch/",
                json={"ids": list(range(1, 21))},
                headers={"Idempotency-Key": "same"},
            ).status_code
            for _ in range(3)
        ]
        records = emu.requests
    assert statuses == [207, 207, 207]
    assert all("idempotent_replay" not in r.faults for r in records)
    # Each attempt re-decides its items, so the failed sets differ between attempts.
    assert len({r.failed_ids for r in records}) > 1
