"""Read a server's ``Retry-After`` hint, defensively.

Every client shares these two functions to turn what a server sent into "wait this many
seconds" or "no usable hint" (``None``). Servers and proxies send odd things, so anything that
is not a sane, finite, non-negative delay of at most one day counts as no hint and the retry
engine falls back to its own backoff::

    >>> parse_retry_after("1.5")
    1.5
    >>> parse_retry_after("nan") is None
    True
    >>> retry_after_from_headers({"Retry-After-Ms": "250", "Retry-After": "3"})
    0.25

Accepted forms:

* ``delay-seconds`` (RFC 9110), integer or fractional: ``"3"``, ``"1.5"``, ``b"2"``, ``2.5``;
* an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``): the delay is the date minus ``now``;
  a date in the past is no hint (it usually means clock skew, and backoff is the safer answer);
* ``retry-after-ms`` (a de-facto header some APIs send): milliseconds, read before
  ``retry-after`` by :func:`retry_after_from_headers`.

Rejected (``None``): empty or blank values, signs, exponents, ``inf``/``nan`` in any spelling,
negative numbers, values above one day, dates that do not parse, and anything longer than a
header value could sensibly be.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "parse_retry_after",
    "parse_retry_after_ms",
    "retry_after_from_headers",
]

#: A hint longer than this (one day) is treated as absurd: no hint at all.
MAX_RETRY_AFTER_SECONDS = 86_400.0

# delay-seconds: digits, optionally a fraction. No sign, exponent, underscore or "inf"/"nan"
# (all of which float() would accept).
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
# Longer than any HTTP-date or sane number: refuse without parsing.
_MAX_TEXT = 64


def _sane(seconds: float) -> float | None:
    """``seconds`` as a float when finite and within [0, one day]; otherwise None."""
    if math.isfinite(seconds) and 0.0 <= seconds <= MAX_RETRY_AFTER_SECONDS:
        return float(seconds)
    return None


def _text(value: str | bytes | bytearray) -> str | None:
    """The stripped header text, or None when it is not plausible header text."""
    if isinstance(value, bytes | bytearray):
        if len(value) > _MAX_TEXT:
            return None
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    text = value.strip()
    if not text or len(text) > _MAX_TEXT:
        return None
    return text


def _http_date_delay(text: str, now: float | None) -> float | None:
    """Seconds from ``now`` until the HTTP-date ``text``; None if it does not parse or is past."""
    # email.utils is only needed for the rare date form; importing it lazily keeps the core
    # import light.
    from email.utils import mktime_tz, parsedate_tz

    try:
        parts = parsedate_tz(text)
        if parts is None:
            return None
        if parts[9] is None:  # no zone given: HTTP-dates are always GMT
            parts = (*parts[:9], 0)
        when = float(mktime_tz(parts))
    except (ValueError, TypeError, OverflowError, IndexError):
        # parsedate_tz/mktime_tz raise these on some malformed or out-of-range dates.
        return None
    delay = when - (time.time() if now is None else now)
    if delay < 0:
        return None
    return _sane(delay)


def parse_retry_after(
    value: str | bytes | bytearray | float | int | None, *, now: float | None = None
) -> float | None:
    """Return the delay a ``Retry-After`` value asks for, in seconds, or None for no usable hint.

    ``value`` is a header value (``str`` or ``bytes``) or a number already parsed from a body.
    ``now`` is the current Unix time used for HTTP-dates (default: ``time.time()``).
    Infinite, NaN, negative, absurd (over one day) and unparseable values give None; this
    function never raises for ``str``, ``bytes``, numbers or ``None``.

    Raises:
        TypeError: ``value`` is of another type (a list, a dict, ...): a caller bug.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return _sane(float(value))
        except OverflowError:  # an int too large for a float
            return None
    if not isinstance(value, str | bytes | bytearray):
        raise TypeError(
            f"parse_retry_after expects str, bytes, a number or None, not {type(value).__name__}"
        )
    text = _text(value)
    if text is None:
        return None
    if _SECONDS.fullmatch(text):
        return _sane(float(text))
    if text[0].isdigit() or text[0] in "+-.":
        return None  # a malformed or signed number, never a date
    return _http_date_delay(text, now)


def parse_retry_after_ms(value: object) -> float | None:
    """Return the delay a ``retry-after-ms`` value asks for, in seconds, or None for no hint.

    ``value`` is a header value (``str`` or ``bytes``: digits with an optional fraction) or a
    number already parsed from a body. Dates, signs, exponents, infinite, NaN, negative and
    absurd (over one day) values give None; this function never raises.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return _sane(float(value) / 1000.0)
        except OverflowError:  # an int too large for a float
            return None
    if not isinstance(value, str | bytes | bytearray):
        return None
    text = _text(value)
    if text is None or not _SECONDS.fullmatch(text):
        return None
    return _sane(float(text) / 1000.0)


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """Return the delay response ``headers`` ask for, in seconds, or None for no usable hint.

    ``retry-after-ms`` wins over ``retry-after`` when it holds a usable value; header names
    match case-insensitively, so a plain ``dict`` works as well as ``httpx.Headers``.

    Raises:
        TypeError: ``headers`` is not a mapping.
    """
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping, not {type(headers).__name__}")
    milliseconds: object = None
    seconds: object = None
    for key, value in headers.items():
        name = key.lower() if isinstance(key, str) else None
        if name == "retry-after-ms" and milliseconds is None:
            milliseconds = value
        elif name == "retry-after" and seconds is None:
            seconds = value
    if milliseconds is not None:
        delay = parse_retry_after_ms(milliseconds)
        if delay is not None:
            return delay
    if seconds is None or not isinstance(seconds, str | bytes | bytearray):
        return None
    return parse_retry_after(seconds)
