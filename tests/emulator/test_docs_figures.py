"""The figures docs/emulator.md states are the code's: presets, the banner, API limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from synapse_sdk.emulator import DEFAULT_ITEMS, PRESETS, FaultProfile, RateLimit
from synapse_sdk.emulator.app import MAX_BODY_BYTES
from synapse_sdk.emulator.backend_v2 import DEFAULT_PAGE_LIMIT, MAX_BULK_IDS, MAX_PAGE_LIMIT
from synapse_sdk.emulator.state import IDEMPOTENCY_CACHE_SIZE

DOC = (Path(__file__).resolve().parents[2] / "docs" / "emulator.md").read_text()


def _preset_row(name: str) -> str:
    match = re.search(rf"^\| `{name}` \| (.+) \|$", DOC, re.MULTILINE)
    assert match is not None, f"no row for the {name} preset"
    return match.group(1)


def _percent(row: str, what: str) -> float:
    match = re.search(rf"([\d.]+) % {what}", row)
    assert match is not None, f"no '% {what}' in {row!r}"
    return float(match.group(1)) / 100


def _rate_limit(row: str) -> RateLimit:
    match = re.search(r"(\d+) requests?/s (?:with a burst of|burst) (\d+)", row)
    assert match is not None, f"no rate limit in {row!r}"
    return RateLimit(per_second=float(match.group(1)), burst=int(match.group(2)))


def _latency(row: str) -> tuple[float, float]:
    match = re.search(r"([\d.]+)–([\d.]+) ms latency", row)
    assert match is not None, f"no latency in {row!r}"
    return float(match.group(1)) / 1000, float(match.group(2)) / 1000


@pytest.mark.parametrize("name", ["mild", "heavy"])
def test_the_preset_table_states_the_presets(name: str) -> None:
    row, preset = _preset_row(name), PRESETS[name]
    item_failures = "retryable item failures" if name == "mild" else "item failures"
    assert _percent(row, item_failures) == pytest.approx(preset["partial_failure_rate"])
    drops = "dropped connections" if name == "mild" else "drops"
    assert _percent(row, drops) == pytest.approx(preset["drop_rate"])
    assert _rate_limit(row) == preset["rate_limit"]
    assert _latency(row) == pytest.approx(preset["latency"])
    if "permanent_failure_rate" in preset:
        assert _percent(row, "corrupted ids") == pytest.approx(preset["permanent_failure_rate"])
    outages = re.findall(r"outage from ([\d.]+) s to ([\d.]+) s", row)
    assert tuple((float(a), float(b)) for a, b in outages) == tuple(preset.get("outages", ()))


def test_the_banner_example_shows_the_mild_profile_as_the_cli_does() -> None:
    match = re.search(r"^  faults: (.+)$", DOC, re.MULTILINE)
    assert match is not None
    assert match.group(1) == FaultProfile.preset("mild").describe()


def test_the_api_limits_are_the_codes() -> None:
    assert f"`per_page` 1–{MAX_PAGE_LIMIT}, default {DEFAULT_PAGE_LIMIT}" in DOC
    assert f"`ids_limit_exceeded` above {MAX_BULK_IDS} ids" in DOC
    assert MAX_BODY_BYTES == 1 << 20 and "`PAYLOAD_TOO_LARGE` above 1 MiB" in DOC
    assert f"(the latest {IDEMPOTENCY_CACHE_SIZE})" in DOC
    assert f"| `items` | `{DEFAULT_ITEMS}` |" in DOC
