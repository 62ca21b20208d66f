"""Read a server's ``Retry-After`` hint, defensively.

Every client shares these functions to turn what a server sent into "wait this many seconds" or
"no usable hint" (``None``). They only read the hint; whether it is honoured is the retry
policy's call (:func:`synapse_sdk.retry.decide_wait`): a hint above ``retry_after_max``
surfaces the error at once. So a *huge* hint is not garbage: it is reported as the huge number
it is (saturated at :data:`MAX_RETRY_AFTER_SECONDS` when it does not fit a float), and every
policy then refuses to wait that long. Only garbage means no hint::

    >>> parse_retry_after("1.5")
    1.5
    >>> parse_retry_after("172800")          # two days: a hint, which a policy will refuse
    172800.0
    >>> parse_retry_after("1e999") == MAX_RETRY_AFTER_SECONDS
    True
    >>> parse_retry_after("nan") is None
    True
    >>> retry_after_from_headers({"Retry-After-Ms": "250", "Retry-After": "3"})
    0.25

Accepted forms:

* ``delay-seconds`` (RFC 9110), integer or fractional, with an optional exponent: ``"3"``,
  ``"1.5"``, ``"1e3"``, ``b"2"``, ``2.5``; any number of digits;
* an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``): the delay is the date minus ``now``;
  a date in the past is no hint (it usually means clock skew, and backoff is the safer answer);
* ``retry-after-ms`` (a de-facto header some APIs send): milliseconds, read before
  ``retry-after`` by :func:`retry_after_from_headers`.

Garbage (``None``): empty or blank values, signs, ``inf``/``nan`` spelled out, NaN, negative
numbers, non-ASCII digits, dates that do not parse, text that is neither a number nor a date.
A number too large for a float (``1e999``, 400 digits, ``float("inf")`` read from a JSON body)
is huge, not garbage.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "parse_retry_after",
    "parse_retry_after_ms",
    "retry_after_from_headers",
]

#: The largest delay the parsers report: a larger hint (``1e999``, 400 digits, an infinite
#: body number) is reported as this, still a finite float and above any ``retry_after_max``.
MAX_RETRY_AFTER_SECONDS = sys.float_info.max

# delay-seconds: digits, optionally a fraction and an exponent. No sign, underscore or
# "inf"/"nan" (all of which float() would accept). ASCII digits only (re.ASCII).
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
# Longer than any HTTP-date: not a date (numbers may be of any length).
_MAX_DATE_TEXT = 64


def _delay(seconds: float) -> float | None:
    """``seconds`` as a delay: None for NaN or a negative number (garbage), the saturated
    maximum for one too large to represent, else the float itself."""
    if seconds >= 0.0:
        return seconds if seconds <= MAX_RETRY_AFTER_SECONDS else MAX_RETRY_AFTER_SECONDS
    return None  # negative or NaN (NaN compares false)


def _number(value: int | float) -> float | None:
    """A body number as a delay (see :func:`_delay`); an int too large for a float is huge."""
    try:
        return _delay(float(value))
    except OverflowError:
        return MAX_RETRY_AFTER_SECONDS if value > 0 else None


def _text(value: str | bytes | bytearray) -> str | None:
    """The stripped header text, or None when it is not ASCII header text."""
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    text = value.strip()
    return text or None


def _http_date_delay(text: str, now: float | None) -> float | None:
    """Seconds from ``now`` until the HTTP-date ``text``; None if it does not parse or is past."""
    if len(text) > _MAX_DATE_TEXT:
        return None
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
    return _delay(when - (time.time() if now is None else now))


def parse_retry_after(
    value: str | bytes | bytearray | float | int | None, *, now: float | None = None
) -> float | None:
    """Return the delay a ``Retry-After`` value asks for, in seconds, or None for garbage.

    ``value`` is a header value (``str`` or ``bytes``) or a number already parsed from a body.
    ``now`` is the current Unix time used for HTTP-dates (default: ``time.time()``).
    NaN, negative, past-date and unparseable values give None; a value too large for a float
    gives :data:`MAX_RETRY_AFTER_SECONDS`. Never raises for ``str``, ``bytes``, numbers or None.

    Raises:
        TypeError: ``value`` is of another type (a list, a dict, ...): a caller bug.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _number(value)
    if not isinstance(value, str | bytes | bytearray):
        raise TypeError(
            f"parse_retry_after expects str, bytes, a number or None, not {type(value).__name__}"
        )
    text = _text(value)
    if text is None:
        return None
    if _SECONDS.fullmatch(text):
        return _delay(float(text))
    if text[0].isdigit() or text[0] in "+-.":
        return None  # a malformed or signed number, never a date
    return _http_date_delay(text, now)


def parse_retry_after_ms(value: object) -> float | None:
    """Return the delay a ``retry-after-ms`` value asks for, in seconds, or None for garbage.

    ``value`` is a header value (``str`` or ``bytes``: a decimal number) or a number already
    parsed from a body. Dates, signs, NaN, negative values and other types give None; a huge
    value gives :data:`MAX_RETRY_AFTER_SECONDS`. Never raises.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = _number(value)
    elif isinstance(value, str | bytes | bytearray):
        text = _text(value)
        if text is None or not _SECONDS.fullmatch(text):
            return None
        seconds = _delay(float(text))
    else:
        return None
    if seconds is None or seconds == MAX_RETRY_AFTER_SECONDS:
        return seconds  # garbage stays garbage, huge stays huge
    return seconds / 1000.0


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
