"""Envelopes: every shape the backend's error reaches us in parses into one typed value."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk import envelopes, retry_after
from synapse_sdk.envelopes import (
    MAX_TEXT_CHARS,
    ErrorEnvelope,
    FailedItem,
    find_envelope,
    iter_envelopes,
)
from synapse_sdk.exceptions import BackendError
from synapse_sdk.retry_after import MAX_RETRY_AFTER_SECONDS

PARTIAL = {
    "error": {
        "code": "partial_failure",
        "detail": "2 of 5 items failed",
        "failed": [
            {"id": 7, "code": "item_unavailable", "retryable": True},
            {"id": "gt-9", "code": "item_corrupted", "retryable": False},
        ],
    }
}
PARTIAL_ENVELOPE = ErrorEnvelope(
    code="partial_failure",
    message="2 of 5 items failed",
    failed=(FailedItem(7, "item_unavailable", True), FailedItem("gt-9", "item_corrupted", False)),
)


def _key_error_text(payload: Any) -> str:
    """What ``str(KeyError(x))`` gives: the repr of the text, quotes and escapes included."""
    return str(KeyError(payload))


# --- the shapes ---------------------------------------------------------------------------------

FORMATS: list[tuple[str, object, ErrorEnvelope]] = [
    ("dict", PARTIAL, PARTIAL_ENVELOPE),
    ("json text", json.dumps(PARTIAL), PARTIAL_ENVELOPE),
    ("json bytes", json.dumps(PARTIAL).encode(), PARTIAL_ENVELOPE),
    ("bytearray", bytearray(json.dumps(PARTIAL).encode()), PARTIAL_ENVELOPE),
    ("python repr", repr(PARTIAL), PARTIAL_ENVELOPE),
    (
        "json nested in a message",
        'bulk fetch failed: {"error": {"code": "partial_failure", "detail": "..."}}',
        ErrorEnvelope("partial_failure", "..."),
    ),
    (
        "KeyError str() of json",
        _key_error_text('{"error": {"code": "invalid_ids", "invalid_ids": [3, 4]}}'),
        ErrorEnvelope(
            "invalid_ids",
            failed=(FailedItem(3, "invalid_id", False), FailedItem(4, "invalid_id", False)),
        ),
    ),
    (
        "KeyError str() of a dict repr with both quote kinds",
        _key_error_text(str({"error": {"code": "rate_limited", "detail": 'can\'t, "now"'}})),
        ErrorEnvelope("rate_limited", 'can\'t, "now"'),
    ),
    (
        "code not the first key",
        '{"error": {"detail": "slow down", "retry_after": 1.5, "code": "rate_limited"}}',
        ErrorEnvelope("rate_limited", "slow down", retry_after_seconds=1.5),
    ),
    (
        "nested objects before code",
        '{"error": {"meta": {"a": {"b": [1, {"c": 2}]}}, "detail": "x", "code": "rate_limited"}}',
        ErrorEnvelope("rate_limited", "x"),
    ),
    (
        "double-encoded json",
        json.dumps(json.dumps({"error": {"code": "rate_limited", "retry_after_ms": 250}})),
        ErrorEnvelope("rate_limited", retry_after_seconds=0.25),
    ),
    (
        "triple-encoded json",
        json.dumps(json.dumps(json.dumps({"error": {"code": "rate_limited"}}))),
        ErrorEnvelope("rate_limited"),
    ),
    (
        "escaped json inside a log line",
        'upstream said body="' + json.dumps({"error": {"code": "x1"}}).replace('"', '\\"') + '"',
        ErrorEnvelope("x1"),
    ),
    (
        "error value that is a json string",
        {"error": json.dumps({"code": "service_unavailable", "detail": "down"})},
        ErrorEnvelope("service_unavailable", "down"),
    ),
    (
        "envelope nested deeper in a dict",
        {"response": {"status": 207, "body": PARTIAL}},
        PARTIAL_ENVELOPE,
    ),
    (
        "envelope as a json string value inside a dict",
        {"response": {"text": json.dumps(PARTIAL)}},
        PARTIAL_ENVELOPE,
    ),
    (
        "repr with non-literal values",
        "{'error': {'code': 'rate_limited', 'at': datetime.datetime(2024, 1, 1), "
        "'retry_after': '2'}}",
        ErrorEnvelope("rate_limited", retry_after_seconds=2.0),
    ),
    (
        "RFC 9457 problem details with a code extension",
        {
            "type": "https://example.com/probs/out-of-credit",
            "title": "You do not have enough credit.",
            "status": 403,
            "detail": "Your current balance is 30, but that costs 50.",
            "code": "out_of_credit",
        },
        ErrorEnvelope("out_of_credit", "Your current balance is 30, but that costs 50.", 403),
    ),
    (
        "problem details without a code",
        '{"type": "about:blank", "title": "Too Many Requests", "status": 429, "retry_after": 3}',
        ErrorEnvelope(None, "Too Many Requests", 429, retry_after_seconds=3.0),
    ),
    (
        "errors array with item ids",
        {
            "errors": [
                {"code": "item_corrupted", "id": 3, "detail": "bad checksum"},
                {"code": "item_unavailable", "id": 4, "retryable": True},
            ]
        },
        ErrorEnvelope(
            "item_corrupted",
            "bad checksum",
            failed=(
                FailedItem(3, "item_corrupted", False),
                FailedItem(4, "item_unavailable", True),
            ),
        ),
    ),
    (
        "errors array, json:api status string",
        '{"errors": [{"status": "422", "title": "Invalid Attribute", "code": "invalid_attr"}]}',
        ErrorEnvelope("invalid_attr", "Invalid Attribute", 422),
    ),
    (
        "errors array, graphql extensions code",
        {"errors": [{"message": "slow down", "extensions": {"code": "rate_limited"}}]},
        ErrorEnvelope("rate_limited", "slow down"),
    ),
    (
        "errors array of strings",
        {"errors": ["the name is taken"]},
        ErrorEnvelope(None, "the name is taken"),
    ),
    (
        "numeric code is a status, not a code",
        {"error": {"code": 404, "message": "Not found"}},
        ErrorEnvelope(None, "Not found", 404),
    ),
    (
        "flat error object",
        "failed with {'code': 'partial_failure', 'failed_ids': [1, 2]}",
        ErrorEnvelope("partial_failure", failed=(FailedItem(1), FailedItem(2))),
    ),
    (
        "invalid_ids become items",
        {"error": {"code": "invalid_ids", "detail": "unknown ids", "invalid_ids": [10, "x"]}},
        ErrorEnvelope(
            "invalid_ids",
            "unknown ids",
            failed=(FailedItem(10, "invalid_id", False), FailedItem("x", "invalid_id", False)),
        ),
    ),
    (
        "failed as bare ids",
        {"error": {"code": "partial_failure", "failed": [1, 2]}},
        ErrorEnvelope("partial_failure", failed=(FailedItem(1), FailedItem(2))),
    ),
    (
        "retry_after_seconds and a status on the outer object",
        {"status": 429, "error": {"code": "rate_limited", "retry_after_seconds": "1.25"}},
        ErrorEnvelope("rate_limited", status=429, retry_after_seconds=1.25),
    ),
]


@pytest.mark.parametrize(("shape", "value", "expected"), FORMATS, ids=[f[0] for f in FORMATS])
def test_every_shape_parses_into_the_same_typed_envelope(
    shape: str, value: object, expected: ErrorEnvelope
) -> None:
    assert find_envelope(value) == expected


MALFORMED: list[object] = [
    "",
    "plain text without braces",
    "{not json at all",
    "{'error': {'code': 'x'",  # never closed
    '{"error": {"code": ',
    "}{",
    "{}",
    '{"error": {}}',
    '{"error": null}',
    '{"error": "something broke"}',  # no code, no envelope shape we know
    '{"data": [1, 2, 3], "meta": {"request_id": "r1"}}',  # a success body
    '{"code": "python", "lang": "en"}',  # a string code without any error-like member
    '{"type": "task", "status": 200}',  # looks a bit like problem details; it is not
    '{"error": {"code": true}}',  # a bool is not a code
    '{"error": {"code": ""}}',
    '{"error": {"code": ["rate_limited"]}}',
    "[1, 2, {",
    b"\xff\xfe\x00garbage",
    b"",
    None,
    42,
    3.5,
    object(),
    ["no", "envelope"],
    {1: "non-string keys", 2: {"error": "x"}},
]


@pytest.mark.parametrize("value", MALFORMED, ids=[repr(v)[:40] for v in MALFORMED])
def test_malformed_or_foreign_input_gives_none(value: object) -> None:
    assert find_envelope(value) is None


def test_the_first_envelope_with_a_code_wins_over_an_earlier_one_without() -> None:
    text = (
        '{"title": "Bad Request", "status": 400, "detail": "x"} then '
        '{"error": {"code": "invalid_ids"}} then {"error": {"code": "rate_limited"}}'
    )
    assert find_envelope(text) == ErrorEnvelope("invalid_ids")
    assert [e.code for e in iter_envelopes(text)] == [None, "invalid_ids", "rate_limited"]


def test_only_string_codes_are_codes_even_in_problem_details() -> None:
    body = {"title": "Not Found", "status": 404, "code": 404}
    assert find_envelope(body) == ErrorEnvelope(None, "Not Found", 404)


def test_message_prefers_message_then_detail_then_title() -> None:
    assert find_envelope({"error": {"code": "c", "title": "t", "detail": "d"}}) == ErrorEnvelope(
        "c", "d"
    )
    assert find_envelope({"error": {"code": "c", "title": "t"}}) == ErrorEnvelope("c", "t")
    body = {"error": {"code": "c", "message": "m", "detail": "d"}}
    assert find_envelope(body) == ErrorEnvelope("c", "m")


@pytest.mark.parametrize(
    ("fields", "seconds"),
    [
        ({"retry_after": 2}, 2.0),
        ({"retry_after": "1.5"}, 1.5),
        ({"retry_after_seconds": 0}, 0.0),
        ({"retry_after_ms": 1500}, 1.5),
        ({"retry_after_ms": "250"}, 0.25),
        ({"retry_after": -1}, None),
        # Huge is a hint (the policy refuses to wait that long), saturated past a float.
        ({"retry_after": float("inf")}, MAX_RETRY_AFTER_SECONDS),
        ({"retry_after": 86_401}, 86_401.0),
        ({"retry_after_ms": 86_401_000}, 86_401.0),
        ({"retry_after": 10**400}, MAX_RETRY_AFTER_SECONDS),
        ({"retry_after": "1e999"}, MAX_RETRY_AFTER_SECONDS),
        ({"retry_after": float("nan")}, None),
        ({"retry_after": "soon"}, None),
        ({"retry_after": True}, None),
        ({"retry_after": "x" * 1000}, None),
        ({"retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # a date in the past
        ({"retry_after": -1, "retry_after_ms": 500}, 0.5),  # garbage in one, sense in the next
        # Body strings are read exactly like the header: float() would accept these too.
        ({"retry_after": "1e3"}, 1000.0),  # an exponent is a number
        ({"retry_after": "1_0"}, None),
        ({"retry_after": "+5"}, None),
        ({"retry_after": "\u0663"}, None),  # an Arabic-Indic digit three
        ({"retry_after": " 2 "}, 2.0),
        ({"retry_after_ms": "1e3"}, 1.0),
        ({"retry_after_ms": "Wed, 21 Oct 2035 07:28:00 GMT"}, None),  # ms are never dates
        ({"retry_after": [1]}, None),
    ],
)
def test_retry_delay_fields_are_read_and_garbage_dropped(
    fields: dict[str, object], seconds: float | None
) -> None:
    envelope = find_envelope({"error": {"code": "rate_limited", **fields}})
    assert envelope is not None
    assert envelope.retry_after_seconds == seconds


def test_a_future_http_date_in_retry_after_is_a_delay() -> None:
    envelope = find_envelope({"error": {"code": "rate_limited", "retry_after": _future_date()}})
    assert envelope is not None and envelope.retry_after_seconds is not None
    assert 0 < envelope.retry_after_seconds <= 3600


def _future_date() -> str:
    import time
    from email.utils import formatdate

    return formatdate(time.time() + 1800, usegmt=True)


def test_failed_items_with_bad_ids_are_skipped() -> None:
    body = {
        "error": {
            "code": "partial_failure",
            "failed": [{"id": True}, {"id": None}, {"id": [1]}, {"code": "x"}, {"id": 5}],
        }
    }
    assert find_envelope(body) == ErrorEnvelope("partial_failure", failed=(FailedItem(5),))


def test_failed_item_retryable_only_when_the_backend_says_true() -> None:
    body = {"error": {"code": "p", "failed": [{"id": 1, "retryable": "yes"}, {"id": 2}]}}
    envelope = find_envelope(body)
    assert envelope is not None
    assert [item.retryable for item in envelope.failed] == [False, False]
    assert envelope.failed_ids == (1, 2)


# --- to_json -------------------------------------------------------------------------------------


def test_to_json_is_the_canonical_error_object() -> None:
    assert json.loads(PARTIAL_ENVELOPE.to_json()) == PARTIAL  # the backend's own body, above
    assert ErrorEnvelope("rate_limited", status=429, retry_after_seconds=1.5).to_json() == (
        '{"error": {"code": "rate_limited", "status": 429, "retry_after": 1.5}}'
    )


_ids = st.one_of(st.integers(), st.text(max_size=12))
_items = st.builds(FailedItem, _ids, st.none() | st.text(max_size=12), st.booleans())
_envelopes = st.builds(
    ErrorEnvelope,
    code=st.none() | st.text(min_size=1, max_size=20).filter(str.strip),
    message=st.none() | st.text(max_size=40),
    status=st.none() | st.integers(100, 599),
    failed=st.lists(_items, max_size=5).map(tuple),
    retry_after_seconds=st.none() | st.floats(0, 86_400, allow_nan=False),
).filter(lambda e: e.code or e.message is not None or e.status or e.failed)


@given(_envelopes)
@settings(max_examples=120, deadline=None)
def test_to_json_round_trips_through_find_envelope(envelope: ErrorEnvelope) -> None:
    assert find_envelope(envelope.to_json()) == envelope
    assert find_envelope(f"request failed: {envelope.to_json()} (attempt 3)") == envelope


def test_envelope_and_item_values_are_validated() -> None:
    with pytest.raises(TypeError, match="id"):
        FailedItem(True)
    with pytest.raises(TypeError, match="id"):
        FailedItem(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="code"):
        FailedItem(1, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retryable"):
        FailedItem(1, None, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        ErrorEnvelope("")
    with pytest.raises(TypeError, match="code"):
        ErrorEnvelope(404)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="status"):
        ErrorEnvelope("c", status=True)
    with pytest.raises(TypeError, match="failed"):
        ErrorEnvelope("c", failed=[FailedItem(1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_after_seconds"):
        ErrorEnvelope("c", retry_after_seconds=-1.0)
    with pytest.raises(ValueError, match="retry_after_seconds"):
        ErrorEnvelope("c", retry_after_seconds=math.inf)
    with pytest.raises(TypeError, match="retry_after_seconds"):
        ErrorEnvelope("c", retry_after_seconds="1")  # type: ignore[arg-type]


# --- never raises, bounded ----------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["error", "errors", "code", "detail", "failed", "id", "status", "x"])
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@given(_json_values)
@settings(max_examples=150, deadline=None)
def test_never_raises_on_arbitrary_structures(value: object) -> None:
    envelope = find_envelope(value)
    assert envelope is None or isinstance(envelope, ErrorEnvelope)
    find_envelope(json.dumps(value, default=str))
    find_envelope(repr(value))


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_never_raises_on_arbitrary_text(text: str) -> None:
    find_envelope(text)
    find_envelope("{" + text)
    find_envelope('{"error": {"code": "x", ' + text)
    find_envelope("{'error': " + text + "}")


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    find_envelope(data)
    find_envelope(b'{"error": ' + data)


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_never_raises_on_mangled_envelopes(data: st.DataObject) -> None:
    text = json.dumps(PARTIAL) if data.draw(st.booleans()) else repr(PARTIAL)
    cut = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.text(max_size=5))
    mangled = text[:cut] + insert + text[cut + data.draw(st.integers(0, 3)) :]
    envelope = find_envelope(mangled)
    assert envelope is None or isinstance(envelope, ErrorEnvelope)


def test_recursive_structures_do_not_hang() -> None:
    loop: dict[str, object] = {"a": 1}
    loop["self"] = loop
    items: list[object] = []
    items.append(items)
    assert find_envelope(loop) is None
    assert find_envelope(items) is None


def test_deep_nesting_is_survived() -> None:
    assert find_envelope('{"a": ' * 50_000 + "1" + "}" * 50_000) is None
    assert find_envelope("{'a': " * 50_000) is None
    assert find_envelope("[" * 100_000) is None


def test_hostile_brace_floods_give_none() -> None:
    assert find_envelope("{'" * 200_000) is None
    assert find_envelope('{"' * 200_000) is None
    assert find_envelope('{\\"' * 100_000) is None
    assert find_envelope("{'code': 'x', " * 20_000) is None


def test_many_candidate_objects_are_bounded_but_an_early_envelope_is_found() -> None:
    noise = '{"k": 1} ' * 10_000
    assert find_envelope('{"error": {"code": "rate_limited"}} ' + noise) == ErrorEnvelope(
        "rate_limited"
    )
    # After MAX_CANDIDATES objects the scan stops; an envelope buried that deep is not looked at.
    buried = "{'k': <x>} " * (envelopes.MAX_CANDIDATES + 5) + '{"error": {"code": "late"}}'
    assert find_envelope(buried) is None


def test_long_text_is_scanned_at_its_head_and_tail_only() -> None:
    env = '{"error": {"code": "rate_limited"}}'
    filler = "x" * (2 * MAX_TEXT_CHARS)
    assert find_envelope(env + filler) == ErrorEnvelope("rate_limited")
    assert find_envelope(filler + env) == ErrorEnvelope("rate_limited")
    assert find_envelope(filler + env + filler) is None
    assert find_envelope((filler + env).encode()) == ErrorEnvelope("rate_limited")


def test_an_object_longer_than_the_bound_is_not_parsed() -> None:
    huge = {"error": {"code": "big", "detail": "d" * (envelopes.MAX_OBJECT_CHARS + 10)}}
    assert find_envelope(json.dumps(huge)) is None
    assert find_envelope(huge) == ErrorEnvelope("big", huge["error"]["detail"])


def test_failed_items_are_capped() -> None:
    many = {"error": {"code": "p", "failed_ids": list(range(envelopes.MAX_FAILED_ITEMS + 50))}}
    envelope = find_envelope(many)
    assert envelope is not None and len(envelope.failed) == envelopes.MAX_FAILED_ITEMS


# --- neighbours -----------------------------------------------------------------------------------


def test_retry_after_helpers_are_re_exported() -> None:
    assert envelopes.parse_retry_after is retry_after.parse_retry_after
    assert envelopes.retry_after_from_headers is retry_after.retry_after_from_headers
    assert envelopes.retry_after_from_headers({"Retry-After": "2"}) == 2.0


def test_backend_error_built_from_a_message_finds_its_envelope() -> None:
    exc = BackendError(
        "bulk fetch failed: "
        '{"error": {"code": "partial_failure", "detail": "...", '
        '"failed": [{"id": 7, "code": "item_unavailable", "retryable": true}]}}'
    )
    assert exc.error_code == "partial_failure"
    assert exc.detail == "..."
    assert exc.failed_ids == (7,)
    assert exc.failed_codes == {7: "item_unavailable"}
    assert exc.envelope == find_envelope(str(exc))


def test_backend_error_message_with_the_envelope_json_round_trips() -> None:
    envelope = ErrorEnvelope("rate_limited", "slow down", 429, retry_after_seconds=1.5)
    exc = BackendError(f"POST /v2/tasks/bulk-fetch/ -> 429: {envelope.to_json()}")
    assert exc.envelope == envelope
    assert exc.retry_after_seconds == 1.5


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("{'error': {'code': 'x', 'path': 'C:\\data'}}", "C:\\data"),  # unknown escape \d
        ("{'error': {'code': 'x', 'path': 'C:\\\\data'}}", "C:\\data"),  # escaped backslash
        ("{'error': {'code': 'x', 'path': 'a\\\\\\q\\n'}}", "a\\\\q\n"),  # pair, unknown, known
    ],
)
def test_python_reprs_with_unknown_escapes_parse_without_warnings(text: str, path: str) -> None:
    """A hand-written repr with an escape Python does not know still parses, and the compiler
    warns nothing (under -W error a warning would lose the envelope)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        envelope = find_envelope(text)
        value = envelopes._python_literal(text)
    assert envelope is not None and envelope.code == "x"
    assert isinstance(value, dict) and value["error"]["path"] == path
