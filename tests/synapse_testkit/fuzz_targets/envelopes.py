#!/usr/bin/env python3
"""Fuzz ``synapse_sdk.envelopes.find_envelope`` / ``iter_envelopes``.

The first input byte picks a shape; the rest is the payload:

* raw bytes (also as ``bytearray`` and ``memoryview``), and the same bytes decoded as text;
* a random structure of dicts and lists with envelope vocabulary (``error``, ``code``,
  ``failed``, ``retry_after``...), given as the structure itself, its JSON dump, its Python
  ``repr``, the dump truncated, double-encoded, backslash-escaped and embedded in prose;
* a real envelope with fuzz bytes spliced in.

Invariants (an ``AssertionError`` is a libFuzzer crash):

* neither function raises (``iter_envelopes`` has no safety net of its own: the classifier
  calls it directly);
* every envelope is well typed: ``code`` a non-empty str of at most 256 characters or None,
  ``message`` str or None, ``status`` an int in 100..599 or None, ``failed`` a tuple of
  ``FailedItem`` (id str|int, never bool; code str|None; retryable bool), at most
  ``MAX_FAILED_ITEMS`` of them, ``retry_after_seconds`` a finite float in [0, 86400] or None;
* ``find_envelope`` is the first envelope of ``iter_envelopes`` with a code, else the first one;
* a found envelope survives ``to_json`` → ``find_envelope`` unchanged.

Run: ``python fuzz/fuzz_envelopes.py -max_total_time=60 CORPUS_DIR [SEED_DIR]``.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

from synapse_sdk.envelopes import (
    MAX_FAILED_ITEMS,
    MAX_OBJECT_CHARS,
    ErrorEnvelope,
    FailedItem,
    find_envelope,
    iter_envelopes,
)
from synapse_sdk.retry_after import MAX_RETRY_AFTER_SECONDS
from synapse_testkit.hostile import Provider, pick, provider, text

# A Python-literal candidate can make ast.parse warn ("invalid escape sequence"): noise, and a
# known issue of its own (see docs/reliability.md), not a crash of this harness.
warnings.simplefilter("ignore", SyntaxWarning)
warnings.simplefilter("ignore", DeprecationWarning)

_KEYS = (
    "error", "errors", "code", "error_code", "detail", "message", "title", "type", "status",
    "status_code", "failed", "failed_ids", "invalid_ids", "id", "item_id", "retryable",
    "retry_after", "retry_after_seconds", "retry_after_ms", "extensions", "response", "data",
)  # fmt: skip
_SCALARS: tuple[object, ...] = (
    None, True, False, 0, 7, -1, 429, 503, "503", 1.5, -0.0, 86_400, 86_401, 1e308, math.inf,
    math.nan, "", " ", "rate_limited", "partial_failure", "item_unavailable", "1.5", "nan",
    "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 01 Jan 2100 00:00:00 GMT", "{", '{"error": 1}',
    '"{\\"code\\": \\"x\\"}"', 10**30, "x" * 300,
)  # fmt: skip
_REAL = (
    '{"error": {"code": "partial_failure", "detail": "2 of 3 failed", "failed": '
    '[{"id": 7, "code": "item_unavailable", "retryable": true}, {"id": 9, "code": '
    '"item_corrupted", "retryable": false}]}, "meta": {"request_id": "r-1"}}',
    '{"error": {"code": "invalid_ids", "detail": "bad", "invalid_ids": [1, "x", -3]}}',
    '{"error": {"code": "rate_limited", "detail": "slow down", "retry_after": 1.5}}',
    '{"type": "https://x/probs/limit", "title": "Too many", "status": 429, "code": "rate_limited"}',
    "{'error': {'code': 'service_unavailable', 'detail': None, 'retryable': True}}",
    '{"errors": [{"code": "not_found", "id": 4, "message": "gone"}, "plain"]}',
    'bulk fetch failed: "{\\"error\\": {\\"code\\": \\"unauthorized\\"}}"',
)


def _structure(fdp: Provider, depth: int = 0) -> object:
    kind = fdp.ConsumeIntInRange(0, 5 if depth < 5 else 2)
    if kind == 0:
        return pick(fdp, _SCALARS)
    if kind == 1:
        return text(fdp, 24)
    if kind == 2:
        return fdp.ConsumeIntInRange(-(2**63), 2**63)
    if kind == 3:
        return [_structure(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    mapping: dict[str, object] = {}
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        key = pick(fdp, _KEYS) if fdp.ConsumeBool() else text(fdp, 8)
        mapping[key] = _structure(fdp, depth + 1)
    return mapping


def check_envelope(envelope: object) -> None:
    assert isinstance(envelope, ErrorEnvelope), type(envelope)
    code = envelope.code
    assert code is None or (isinstance(code, str) and code.strip() and len(code) <= 256), code
    assert envelope.message is None or isinstance(envelope.message, str)
    status = envelope.status
    assert status is None or (
        type(status) is int and 100 <= status <= 599
    ), status
    assert isinstance(envelope.failed, tuple) and len(envelope.failed) <= MAX_FAILED_ITEMS
    for item in envelope.failed:
        assert isinstance(item, FailedItem)
        assert type(item.id) in (str, int), type(item.id)
        assert item.code is None or isinstance(item.code, str)
        assert type(item.retryable) is bool
    delay = envelope.retry_after_seconds
    assert delay is None or (
        isinstance(delay, float) and math.isfinite(delay) and 0 <= delay <= MAX_RETRY_AFTER_SECONDS
    ), delay
    assert (
        code is not None or envelope.message is not None or status is not None
        or envelope.failed or delay is not None
    ), "an envelope with nothing in it"  # fmt: skip


def _same(a: ErrorEnvelope | None, b: ErrorEnvelope | None) -> bool:
    """Equal, allowing an HTTP-date delay to move with the clock between two parses."""
    if a is None or b is None:
        return a is b
    if (a.retry_after_seconds is None) != (b.retry_after_seconds is None):
        return False
    if (
        a.retry_after_seconds is not None
        and b.retry_after_seconds is not None
        and abs(a.retry_after_seconds - b.retry_after_seconds) > 5
    ):
        return False
    return (a.code, a.message, a.status, a.failed) == (b.code, b.message, b.status, b.failed)


def check(obj: object) -> None:
    found = list(iter_envelopes(obj))
    for envelope in found:
        check_envelope(envelope)
    first = find_envelope(obj)
    expected = next((e for e in found if e.code is not None), found[0] if found else None)
    assert _same(first, expected), (first, expected)
    if first is not None:
        canonical = first.to_json()
        if len(canonical) < MAX_OBJECT_CHARS:
            again = find_envelope(canonical)
            assert _same(again, first), (again, first)


def _disguises(value: Any, fdp: Provider) -> list[object]:
    dumped = json.dumps(value, default=repr, ensure_ascii=fdp.ConsumeBool())
    cut = fdp.ConsumeIntInRange(0, len(dumped))
    return [
        value,
        dumped,
        repr(value),
        dumped[:cut],
        json.dumps(dumped),
        json.dumps(json.dumps(dumped)),
        dumped.replace('"', '\\"'),
        f"request failed: {dumped} (attempt {cut})",
        f"KeyError: {dumped!r}",
        dumped.encode("utf-8", "surrogatepass"),
    ]


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, payload = data[0] % 4, data[1:]
    if mode == 0:
        check(payload)
        check(bytearray(payload))
        check(memoryview(payload))
        check(payload.decode("utf-8", "replace"))
    elif mode == 1:
        check(payload.decode("utf-8", "surrogateescape"))
    elif mode == 2:
        fdp = provider(payload)
        for shape in _disguises(_structure(fdp), fdp):
            check(shape)
    else:
        fdp = provider(payload)
        real = pick(fdp, _REAL)
        at = fdp.ConsumeIntInRange(0, len(real))
        drop = fdp.ConsumeIntInRange(0, 8)
        spliced = real[:at] + text(fdp, 32) + real[at + drop :]
        check(spliced)
        check(spliced * fdp.ConsumeIntInRange(1, 3))

