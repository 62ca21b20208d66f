"""The v2 API over a real socket: lists, bulk fetch, errors, files, request ids."""

from __future__ import annotations

import hashlib

import httpx

from synapse_sdk.emulator import Emulator


def test_list_pagination_covers_every_item_exactly_once(client: httpx.Client) -> None:
    for resource in ("tasks", "assignments", "ground-truths"):
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = client.get(f"/v2/{resource}/", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["meta"]["request_id"] == response.headers["x-request-id"]
            seen.extend(item["id"] for item in body["data"])
            assert all(item["resource"] == resource for item in body["data"])
            pages += 1
            cursor = body["meta"]["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(1, 451))
        assert pages == 5


def test_bulk_fetch_returns_items_in_request_order(client: httpx.Client) -> None:
    ids = [17, 3, 250, 1, 99]
    response = client.post("/v2/tasks/bulk-fetch/", json={"ids": ids})
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["data"]] == ids
    assert body["meta"]["next_cursor"] is None
    item = body["data"][0]
    assert set(item) == {"id", "resource", "project_id", "data", "original"}
    assert item["original"]["url"] == "/v2/files/tasks/17/original"


def test_invalid_ids_names_the_unknown_ids(client: httpx.Client) -> None:
    response = client.post("/v2/tasks/bulk-fetch/", json={"ids": [1, 9999, 2, "x", 0]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_ids"
    assert error["invalid_ids"] == [9999, "x", 0]


def test_file_download_matches_recorded_sha256(client: httpx.Client, emu: Emulator) -> None:
    for resource in ("tasks", "assignments", "ground-truths"):
        item = client.post(f"/v2/{resource}/bulk-fetch/", json={"ids": [42]}).json()["data"][0]
        response = client.get(item["original"]["url"])
        assert response.status_code == 200
        assert len(response.content) == item["original"]["size"]
        assert hashlib.sha256(response.content).hexdigest() == item["original"]["sha256"]
