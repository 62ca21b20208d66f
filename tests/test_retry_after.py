"""Retry-After parsing: a table of odd values (in the spirit of openai-python's), headers, fuzz."""

from __future__ import annotations

import math
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_sdk.retry_after import (
    MAX_RETRY_AFTER_SECONDS,
    parse_retry_after,
    parse_retry_after_ms,
    retry_after_from_headers,
)

NOW = 1_700_000_000.0  # a fixed "now" for HTTP-dates
HUGE = MAX_RETRY_AFTER_SECONDS  # a hint too large for a float, saturated


def http_date(offset: float) -> str:
    return formatdate(NOW + offset, usegmt=True)


# value, expected seconds (None: no usable hint)
TABLE: list[tuple[Any, float | None]] = [
    # delay-seconds
    ("3", 3.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("0.25", 0.25),
    (".5", 0.5),
    ("2.", 2.0),
    (" 7 ", 7.0),
    ("\t4\r\n", 4.0),
    ("86400", 86400.0),
    (b"2", 2.0),
    (bytearray(b"1.5"), 1.5),
    (2.5, 2.5),
    (7, 7.0),
    (0, 0.0),
    # huge: a hint all the same (the policy refuses to wait that long), saturated past a float
    ("86401", 86401.0),
    ("172800", 172800.0),  # two days
    ("999999999999", 999999999999.0),
    ("9" * 400, HUGE),  # float() makes this inf
    ("0" * 400 + "5", 5.0),  # leading zeros: still five seconds
    ("1e999", HUGE),
    ("1e3", 1000.0),
    ("1E3", 1000.0),
    ("2.5e-1", 0.25),
    (10**400, HUGE),  # too large for a float
    (math.inf, HUGE),  # what json.loads makes of a body's 1e999
    (86400.5, 86400.5),
    # negative, NaN
    ("-1", None),
    ("-0.5", None),
    (-3, None),
    (-0.0001, None),
    ("+1", None),
    ("inf", None),
    ("Infinity", None),
    ("-inf", None),
    ("nan", None),
    ("NaN", None),
    (-math.inf, None),
    (math.nan, None),
    # garbage
    (None, None),
    (True, None),
    (False, None),
    ("", None),
    ("   ", None),
    ("abc", None),
    ("1e", None),
    ("e3", None),
    ("1e+", None),
    ("1_000", None),
    ("0x10", None),
    ("1.2.3", None),
    ("1,5", None),
    ("3 seconds", None),
    ("\uff19", None),  # a full-width digit: float() accepts it, HTTP does not
    ("٣", None),  # an Arabic-Indic digit
    (b"\xff\xfe", None),
    (b"", None),
    ("x" * 10_000, None),
    (b"1" * 10_000, HUGE),  # a number, however long
    # HTTP-dates, relative to NOW
    (http_date(30), 30.0),
    (http_date(0.0), 0.0),
    (http_date(86_400), 86400.0),
    (http_date(86_401), 86401.0),  # a day and a second: a hint the default policy refuses
    (http_date(-30), None),  # in the past: no hint (clock skew), backoff instead
    (http_date(10 * 365 * 86_400), 10 * 365 * 86_400.0),  # far future: huge, not garbage
    ("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0 - NOW),
    ("Thu, 01 Jan 1970 00:00:00 GMT", None),
    ("Mon, 99 Foo 2024 99:99:99 GMT", None),
    ("Tue, 14 Nov 2023 22:13:50", 30.0),  # no zone: HTTP-dates are GMT
    ("Tue, 14 Nov 2023 22:13:50 +0000", 30.0),
    ("Tue, 14 Nov 2023 23:13:50 +0100", 30.0),
    ("Tuesday", None),
    ("GMT", None),
]


@pytest.mark.parametrize(("value", "expected"), TABLE, ids=[repr(v)[:40] for v, _ in TABLE])
def test_parse_retry_after_table(value: Any, expected: float | None) -> None:
    result = parse_retry_after(value, now=NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)
        assert isinstance(result, float)


def test_http_date_default_now_is_the_current_time() -> None:
    import time

    result = parse_retry_after(formatdate(time.time() + 120, usegmt=True))
    assert result is not None
    assert 100 < result <= 121


@pytest.mark.parametrize("value", [[1], {"a": 1}, object(), (2,)])
def test_other_types_are_a_caller_bug(value: Any) -> None:
    with pytest.raises(TypeError, match="parse_retry_after"):
        parse_retry_after(value)


# headers, expected
HEADERS: list[tuple[dict[str, Any], float | None]] = [
    ({}, None),
    ({"Content-Type": "application/json"}, None),
    ({"Retry-After": "3"}, 3.0),
    ({"retry-after": "3"}, 3.0),
    ({"RETRY-AFTER": "1.5"}, 1.5),
    ({"retry-after-ms": "250"}, 0.25),
    ({"Retry-After-Ms": "1500.5"}, 1.5005),
    ({"retry-after-ms": "250", "retry-after": "3"}, 0.25),  # milliseconds win
    ({"Retry-After": "3", "Retry-After-Ms": "250"}, 0.25),  # whatever the order
    ({"retry-after-ms": "inf", "retry-after": "3"}, 3.0),  # unusable ms: fall back
    ({"retry-after-ms": "-5", "retry-after": "2"}, 2.0),
    ({"retry-after-ms": "soon", "retry-after": "nan"}, None),
    ({"retry-after-ms": "86400001"}, 86400.001),  # more than a day: huge, still a hint
    ({"retry-after-ms": http_date(10)}, None),  # milliseconds are never dates
    ({"retry-after": b"4"}, 4.0),
    ({"retry-after-ms": b"100"}, 0.1),
    ({"retry-after": 5}, None),  # not header text
    ({"retry-after": "garbage"}, None),
]


@pytest.mark.parametrize(("headers", "expected"), HEADERS, ids=[str(h) for h, _ in HEADERS])
def test_retry_after_from_headers(headers: dict[str, Any], expected: float | None) -> None:
    result = retry_after_from_headers(headers)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_headers_with_httpx() -> None:
    httpx = pytest.importorskip("httpx")
    headers = httpx.Headers([("Retry-After", "2"), ("Retry-After-MS", "750")])
    assert retry_after_from_headers(headers) == 0.75


def test_headers_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        retry_after_from_headers([("retry-after", "1")])  # type: ignore[arg-type]


MS_TABLE: list[tuple[Any, float | None]] = [
    ("250", 0.25),
    (b"1500", 1.5),
    ("0", 0.0),
    (" 10.5 ", 0.0105),
    (750, 0.75),
    (0.5, 0.0005),
    ("1e3", 1.0),
    ("+5", None),
    ("-5", None),
    ("inf", None),
    ("NaN", None),
    (float("inf"), HUGE),  # huge stays huge (not divided by 1000)
    (float("nan"), None),
    (-1, None),
    (86_400_001, 86400.001),  # over a day
    (10**400, HUGE),
    ("9" * 400, HUGE),
    ("Wed, 21 Oct 2035 07:28:00 GMT", None),  # milliseconds are never dates
    (True, None),
    (None, None),
    ([250], None),
]


@pytest.mark.parametrize(("value", "expected"), MS_TABLE)
def test_parse_retry_after_ms_table(value: Any, expected: float | None) -> None:
    result = parse_retry_after_ms(value)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def _check(result: float | None) -> None:
    assert result is None or (
        isinstance(result, float) and 0.0 <= result <= MAX_RETRY_AFTER_SECONDS
    )


@given(st.text(max_size=80))
def test_never_raises_on_text(value: str) -> None:
    _check(parse_retry_after(value, now=NOW))


@given(st.binary(max_size=80))
def test_never_raises_on_bytes(value: bytes) -> None:
    _check(parse_retry_after(value, now=NOW))


@given(st.one_of(st.floats(), st.integers()))
def test_never_raises_on_numbers(value: float) -> None:
    _check(parse_retry_after(value))


@given(st.dictionaries(st.sampled_from(["retry-after", "Retry-After-Ms", "x"]), st.text()))
def test_headers_never_raise(headers: dict[str, str]) -> None:
    _check(retry_after_from_headers(headers))


@given(st.integers(min_value=0, max_value=86_400))
def test_integer_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == float(seconds)
    assert retry_after_from_headers({"retry-after-ms": str(seconds * 1000)}) == float(seconds)
