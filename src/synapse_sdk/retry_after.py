"""Read a server's ``Retry-After`` hint and its rate-limit headers, defensively.

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

Rate-limit headers (:func:`rate_limit_from_headers`, a :class:`RateLimitInfo`: the quota, what
is left of it and the seconds until it resets), first found wins, field by field:

* the IETF draft's structured fields: ``RateLimit: "default";r=0;t=5`` with
  ``RateLimit-Policy: "default";q=100;w=60`` (the policy names the quota ``q`` and window ``w``;
  with several policies the one with the least remaining counts), and its earlier form
  ``RateLimit: limit=100, remaining=0, reset=5``;
* the draft's first headers ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``;
* the common ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (a reset
  above 10^9 is a Unix time, in milliseconds above 10^12, as some APIs send).

    >>> rate_limit_from_headers({"RateLimit": '"default";r=0;t=5'}).remaining
    0
    >>> rate_limit_from_headers({"X-RateLimit-Remaining": "-1"}) is None
    True

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
from dataclasses import dataclass

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "RateLimitInfo",
    "parse_retry_after",
    "parse_retry_after_ms",
    "rate_limit_from_headers",
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


# --- rate-limit headers -------------------------------------------------------------------------

#: Longest rate-limit header value read; a longer one is ignored (no server needs more).
_MAX_RATE_LIMIT_TEXT = 1024
#: Longest count read (18 digits fit an int64); a longer one is garbage.
_COUNT = re.compile(r"[0-9]{1,18}", re.ASCII)
#: A Unix time in seconds (above this) or in milliseconds (above _EPOCH_MS), not a delay.
_EPOCH_S = 1e9
_EPOCH_MS = 1e12


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a server's rate-limit headers say; a field the headers do not give (or give as
    garbage) is None.

    ``limit`` is the quota (requests per window), ``remaining`` what is left of it, ``reset`` the
    seconds until the quota is restored and ``window`` the window's length in seconds.
    """

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    window: float | None = None


def _count(value: object) -> int | None:
    """A non-negative integer header value, or None."""
    text = _text(value) if isinstance(value, str | bytes | bytearray) else None
    return int(text) if text is not None and _COUNT.fullmatch(text) else None


def _seconds(value: object) -> float | None:
    """A delay in seconds (delta-seconds, as ``Retry-After``'s number form), or None."""
    text = _text(value) if isinstance(value, str | bytes | bytearray) else None
    return _delay(float(text)) if text is not None and _SECONDS.fullmatch(text) else None


def _reset(value: object, now: float | None) -> float | None:
    """An ``X-RateLimit-Reset``: a delay, or a Unix time (s or ms) turned into one."""
    seconds = _seconds(value)
    if seconds is None or seconds <= _EPOCH_S:
        return seconds
    if seconds > _EPOCH_MS:
        seconds /= 1000.0
    return _delay(seconds - (time.time() if now is None else now))


def _parameters(member: str) -> dict[str, str]:
    """The ``;key=value`` parameters of a structured-field list member (name dropped)."""
    found: dict[str, str] = {}
    for part in member.split(";")[1:]:
        key, sep, value = part.partition("=")
        if sep:
            found.setdefault(key.strip().lower(), value.strip())
    return found


def _policies(text: str) -> dict[str, dict[str, str]]:
    """A structured-field list (``"name";k=v, ...``) as name -> parameters."""
    found: dict[str, dict[str, str]] = {}
    for member in text.split(","):
        name = member.split(";", 1)[0].strip().strip('"')
        found.setdefault(name, _parameters(member))
    return found


def _structured(ratelimit: str | None, policy: str | None) -> RateLimitInfo:
    """The IETF draft's ``RateLimit`` and ``RateLimit-Policy`` fields (both forms)."""
    limit = remaining = None
    reset = window = None
    if ratelimit is not None and "=" in ratelimit.split(";", 1)[0]:
        # The earlier form: a dictionary ``limit=10, remaining=5, reset=3``.
        fields = dict(
            (key.strip().lower(), value.strip())
            for key, _, value in (item.partition("=") for item in ratelimit.split(","))
        )
        limit, remaining = _count(fields.get("limit")), _count(fields.get("remaining"))
        reset = _seconds(fields.get("reset"))
    elif ratelimit is not None:
        # The current form: ``"name";r=5;t=3`` per policy; the least remaining counts.
        best: tuple[int, str, dict[str, str]] | None = None
        for name, params in _policies(ratelimit).items():
            left = _count(params.get("r"))
            if left is not None and (best is None or left < best[0]):
                best = (left, name, params)
        if best is not None:
            remaining, chosen, params = best
            reset = _seconds(params.get("t"))
            if policy is not None:
                quota = _policies(policy).get(chosen, {})
                limit, window = _count(quota.get("q")), _seconds(quota.get("w"))
            policy = None
    if policy is not None:
        # The policy alone, in either form: ``"name";q=10;w=1`` or ``10;w=1``.
        for name, params in _policies(policy).items():
            limit = _count(params.get("q")) or _count(name)
            window = _seconds(params.get("w"))
            break
    return RateLimitInfo(limit, remaining, reset, window)


def rate_limit_from_headers(
    headers: Mapping[str, str], *, now: float | None = None
) -> RateLimitInfo | None:
    """What the rate-limit headers among ``headers`` say, or None when they say nothing usable.

    Reads the forms the module docstring lists; names match case-insensitively; a value that
    is not a non-negative number (or is longer than 1 KiB) is ignored. ``now`` is the Unix time
    an ``X-RateLimit-Reset`` Unix time is measured from (default: ``time.time()``). Never raises
    for a mapping of strings.

    Raises:
        TypeError: ``headers`` is not a mapping.
    """
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping, not {type(headers).__name__}")
    found: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower() if isinstance(key, str) else None
        if name is None or "ratelimit" not in name or name in found:
            continue
        text = _text(value) if isinstance(value, str | bytes | bytearray) else None
        if text is not None and len(text) <= _MAX_RATE_LIMIT_TEXT:
            found[name] = text
    if not found:
        return None
    drafted = _structured(found.get("ratelimit"), found.get("ratelimit-policy"))
    candidates = (
        (drafted.limit, drafted.remaining, drafted.reset),
        (
            _count(found.get("ratelimit-limit")),
            _count(found.get("ratelimit-remaining")),
            _seconds(found.get("ratelimit-reset")),
        ),
        (
            _count(found.get("x-ratelimit-limit")),
            _count(found.get("x-ratelimit-remaining")),
            _reset(found.get("x-ratelimit-reset"), now),
        ),
    )
    limit = next((c[0] for c in candidates if c[0] is not None), None)
    remaining = next((c[1] for c in candidates if c[1] is not None), None)
    reset = next((c[2] for c in candidates if c[2] is not None), None)
    if limit is None and remaining is None and reset is None and drafted.window is None:
        return None
    return RateLimitInfo(limit, remaining, reset, drafted.window)
