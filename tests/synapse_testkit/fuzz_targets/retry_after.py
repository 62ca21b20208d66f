#!/usr/bin/env python3
"""Fuzz ``synapse_sdk.retry_after.parse_retry_after``, ``parse_retry_after_ms``,
``retry_after_from_headers`` and ``rate_limit_from_headers``.

The first input byte picks a shape: the payload as text, as bytes, as a number (float or a
big int), an HTTP-date with fuzzed fields, or a header mapping with fuzzed names and values.

Invariants (an ``AssertionError`` is a libFuzzer crash):

* none of them raises on str, bytes, numbers, None or a str → str mapping;
* the result is None or a finite ``float`` in [0, MAX_RETRY_AFTER_SECONDS];
* decimal seconds (an optional exponent allowed) are read exactly however large (``"120"`` →
  120.0, ``"1e999"`` → the saturated maximum), decimal milliseconds too (``"250"`` → 0.25),
  and milliseconds are never dates;
* an ASCII text gives the same answer as its bytes;
* a number >= 0 is returned as itself (saturated when too large), a negative or NaN one as None;
* ``retry-after-ms`` with a usable value wins over ``retry-after``, names are
  case-insensitive, and the answer is the one ``parse_retry_after`` gives for the value used;
* ``rate_limit_from_headers`` never raises on a str → str mapping; its counts are ints >= 0,
  its reset and window floats in [0, MAX_RETRY_AFTER_SECONDS]; a lone ``X-RateLimit-Remaining``
  of ASCII digits (up to 18) is read exactly.

Run: ``python fuzz/fuzz_retry_after.py -max_total_time=60 CORPUS_DIR [SEED_DIR]``.
"""

from __future__ import annotations

import math
import re

from synapse_sdk.retry_after import (
    MAX_RETRY_AFTER_SECONDS,
    parse_retry_after,
    parse_retry_after_ms,
    rate_limit_from_headers,
    retry_after_from_headers,
)
from synapse_testkit.hostile import pick, provider, text

NOW = 1_700_000_000.0
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "", "Xyz")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "")
_ZONES = ("GMT", "UTC", "+0900", "-1200", "EST", "Z", "", "+99999", "-0000")
_NAMES = ("retry-after", "Retry-After", "RETRY-AFTER", "retry-after-ms", "Retry-After-Ms", "x")
_RATE_NAMES = (
    "RateLimit", "RateLimit-Policy", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
    "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
)


def check_delay(result: object) -> None:
    assert result is None or (
        type(result) is float and math.isfinite(result) and 0 <= result <= MAX_RETRY_AFTER_SECONDS
    ), repr(result)


def as_delay(number: float) -> float | None:
    """What the parsers make of a number: None when negative or NaN, saturated when huge."""
    if math.isnan(number) or number < 0:
        return None
    return min(number, MAX_RETRY_AFTER_SECONDS)


def as_ms_delay(number: float) -> float | None:
    """The same for milliseconds: a saturated value stays saturated."""
    seconds = as_delay(number)
    return seconds if seconds is None or seconds == MAX_RETRY_AFTER_SECONDS else seconds / 1000


def check_text(value: str) -> None:
    result = parse_retry_after(value, now=NOW)
    check_delay(result)
    milliseconds = parse_retry_after_ms(value)
    check_delay(milliseconds)
    stripped = value.strip()
    if stripped.isascii() and _DECIMAL.fullmatch(stripped):
        assert result == as_delay(float(stripped)), (value, result)
        assert milliseconds == as_ms_delay(float(stripped)), value
    else:
        assert milliseconds is None, (value, milliseconds)  # never a date, sign or "inf"
    if value.isascii():
        assert parse_retry_after(value.encode(), now=NOW) == result, value
        assert parse_retry_after_ms(value.encode()) == milliseconds, value


def check_number(value: float) -> None:
    result = parse_retry_after(value)
    check_delay(result)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    assert result == as_delay(number), (value, result)
    milliseconds = parse_retry_after_ms(value)
    assert milliseconds == as_ms_delay(number), (value, milliseconds)


def check_headers(headers: dict[str, str]) -> None:
    result = retry_after_from_headers(headers)
    check_delay(result)
    lowered: dict[str, str] = {}
    for key, value in headers.items():
        lowered.setdefault(key.lower(), value)
    milliseconds = lowered.get("retry-after-ms", "").strip()
    if milliseconds.isascii() and _DECIMAL.fullmatch(milliseconds):
        assert result == as_ms_delay(float(milliseconds)), (headers, result)
        return
    if "retry-after" not in lowered:
        assert result is None, (headers, result)
    elif _DECIMAL.fullmatch(lowered["retry-after"].strip()):
        assert result == parse_retry_after(lowered["retry-after"]), (headers, result)


def check_rate_limit(headers: dict[str, str]) -> None:
    info = rate_limit_from_headers(headers, now=NOW)
    if info is None:
        return
    for count in (info.limit, info.remaining):
        assert count is None or (type(count) is int and count >= 0), (headers, info)
    for seconds in (info.reset, info.window):
        assert seconds is None or (
            type(seconds) is float and 0.0 <= seconds <= MAX_RETRY_AFTER_SECONDS
        ), (headers, info)
    if len(headers) == 1 and "X-RateLimit-Remaining" in headers:
        value = headers["X-RateLimit-Remaining"].strip()
        if value.isascii() and value.isdigit() and len(value) <= 18:
            assert info.remaining == int(value), (headers, info)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, payload = data[0] % 6, data[1:]
    if mode == 0:
        value = payload.decode("utf-8", "surrogateescape")
        check_text(value)
        check_rate_limit({_RATE_NAMES[len(payload) % len(_RATE_NAMES)]: value})
        check_rate_limit({"X-RateLimit-Remaining": value})
    elif mode == 1:
        check_delay(parse_retry_after(payload, now=NOW))
        check_delay(parse_retry_after(bytearray(payload), now=NOW))
        check_delay(parse_retry_after_ms(payload))
    elif mode == 2:
        fdp = provider(payload)
        check_number(fdp.ConsumeFloat())
        check_number(fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 200)))
    elif mode == 3:
        fdp = provider(payload)
        date = (
            f"{pick(fdp, _DAYS)}, {fdp.ConsumeIntInRange(-5, 40):02d} {pick(fdp, _MONTHS)} "
            f"{fdp.ConsumeIntInRange(-1, 10_000)} {fdp.ConsumeIntInRange(0, 99):02d}:"
            f"{fdp.ConsumeIntInRange(0, 99):02d}:{fdp.ConsumeIntInRange(0, 99):02d} "
            f"{pick(fdp, _ZONES)}{text(fdp, 4)}"
        )
        check_text(date)
        check_text(date[: fdp.ConsumeIntInRange(0, len(date))])
    elif mode == 4:
        fdp = provider(payload)
        headers = {}
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            name = pick(fdp, _NAMES) if fdp.ConsumeBool() else text(fdp, 16)
            headers[name] = text(fdp, 40)
        check_headers(headers)
        check_rate_limit(headers)
    else:
        check_text(payload.decode("latin-1"))

