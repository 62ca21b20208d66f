"""Backend error envelopes: find them in dicts, JSON, Python reprs and free text; parse them typed.

The backend v2 answers an error with ``{"error": {"code": "<string>", "detail": ..., ...}}``.
Errors reach us in many disguises, and :func:`find_envelope` sees through all of these:

* a ``dict`` (or any mapping), possibly nesting the envelope deeper (``{"response": {...}}``);
* JSON text, bytes, a Python dict ``repr`` (single quotes, ``True``/``False``/``None``);
* JSON inside a longer message (``bulk fetch failed: {"error": {...}}``), also the quoted form
  ``KeyError`` gives it (``'{"error": ...}'``) and backslash-escaped JSON;
* double-encoded JSON (a JSON string whose content is JSON), to a few levels;
* ``code`` in any key position, objects nested before it;
* RFC 9457 problem details (``type``, ``title``, ``status``, ``detail`` and extension members such
  as ``code``) and ``{"errors": [...]}`` arrays, parsed into the same :class:`ErrorEnvelope`.

Only string codes are codes: a numeric ``code`` is an HTTP status and goes to ``status``.
Per-item failures come from ``failed`` (objects or bare ids), ``failed_ids``, ``errors[]`` entries
that carry an ``id``, and ``invalid_ids`` (each becomes code ``"invalid_id"``, not retryable).
The retry delay comes from ``retry_after`` (seconds or an HTTP date), ``retry_after_seconds`` or
``retry_after_ms``, read as :mod:`synapse_sdk.retry_after` reads headers: negative, NaN and
garbage values are dropped; a huge one is kept (saturated), for the retry policy to refuse.

Parsing never raises on malformed input; it returns ``None``. The work is bounded so hostile input
cannot make it slow (see the ``MAX_*`` constants): at most :data:`MAX_TEXT_CHARS` characters of a
text are scanned (longer texts: the first and the last half of that), at most
:data:`MAX_CANDIDATES` opening braces are tried, an object longer than :data:`MAX_OBJECT_CHARS` is
not parsed, at most :data:`MAX_DECODE_DEPTH` levels of JSON-in-a-string are followed and at most
:data:`MAX_NODES` values of a parsed structure are visited.

A known blind spot, by design: a ``code`` key spelled with JSON unicode escapes (``"\\u0063ode"``)
is parsed, but the classifier's fast path (which skips envelope parsing when the text has no
``code`` substring) will not look for it.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from synapse_sdk.retry_after import (
    parse_retry_after,
    parse_retry_after_ms,
    retry_after_from_headers,
)

__all__ = [
    "MAX_CANDIDATES",
    "MAX_DECODE_DEPTH",
    "MAX_NODES",
    "MAX_OBJECT_CHARS",
    "MAX_TEXT_CHARS",
    "ErrorEnvelope",
    "FailedItem",
    "ItemId",
    "find_envelope",
    "iter_envelopes",
    "parse_retry_after",
    "retry_after_from_headers",
]

#: An item id as the backend sends it (the v2 API uses strings or integers).
ItemId = str | int

#: Characters of one text scanned; a longer text is scanned as its first and last halves of this.
MAX_TEXT_CHARS = 256 * 1024
#: Opening braces tried as the start of an object, per call.
MAX_CANDIDATES = 64
#: A candidate object longer than this many characters is not parsed.
MAX_OBJECT_CHARS = 64 * 1024
#: Levels of "a string whose content is JSON" followed.
MAX_DECODE_DEPTH = 4
#: Values (containers and strings) of parsed structures visited, per call.
MAX_NODES = 4096
#: Tokens the Python-literal bracket matcher may consume, per call.
MAX_LITERAL_TOKENS = 20_000
#: Characters of Python-literal source parsed, per call.
MAX_LITERAL_CHARS = 4 * MAX_OBJECT_CHARS
#: Failed items kept from one envelope.
MAX_FAILED_ITEMS = 10_000
_MAX_CODE_CHARS = 256

_INVALID_ID_CODE = "invalid_id"


@dataclass(frozen=True, slots=True)
class FailedItem:
    """One item a bulk request could not serve: its ``id``, the backend's per-item ``code`` and
    whether the backend says retrying that item may succeed.

    Raises:
        TypeError: ``id`` is not a str or int, ``code`` not a str or None, ``retryable`` not bool.
    """

    id: ItemId
    code: str | None = None
    retryable: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, str | int):
            raise TypeError(f"FailedItem.id must be a str or int, not {type(self.id).__name__}")
        if self.code is not None and not isinstance(self.code, str):
            raise TypeError(
                f"FailedItem.code must be a str or None, not {type(self.code).__name__}"
            )
        if not isinstance(self.retryable, bool):
            raise TypeError(
                f"FailedItem.retryable must be a bool, not {type(self.retryable).__name__}"
            )


@dataclass(frozen=True, slots=True)
class ErrorEnvelope:
    """A backend error answer, whatever shape it came in.

    ``code`` is the machine-readable string code (the catalog key), ``message`` the human text
    (``message``, else ``detail``, else ``title``), ``status`` the HTTP status when the body
    names one, ``failed`` the per-item failures and ``retry_after_seconds`` the delay the backend
    asked for.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: ``code`` is empty or ``retry_after_seconds`` is negative or not finite.
    """

    code: str | None = None
    message: str | None = None
    status: int | None = None
    failed: tuple[FailedItem, ...] = ()
    retry_after_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.code is not None:
            if not isinstance(self.code, str):
                raise TypeError(
                    f"ErrorEnvelope.code must be a str or None, not {type(self.code).__name__}"
                )
            if not self.code:
                raise ValueError("ErrorEnvelope.code must not be empty")
        if self.message is not None and not isinstance(self.message, str):
            raise TypeError(
                f"ErrorEnvelope.message must be a str or None, not {type(self.message).__name__}"
            )
        if self.status is not None and (
            isinstance(self.status, bool) or not isinstance(self.status, int)
        ):
            raise TypeError(
                f"ErrorEnvelope.status must be an int or None, not {type(self.status).__name__}"
            )
        if not isinstance(self.failed, tuple) or not all(
            isinstance(item, FailedItem) for item in self.failed
        ):
            raise TypeError("ErrorEnvelope.failed must be a tuple of FailedItem")
        delay = self.retry_after_seconds
        if delay is not None:
            if isinstance(delay, bool) or not isinstance(delay, int | float):
                raise TypeError(
                    "ErrorEnvelope.retry_after_seconds must be a number or None, "
                    f"not {type(delay).__name__}"
                )
            if not math.isfinite(delay) or delay < 0:
                raise ValueError(
                    f"ErrorEnvelope.retry_after_seconds must be finite and >= 0, got {delay!r}"
                )

    @property
    def failed_ids(self) -> tuple[ItemId, ...]:
        """The ids of the failed items, in the order the backend listed them."""
        return tuple(item.id for item in self.failed)

    def to_json(self) -> str:
        """The canonical ``{"error": {...}}`` text of this envelope.

        ``BackendError`` messages embed it so text classification sees the envelope; parsing the
        text with :func:`find_envelope` gives back an equal envelope.
        Unset fields are left out; ``message`` is written as ``detail``.
        """
        body: dict[str, Any] = {}
        if self.code is not None:
            body["code"] = self.code
        if self.status is not None:
            body["status"] = self.status
        if self.message is not None:
            body["detail"] = self.message
        if self.failed:
            body["failed"] = [
                {"id": item.id, "code": item.code, "retryable": item.retryable}
                for item in self.failed
            ]
        if self.retry_after_seconds is not None:
            body["retry_after"] = self.retry_after_seconds
        return json.dumps({"error": body}, ensure_ascii=False)


# --- public entry points -----------------------------------------------------------------------


def find_envelope(obj: object) -> ErrorEnvelope | None:
    """Find the backend error envelope in ``obj`` (a mapping, list, str, bytes or bytearray).

    The first envelope carrying a string ``code`` wins; without one, the first envelope found
    (a problem-details body without ``code``, say). Anything else, malformed or not an envelope,
    gives ``None``. Never raises.
    """
    fallback: ErrorEnvelope | None = None
    try:
        for envelope in iter_envelopes(obj):
            if envelope.code is not None:
                return envelope
            if fallback is None:
                fallback = envelope
    except Exception:  # pragma: no cover - the parser is written not to raise; belt and braces
        return fallback
    return fallback


def iter_envelopes(obj: object) -> Iterator[ErrorEnvelope]:
    """Every envelope found in ``obj``, in document order, within the documented work bounds.

    Used by the failure classifier to try the next envelope when the first one's code is not in
    its catalog. Other types than mapping, list/tuple, str and bytes-like yield nothing.
    """
    scan = _Scan()
    if isinstance(obj, Mapping | list | tuple):
        yield from scan.structure(obj, 0)
    elif isinstance(obj, str):
        yield from scan.text(obj, 0)
    elif isinstance(obj, bytes | bytearray | memoryview):
        yield from scan.data(obj)


# --- scanning ----------------------------------------------------------------------------------

# An opening brace that starts a mapping with a string key: ``{"``, ``{'``, ``{\"``, ``{ \\\"``.
_OPEN = re.compile(r"""\{\s*(\\*)(["'])""")
# Tokens for matching braces of a Python literal: strings (single line) and braces. A string
# left open runs to the end of its line, so every quote starts a token and no attempt rescans
# text an earlier one covered: linear. (With the closing quote required, each quote of
# {'\'\'\'... restarted a scan to the end of the line: quadratic, seconds for 64 KB.)
_LITERAL_TOKEN = re.compile(r"""'(?:[^'\\\n]|\\.)*'?|"(?:[^"\\\n]|\\.)*"?|[{}]""")
_JSON = json.JSONDecoder()
_LENIENT_JSON = json.JSONDecoder(strict=False)
# The content of a double-quoted string literal, up to (not including) its closing quote.
_DQ_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_SQ_BODY = re.compile(r"[^'\\]*(?:\\.[^'\\]*)*", re.DOTALL)
_MAX_LITERAL_DEPTH = 100
_ESCAPED_CHAR = re.compile(r"\\(.)", re.DOTALL)
# Text that may hold an envelope holds one of these.
_MARKERS = ("code", "error", "detail", "title", "status", "invalid_ids", "failed")


class _Scan:
    """The state of one search: budgets shared by every level of nesting."""

    __slots__ = ("candidates", "literal_chars", "literal_tokens", "nodes")

    def __init__(self) -> None:
        self.candidates = MAX_CANDIDATES
        self.nodes = MAX_NODES
        self.literal_tokens = MAX_LITERAL_TOKENS
        self.literal_chars = MAX_LITERAL_CHARS

    def data(self, raw: bytes | bytearray | memoryview) -> Iterator[ErrorEnvelope]:
        """Bytes are UTF-8 text (undecodable bytes replaced); only the capped head/tail decoded."""
        try:
            view = memoryview(raw).cast("B")
        except (TypeError, ValueError):
            return  # a multi-dimensional or non-contiguous buffer is not text
        half = MAX_TEXT_CHARS // 2
        parts = (view[:half], view[-half:]) if len(view) > MAX_TEXT_CHARS else (view,)
        for part in parts:
            yield from self.text(bytes(part).decode("utf-8", "replace"), 0)

    def text(self, text: str, depth: int) -> Iterator[ErrorEnvelope]:
        if len(text) > MAX_TEXT_CHARS:
            half = MAX_TEXT_CHARS // 2
            yield from self._segment(text[:half], depth)
            yield from self._segment(text[-half:], depth)
        else:
            yield from self._segment(text, depth)

    def _segment(self, text: str, depth: int) -> Iterator[ErrorEnvelope]:
        if "{" not in text or not any(marker in text for marker in _MARKERS):
            return
        stripped = text.strip().lstrip("\ufeff")
        if stripped.startswith('"') and depth < MAX_DECODE_DEPTH:
            # Double-encoded: the whole text is a JSON string holding JSON.
            inner = _json_value(stripped)
            if isinstance(inner, str):
                yield from self.text(inner, depth + 1)
                return
        position = 0
        for match in _OPEN.finditer(text):
            start = match.start()
            if start < position:
                continue  # inside an object already parsed and searched
            if self.candidates <= 0:
                return
            self.candidates -= 1
            if match.group(1):
                # Backslash-escaped JSON: the content of a string literal; decode and rescan.
                if depth < MAX_DECODE_DEPTH:
                    decoded = _unescape(text, start, match.group(2))
                    if decoded is not None:
                        yield from self.text(decoded, depth + 1)
                continue
            parsed, end = self._parse_object(text, start)
            if parsed is None:
                continue
            position = end
            yield from self.structure(parsed, depth)

    def _parse_object(self, text: str, start: int) -> tuple[Any, int]:
        """The mapping starting at ``text[start]`` as JSON, else as a Python literal."""
        segment = text[start : start + MAX_OBJECT_CHARS]
        try:
            value, consumed = _JSON.raw_decode(segment)
        except Exception:
            pass
        else:
            if isinstance(value, dict):
                return value, start + consumed
            return None, start
        end = self._literal_end(segment)
        if end is None or end > self.literal_chars:
            return None, start
        self.literal_chars -= end
        value = _python_literal(segment[:end])
        if isinstance(value, dict):
            return value, start + end
        return None, start

    def _literal_end(self, segment: str) -> int | None:
        """Index just past the brace closing ``segment[0]``, skipping quoted strings."""
        depth = 0
        for token in _LITERAL_TOKEN.finditer(segment):
            self.literal_tokens -= 1
            if self.literal_tokens < 0:
                return None
            char = token.group()
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return token.end()
        return None

    def structure(self, root: object, depth: int) -> Iterator[ErrorEnvelope]:
        """Envelopes in a parsed structure, breadth first; strings holding JSON are followed."""
        queue: list[object] = [root]
        index = 0
        while index < len(queue):
            value = queue[index]
            index += 1
            self.nodes -= 1
            if self.nodes < 0:
                return
            if isinstance(value, Mapping):
                envelope = _from_mapping(value)
                if envelope is not None:
                    yield envelope
                    continue
                queue.extend(value.values())
            elif isinstance(value, list | tuple):
                queue.extend(value)
            elif isinstance(value, str) and depth < MAX_DECODE_DEPTH and "{" in value:
                yield from self.text(value, depth + 1)


def _json_value(text: str) -> object:
    try:
        return json.loads(text)
    except Exception:
        return None


def _unescape(text: str, start: int, quote: str) -> str | None:
    """Decode the string-literal content starting at ``text[start]`` (``{\\"error\\": ...``).

    ``quote`` is the literal's delimiter: ``"`` for JSON (or Python) text, ``'`` for a Python
    ``repr``. The content runs to the first unescaped delimiter.
    """
    segment = text[start : start + MAX_OBJECT_CHARS]
    body = (_DQ_BODY if quote == '"' else _SQ_BODY).match(segment)
    content = body.group() if body is not None else segment
    if quote == '"':
        try:
            decoded = _LENIENT_JSON.decode(f'"{content}"')
        except Exception:
            decoded = None
        if isinstance(decoded, str):
            return decoded
    decoded = _python_literal(f"{quote}{content}{quote}")
    if isinstance(decoded, str):
        return decoded
    # Escapes neither JSON nor Python accepts: undo the backslashes by hand.
    return _ESCAPED_CHAR.sub(r"\1", content)


# A backslash and the character after it; pairs are matched left to right, so "\\\\" is one.
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_KNOWN_ESCAPES = frozenset("\\\n'\"abfnrtvx01234567NuU")


def _double_unknown_escape(match: re.Match[str]) -> str:
    return match.group(0) if match.group(1) in _KNOWN_ESCAPES else "\\" + match.group(0)


def _python_literal(source: str) -> object:
    """Evaluate a Python literal leniently: containers and constants as ``ast.literal_eval``
    would, but a call, name or other non-literal inside (``datetime(...)``) becomes ``None``
    instead of failing the whole value. Unparseable source gives ``None``."""
    if "\\" in source:
        # An escape Python does not know ('C:\data') keeps its backslash, but the compiler
        # warns about it (a SyntaxWarning on stderr, an error under -W error). Doubling the
        # backslash first gives the same value without the warning, and without touching the
        # warnings filters, which are not thread-safe.
        source = _ESCAPE.sub(_double_unknown_escape, source)
    try:
        tree = ast.parse(source, mode="eval")
    except Exception:  # SyntaxError, ValueError (NUL bytes, huge ints), MemoryError, ...
        return None
    return _literal_value(tree.body, 0)


def _literal_value(node: ast.expr, depth: int) -> object:
    if depth > _MAX_LITERAL_DEPTH:
        return None
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Dict):
        result: dict[object, object] = {}
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            if key_node is None:
                continue  # a ``**spread``
            key = _literal_value(key_node, depth + 1)
            if isinstance(key, str | int | float | bytes) or key is None:
                result[key] = _literal_value(value_node, depth + 1)
        return result
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_literal_value(element, depth + 1) for element in node.elts]
    if isinstance(node, ast.Name) and node.id in ("inf", "nan"):
        return float(node.id)  # how repr() writes a float that is infinite or NaN
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
    ):
        return -node.operand.value
    return None


# --- interpreting a mapping --------------------------------------------------------------------

_MESSAGE_KEYS = ("message", "detail", "title")
_STATUS_KEYS = ("status", "status_code")
_PROBLEM_KEYS = ("type", "title", "status", "detail")
_ERROR_LIKE_KEYS = (
    "message",
    "detail",
    "title",
    "status",
    "failed",
    "failed_ids",
    "invalid_ids",
    "retry_after",
    "retry_after_seconds",
    "retry_after_ms",
    "retryable",
)


def _from_mapping(mapping: Mapping[Any, Any]) -> ErrorEnvelope | None:
    """The envelope ``mapping`` is, if it has one of the recognised shapes, else None."""
    error = mapping.get("error")
    if isinstance(error, str) and error.lstrip().startswith("{"):
        decoded = _json_value(error)
        if isinstance(decoded, Mapping):
            error = decoded
    if isinstance(error, Mapping):
        return _build(error, mapping)
    errors = mapping.get("errors")
    if isinstance(errors, list | tuple) and errors:
        return _build_from_errors(mapping, errors)
    if _string_code(mapping) is not None and any(key in mapping for key in _ERROR_LIKE_KEYS):
        return _build(mapping, None)
    if _is_problem(mapping):
        return _build(mapping, None)
    return None


def _is_problem(mapping: Mapping[Any, Any]) -> bool:
    """An RFC 9457 problem details body: two of its members, one of them ``title``/``detail``."""
    present = 0
    for key in _PROBLEM_KEYS:
        value = mapping.get(key)
        if key == "status":
            present += _status(value) is not None
        else:
            present += isinstance(value, str)
    return present >= 2 and (
        isinstance(mapping.get("title"), str) or isinstance(mapping.get("detail"), str)
    )


def _build(error: Mapping[Any, Any], outer: Mapping[Any, Any] | None) -> ErrorEnvelope | None:
    code = _string_code(error)
    message = _first_string(error, _MESSAGE_KEYS)
    status = _first_status(error)
    if status is None and not isinstance(error.get("code"), str):
        status = _status(error.get("code"))  # a numeric code is a status; "503" is a code
    if status is None and outer is not None:
        status = _first_status(outer)
    failed = _failed_items(error)
    retry_after = _retry_after(error)
    if retry_after is None and outer is not None:
        retry_after = _retry_after(outer)
    if code is None and message is None and status is None and not failed and retry_after is None:
        return None
    return ErrorEnvelope(code, message, status, failed, retry_after)


def _build_from_errors(mapping: Mapping[Any, Any], errors: Sequence[Any]) -> ErrorEnvelope | None:
    """``{"errors": [...]}``: the first entry names the failure, entries with ids are items."""
    entries = [entry for entry in errors if isinstance(entry, Mapping)]
    code = _string_code(mapping)
    message = _first_string(mapping, _MESSAGE_KEYS)
    status = _first_status(mapping)
    retry_after = _retry_after(mapping)
    for entry in entries:
        if code is None:
            code = _string_code(entry)
        if message is None:
            message = _first_string(entry, _MESSAGE_KEYS)
        if status is None:
            status = _first_status(entry)
        if retry_after is None:
            retry_after = _retry_after(entry)
    if message is None:
        message = next((entry for entry in errors if isinstance(entry, str)), None)
    items: list[FailedItem] = []
    for entry in entries:
        item_id = _item_id(entry.get("id", entry.get("item_id")))
        if item_id is not None and len(items) < MAX_FAILED_ITEMS:
            items.append(FailedItem(item_id, _string_code(entry), entry.get("retryable") is True))
    items.extend(_failed_items(mapping, limit=MAX_FAILED_ITEMS - len(items)))
    failed = tuple(items)
    if code is None and message is None and status is None and not failed and retry_after is None:
        return None
    return ErrorEnvelope(code, message, status, failed, retry_after)


def _string_code(mapping: Mapping[Any, Any]) -> str | None:
    """The string ``code`` (or ``error_code``, or GraphQL's ``extensions.code``), else None."""
    for key in ("code", "error_code"):
        value = mapping.get(key)
        if isinstance(value, str) and value.strip() and len(value) <= _MAX_CODE_CHARS:
            return value
    extensions = mapping.get("extensions")
    if isinstance(extensions, Mapping):
        value = extensions.get("code")
        if isinstance(value, str) and value.strip() and len(value) <= _MAX_CODE_CHARS:
            return value
    return None


def _first_string(mapping: Mapping[Any, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str):
            return value
    return None


def _status(value: object) -> int | None:
    """An HTTP status from an int or a digit string in 100..599."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) == 3:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _first_status(mapping: Mapping[Any, Any]) -> int | None:
    for key in _STATUS_KEYS:
        status = _status(mapping.get(key))
        if status is not None:
            return status
    return None


def _item_id(value: object) -> ItemId | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return value


def _failed_items(
    error: Mapping[Any, Any], limit: int = MAX_FAILED_ITEMS
) -> tuple[FailedItem, ...]:
    """Items from ``failed`` (objects or bare ids), ``failed_ids`` and ``invalid_ids``."""
    items: list[FailedItem] = []
    sources: tuple[tuple[str, str | None], ...] = (
        ("failed", None),
        ("failed_ids", None),
        ("invalid_ids", _INVALID_ID_CODE),
    )
    for key, default_code in sources:
        entries = error.get(key)
        if not isinstance(entries, list | tuple):
            continue
        for entry in entries:
            if len(items) >= limit:
                return tuple(items)
            if isinstance(entry, Mapping):
                item_id = _item_id(entry.get("id", entry.get("item_id")))
                if item_id is None:
                    continue
                code = entry.get("code")
                items.append(
                    FailedItem(
                        item_id,
                        code if isinstance(code, str) else default_code,
                        entry.get("retryable") is True and default_code is None,
                    )
                )
            else:
                item_id = _item_id(entry)
                if item_id is not None:
                    items.append(FailedItem(item_id, default_code, False))
    return tuple(items)


def _retry_after(mapping: Mapping[Any, Any]) -> float | None:
    """The delay from ``retry_after`` / ``retry_after_seconds`` (seconds) or ``retry_after_ms``."""
    for key, scale in (
        ("retry_after", 1.0),
        ("retry_after_seconds", 1.0),
        ("retry_after_ms", 1e-3),
    ):
        if key in mapping:
            seconds = _seconds(mapping[key], scale)
            if seconds is not None:
                return seconds
    return None


def _seconds(value: object, scale: float) -> float | None:
    """A delay in seconds from a body value, read exactly as the headers are read
    (:func:`~synapse_sdk.retry_after.parse_retry_after` for seconds, HTTP dates included;
    :func:`~synapse_sdk.retry_after.parse_retry_after_ms` when ``scale`` is milliseconds).
    Signs, exponents, negative, non-finite, absurd or garbage values give None."""
    if scale != 1.0:
        return parse_retry_after_ms(value)
    if isinstance(value, str | int | float):
        return parse_retry_after(value)
    return None
