"""Generic failure classification: any raised exception → a stable code from a category's data.

A category (export, upload, train, inference, or a plugin's own) supplies data only: a *catalog*
(backend ``error.code`` string → code) and an ordered list of *patterns* (regex → code). The
:class:`FailureClassifier` turns an exception chain into one of those codes, in three layers:

1. **Structured attributes.** Any exception in the chain carrying a string ``error_code`` (a
   :class:`~synapse_sdk.exceptions.BackendError` built by the transport, say) that the catalog
   knows wins at once. The chain is searched in :func:`walk_chain` order.
2. **The envelope in the text.** The chain is flattened into one text blob
   (:func:`flatten_exception`); a v2 envelope found in it (:mod:`synapse_sdk.envelopes`) whose
   string ``code`` the catalog knows wins. An unknown code falls through. When the cap cut the
   blob, the head of a code-first envelope (``{"error": {"code": "partial_failure", ...``
   followed by a 100 KB id list) counts too: the head survives the cap, the rest would not parse.

   A context hidden by ``raise X from None`` is not part of the chain, but the backend's word
   in it still counts after the visible chain's: its exceptions' ``error_code`` (layer 1), then
   envelopes in their text (layer 2). Its text never reaches the patterns, so a missing file or
   a "429" the code chose to hide cannot name the failure.
3. **Patterns, in declaration order.** The first *declared* pattern that matches anywhere in the
   blob wins (not the leftmost match). No match: ``None``.

Classification is pure (no state changes, no global caches), thread-safe (a classifier is
immutable once built) and bounded: the chain walk stops at a depth and a node count, the blob is
capped keeping its head and tail, so even a 2 MB message or a cyclic chain classifies quickly.

Speed. The patterns run in declaration order over the capped blob, nothing cleverer. A pattern
may declare the lowercase words it cannot match without (:class:`Gated`); it is skipped when
none of them is in the lowercased blob, which costs a substring search instead of a regex scan.
A gate never changes an answer, only how many regexes run (the category tests prove it for
the shipped patterns), so the answer is exactly the plain loop's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from synapse_sdk.envelopes import ErrorEnvelope, iter_envelopes

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NODES",
    "Classification",
    "FailureClassifier",
    "Gated",
    "flatten_exception",
    "walk_chain",
    "walk_suppressed",
]

C = TypeVar("C")

#: How deep :func:`walk_chain` follows causes, contexts and group members.
DEFAULT_MAX_DEPTH = 64
#: How many exceptions :func:`walk_chain` returns at most.
DEFAULT_MAX_NODES = 256
#: The longest text blob classified (characters): 8 KiB of head and 8 KiB of tail are kept.
DEFAULT_LIMIT = 16 * 1024
_MIN_LIMIT = 64
_OMITTED = "\n…\n"

Layer = Literal["attribute", "envelope", "pattern"]
# What decided a classification: code, layer, matched text, envelope, pattern index.
_Decision = tuple[C, Layer, str, ErrorEnvelope | None, int | None]


# --- the chain ---------------------------------------------------------------------------------


def _attribute(obj: object, name: str) -> object:
    """``getattr`` that survives a property raising."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _children(exc: BaseException, room: int) -> list[BaseException]:
    """Group members, then ``__cause__``, then ``__context__`` unless suppressed."""
    children: list[BaseException] = []
    if isinstance(exc, BaseExceptionGroup):
        members = _attribute(exc, "exceptions")
        if isinstance(members, tuple | list):
            children.extend(m for m in members[:room] if isinstance(m, BaseException))
    cause = _attribute(exc, "__cause__")
    if isinstance(cause, BaseException):
        children.append(cause)
    if not _attribute(exc, "__suppress_context__"):
        context = _attribute(exc, "__context__")
        if isinstance(context, BaseException) and context is not cause:
            children.append(context)
    return children


def walk_chain(
    exc: BaseException,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> list[BaseException]:
    """Every exception reachable from ``exc``, depth first: ``exc`` itself, its group members
    (``BaseExceptionGroup.exceptions``), its ``__cause__``, then its ``__context__`` unless
    ``__suppress_context__`` is set (``raise ... from ...``).

    Each exception appears once (a cycle guard by identity); the walk stops ``max_depth`` links
    below ``exc`` and after ``max_nodes`` exceptions. It is iterative, so a 10 000-deep chain
    cannot exhaust the stack.

    Raises:
        TypeError: ``exc`` is not an exception.
        ValueError: ``max_depth`` is negative or ``max_nodes`` is less than 1.
    """
    if not isinstance(exc, BaseException):
        raise TypeError(f"walk_chain() needs an exception, not {type(exc).__name__}")
    _check_int("max_depth", max_depth, 0)
    _check_int("max_nodes", max_nodes, 1)
    return _walk(exc, max_depth, max_nodes)


def _walk(exc: BaseException, max_depth: int, max_nodes: int) -> list[BaseException]:
    try:
        if (
            exc.__cause__ is None
            and exc.__context__ is None
            and not isinstance(exc, BaseExceptionGroup)
        ):
            return [exc]  # the common one-level exception, without the walk's bookkeeping
    except Exception:
        pass  # an attribute that raises: the careful walk below survives it
    seen: set[int] = set()
    result: list[BaseException] = []
    stack: list[tuple[BaseException, int]] = [(exc, 0)]
    while stack and len(result) < max_nodes:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        result.append(node)
        if depth < max_depth:
            children = _children(node, max_nodes)
            stack.extend((child, depth + 1) for child in reversed(children))
    return result


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


# --- flattening --------------------------------------------------------------------------------


def _type_name(cls: type) -> str:
    """``module.Qualname`` as tracebacks print it (bare for builtins and ``__main__``)."""
    name = cls.__qualname__  # a type's __qualname__ is always a str
    try:
        module = cls.__module__
    except Exception:  # a metaclass property that raises
        return name
    if module.__class__ is str and module != "builtins" and module != "__main__":
        return f"{module}.{name}"
    return name


def _message(exc: BaseException) -> str:
    """``str(exc)``; when that raises: ``repr``, then the args' reprs."""
    try:
        text = str(exc)  # str() itself raises TypeError when __str__ returns a non-str
        # A str subclass may override len(), slicing or format(): keep only its characters.
        return text if type(text) is str else str.__str__(text)
    except Exception:
        pass
    try:
        return f"<str() failed> {exc!r}"
    except Exception:
        pass
    parts: list[str] = []
    args = _attribute(exc, "args")
    for arg in args if isinstance(args, tuple) else ():
        try:
            parts.append(repr(arg))
        except Exception:
            parts.append(f"<unprintable {type(arg).__name__}>")
    return "<str() failed> " + ", ".join(parts)


def _cap(text: str, limit: int) -> str:
    """``text`` itself, or its head and tail joined by a marker, ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    room = limit - len(_OMITTED)
    head = (room + 1) // 2
    return text[:head] + _OMITTED + text[len(text) - (room - head) :]


def _line(exc: BaseException, limit: int) -> str:
    message = _message(exc)
    if len(message) > limit:
        message = _cap(message, limit)
    name = _type_name(type(exc))
    return f"{name}: {message}" if message else name


def _flatten(chain: Sequence[BaseException], limit: int) -> str:
    text = (
        _line(chain[0], limit) if len(chain) == 1 else "\n".join([_line(e, limit) for e in chain])
    )
    return text if len(text) <= limit else _cap(text, limit)


def flatten_exception(
    exc: BaseException,
    *,
    limit: int = DEFAULT_LIMIT,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> str:
    """The chain of ``exc`` (see :func:`walk_chain`) as text: one ``module.Type: message`` line
    per exception, the way a traceback's last line reads.

    An exception whose ``str()`` raises or returns a non-string is described by its ``repr``, or
    its args, instead. The result is at most ``limit`` characters: a longer text keeps its head
    and its tail around a ``…`` line, so the outermost and the innermost errors both survive.

    Raises:
        TypeError: ``exc`` is not an exception.
        ValueError: ``limit`` is below 64 or ``max_depth`` is negative.
    """
    _check_int("limit", limit, _MIN_LIMIT)
    return _flatten(walk_chain(exc, max_depth=max_depth), limit)


# --- what the visible chain hides and what the cap cuts -----------------------------------------


def walk_suppressed(
    exc: BaseException, *, max_depth: int = DEFAULT_MAX_DEPTH
) -> list[BaseException]:
    """What ``raise ... from None`` hid: the exceptions reachable only through the suppressed
    ``__context__`` of a member of ``walk_chain(exc)``, each context walked like a chain, in
    chain order, at most DEFAULT_MAX_NODES in all. The classifier reads only the backend's word
    in them (see the module docstring).

    Raises:
        TypeError: ``exc`` is not an exception.
        ValueError: ``max_depth`` is negative.
    """
    chain = walk_chain(exc, max_depth=max_depth)
    return _suppressed(chain, max_depth)


def _suppressed(chain: Sequence[BaseException], max_depth: int) -> list[BaseException]:
    seen = {id(node) for node in chain}
    hidden: list[BaseException] = []
    for node in chain:
        context = _attribute(node, "__context__")
        if not isinstance(context, BaseException) or not _attribute(node, "__suppress_context__"):
            continue
        for inner in _walk(context, max_depth, DEFAULT_MAX_NODES):
            if id(inner) not in seen and len(hidden) < DEFAULT_MAX_NODES:
                seen.add(id(inner))
                hidden.append(inner)
    return hidden


# The head of a code-first envelope, '{"error": {"code": "partial_failure", ...' (JSON or a dict
# repr), read when the cap cut the rest (a failed-ids list of 100 KB, say): the blob keeps its
# head, but an envelope cut in the middle no longer parses. (JSON's and repr's spacing only.)
_ENVELOPE_HEAD = re.compile(
    r"""\{ ?["']error["'] ?: ?\{ ?["']code["'] ?: ?["']([\w.:-]{1,128})["']"""
)


# --- gates ------------------------------------------------------------------------------------


class Gated(str):
    """A regex (it *is* the regex string) with the lowercase words it cannot match without.

    ``Gated(r"\\bKeyError\\b", "keyerror")``: the classifier runs this regex only on a text whose
    lowercased form contains at least one of the words, so a pattern that cannot match costs a
    substring search instead of a regex scan. Declare only words a match cannot lack: whatever
    text the regex matches, its lowercased match holds one of them
    (``tests/plugins/test_categories.py`` checks the shipped ones). A plain ``str`` pattern has
    no gate and always runs.

    Raises:
        ValueError: no words, or a word that is empty or not lowercase.
    """

    words: tuple[str, ...]

    def __new__(cls, regex: str, *words: str) -> Gated:
        if not words:
            raise ValueError(f"Gated({regex!r}) needs at least one word")
        for word in words:
            if not isinstance(word, str) or not word or word != word.lower():
                raise ValueError(f"gate word {word!r} of {regex!r} must be a lowercase str")
        self = super().__new__(cls, regex)
        self.words = words
        return self

    def __reduce__(self) -> tuple[type[Gated], tuple[str, ...]]:
        return (Gated, (str(self), *self.words))


# The four non-ASCII letters IGNORECASE equates with ASCII ones (dotted and dotless I, long s,
# Kelvin sign): folded before lowercasing, so "\u212aeyError" still shows its "keyerror".
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def _gate_text(blob: str) -> str:
    """The blob as gate words are looked for in it: special letters folded, lowercased."""
    if not blob.isascii() and any(char in blob for char in "\u0130\u0131\u017f\u212a"):
        blob = blob.translate(_FOLD)  # only when needed: translate() of non-ASCII text is slow
    return blob.lower()


# --- the classifier ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classification(Generic[C]):
    """Why an exception got its code: the ``layer`` that decided (``"attribute"``,
    ``"envelope"`` or ``"pattern"``), the ``matched`` text (the backend code, or the text the
    pattern matched), and the ``envelope`` or ``pattern`` (with its declaration ``index``)."""

    code: C
    layer: Layer
    matched: str
    envelope: ErrorEnvelope | None = None
    pattern: re.Pattern[str] | None = None
    index: int | None = None


def _compile(entry: object, position: int) -> tuple[re.Pattern[str], Any]:
    if not isinstance(entry, tuple | list) or len(entry) != 2:
        raise TypeError(
            f"pattern #{position} must be a (pattern, code) pair, not {type(entry).__name__}"
        )
    pattern, code = entry
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError(f"pattern #{position} {pattern.pattern!r} is a bytes pattern")
        return pattern, code
    if not isinstance(pattern, str):
        raise TypeError(
            f"pattern #{position} must be a str or re.Pattern, not {type(pattern).__name__}"
        )
    try:
        return re.compile(pattern), code
    except re.error as exc:
        raise ValueError(f"pattern #{position} {pattern!r} is not a valid regex: {exc}") from exc


class FailureClassifier(Generic[C]):
    """Maps exceptions (and log text) to a category's codes: catalog first, patterns second.

    ``catalog`` maps backend ``error.code`` strings to codes; ``patterns`` is an ordered
    sequence of ``(regex, code)`` pairs (a str, a :class:`Gated` str or a compiled
    ``re.Pattern[str]``), most specific first. Both are copied: changing them afterwards does
    not change the classifier.

    ``limit`` caps the text blob (head and tail kept); ``max_depth`` caps the chain walk;
    ``attribute`` names the structured attribute consulted first (``error_code``).

    Thread-safe: immutable once built; one instance may be shared by threads and tasks.

    Raises:
        TypeError: ``catalog`` is not a mapping with str keys, a pattern entry is not a
            ``(pattern, code)`` pair, or a pattern is neither str nor a str ``re.Pattern``.
        ValueError: a pattern is not a valid regex (the message names it), or ``limit`` /
            ``max_depth`` is out of range.
    """

    __slots__ = (
        "_attribute",
        "_catalog",
        "_codes",
        "_gates",
        "_limit",
        "_max_depth",
        "_regexes",
    )

    def __init__(
        self,
        catalog: Mapping[str, C],
        patterns: Iterable[tuple[str | re.Pattern[str], C]],
        *,
        limit: int = DEFAULT_LIMIT,
        max_depth: int = DEFAULT_MAX_DEPTH,
        attribute: str = "error_code",
    ) -> None:
        if not isinstance(catalog, Mapping):
            raise TypeError(f"catalog must be a mapping, not {type(catalog).__name__}")
        for key in catalog:
            if not isinstance(key, str):
                raise TypeError(f"catalog keys must be str, not {type(key).__name__}: {key!r}")
        entries: object = patterns
        if isinstance(entries, str | bytes) or not isinstance(entries, Iterable):
            raise TypeError("patterns must be a sequence of (pattern, code) pairs")
        _check_int("limit", limit, _MIN_LIMIT)
        _check_int("max_depth", max_depth, 0)
        if not isinstance(attribute, str) or not attribute:
            raise TypeError("attribute must be a non-empty str")
        entries = list(patterns)
        compiled = [_compile(entry, position) for position, entry in enumerate(entries)]
        self._catalog: dict[str, C] = dict(catalog)
        self._regexes: tuple[re.Pattern[str], ...] = tuple(regex for regex, _ in compiled)
        self._codes: tuple[C, ...] = tuple(code for _, code in compiled)
        # Each pattern's gate words (empty: no gate), see Gated.
        self._gates: tuple[tuple[str, ...], ...] = tuple(
            entry[0].words if isinstance(entry[0], Gated) else () for entry in entries
        )
        self._limit = limit
        self._max_depth = max_depth
        self._attribute = attribute

    @property
    def catalog(self) -> Mapping[str, C]:
        """A copy of the backend-code catalog."""
        return dict(self._catalog)

    @property
    def patterns(self) -> tuple[tuple[re.Pattern[str], C], ...]:
        """The compiled patterns with their codes, in declaration order."""
        return tuple(zip(self._regexes, self._codes, strict=True))

    def classify(self, exc: BaseException | None = None, message: str | None = None) -> C | None:
        """The code for ``exc`` (its whole chain) and/or ``message`` (log text), or ``None``.

        Raises:
            TypeError: ``exc`` is not an exception or ``message`` not a str.
        """
        decision = self._decide(exc, message)
        return None if decision is None else decision[0]

    def explain(
        self, exc: BaseException | None = None, message: str | None = None
    ) -> Classification[C] | None:
        """Like :meth:`classify`, with the layer that decided and what it matched.

        Raises:
            TypeError: ``exc`` is not an exception or ``message`` not a str.
        """
        decision = self._decide(exc, message)
        if decision is None:
            return None
        code, layer, matched, envelope, index = decision
        pattern = None if index is None else self._regexes[index]
        return Classification(code, layer, matched, envelope, pattern, index)

    def _decide(self, exc: BaseException | None, message: str | None) -> _Decision[C] | None:
        if exc is not None and not isinstance(exc, BaseException):
            raise TypeError(f"exc must be an exception or None, not {type(exc).__name__}")
        if message is not None and not isinstance(message, str):
            raise TypeError(f"message must be a str or None, not {type(message).__name__}")
        chain = _walk(exc, self._max_depth, DEFAULT_MAX_NODES) if exc is not None else []
        decision = self._backend_word(chain)
        if decision is not None:
            return decision
        limit = self._limit
        if chain:
            blob = _flatten(chain, limit)
            if message:
                blob = _cap(f"{blob}\n{message}", limit)
        elif message is not None:
            blob = _cap(message, limit)
        else:
            return None  # nothing to classify
        decision = self._envelope(blob, capped=len(blob) == limit and _OMITTED in blob)
        if decision is None and chain and self._catalog:
            # The backend's word in a context hidden by `raise ... from None` still counts (the
            # request did fail that way); its text does not reach the patterns.
            hidden = _suppressed(chain, self._max_depth)
            if hidden:
                decision = self._backend_word(hidden) or self._envelope(
                    _flatten(hidden, limit), capped=False
                )
        return decision if decision is not None else self._first_pattern(blob)

    def _backend_word(self, chain: Sequence[BaseException]) -> _Decision[C] | None:
        """Layer 1: the first exception of ``chain`` whose structured code the catalog knows."""
        catalog = self._catalog
        if catalog:
            for node in chain:
                code = _attribute(node, self._attribute)
                if isinstance(code, str) and code in catalog:
                    return catalog[code], "attribute", code, None, None
        return None

    def _envelope(self, blob: str, *, capped: bool) -> _Decision[C] | None:
        """Layer 2: the first envelope in ``blob`` whose code the catalog knows; in a capped
        blob also the head of a code-first envelope the cap cut short."""
        catalog = self._catalog
        if not catalog or "code" not in blob:
            return None
        for envelope in iter_envelopes(blob):
            if envelope.code is not None and envelope.code in catalog:
                return catalog[envelope.code], "envelope", envelope.code, envelope, None
        for head in _ENVELOPE_HEAD.finditer(blob) if capped else ():
            code = head.group(1)
            if code in catalog:
                return catalog[code], "envelope", code, ErrorEnvelope(code), None
        return None

    def _first_pattern(self, blob: str) -> _Decision[C] | None:
        """The first declared pattern that matches ``blob``, skipping those whose gate words
        are all absent (they cannot match)."""
        lowered: str | None = None
        for index, (regex, words) in enumerate(zip(self._regexes, self._gates, strict=True)):
            if words:
                if lowered is None:
                    lowered = _gate_text(blob)
                if not any(word in lowered for word in words):
                    continue
            match = regex.search(blob)
            if match is not None:
                return self._codes[index], "pattern", match.group(), None, index
        return None
