"""The emulator's ``original_bytes`` originals: deterministic from the seed, served in pieces
from any offset, never held whole; the ``original_drop_rate`` fault and its spec."""

from __future__ import annotations

import pytest

from synapse_sdk.emulator import FaultProfile
from synapse_sdk.emulator.store import Store


def test_generated_originals_are_seeded_and_any_range_lines_up() -> None:
    store = Store(items=3, seed=5, original_bytes=200_000)
    original = store.original("tasks", 2)
    assert original is not None
    assert (original.size, original.sha256, original.content) == (200_000, None, b"")
    whole = b"".join(original.chunks(0, original.size - 1))
    assert len(whole) == 200_000
    assert all(len(piece) <= 65_536 for piece in original.chunks(0, original.size - 1))
    for start, end in ((0, 0), (65_520, 65_522), (123_457, 199_999), (199_999, 199_999)):
        assert b"".join(original.chunks(start, end)) == whole[start : end + 1]
    again = Store(items=3, seed=5, original_bytes=200_000).original("tasks", 2)
    assert again is not None and b"".join(again.chunks(0, 199_999)) == whole
    other = store.original("tasks", 3)
    assert other is not None and b"".join(other.chunks(0, 999)) != whole[:1000]
    # Bytes from a wrong offset never line up with the right ones (a prime block length).
    assert whole[65_536:66_536] != whole[:1000]
    item = store.item("tasks", 2)
    assert item is not None
    assert item["files_manifest"]["original"]["file_size"] == 200_000
    assert "checksum" not in item["files_manifest"]["original"]


@pytest.mark.parametrize("size", [0, -1, 2**41, True, "1M"])
def test_bad_original_bytes_are_refused(size: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        Store(items=1, original_bytes=size)  # type: ignore[arg-type]


def test_original_drop_rate_is_a_spec_field_cutting_inside_the_body() -> None:
    profile = FaultProfile.from_spec("none,original_drop_rate=1")
    assert profile.original_drop_rate == 1.0 and not profile.is_clean
    cuts = [profile.original_cut("GET /storage/tasks/1", attempt) for attempt in range(50)]
    assert all(cut is not None and 0.25 <= cut < 0.75 for cut in cuts)
    assert FaultProfile().original_cut("GET /storage/tasks/1", 0) is None
    assert "original downloads cut" in profile.describe()
    assert "원본 파일" in profile.describe("ko")
