#!/usr/bin/env python3
"""Fuzz the four category classifiers (export, upload, train, inference) and
``extract_failed_step``.

The first input byte picks a shape: free text as the message; a fuzzed prefix, a v2 envelope
(a catalog code or a random one) and a fuzzed suffix; words the shipped patterns look for,
joined by fuzzed separators; or an exception graph (hostile exceptions, cycles, groups, some
carrying an ``error_code`` from the catalog or a non-string one) with an optional message.

Invariants (an ``AssertionError`` is a libFuzzer crash), for every category:

* ``classify`` and ``explain`` never raise; the code is None or a member of the category's
  code enum, and ``explain`` agrees with ``classify``;
* the answer is the documented layering, recomputed from public pieces: the first exception of
  ``walk_chain`` with a string ``error_code`` the catalog knows; else the first envelope of
  ``iter_envelopes(flatten_exception(...))`` whose code the catalog knows; else the first
  *declared* pattern that ``re.search`` finds in the text (so the gates never hide a
  match and never reorder the patterns);
* an envelope with a catalog code right after a brace-free prefix is always found;
* ``extract_failed_step`` never raises; from text it gives None or a name matching
  ``[\\w.-]{1,64}``; from an exception, None or a non-empty str.

Run: ``python fuzz/fuzz_classifiers.py -max_total_time=60 CORPUS_DIR [SEED_DIR]``.
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

from synapse_sdk.envelopes import iter_envelopes
from synapse_sdk.failures import DEFAULT_LIMIT, flatten_exception, walk_chain, walk_suppressed
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.failure_semantics import FailureCategory, extract_failed_step
from synapse_testkit.hostile import Provider, build_chain, pick, provider, text

# A Python-literal candidate can make ast.parse warn ("invalid escape sequence"): noise, and a
# known issue of its own (see docs/reliability.md), not a crash of this harness.
warnings.simplefilter("ignore", SyntaxWarning)
warnings.simplefilter("ignore", DeprecationWarning)

CATEGORIES: tuple[FailureCategory[Any], ...] = tuple(get_category(n) for n in CATEGORY_NAMES)
CODES: tuple[str, ...] = tuple(sorted({key for c in CATEGORIES for key in c.catalog}))
PATTERNS = {c.name: [(re.compile(p), code) for p, code in c.patterns] for c in CATEGORIES}
_STEP = re.compile(r"[\w.-]{1,64}")
_WORDS = (
    "KeyError", "[Errno 2] No such file or directory", "[Errno 13] Permission denied",
    "[Errno 28] No space left on device", "[Errno 111] Connection refused", "[Errno 17]",
    "429 Too Many Requests", "503 Service Unavailable", "timed out", "ReadTimeout",
    "JSONDecodeError", "Expecting value", "step 'convert' failed", "failed at step save",
    "CUDA out of memory", "OutOfMemoryError", "BadDigest", "checksum mismatch", "quota exceeded",
    "413 Request Entity Too Large", "unsupported storage", "export failed", "upload failed",
    "training failed", "inference failed", "unauthorized", "401", "ValidationError",
    "ImproperlyConfigured", "peer closed connection", "Server disconnected", "SSL",
    "Job is currently running", "No module named 'synapse_sdk.plugins.x'", "tarfile.ReadError",
    "too many 503 error responses", "504 Server Error", "cannot unpack non-iterable int object",
    "\u212a", "\u0130", "\u017f", "\u0131", "İ", "ſ", "{", "}", "'", '"', "code",
)  # fmt: skip
_SEPARATORS = (" ", "\n", ": ", "_", "-", "", "\t", "é", "\u00a0", "'", ".")


def _attribute(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _expected(
    category: FailureCategory[Any], exc: BaseException | None, message: str | None
) -> tuple[Any, str | None]:
    """(code, layer) as the documented three layers decide, from public functions."""
    catalog = category.catalog
    chain = walk_chain(exc) if exc is not None else []
    for node in chain:
        code = _attribute(node, "error_code")
        if isinstance(code, str) and code in catalog:
            return catalog[code], "attribute"
    if chain:
        blob = flatten_exception(exc, limit=DEFAULT_LIMIT) if exc is not None else ""
        if message:
            blob = f"{blob}\n{message}"
    elif message is not None:
        blob = message
    else:
        return None, None
    if len(blob) >= DEFAULT_LIMIT:
        return ..., None  # (possibly) capped: the head/tail cut is the classifier's own business
    if "code" in blob:
        for envelope in iter_envelopes(blob):
            if envelope.code is not None and envelope.code in catalog:
                return catalog[envelope.code], "envelope"
    # The backend's word in a context hidden by `raise ... from None` counts next, never its text.
    hidden = walk_suppressed(exc) if exc is not None else []
    for node in hidden:
        code = _attribute(node, "error_code")
        if isinstance(code, str) and code in catalog:
            return catalog[code], "attribute"
    text = "\n".join(flatten_exception(node, max_depth=0) for node in hidden)
    if len(text) >= DEFAULT_LIMIT:
        return ..., None
    for envelope in iter_envelopes(text) if "code" in text else ():
        if envelope.code is not None and envelope.code in catalog:
            return catalog[envelope.code], "envelope"
    for pattern, code in PATTERNS[category.name]:
        if pattern.search(blob):
            return code, "pattern"
    return None, None


def check(exc: BaseException | None, message: str | None) -> None:
    for category in CATEGORIES:
        code = category.classify(exc, message)
        assert code is None or isinstance(code, category.codes), (category.name, code)
        explanation = category.classifier.explain(exc, message)
        assert (explanation.code if explanation is not None else None) is code
        expected, layer = _expected(category, exc, message)
        if expected is not ...:
            assert code is expected, (category.name, code, expected, layer, exc, message)
            assert (explanation.layer if explanation is not None else None) == layer
    step = extract_failed_step(exc if exc is not None else message)
    if exc is None and message is not None:
        assert step is None or _STEP.fullmatch(step), step
    else:
        assert step is None or (isinstance(step, str) and step.strip()), step


def _envelope(fdp: Provider) -> tuple[str, str]:
    code = pick(fdp, CODES) if fdp.ConsumeBool() else text(fdp, 12)
    body: dict[str, object] = {"code": code}
    if fdp.ConsumeBool():
        body["detail"] = text(fdp, 24)
    if fdp.ConsumeBool():
        body["failed"] = [{"id": fdp.ConsumeIntInRange(0, 9), "retryable": fdp.ConsumeBool()}]
    envelope = {"error": body}
    shape = fdp.ConsumeIntInRange(0, 2)
    if shape == 0:
        return code, json.dumps(envelope, ensure_ascii=fdp.ConsumeBool())
    if shape == 1:
        return code, repr(envelope)
    return code, json.dumps(json.dumps(envelope))


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, payload = data[0] % 4, data[1:]
    if mode == 0:
        check(None, payload.decode("utf-8", "surrogateescape"))
        return
    fdp = provider(payload)
    if mode == 1:
        prefix = text(fdp, 64)
        code, envelope = _envelope(fdp)
        suffix = text(fdp, 64)
        message = prefix + envelope + suffix
        check(None, message)
        if "{" not in prefix and '"' not in prefix and code in CODES and envelope.startswith("{"):
            for category in CATEGORIES:
                if code in category.catalog:
                    assert category.classify(message=message) is category.catalog[code], message
    elif mode == 2:
        parts = []
        for _ in range(fdp.ConsumeIntInRange(1, 12)):
            parts.append(pick(fdp, _WORDS) if fdp.ConsumeBool() else text(fdp, 8))
            parts.append(pick(fdp, _SEPARATORS))
        check(None, "".join(parts))
    else:
        root, _ = build_chain(fdp, codes=CODES, max_exceptions=6)
        check(root, text(fdp, 64) if fdp.ConsumeBool() else None)

