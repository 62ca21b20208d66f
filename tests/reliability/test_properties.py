"""Properties of the parsers that must never raise on hostile input (hypothesis).

The neighbouring suites already prove "does not raise" on plain random text for each parser;
this file adds what they do not: full type invariants of every envelope in every disguise (JSON,
repr, truncated, double-encoded, escaped, bytes) and their agreement, the ``to_json`` round trip
of *found* envelopes, Retry-After semantics (exact decimals, HTTP-dates, header precedence),
the chain walk against an independent reachability search on hostile exception graphs, the
documented classification layers recomputed from public functions for all four categories,
rendering of every message code in any language with hostile parameters, and the traceback
reader's coverage of its input. Exceptions and values are built by ``synapse_testkit.hostile``,
the same builders the atheris harnesses use, driven here by hypothesis draws; the fuzz targets
themselves (``synapse_testkit.fuzz_targets``) are replayed on their seeds and random inputs at
the end.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import re
import string
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from synapse_sdk.cli.classify import Record, split_records
from synapse_sdk.envelopes import (
    MAX_FAILED_ITEMS,
    MAX_OBJECT_CHARS,
    ErrorEnvelope,
    FailedItem,
    find_envelope,
    iter_envelopes,
)
from synapse_sdk.failures import DEFAULT_LIMIT, flatten_exception, walk_chain, walk_suppressed
from synapse_sdk.i18n import locale_candidates, normalize_language, safe_format, safe_str
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.failure_semantics import FailureCategory, extract_failed_step
from synapse_sdk.plugins.log_messages import (
    TERM_PARAMETERS,
    LogMessageCode,
    ResolvedMessage,
    resolve_log_message,
    templates_for,
    term,
)
from synapse_sdk.retry_after import (
    MAX_RETRY_AFTER_SECONDS,
    parse_retry_after,
    parse_retry_after_ms,
    retry_after_from_headers,
)
from synapse_testkit import fuzz_targets, hostile

#: The fuzz folder: its seeds are replayed here (data, not code) and its harness names checked.
FUZZ = Path(__file__).resolve().parents[2] / "fuzz"

CATEGORIES: tuple[FailureCategory[Any], ...] = tuple(get_category(n) for n in CATEGORY_NAMES)
IDS = [c.name for c in CATEGORIES]
CATALOG_CODES = tuple(sorted({key for c in CATEGORIES for key in c.catalog}))
ALL_CODES: tuple[LogMessageCode, ...] = tuple(code for c in CATEGORIES for code in c.all_codes())
NOW = 1_700_000_000.0

# Text with every code point, lone surrogates included (hypothesis leaves them out by default).
_any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)


def _terms_shown(params: dict[str, Any], language: str) -> dict[str, Any]:
    """``params`` as a template shows them: step and target names translated."""
    return {k: term(v, language) if k in TERM_PARAMETERS else v for k, v in params.items()}


class _Draws:
    """The ``atheris.FuzzedDataProvider`` calls ``synapse_testkit.hostile`` makes, as hypothesis
    draws (so failures shrink)."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self._draw = draw

    def ConsumeIntInRange(self, low: int, high: int) -> int:
        result: int = self._draw(st.integers(low, high))
        return result

    def ConsumeBool(self) -> bool:
        result: bool = self._draw(st.booleans())
        return result

    def ConsumeUnicode(self, count: int) -> str:
        result: str = self._draw(
            st.text(st.characters(codec=None, exclude_categories=()), max_size=count)
        )
        return result

    def ConsumeFloat(self) -> float:
        result: float = self._draw(st.floats())
        return result

    def remaining_bytes(self) -> int:
        return 1 << 20


# --- envelopes ------------------------------------------------------------------------------------

_KEYS = (
    "error", "errors", "code", "error_code", "detail", "message", "title", "type", "status",
    "status_code", "failed", "failed_ids", "invalid_ids", "id", "item_id", "retryable",
    "retry_after", "retry_after_seconds", "retry_after_ms", "extensions", "response",
)  # fmt: skip
_odd_scalars = st.sampled_from([
    "rate_limited", "partial_failure", "503", " ", "", "1.5", "-1", "nan", "1e3", 86_400, 86_401,
    10**30, -0.0, math.inf, "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 2100 00:00:00 GMT",
])  # fmt: skip


def _structures(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = (
        st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | strings
        | _odd_scalars
    )  # fmt: skip
    keys = st.sampled_from(_KEYS) | strings
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
        max_leaves=25,
    )


_ids = st.integers(-5, 10**6) | st.text(max_size=6) | st.booleans() | st.none() | st.floats()
_items = _ids | st.fixed_dictionaries(
    {"id": _ids}, optional={"code": st.none() | st.text(max_size=8), "retryable": _ids}
)
_error_bodies = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from(["rate_limited", "503", "", " x "]) | st.text(max_size=8)
        | st.integers(100, 599),
        "error_code": st.text(max_size=8),
        "detail": st.text(max_size=12),
        "title": st.text(max_size=12),
        "status": st.integers(0, 700) | st.sampled_from(["404", "4044", " 404"]),
        "failed": st.lists(_items, max_size=4),
        "failed_ids": st.lists(_ids, max_size=3),
        "invalid_ids": st.lists(_ids, max_size=3),
        "retry_after": st.floats() | st.text(max_size=8) | _odd_scalars,
        "retry_after_ms": st.integers(-10, 10**9) | st.text(max_size=6),
        "errors": st.lists(st.text(max_size=5) | st.fixed_dictionaries({"id": _ids}), max_size=3),
    },
)  # fmt: skip
_envelope_like = st.one_of(
    st.builds(lambda body: {"error": body}, _error_bodies),
    _error_bodies,
    st.builds(lambda body, outer: {"status": outer, "error": body}, _error_bodies, st.integers()),
    st.builds(lambda body: {"response": {"body": [body]}}, _error_bodies),
)
_values = _envelope_like | _structures(_any_text)


def _check_envelope(envelope: object) -> None:
    assert isinstance(envelope, ErrorEnvelope), type(envelope)
    code = envelope.code
    assert code is None or (type(code) is str and code.strip() and len(code) <= 256), code
    assert envelope.message is None or type(envelope.message) is str
    assert envelope.status is None or (
        type(envelope.status) is int and 100 <= envelope.status <= 599
    ), envelope.status
    assert isinstance(envelope.failed, tuple) and len(envelope.failed) <= MAX_FAILED_ITEMS
    for item in envelope.failed:
        assert isinstance(item, FailedItem)
        assert type(item.id) in (str, int), item
        assert item.code is None or type(item.code) is str, item
        assert type(item.retryable) is bool, item
    delay = envelope.retry_after_seconds
    assert delay is None or (
        type(delay) is float and math.isfinite(delay) and 0 <= delay <= MAX_RETRY_AFTER_SECONDS
    ), delay
    assert (
        code is not None or envelope.message is not None or envelope.status is not None
        or envelope.failed or delay is not None
    ), "an empty envelope"  # fmt: skip


def _same(a: ErrorEnvelope | None, b: ErrorEnvelope | None) -> bool:
    """Equal, letting a delay read from an HTTP-date move with the clock between two parses."""
    if a is None or b is None:
        return a is b
    delays = (a.retry_after_seconds, b.retry_after_seconds)
    if (delays[0] is None) != (delays[1] is None):
        return False
    if delays[0] is not None and delays[1] is not None and abs(delays[0] - delays[1]) > 5:
        return False
    return (a.code, a.message, a.status, a.failed) == (b.code, b.message, b.status, b.failed)


_SHAPES = ("value", "json", "repr", "truncated json", "truncated repr", "double-encoded",
           "escaped in prose", "in prose", "bytes", "truncated bytes")  # fmt: skip


def _disguise(value: Any, shape: str, cut: float, ascii_only: bool = True) -> object:
    dumped = json.dumps(value, ensure_ascii=ascii_only)
    if shape == "value":
        return value
    if shape == "json":
        return dumped
    if shape == "repr":
        return repr(value)
    if shape == "truncated json":
        return dumped[: int(len(dumped) * cut)]
    if shape == "truncated repr":
        return repr(value)[: int(len(repr(value)) * cut)]
    if shape == "double-encoded":
        return json.dumps(dumped)
    if shape == "escaped in prose":
        return f'KeyError: "{json.dumps(dumped)[1:-1]}" while exporting'
    if shape == "in prose":
        return f"bulk fetch failed: {dumped} (attempt 3)"
    encoded = dumped.encode("utf-8", "surrogatepass")
    return encoded if shape == "bytes" else encoded[: int(len(encoded) * cut)]


@given(_values, st.sampled_from(_SHAPES), st.floats(0, 1), st.booleans())
@settings(max_examples=250, deadline=None)
def test_every_envelope_in_any_disguise_is_well_typed_and_find_is_the_first_with_a_code(
    value: Any, shape: str, cut: float, ascii_only: bool
) -> None:
    subject = _disguise(value, shape, cut, ascii_only)
    found = list(iter_envelopes(subject))  # no safety net: the classifier calls it directly
    for envelope in found:
        _check_envelope(envelope)
    expected = next((e for e in found if e.code is not None), found[0] if found else None)
    assert _same(find_envelope(subject), expected)


@given(_values, st.sampled_from(["value", "json", "repr", "in prose"]))
@settings(max_examples=150, deadline=None)
@example({"error_code": "503", "failed": [1]}, "value")  # found by fuzz_envelopes
@example({"error": {"code": "404", "detail": "x"}}, "json")
def test_found_envelopes_round_trip_through_to_json(value: Any, shape: str) -> None:
    for envelope in iter_envelopes(_disguise(value, shape, 1.0)):
        canonical = envelope.to_json()
        if len(canonical) < MAX_OBJECT_CHARS:
            assert find_envelope(canonical) == envelope, canonical


def test_regression_a_digit_string_code_is_a_code_and_not_also_a_status() -> None:
    # fuzz_envelopes: {"error_code": "503"} gave status None, its to_json ({"code": "503"})
    # gave status 503, so the documented to_json round trip did not hold.
    assert find_envelope({"error": {"code": "503"}}) == ErrorEnvelope("503")
    assert find_envelope({"error_code": "503", "failed": [1]}) == ErrorEnvelope(
        "503", failed=(FailedItem(1),)
    )
    assert find_envelope(ErrorEnvelope("503").to_json()) == ErrorEnvelope("503")
    assert find_envelope({"error": {"code": 503}}) == ErrorEnvelope(None, status=503)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


_brace_free = st.text(st.characters(codec=None, exclude_categories=(), exclude_characters="{"),
                      max_size=12)  # fmt: skip
_mappings = (
    st.dictionaries(st.sampled_from(_KEYS) | _brace_free, _structures(_brace_free), max_size=5)
    | _envelope_like
).filter(lambda value: not any("{" in s for s in _strings(value)))


@given(_mappings, st.booleans())
@settings(max_examples=150, deadline=None)
def test_json_repr_double_encoded_and_escaped_forms_give_the_same_envelope(
    value: dict[str, Any], ascii_only: bool
) -> None:
    """Without JSON inside its strings, a mapping's envelope does not depend on its disguise."""
    direct = find_envelope(value)
    for shape in ("json", "repr", "double-encoded", "in prose", "bytes"):
        assert _same(find_envelope(_disguise(value, shape, 1.0, ascii_only)), direct), shape
    if direct is None or direct.code is not None:
        # (The escaped form is rescanned at every nested brace, so there a coded envelope
        # nested inside a code-less one is found as well; with a coded one first, no matter.)
        escaped = _disguise(value, "escaped in prose", 1.0, ascii_only)
        assert _same(find_envelope(escaped), direct)


# --- Retry-After ----------------------------------------------------------------------------------

_padding = st.sampled_from(["", " ", "\t", "  ", "\u2003"])


@given(st.integers(0, 10**6), st.text("0123456789", max_size=6), _padding, _padding)
@settings(max_examples=120, deadline=None)
def test_decimal_seconds_are_read_exactly_however_large(
    whole: int, fraction: str, before: str, after: str
) -> None:
    written = f"{whole}.{fraction}" if fraction else str(whole)
    expected = float(written)
    assert parse_retry_after(before + written + after) == expected
    assert parse_retry_after((before + written + after).encode()) == (
        expected if (before + after).isascii() else None
    )
    assert retry_after_from_headers({"Retry-After": written}) == expected


@given(st.integers(-(10**6), 10**6))
@settings(max_examples=120, deadline=None)
def test_http_dates_give_the_delay_from_now_and_past_dates_none(offset: int) -> None:
    date = formatdate(NOW + offset, usegmt=True)
    expected = float(offset) if offset >= 0 else None
    assert parse_retry_after(date, now=NOW) == expected
    assert parse_retry_after(date.encode(), now=NOW) == expected


_number_like = st.builds(
    lambda sign, digits, exponent, tail: sign + digits + exponent + tail,
    st.sampled_from(["", "+", "-", " -"]),
    st.sampled_from(["1", "1.5", ".5", "5.", "1_000", "١٢", "0x10", "inf", "nan", "Infinity"]),
    st.sampled_from(["", "e3", "E-2", "e999"]),
    st.sampled_from(["", " s", "ms", "\x00"]),
)
# A delay in text: digits, an optional fraction and exponent (no sign, "_", "inf", "nan").
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _as_delay(value: float) -> float | None:
    """What the parsers make of a number: garbage when negative or NaN, saturated when huge."""
    if math.isnan(value) or value < 0:
        return None
    return min(value, MAX_RETRY_AFTER_SECONDS)


@given(_number_like | _any_text, st.floats() | st.integers(-(2**1100), 2**1100))
@settings(max_examples=200, deadline=None)
def test_only_numbers_and_dates_are_delays_and_huge_is_not_garbage(
    text: str, number: float
) -> None:
    result = parse_retry_after(text, now=NOW)
    assert result is None or (type(result) is float and 0 <= result <= MAX_RETRY_AFTER_SECONDS)
    stripped = text.strip()
    if stripped.isascii() and _DECIMAL.fullmatch(stripped):
        assert result == _as_delay(float(stripped)), text
    else:
        try:
            float(stripped)
        except ValueError:
            pass
        else:  # float() takes signs, "_", "inf", "nan", non-ASCII digits: none is a delay
            assert result is None, text
    if text.isascii():
        assert parse_retry_after(text.encode(), now=NOW) == result
    try:
        as_float = float(number)
    except OverflowError:
        as_float = math.inf if number > 0 else -math.inf
    assert parse_retry_after(number) == _as_delay(as_float)


@given(
    _number_like | _any_text | st.sampled_from(["250", " 1.5 ", "86400000", "86400001", ".5"]),
    st.floats() | st.integers(-(2**1100), 2**1100) | st.none() | st.lists(st.integers()),
)
@settings(max_examples=200, deadline=None)
def test_retry_after_ms_reads_decimal_milliseconds_only_and_the_body_agrees(
    text: str, other: object
) -> None:
    result = parse_retry_after_ms(text)
    stripped = text.strip()
    if stripped.isascii() and _DECIMAL.fullmatch(stripped):
        seconds = _as_delay(float(stripped))
        assert result == (seconds if seconds == MAX_RETRY_AFTER_SECONDS else seconds / 1000)
    else:
        assert result is None  # never a date, a sign, "inf" or "nan"
    if text.isascii():
        assert parse_retry_after_ms(text.encode()) == result
    body = find_envelope({"error": {"code": "rate_limited", "retry_after_ms": text}})
    assert body is not None and body.retry_after_seconds == result
    delay = parse_retry_after_ms(other)  # any object: None or a delay, never an exception
    assert delay is None or (type(delay) is float and 0 <= delay <= MAX_RETRY_AFTER_SECONDS)


_header_names = st.sampled_from(
    ["retry-after", "Retry-After", "RETRY-AFTER", "retry-after-ms", "Retry-After-Ms", "X-Other"]
)
_header_values = st.sampled_from(["250", "1.5", "0", "-1", "nan", "99999999999", "", "abc"]) | (
    st.text(max_size=12)
)


@given(st.dictionaries(_header_names, _header_values, max_size=5))
@settings(max_examples=200, deadline=None)
def test_retry_after_ms_wins_when_usable_and_names_match_in_any_case(
    headers: dict[str, str],
) -> None:
    first: dict[str, str] = {}
    for name, value in headers.items():
        first.setdefault(name.lower(), value)
    result = retry_after_from_headers(headers)
    milliseconds = first.get("retry-after-ms", "").strip()
    if milliseconds.isascii() and _DECIMAL.fullmatch(milliseconds):
        assert result == parse_retry_after_ms(milliseconds) is not None
        return
    if "retry-after" in first:
        assert result == parse_retry_after(first["retry-after"])
    else:
        assert result is None


# --- chain walk and flattening --------------------------------------------------------------------


@st.composite
def _graphs(draw: st.DrawFn) -> tuple[BaseException, list[BaseException]]:
    root, everything = hostile.build_chain(_Draws(draw), codes=CATALOG_CODES, max_exceptions=7)
    return root, everything


def _type_name(cls: type) -> str:
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


@given(_graphs(), st.integers(0, 10), st.integers(1, 10))
@settings(max_examples=200, deadline=None)
def test_walk_chain_is_the_reachable_set_within_its_bounds(
    graph: tuple[BaseException, list[BaseException]], max_depth: int, max_nodes: int
) -> None:
    root, everything = graph
    distance = hostile.reachable(root)  # an independent breadth-first search
    chain = walk_chain(root, max_depth=max_depth, max_nodes=max_nodes)
    assert chain[0] is root and len(chain) <= max_nodes
    assert len({id(e) for e in chain}) == len(chain)
    assert all(distance.get(id(e), math.inf) <= max_depth for e in chain)
    room = len(everything) + 1
    assert {id(e) for e in walk_chain(root, max_depth=room, max_nodes=room)} == set(distance)


@given(_graphs(), st.integers(64, 3000))
@settings(max_examples=200, deadline=None)
def test_flatten_is_bounded_starts_with_the_root_and_reads_one_line_per_exception(
    graph: tuple[BaseException, list[BaseException]], limit: int
) -> None:
    root, _ = graph
    text = flatten_exception(root, limit=limit)
    assert type(text) is str and len(text) <= limit
    assert flatten_exception(root, limit=limit) == text
    head = (limit - len("\n…\n") + 1) // 2
    assert text.startswith(_type_name(type(root))[:head])
    chain = walk_chain(root)
    messages = [hostile.plain_message(exc) for exc in chain]
    if all(m is not None for m in messages):
        lines = [
            f"{_type_name(type(exc))}: {m}" if m else _type_name(type(exc))
            for exc, m in zip(chain, messages, strict=True)
        ]
        if len("\n".join(lines)) <= limit:
            assert text == "\n".join(lines)


def test_regression_str_returning_a_str_subclass_whose_methods_raise() -> None:
    # fuzz_flatten / fuzz_classifiers: str(exc) may return a str subclass; len(), slicing and
    # format() on it raised out of flatten_exception, every classifier and extract_failed_step.
    exc = hostile.StrReturnsHostileStr("disk full")
    assert flatten_exception(exc) == "synapse_testkit.hostile.StrReturnsHostileStr: disk full"
    for category in CATEGORIES:
        category.classify(exc)
    exc.step = None
    assert extract_failed_step(exc) is None
    assert extract_failed_step(hostile.StrReturnsHostileStr("step 'save' failed")) == "save"
    shown = safe_str(hostile.HostileStrValue())
    assert shown == "lazy" and type(shown) is str
    assert safe_format("{x}!", {"x": hostile.HostileStrValue()}) == "lazy!"


# --- classifiers ----------------------------------------------------------------------------------

_WORDS = (
    "KeyError", "[Errno 2] No such file or directory", "[Errno 13] Permission denied",
    "[Errno 28] No space left on device", "[Errno 111] Connection refused", "429", "timed out",
    "JSONDecodeError: Expecting value", "step 'convert' failed", "CUDA out of memory",
    "BadDigest", "quota exceeded", "413", "unsupported storage", "export failed", "401",
    "ValidationError", "peer closed connection", "\u212a", "\u0130", "\u017f", "code", "{", "'",
)  # fmt: skip
_messages = _any_text | st.lists(
    st.sampled_from(_WORDS) | st.text(max_size=6), min_size=1, max_size=8
).map(" ".join)


def _attribute(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _documented_decision(
    category: FailureCategory[Any], exc: BaseException | None, message: str | None
) -> tuple[Any, str | None]:
    """The three documented layers, from public functions; ``...`` when the text is capped."""
    chain = walk_chain(exc) if exc is not None else []
    for node in chain:
        code = _attribute(node, "error_code")
        if isinstance(code, str) and code in category.catalog:
            return category.catalog[code], "attribute"
    if exc is not None:
        blob = flatten_exception(exc, limit=DEFAULT_LIMIT)
        blob = f"{blob}\n{message}" if message else blob
    elif message is not None:
        blob = message
    else:
        return None, None
    if len(blob) >= DEFAULT_LIMIT:  # (possibly) capped
        return ..., None
    if "code" in blob:
        for envelope in iter_envelopes(blob):
            if envelope.code is not None and envelope.code in category.catalog:
                return category.catalog[envelope.code], "envelope"
    # The backend's word in a context hidden by `raise ... from None` counts next, never its text.
    hidden = walk_suppressed(exc) if exc is not None else []
    for node in hidden:
        code = _attribute(node, "error_code")
        if isinstance(code, str) and code in category.catalog:
            return category.catalog[code], "attribute"
    text = "\n".join(flatten_exception(node, max_depth=0) for node in hidden)
    if len(text) > DEFAULT_LIMIT:
        return ..., None
    for envelope in iter_envelopes(text) if "code" in text else ():
        if envelope.code is not None and envelope.code in category.catalog:
            return category.catalog[envelope.code], "envelope"
    for pattern, code in category.patterns:
        if re.search(pattern, blob):
            return code, "pattern"
    return None, None


@given(
    st.sampled_from(CATEGORIES),
    st.none() | _graphs().map(lambda graph: graph[0]),
    st.none() | _messages,
)
@settings(max_examples=200, deadline=None)
def test_every_category_decides_by_its_documented_layers(
    category: FailureCategory[Any], exc: BaseException | None, message: str | None
) -> None:
    code = category.classify(exc, message)
    assert code is None or isinstance(code, category.codes)
    explanation = category.classifier.explain(exc, message)
    assert (None if explanation is None else explanation.code) is code
    expected, layer = _documented_decision(category, exc, message)
    if expected is not ...:
        assert code is expected
        assert (None if explanation is None else explanation.layer) == layer
    step = extract_failed_step(exc if exc is not None else message)
    if exc is None and message is not None:
        assert step is None or re.fullmatch(r"[\w.-]{1,64}", step)
    else:
        assert step is None or (type(step) is str and step.strip())


@given(
    st.sampled_from(CATEGORIES).flatmap(
        lambda c: st.tuples(st.just(c), st.sampled_from(sorted(c.catalog)))
    ),
    st.text(st.characters(exclude_characters="{\"'\\"), max_size=40),
    _any_text,
    st.sampled_from(["json", "repr"]),
    st.text(max_size=20),
)
@settings(max_examples=150, deadline=None)
def test_a_catalog_envelope_after_a_brace_free_prefix_always_decides(
    category_and_code: tuple[FailureCategory[Any], str],
    prefix: str,
    suffix: str,
    shape: str,
    detail: str,
) -> None:
    category, code = category_and_code
    envelope = {"error": {"code": code, "detail": detail}}
    body = json.dumps(envelope) if shape == "json" else repr(envelope)
    assert category.classify(message=prefix + body + suffix) is category.catalog[code]
    assert category.classify(RuntimeError(prefix + body)) is category.catalog[code]


# --- message rendering ----------------------------------------------------------------------------

_TAGS = ("en", "ko", "ko-KR", "ko_KR.UTF-8", "KO", "EN-us", "en_GB@euro", "fr", "zh-Hant-TW")
_FORMATTER = string.Formatter()


def _fields(template: str) -> list[tuple[str, str, str | None]]:
    try:
        return [(f, s or "", c) for _, f, s, c in _FORMATTER.parse(template) if f is not None]
    except ValueError:
        return []


def _plain(value: object) -> bool:
    return type(value) in (int, str) and not {"{", "}"} & set(str(value))


@given(
    st.sampled_from(ALL_CODES),
    st.none() | st.sampled_from(_TAGS) | st.text(max_size=12),
    st.data(),
)
@settings(max_examples=200, deadline=None)
def test_resolve_log_message_for_every_code_language_and_parameter(
    code: LogMessageCode, language: str | None, data: st.DataObject
) -> None:
    draws = _Draws(data.draw)
    templates = templates_for(code)
    names = sorted({f for t in templates.values() for f, _, _ in _fields(t)})
    params: dict[str, Any] = {}
    for name in names:
        choice = data.draw(st.integers(0, 2))
        if choice:
            params[name] = hostile.make_value(draws) if choice == 1 else data.draw(_plain_values)
    extra = data.draw(st.dictionaries(st.text(max_size=6), st.integers(), max_size=2))
    params.update({k: v for k, v in extra.items() if k != "language"})

    rejected = False
    if language is not None:
        try:
            normalize_language(language)
        except ValueError:
            rejected = True
    if rejected:
        with pytest.raises(ValueError):  # documented: a bad explicit tag is the caller's bug
            resolve_log_message(code, language, **params)
        return
    resolved = resolve_log_message(code, language, **params)
    assert isinstance(resolved, ResolvedMessage)
    assert type(resolved.text) is str and resolved.level is code.level
    if language is None:
        return  # the environment picks the language: not this test's business
    chosen = next((c for c in locale_candidates(language) if c in templates), None)
    if chosen is None:
        assert resolved.text == code.value
        return
    template = templates[chosen]
    fields = _fields(template)
    if all(f in params and _plain(params[f]) for f, _, _ in fields):
        assert resolved.text == template.format(**_terms_shown(params, chosen))
    for field, spec, conversion in fields:
        if field not in params and not spec and conversion is None:
            assert "{" + field + "}" in resolved.text


_plain_values = st.integers(-(10**6), 10**6) | st.text(
    st.characters(exclude_characters="{}"), max_size=10
)
_PIECES = (
    "{a}", "{b}", "{a!r}", "{b!s}", "{a!a}", "{a:>8}", "{a:^{b}}", "{b:d}", "{a:,}", "{a:.3}",
    "{a.__class__}", "{a[0]}", "{0}", "{}", "{a!x}", "{{", "}}", "{", "}", "{a", "a}", "{:}",
    "{a:{b}{c}}", "{a:999999999}", "{c:%}", "{ a }", "{c:_<12}",
)  # fmt: skip


@given(
    st.lists(st.sampled_from(_PIECES) | st.text(max_size=8), max_size=8).map("".join),
    st.dictionaries(st.sampled_from("abc"), _plain_values, max_size=3),
    st.data(),
)
@settings(max_examples=250, deadline=None)
def test_safe_format_agrees_with_str_format_and_never_evaluates_attributes(
    template: str, params: dict[str, Any], data: st.DataObject
) -> None:
    rendered = safe_format(template, params)
    assert type(rendered) is str
    if not {"{", "}"} & set(template):
        assert rendered == template
    fields = _fields(template)
    for field, _, _ in fields:
        if "." in field or "[" in field:
            assert "{" + field in rendered  # left as written, never evaluated
    simple = all(
        f.isidentifier() and f in params and "{" not in s and not re.search(r"\d{4}", s)
        and c in (None, "r", "s", "a")
        for f, s, c in fields
    )  # fmt: skip
    if fields and simple:
        try:
            expected = template.format(**params)
        except (ValueError, TypeError):
            expected = None  # a spec that does not fit: safe_format shows the value plainly
        if expected is not None:
            assert rendered == expected
    # the same template with hostile values never raises either
    hostile_params = {name: hostile.make_value(_Draws(data.draw)) for name in params}
    assert type(safe_format(template, hostile_params)) is str


def test_regression_huge_widths_do_not_allocate_gigabytes() -> None:
    # fuzz_render: "{a:999999999}" built a 1 GB string (libFuzzer out-of-memory), and a nested
    # width taken from the data ("{a:{w}}", w=10**9) did the same; such specs are now ignored.
    assert safe_format("{a:999999999}|", {"a": 7}) == "7|"
    assert safe_format("{a:{w}}|", {"a": 7, "w": 10**9}) == "7|"
    assert safe_format("{a:.{p}f}|", {"a": 1.5, "p": 99999}) == "1.5|"
    assert safe_format("{a:0000000000000000000000009}|", {"a": 7}) == "000000007|"
    assert safe_format("{a:>1000}", {"a": 7}) == " " * 999 + "7"
    assert safe_format("{a:>5}|{b:.2f}", {"a": 7, "b": 1.0}) == "    7|1.00"


# --- the traceback reader of ``synapse classify`` -------------------------------------------------

HEADER = hostile.TRACEBACK_HEADER
REAL = [
    hostile.formatted(call)
    for call in (hostile.raise_by_cause, hostile.raise_by_context, hostile.raise_multiline)
]
GROUP = hostile.formatted(hostile.raise_nested_group)


def _lines(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.split("\n")]


def _check_records(text: str) -> list[Record]:
    """Every non-blank line in exactly one record, records in order, pieces from their lines."""
    records = split_records(text)
    lines = _lines(text)
    starts = [r.line for r in records]
    assert starts == sorted(set(starts)) and all(1 <= s <= len(lines) for s in starts)
    covered: set[int] = set()
    for number, record in enumerate(records):
        end = starts[number + 1] if number + 1 < len(records) else len(lines) + 1
        first = lines[record.line - 1]
        if record.kind == "line":
            assert record.message_lines == [first.strip()] == [record.summary] != [""]
            covered.add(record.line)
            continue
        below = lines[record.line] if record.line < len(lines) else ""
        assert HEADER in first or HEADER in below
        own = "\n".join(lines[record.line - 1 : end - 1])
        assert all(p and p == p.strip() and p in own for p in record.message_lines)
        assert record.summary in record.message_lines or record.summary == "" == record.message
        covered.update(range(record.line, end))
    assert {i for i, line in enumerate(lines, 1) if line.strip()} <= covered
    if HEADER not in text:
        assert [r.kind for r in records] == ["line"] * sum(1 for x in lines if x.strip())
    return records


@given(_any_text | st.lists(st.sampled_from([HEADER, "", "  | x", "+---", "  File"]) | _any_text,
                            max_size=10).map("\n".join))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_split_records_covers_any_text(text: str) -> None:
    _check_records(text)


_MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "duplicate", "indent", "unbox", "cut", "insert", "crlf"]),
        st.integers(0, 10**6),
        _any_text,
    ),
    max_size=5,
)


def _mutated(text: str, mutations: list[tuple[str, int, str]]) -> str:
    lines = text.split("\n")
    for operation, position, inserted in mutations:
        if not lines:
            break
        at = position % len(lines)
        if operation == "delete":
            del lines[at]
        elif operation == "duplicate":
            lines.insert(at, lines[at])
        elif operation == "indent":
            lines[at] = " " * (position % 7) + lines[at].lstrip()
        elif operation == "unbox":
            lines[at] = lines[at].replace("|", "").replace("+-", "")
        elif operation == "cut":
            lines[at] = lines[at][: position % (len(lines[at]) + 1)]
        elif operation == "insert":
            lines.insert(at, inserted)
        else:
            lines[at] += "\r"
    return "\n".join(lines)


@given(st.sampled_from([*REAL, GROUP]), _MUTATIONS)
@settings(max_examples=150, deadline=None)
def test_split_records_on_mutated_real_tracebacks(
    real: tuple[str, str], mutations: list[tuple[str, int, str]]
) -> None:
    _check_records(_mutated(real[0], mutations))


@pytest.mark.parametrize("real", REAL, ids=["cause", "context", "multiline"])
@given(st.text(st.characters(exclude_categories=("Cc", "Zl", "Zp")), min_size=1, max_size=30))
@settings(max_examples=30, deadline=None)
def test_a_real_traceback_between_log_lines_is_one_record_with_its_last_line(
    real: tuple[str, str], line: str
) -> None:
    source, last = real
    line = "log " + line  # not blank, not a header
    records = _check_records(f"{line}\n\n{source}\n{line}\n")
    assert [r.kind for r in records] == ["line", "traceback", "line"]
    assert records[1].summary == last


# --- the fuzz targets themselves ----------------------------------------------------------------

TARGETS = sorted(info.name for info in pkgutil.iter_modules(fuzz_targets.__path__))


def test_every_fuzz_harness_has_its_target_here() -> None:
    """Each ``fuzz/fuzz_NAME.py`` runs ``synapse_testkit.fuzz_targets.NAME`` under atheris, so the
    replay below covers every harness CI fuzzes."""
    harnesses = sorted(p.stem.removeprefix("fuzz_") for p in FUZZ.glob("fuzz_*.py"))
    assert harnesses == TARGETS
    for name in TARGETS:
        wrapper = (FUZZ / f"fuzz_{name}.py").read_text()
        assert f"from synapse_testkit.fuzz_targets.{name} import TestOneInput" in wrapper


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_target_invariants_hold_on_its_seeds_and_random_inputs(name: str) -> None:
    """The targets' invariants, on their seeds and on inputs hypothesis picks: a target that no
    longer matches the code fails here, not only in a fuzzing run. The bytes are read by
    atheris's own provider where atheris is installed (the test extra installs it)."""
    run = importlib.import_module(f"synapse_testkit.fuzz_targets.{name}").TestOneInput
    seeds = FUZZ / "seeds" / name
    replayed = 0
    for seed in sorted(seeds.iterdir()) if seeds.is_dir() else []:
        run(seed.read_bytes())
        replayed += 1
    assert replayed or not seeds.exists()

    @given(st.binary(max_size=600))
    @settings(max_examples=40, deadline=None)
    def random_inputs(data: bytes) -> None:
        run(data)

    random_inputs()


@given(st.binary(max_size=200))
@settings(max_examples=60, deadline=None)
def test_the_plain_provider_stays_in_range(data: bytes) -> None:
    """:class:`BytesProvider` (the targets' reader without atheris) keeps atheris's contract."""
    fdp = hostile.BytesProvider(data)
    while fdp.remaining_bytes():
        low = fdp.ConsumeIntInRange(-5, 5)
        assert -5 <= low <= 5
        assert 0 <= fdp.ConsumeIntInRange(0, 2**40) <= 2**40
        assert isinstance(fdp.ConsumeBool(), bool)
        assert len(fdp.ConsumeUnicode(8)) <= 8
        assert isinstance(fdp.ConsumeFloat(), float)
    assert fdp.ConsumeIntInRange(3, 9) == 3  # exhausted input reads as zeros
