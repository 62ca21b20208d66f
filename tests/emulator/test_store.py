"""The seeded store: stable, deterministic demo data with realistic fields and valid files."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import pytest

from synapse_sdk.emulator import RESOURCES, FaultProfile, Store, decide

#: sha256 over every item of ``Store(items=20, seed=0)``. If this changes, the demo data changed:
#: users' recorded exports and tests would break, so change it only on purpose.
# Changed on purpose: bulk items gained data_unit_id and files_manifest (issue 12), then lost
# our old ``resource`` and ``original`` fields (issue 12), and ground truths gained their
# ``classes`` (issue 16's filters; the data and files are unchanged).
GOLDEN_DIGEST = "1ff0e4c5fe25ae1ebc0149efa29242b0fd9ea04e37a3ea578d21a4bb12633ab6"


def test_seed_data_is_stable() -> None:
    store = Store(items=20, seed=0)
    assert store.digest() == GOLDEN_DIGEST
    task = store.item("tasks", 1)
    assert task is not None
    assert task["data"]["name"] == "task-00001"
    assert task["data"]["created_at"] == "2024-01-01T00:09:28Z"
    original = store.original("tasks", 1)
    assert original is not None
    assert original.sha256 == "2af07dd2de6d23b43bf267456e50dc6f13e1c81a93b5e903991fae9a734f3c9e"


def test_fault_dice_are_stable() -> None:
    assert decide(0, "partial", "tasks", 1, 0) == pytest.approx(0.4135924748893695, abs=1e-15)


def test_same_seed_same_data_other_seed_other_data() -> None:
    assert Store(items=30, seed=4).digest() == Store(items=30, seed=4).digest()
    assert Store(items=30, seed=4).digest() != Store(items=30, seed=5).digest()


def test_an_item_does_not_depend_on_the_project_size() -> None:
    small, large = Store(items=10, seed=2), Store(items=300, seed=2)
    for resource in RESOURCES:
        assert small.fetch(resource, [7]) == large.fetch(resource, [7])


def test_counts_pages_and_fetch() -> None:
    store = Store(items=25, seed=0)
    assert [store.count(r) for r in RESOURCES] == [25, 25, 25]
    first, last = store.page("tasks", 0, 10)
    assert len(first) == 10 and last == 10
    rest, end = store.page("tasks", 20, 10)
    assert len(rest) == 5 and end is None
    found = store.fetch("assignments", [3, 1, 99, 3])
    assert sorted(found) == [1, 3]
    assert store.item("tasks", 26) is None
    assert store.original("tasks", 26) is None


def test_items_carry_realistic_fields() -> None:
    store = Store(items=40, seed=1)
    for item_id in range(1, 41):
        task = store.item("tasks", item_id)
        assignment = store.item("assignments", item_id)
        truth = store.item("ground-truths", item_id)
        assert task is not None and assignment is not None and truth is not None
        assert task["data"]["image"]["file_name"].endswith(".png")
        assert task["data"]["labels"]
        assert assignment["data"]["task_id"] == item_id
        assert assignment["data"]["annotator"]["name"].startswith("annotator-")
        assert assignment["data"]["annotations"]
        assert truth["data"]["classes"] == sorted({o["class"] for o in truth["data"]["objects"]})
        for obj in assignment["data"]["annotations"] + truth["data"]["objects"]:
            x, y, w, h = obj["bbox"]
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= 1920 and y + h <= 1080


def _png_chunks(content: bytes) -> dict[bytes, bytes]:
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    while offset < len(content):
        (length,) = struct.unpack(">I", content[offset : offset + 4])
        kind = content[offset + 4 : offset + 8]
        body = content[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", content[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks[kind] = body
        offset += 12 + length
    return chunks


def test_original_files_are_small_valid_and_match_their_digest() -> None:
    store = Store(items=15, seed=0)
    for resource in RESOURCES:
        for item_id in range(1, 16):
            item = store.item(resource, item_id)
            original = store.original(resource, item_id)
            assert item is not None and original is not None
            assert 100 <= len(original.content) <= 1024
            assert hashlib.sha256(original.content).hexdigest() == original.sha256
            entry = item["files_manifest"]["original"]
            assert entry["file_size"] == len(original.content)
            assert entry["checksum"] == hashlib.sha1(original.content).hexdigest()
            assert "original" not in item and "resource" not in item  # only the v2 fields
    png = store.original("tasks", 3)
    assert png is not None
    chunks = _png_chunks(png.content)
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + 3 * width)


def test_items_are_built_on_demand_so_a_million_costs_nothing_up_front() -> None:
    store = Store(items=1_000_000, seed=0)
    assert store.count("tasks") == 1_000_000
    bodies, last = store.page("tasks", 999_998, 100)
    assert len(bodies) == 2 and last is None
    assert json.loads(bodies[-1])["id"] == 1_000_000
    assert store.item("tasks", 1) == Store(items=20, seed=0).item("tasks", 1)
    assert store.item("tasks", 1_000_001) is None and store.original("tasks", 0) is None
    store.close()
    assert store.fetch("tasks", [5]) == Store(items=5, seed=0).fetch("tasks", [5])


@pytest.mark.parametrize(
    ("items", "error"),
    [(-1, ValueError), (2_000_000, ValueError), (True, TypeError), ("10", TypeError)],
)
def test_bad_item_counts_are_refused(items: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Store(items=items)  # type: ignore[arg-type]


def test_unknown_resource_is_a_value_error() -> None:
    store = Store(items=1)
    with pytest.raises(ValueError, match="unknown resource"):
        store.page("projects", 0, 10)


def test_empty_project_is_allowed() -> None:
    store = Store(items=0)
    assert store.page("tasks", 0, 100) == ([], None)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"partial_failure_rate": 1.5}, ValueError),
        ({"drop_rate": -0.1}, ValueError),
        ({"drop_rate": float("nan")}, ValueError),
        ({"partial_failure_rate": "0.1"}, TypeError),
        ({"outages": ((5.0, 3.0),)}, ValueError),
        ({"outages": (5.0, 6.0)}, TypeError),
        ({"outages": "5-6"}, TypeError),
        ({"latency": (0.2, 0.1)}, ValueError),
        ({"latency": 0.1}, TypeError),
        ({"rate_limit": (0, 5)}, ValueError),
        ({"rate_limit": (1.0, 0)}, ValueError),
        ({"rate_limit": 5}, TypeError),
        ({"seed": 1.5}, TypeError),
    ],
)
def test_fault_profile_validates(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        FaultProfile(**kwargs)  # type: ignore[arg-type]


def test_fault_specs_parse_presets_and_overrides() -> None:
    assert FaultProfile.from_spec("mild") == FaultProfile.preset("mild")
    custom = FaultProfile.from_spec(
        "heavy, drop_rate=0, rate_limit=10/20, outages=5-6;8-9.5, latency=0.01-0.02, seed=4"
    )
    assert custom.drop_rate == 0
    assert custom.rate_limit is not None
    assert (custom.rate_limit.per_second, custom.rate_limit.burst) == (10.0, 20)
    assert custom.outages == ((5.0, 6.0), (8.0, 9.5))
    assert custom.latency == (0.01, 0.02)
    assert custom.seed == 4
    assert custom.partial_failure_rate == FaultProfile.preset("heavy").partial_failure_rate
    assert FaultProfile.from_spec("partial_failure_rate=0.2").partial_failure_rate == 0.2
    assert FaultProfile.from_spec("mild,rate_limit=none").rate_limit is None
    assert "rate limit" in FaultProfile.preset("mild").describe()
    assert FaultProfile.resolve(None).is_clean
    assert FaultProfile.resolve("heavy", seed=9).seed == 9


@pytest.mark.parametrize(
    "spec",
    [
        "extreme",
        "mild,drop=0.1",
        "mild,drop_rate=lots",
        "rate_limit=5",
        "outages=9-1",
        "none,partial_failure_rate",
    ],
)
def test_bad_fault_specs_say_what_is_wrong(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        FaultProfile.from_spec(spec)
    assert str(info.value)
