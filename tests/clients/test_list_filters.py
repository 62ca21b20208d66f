"""List filters: the one table (``synapse_sdk.clients.list_filters``) checked by the client and
applied by the emulator, exercised over a real loopback socket."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients.list_filters import (
    LIST_FILTERS,
    accepted_keys,
    check_filters,
    parse_filter_arg,
    parse_value,
)
from synapse_sdk.emulator import Emulator
from synapse_sdk.emulator.app import OPENAPI_DOCUMENT
from synapse_sdk.emulator.store import Store, attributes

ITEMS = 240


@pytest.fixture(scope="module")
def emu() -> Any:
    with Emulator(items=ITEMS, faults="none") as emulator:
        yield emulator


def client_of(emu: Emulator) -> BackendV2Client:
    return BackendV2Client(base_url=emu.url, token=emu.token, tenant=emu.tenant)


# -- the table ------------------------------------------------------------------------------------


def test_the_table_holds_the_published_list_parameters() -> None:
    assert accepted_keys("tasks") == ("has_data", "is_discarded", "project", "schema")
    assert set(accepted_keys("ground-truths")) == {
        "categories", "category", "classes", "ground_truth_dataset", "id", "task"
    }
    assignments = set(accepted_keys("assignments"))
    assert len(assignments) == 56  # the schema's 58 parameters but cursor and per_page
    assert {"status_label", "users", "id__in", "created_after", "reviewer_last_action_at__lte",
            "is_discard_confirmed", "workshop"} <= assignments
    for keys in LIST_FILTERS.values():
        assert not {"cursor", "per_page", "sort"} & set(keys)


def test_the_emulator_document_declares_exactly_the_table() -> None:
    document = json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))
    for resource, table in LIST_FILTERS.items():
        parameters = document["paths"][f"/v2/{resource}/"]["get"]["parameters"]
        declared = {p["name"] for p in parameters if "name" in p}
        assert declared == set(table)


def test_values_are_checked_by_type_and_normalised() -> None:
    assert check_filters("tasks", {"is_discarded": "True", "project": 7}) == {
        "is_discarded": "true", "project": "7"
    }
    assert check_filters("tasks", {"has_data": False}) == {"has_data": "false"}
    params = check_filters("assignments", {
        "status_label": "completed,skipped", "users": "3, 4", "project": "1.5",
        "created_after": "2026-01-01T09:00:00+09:00", "id__in": [5, "6"],
    })
    assert params == {
        "status_label": ["completed", "skipped"],  # multiple choice: sent repeated
        "users": "3,4",  # a comma-separated list: sent as one value
        "project": "1.5",
        "created_after": "2026-01-01T00:00:00Z",
        "id__in": "5,6",
    }
    assert check_filters("ground-truths", None) == {}


@pytest.mark.parametrize(
    ("resource", "filters", "expected"),
    [
        ("tasks", {"colour": "red"}, "unknown filter 'colour' for tasks; accepted: has_data, "
                                     "is_discarded, project, schema"),
        ("tasks", {"per_page": "5"}, "filter 'per_page' is reserved"),
        ("tasks", {"cursor": "x"}, "filter 'cursor' is reserved"),
        ("tasks", {"project": "seven"}, "filter 'project' (int): 'seven' is not an integer"),
        ("tasks", {"project": True}, "a boolean is not accepted here"),
        ("tasks", {"is_discarded": "maybe"}, "'maybe' is not a boolean"),
        ("tasks", {"schema": "v2"}, "'v2' is not one of: any, dm_schema_v1"),
        ("assignments", {"status_review": "done"}, "'done' is not one of"),
        ("assignments", {"users": "1,,2"}, "'' is not an integer"),
        ("assignments", {"created_before": "2026-01-01"}, "is not an RFC 3339 date-time"),
        ("assignments", {"last_labeled__gt": "2026-13-01T00:00:00Z"}, "is not a valid date"),
        ("assignments", {"workshop": "nan"}, "'nan' is not a number"),
        ("ground-truths", {"category": "val"}, "is not one of: test, train, validation"),
        ("nothing", {}, "unknown resource 'nothing'"),
    ],
)
def test_bad_filters_are_refused_before_sending(
    resource: str, filters: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match="^.*" + expected.replace("(", r"\(").replace(")", r"\)")):
        check_filters(resource, filters)


def test_filter_arguments_split_at_the_first_equals_sign() -> None:
    assert parse_filter_arg("classes=a=b") == ("classes", "a=b")
    assert parse_filter_arg(" project = 3 ") == ("project", "3")
    for bad in ("project", "=3", "project=", "project= "):
        with pytest.raises(ValueError, match="is not key=value"):
            parse_filter_arg(bad)


def test_parsed_values_have_python_types() -> None:
    table = LIST_FILTERS["assignments"]
    assert parse_value(table["project"], "2") == Decimal(2)
    assert parse_value(table["created__gte"], "2026-01-01T00:00:00z") == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert parse_value(table["tags"], "1,2") == (1, 2)
    with pytest.raises(ValueError, match="not a boolean"):
        parse_value(table["is_confirmed"], "1", strict=True)  # a query spells true/false


# -- against the emulator -------------------------------------------------------------------------


def expected_ids(resource: str, test: Any) -> list[int]:
    return [i for i in range(1, ITEMS + 1) if test(attributes(0, resource, i))]


def test_a_filtered_list_holds_exactly_the_matching_items(emu: Emulator) -> None:
    with client_of(emu) as client:
        discarded = [item["id"] for item in client.tasks.iter(
            limit=7, filters={"is_discarded": "true"})]
        kept = [item["id"] for item in client.tasks.iter(filters={"is_discarded": False})]
        assignments = list(client.assignments.iter(limit=11, filters={
            "status_label": "completed,skipped", "users": "1,2,3", "is_confirmed": "true",
        }))
        grounds = [item["id"] for item in client.ground_truths.iter(
            filters={"categories": "train,test", "classes": "dog"})]
    assert discarded == expected_ids("tasks", lambda a: a["is_discarded"])
    assert 0 < len(discarded) < ITEMS
    assert sorted(discarded + kept) == list(range(1, ITEMS + 1))
    assert [a["id"] for a in assignments] == expected_ids(
        "assignments",
        lambda a: a["status_label"] in ("completed", "skipped") and a["user"] in (1, 2, 3)
        and a["is_confirmed"],
    )
    assert assignments and all(
        a["status_label"] in ("completed", "skipped") and a["user_id"] <= 3 and a["is_confirmed"]
        for a in assignments
    )
    assert grounds == expected_ids(
        "ground-truths", lambda a: a["category"] in ("train", "test") and "dog" in a["classes"]
    )
    assert grounds


def test_every_page_asks_with_the_same_filters() -> None:
    with Emulator(items=ITEMS, faults="none") as emu, client_of(emu) as client:
        listed = list(client.assignments.iter(
            limit=20, filters={"status_review": "completed,rejected"}))
    pages = [r for r in emu.requests if r.path == "/v2/assignments/"]  # complete once stopped
    assert len(pages) >= 2 and listed
    for record in pages:
        query = parse_qs(record.query)
        assert query["status_review"] == ["completed", "rejected"]
        assert query["per_page"] == ["20"]
    assert all("cursor" in parse_qs(record.query) for record in pages[1:])


def test_date_and_id_ranges(emu: Emulator) -> None:
    with client_of(emu) as client:
        ids = [item["id"] for item in client.assignments.iter(filters={
            "created_after": "2026-01-01T00:01:40Z", "id__lt": 120, "created__lte":
            "2026-01-01T09:01:50+09:00",
        })]
        exact = [item["id"] for item in client.ground_truths.iter(filters={"id": "17"})]
    assert ids == list(range(100, 111))  # created is 2026-01-01 plus the id in seconds
    assert exact == [17]


def test_an_async_client_sends_the_same_filters(emu: Emulator) -> None:
    async def listed() -> list[int]:
        async with AsyncBackendV2Client(
            base_url=emu.url, token=emu.token, tenant=emu.tenant
        ) as client:
            return [item["id"] async for item in client.tasks.iter(
                limit=50, filters={"has_data": "false"})]

    assert asyncio.run(listed()) == expected_ids("tasks", lambda a: not a["has_data"])


def test_a_bad_filter_raises_before_a_request() -> None:
    with Emulator(items=10, faults="none") as emu, client_of(emu) as client:
        with pytest.raises(ValueError, match="accepted: has_data"):
            client.tasks.iter(filters={"status_label": "completed"})
        with pytest.raises(ValueError, match="reserved"):
            client.tasks.list_page(filters={"per_page": 3})
    assert emu.requests == []


def test_the_emulator_answers_a_bad_value_400_and_ignores_unknown_keys(emu: Emulator) -> None:
    headers = emu.auth_headers
    with httpx.Client(base_url=emu.url, headers=headers) as http:
        bad = http.get("/v2/assignments/", params={"users": "1,x"})
        unknown = http.get("/v2/tasks/", params={"colour": "red", "per_page": "5"})
        plain = http.get("/v2/tasks/", params={"per_page": "5"})
        loose = http.get("/v2/tasks/", params={"is_discarded": "1"})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["field"] == "users"
    assert unknown.status_code == 200
    assert unknown.json()["data"] == plain.json()["data"]  # as DRF: unknown keys ignored
    assert loose.status_code == 400  # a query spells booleans true/false


def test_filtered_pages_of_a_large_project_scan_attributes_only() -> None:
    store = Store(items=1_000_000)
    bodies, last = store.page("tasks", 999_000, 3, [("has_data", lambda value: not value)])
    assert len(bodies) == 3 and last is not None and last > 999_000
    assert [json.loads(body)["has_data"] for body in bodies] == [False] * 3
    bodies, last = store.page("tasks", 999_990, 100, [("is_discarded", lambda value: False)])
    assert bodies == [] and last is None  # scanned to the end: no next page
    # A test of what every item shares is decided once: no scan at all.
    assert store.page("assignments", 0, 100, [("project", lambda value: value == 2)]) == ([], None)
    assert len(store._cache) == 3  # only the items served were built
    with pytest.raises(ValueError, match="no attribute 'colour'"):
        store.page("tasks", 0, 1, [("colour", bool)])


def test_the_list_detail_and_bulk_objects_show_the_filtered_attributes() -> None:
    store = Store(items=30, seed=3)
    for item_id in range(1, 31):
        task = attributes(3, "tasks", item_id)
        detail = store.detail("tasks", item_id)
        assert detail is not None
        assert (detail["is_discarded"], detail["has_data"]) == (
            task["is_discarded"], task["has_data"])
        assignment = attributes(3, "assignments", item_id)
        detail = store.detail("assignments", item_id)
        assert detail is not None
        assert (detail["user_id"], detail["reviewer_id"], detail["status_label"],
                detail["status_review"], detail["is_confirmed"], detail["tags"]) == (
            assignment["user"], assignment["reviewer"], assignment["status_label"],
            assignment["status_review"], assignment["is_confirmed"], assignment["tags"])
        truth = attributes(3, "ground-truths", item_id)
        bulk = store.item("ground-truths", item_id)
        assert bulk is not None
        assert (bulk["ground_truth_dataset_id"], bulk["category"], bulk["classes"]) == (
            truth["ground_truth_dataset"], truth["category"], truth["classes"])
    seeded = [[attributes(seed, "assignments", i) for i in range(1, 21)] for seed in (3, 4)]
    assert seeded[0] != seeded[1]  # the seed matters
