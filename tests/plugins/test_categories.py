"""What holds for every action category (export, upload, train, inference).

Every code has en and ko templates with identical placeholders; every catalog entry wins over the
patterns; unknown backend codes fall through; the category data is validated; no shipped pattern
backtracks catastrophically; classification never raises.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.exceptions import BackendError
from synapse_sdk.plugins import failure_patterns
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.failure_semantics import FailureCategory, RetrySemantics
from synapse_sdk.plugins.log_messages import (
    LogLevel,
    LogMessageCode,
    registered_codes,
    resolve_log_message,
    templates_for,
)

CATEGORIES = [get_category(name) for name in CATEGORY_NAMES]
IDS = list(CATEGORY_NAMES)
_HANGUL = re.compile("[가-힣]")


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


# --- messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_every_code_has_en_and_ko_with_identical_placeholders(
    category: FailureCategory[Any],
) -> None:
    registered = set(registered_codes(category.codes))
    assert registered == set(category.codes), "every member is registered"
    for code in registered:
        templates = templates_for(code)
        assert {"en", "ko"} <= set(templates), code
        en, ko = templates["en"], templates["ko"]
        assert en.strip() and ko.strip(), code
        assert _fields(en) == _fields(ko), code
        assert _HANGUL.search(ko), f"{code.name}: the ko template is not Korean"
        for name in _fields(en):
            assert name.isidentifier(), f"{code.name}: placeholder {name!r}"
            assert name != "language", f"{code.name}: 'language' is resolve_log_message's own"


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_rendering_every_code_in_both_languages(category: FailureCategory[Any]) -> None:
    for code in category.codes:
        params = {name: 7 for name in _fields(templates_for(code)["en"])}
        for language in ("en", "ko", "ko-KR", "ja"):
            text, level = resolve_log_message(code, language, **params)
            assert "{" not in text and level is code.level


def test_code_values_are_unique_across_categories() -> None:
    values = [code.value for category in CATEGORIES for code in category.codes]
    assert len(values) == len(set(values))


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_failure_codes_and_retry_semantics(category: FailureCategory[Any]) -> None:
    prefix = category.fallback.value
    for code in category.codes:
        if code in category.retry_semantics:
            assert code.level in (LogLevel.WARNING, LogLevel.ERROR, LogLevel.CRITICAL), code
        else:
            assert not code.value.startswith(prefix + "_"), f"{code.name} has no semantics"
    partial = [code for code in category.catalog.values() if code.name.endswith("BATCH_PARTIAL")]
    for code in partial:
        assert code.level is LogLevel.WARNING
        assert category.retry_semantics[code] is RetrySemantics.RETRY_FAILED_ITEMS
    assert category.failure_codes()[-1] is category.fallback


# --- the two layers ---------------------------------------------------------------------------


def _catalog_cases() -> list[tuple[FailureCategory[Any], str]]:
    return [(category, key) for category in CATEGORIES for key in category.catalog]


@pytest.mark.parametrize(
    ("category", "backend_code"),
    _catalog_cases(),
    ids=[f"{c.name}-{k}" for c, k in _catalog_cases()],
)
def test_every_catalog_code_wins_over_the_patterns(
    category: FailureCategory[Any], backend_code: str
) -> None:
    expected = category.catalog[backend_code]
    envelope = json.dumps({"error": {"code": backend_code, "detail": "..."}})
    assert category.classify(BackendError(f"request failed: {envelope}")) is expected
    assert category.classify(BackendError("request failed", error_code=backend_code)) is expected
    # v2 over v1: texts every category's patterns would otherwise claim.
    assert category.classify(KeyError(envelope)) is expected
    noisy = f"[Errno 111] Connection refused; [Errno 2] No such file or directory {envelope}"
    assert category.classify(message=noisy) is expected


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_unknown_backend_code_falls_through_to_the_patterns(category: FailureCategory[Any]) -> None:
    envelope = json.dumps({"error": {"code": "code_from_the_future"}})
    assert category.classify(BackendError(envelope)) is None
    via_pattern = category.classify(message="[Errno 111] Connection refused")
    assert via_pattern is not None
    assert category.classify(message=f"[Errno 111] Connection refused {envelope}") is via_pattern


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_without_an_envelope_only_the_patterns_answer(
    category: FailureCategory[Any], pattern_index: Callable[..., int | None]
) -> None:
    for key in category.catalog:
        text = f"request failed with {key} (code={key})"
        index = pattern_index(category.patterns, text)
        v1_only = None if index is None else category.patterns[index][1]
        assert category.classify(message=text) is v1_only, key


# --- the data is validated ----------------------------------------------------------------------


class _Codes(LogMessageCode):
    X_FAILED = ("X_FAILED", LogLevel.ERROR)
    X_DONE = ("X_DONE", LogLevel.SUCCESS)


class _Other(LogMessageCode):
    Y_FAILED = ("Y_FAILED", LogLevel.ERROR)


_OK: dict[str, Any] = {
    "name": "x",
    "codes": _Codes,
    "catalog": {"bad": _Codes.X_FAILED},
    "patterns": [(r"\bboom\b", _Codes.X_FAILED)],
    "retry_semantics": {_Codes.X_FAILED: RetrySemantics.NO_RETRY},
    "fallback": _Codes.X_FAILED,
}


def test_a_valid_category_classifies() -> None:
    category = FailureCategory(**_OK)
    assert category.classify(message="boom") is _Codes.X_FAILED
    assert category.classify(BackendError("", error_code="bad")) is _Codes.X_FAILED
    assert category.failure_codes() == (_Codes.X_FAILED,)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"catalog": {3: _Codes.X_FAILED}}, TypeError, "not a string"),
        ({"catalog": {"bad": _Other.Y_FAILED}}, TypeError, "not a _Codes member"),
        ({"patterns": [("(unclosed", _Codes.X_FAILED)]}, ValueError, "does not compile"),
        ({"patterns": [("ok", "X_FAILED")]}, TypeError, "not a _Codes member"),
        ({"retry_semantics": {}}, ValueError, "without retry semantics"),
        ({"retry_semantics": {_Codes.X_FAILED: "no_retry"}}, TypeError, "not RetrySemantics"),
        ({"fallback": _Other.Y_FAILED}, TypeError, "not a _Codes member"),
    ],
)
def test_bad_category_data_fails_at_import_time(
    change: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        FailureCategory(**{**_OK, **change})


def test_get_category() -> None:
    assert CATEGORY_NAMES == ("export", "upload", "train", "inference")
    assert get_category("export").name == "export"
    with pytest.raises(ValueError, match="unknown action category 'nope'"):
        get_category("nope")
    with pytest.raises(ValueError, match="unknown action category"):
        get_category(["export"])  # type: ignore[arg-type]


# --- no catastrophic backtracking ---------------------------------------------------------------
#
# Python's re has no step counter, so this is a complexity check on the clock: the time at 4x the
# input may grow at most ~10x (linear is 4x, quadratic 16x, exponential far more). Sizes and
# measurements are interleaved and the best of three is compared; a failing comparison is
# measured again (up to three times), so a noisy machine cannot fail it but a super-linear
# pattern fails every attempt.

_N = 2048


def _adversarial_inputs(pattern: str, n: int) -> list[str]:
    """Long repeats and near-misses built from the pattern's own words."""
    words = re.findall(r"[A-Za-z]{3,}", pattern) or ["abc"]
    near_miss = " ".join(word[:-1] for word in words) + " "
    all_but_last = " ".join(words[:-1]) + " " if len(words) > 1 else words[0][:-1] + " "
    return [
        "a" * n,
        " " * n,
        "{'" * (n // 2),
        ("step '" + "a" * 70 + "' ") * (n // 78),
        ("[Errno 1 " * n)[:n],
        (near_miss * (n // len(near_miss) + 1))[:n],
        (all_but_last * (n // len(all_but_last) + 1))[:n],
    ]


def _scales_linearly(run: Callable[[str], object], small_text: str, large_text: str) -> str:
    """'' when ``run`` on 4x the input costs at most ~10x; otherwise the measurements."""
    seen = []
    for _ in range(3):
        small = large = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            run(small_text)
            small = min(small, time.perf_counter() - start)
            start = time.perf_counter()
            run(large_text)
            large = min(large, time.perf_counter() - start)
        if large < 1e-3 or large <= 10 * small:  # sub-millisecond: below the timer's noise
            return ""
        seen.append(f"{small * 1e3:.2f}ms -> {large * 1e3:.2f}ms")
    return ", ".join(seen)


def _no_blowup_on_short_input(search: Callable[[str], object], text: str) -> str:
    """Exponential backtracking shows on a few dozen characters: fail there, instead of hanging
    on the long inputs. Each short search gets 50 ms, thousands of times what it needs."""
    for size in range(8, 33, 4):
        start = time.perf_counter()
        search(text[:size])
        if time.perf_counter() - start > 0.05:
            return f"{time.perf_counter() - start:.2f}s on {size} characters"
    return ""


def _all_patterns() -> dict[str, str]:
    """Every shipped pattern (categories and shared fragments), once, by where it is first seen."""
    out: dict[str, str] = {}
    for category in CATEGORIES:
        for index, (pattern, _) in enumerate(category.patterns):
            out.setdefault(pattern, f"{category.name}[{index}]")
    for name in failure_patterns.__all__:
        out.setdefault(getattr(failure_patterns, name), name)
    return out


@pytest.mark.parametrize(
    "pattern", list(_all_patterns()), ids=list(_all_patterns().values())
)
def test_no_pattern_backtracks_catastrophically(pattern: str) -> None:
    compiled = re.compile(pattern)
    for small_text, large_text in zip(
        _adversarial_inputs(pattern, _N), _adversarial_inputs(pattern, 4 * _N), strict=True
    ):
        failure = _no_blowup_on_short_input(compiled.search, large_text) or _scales_linearly(
            compiled.search, small_text, large_text
        )
        assert not failure, f"super-linear on {large_text[:40]!r}...: {failure}"


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_whole_classifier_grows_linearly_on_adversarial_input(
    category: FailureCategory[Any],
) -> None:
    pattern = "|".join(p for p, _ in category.patterns)
    for small_text, large_text in list(
        zip(_adversarial_inputs(pattern, _N), _adversarial_inputs(pattern, 4 * _N), strict=True)
    )[::2]:
        failure = _scales_linearly(
            lambda text: category.classify(message=text), small_text, large_text
        )
        assert not failure, f"{category.name} super-linear on {large_text[:40]!r}: {failure}"


# --- never raises ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(CATEGORIES),
    st.text(max_size=400),
    st.sampled_from([RuntimeError, KeyError, OSError, BackendError, ValueError]),
)
def test_classification_never_raises(
    category: FailureCategory[Any], text: str, kind: type[Exception]
) -> None:
    exc = kind(text)
    exc.__context__ = RuntimeError(text[::-1])
    for code in (category.classify(exc), category.classify(message=text), category.classify()):
        assert code is None or isinstance(code, category.codes)
