"""Generic failure classification: any raised exception → a stable code from a category's data.

A category (export, upload, train, inference, or a plugin's own) supplies data only: a *catalog*
(backend ``error.code`` string → code) and an ordered list of *patterns* (regex → code). The
:class:`FailureClassifier` turns an exception chain into one of those codes, in three layers:

1. **Structured attributes.** Any exception in the chain carrying a string ``error_code`` (a
   :class:`~synapse_sdk.exceptions.BackendError` built by the transport, say) that the catalog
   knows wins at once. The chain is searched in :func:`walk_chain` order.
2. **The envelope in the text.** The chain is flattened into one text blob
   (:func:`flatten_exception`); a v2 envelope found in it (:mod:`synapse_sdk.envelopes`) whose
   string ``code`` the catalog knows wins. An unknown code falls through.
3. **Patterns, in declaration order.** The first *declared* pattern that matches anywhere in the
   blob wins (not the leftmost match). No match: ``None``.

Classification is pure (no state changes, no global caches), thread-safe (a classifier is
immutable once built) and bounded: the chain walk stops at a depth and a node count, the blob is
capped keeping its head and tail, so even a 2 MB message or a cyclic chain classifies quickly.

Speed. Running every regex over the blob in turn costs ``patterns × blob``. At construction the
classifier extracts from each pattern a literal the pattern cannot match without (from the
parsed regex: literal runs, their word boundaries, alternations) and indexes the patterns by it.
At classification the lowercased blob is split once into word tokens; only patterns whose
required literal is present, plus those without one, run their regex, still in declaration
order. The answer is exactly the naive loop's.
"""

from __future__ import annotations

import importlib
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
    "flatten_exception",
    "walk_chain",
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
    name = _attribute(cls, "__qualname__")
    if not isinstance(name, str):
        name = cls.__name__
    module = _attribute(cls, "__module__")
    if isinstance(module, str) and module not in ("builtins", "__main__"):
        return f"{module}.{name}"
    return name


def _message(exc: BaseException) -> str:
    """``str(exc)``; when that raises or is not a str: ``repr``, then the args, then nothing."""
    try:
        text = str(exc)
    except Exception:
        pass
    else:
        if isinstance(text, str):
            return text
    try:
        text = repr(exc)
    except Exception:
        pass
    else:
        if isinstance(text, str):
            return f"<str() failed> {text}"
    parts: list[str] = []
    args = _attribute(exc, "args")
    for arg in args if isinstance(args, tuple) else ():
        try:
            part = repr(arg)
        except Exception:
            part = f"<unprintable {type(arg).__name__}>"
        parts.append(part if isinstance(part, str) else "<unprintable>")
    return "<str() failed> " + ", ".join(parts)


def _cap(text: str, limit: int) -> str:
    """``text`` itself, or its head and tail joined by a marker, ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    room = limit - len(_OMITTED)
    head = (room + 1) // 2
    return text[:head] + _OMITTED + text[len(text) - (room - head) :]


def _line(exc: BaseException, limit: int) -> str:
    message = _cap(_message(exc), limit)
    name = _type_name(type(exc))
    return f"{name}: {message}" if message else name


def _flatten(chain: Sequence[BaseException], limit: int) -> str:
    if len(chain) == 1:
        return _cap(_line(chain[0], limit), limit)
    return _cap("\n".join(_line(exc, limit) for exc in chain), limit)


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


# --- the literal prefilter ---------------------------------------------------------------------

_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

# Key kinds: the lowercased blob's word tokens include the key (EXACT), a token starts with it
# (PREFIX), ends with it (SUFFIX), or the blob contains it anywhere (CONTAINS).
_EXACT, _PREFIX, _SUFFIX, _CONTAINS = 0, 1, 2, 3
_KIND_COST = (1.0, 2.0, 2.5, 4.0)
# Prefix/suffix keys are compared on this many characters (one slice per token at query time).
_AFFIX = 5
_WORD_SEGMENT = re.compile(r"[a-z0-9_]+")
# Words so common in exception text that they select almost nothing.
_COMMON_WORDS = frozenset(
    {"error", "exception", "failed", "file", "line", "the", "a", "an", "in", "to", "of", "is"}
)
# Blob bytes → token bytes: ASCII letters lowercased, digits and "_" kept, everything else
# (punctuation, whitespace, every byte of a non-ASCII character) becomes a separator.
_TOKEN_TABLE = bytes(
    byte if chr(byte).isascii() and (chr(byte).isalnum() or byte == 0x5F) else 0x20
    for byte in range(256)
).lower()
# Non-ASCII letters an IGNORECASE pattern matches to ASCII ones (U+0130, U+0131, U+017F,
# U+212A): folded before lowercasing so required ASCII literals stay visible.
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})

_Key = tuple[int, bytes]


def _is_word_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def _bounds(item: tuple[Any, Any], side: str) -> bool:
    """Whether ``item`` guarantees a non-word character (or a string edge) on the ``side`` of
    it that faces a neighbouring literal run ("left" = its first character)."""
    op, av = item
    if op is _c.LITERAL:
        char = chr(av)
        return char.isascii() and not _is_word_char(char)
    if op is _c.IN:
        return bool(av) and all(_in_member_bounds(member) for member in av)
    if op is _c.AT:
        return av in (
            _c.AT_BOUNDARY,
            _c.AT_BEGINNING,
            _c.AT_BEGINNING_STRING,
            _c.AT_END,
            _c.AT_END_STRING,
            _c.AT_BEGINNING_LINE,
            _c.AT_END_LINE,
        )
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        low, _high, sub = av
        return bool(low >= 1 and len(sub) == 1 and _bounds(sub[0], side))
    if op is _c.SUBPATTERN:
        sub = av[3]
        return bool(sub) and _bounds(sub[0] if side == "left" else sub[-1], side)
    if op is _c.BRANCH:
        alternatives = av[1]
        return all(
            alt and _bounds(alt[0] if side == "left" else alt[-1], side) for alt in alternatives
        )
    return False


def _in_member_bounds(member: tuple[Any, Any]) -> bool:
    op, av = member
    if op is _c.LITERAL:
        char = chr(av)
        return char.isascii() and not _is_word_char(char)
    if op is _c.CATEGORY:
        return av in (_c.CATEGORY_SPACE, _c.CATEGORY_NOT_WORD)
    return False


def _run_requirements(run: str, left: bool, right: bool) -> list[list[_Key]]:
    """Requirements from one literal run (lowercase ASCII), ``left``/``right`` telling whether
    the pattern bounds it with non-word characters. Each is a one-key disjunction."""
    requirements: list[list[_Key]] = [[(_CONTAINS, run.encode())]]
    for segment in _WORD_SEGMENT.finditer(run):
        word = segment.group()
        bounded_left = segment.start() > 0 or left
        bounded_right = segment.end() < len(run) or right
        if bounded_left and bounded_right:
            requirements.append([(_EXACT, word.encode())])
        elif bounded_left and len(word) >= _AFFIX:
            requirements.append([(_PREFIX, word[:_AFFIX].encode())])
        elif bounded_right and len(word) >= _AFFIX:
            requirements.append([(_SUFFIX, word[-_AFFIX:].encode())])
    return requirements


def _requirements(items: Sequence[tuple[Any, Any]]) -> list[list[_Key]]:
    """Disjunctions of keys, every one of which must hold for ``items`` to match."""
    requirements: list[list[_Key]] = []
    index = 0
    count = len(items)
    while index < count:
        op, av = items[index]
        if op is _c.LITERAL and chr(av).isascii():
            end = index
            while end < count and items[end][0] is _c.LITERAL and chr(items[end][1]).isascii():
                end += 1
            run = "".join(chr(items[i][1]) for i in range(index, end)).lower()
            left = index > 0 and _bounds(items[index - 1], "right")
            right = end < count and _bounds(items[end], "left")
            requirements.extend(_run_requirements(run, left, right))
            index = end
            continue
        if op is _c.SUBPATTERN:
            requirements.extend(_requirements(av[3]))
        elif op is _c.ATOMIC_GROUP:
            requirements.extend(_requirements(av))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            if av[0] >= 1:
                requirements.extend(_requirements(av[2]))
        elif op is _c.BRANCH:
            union: list[_Key] = []
            for alternative in av[1]:
                best = _best(_requirements(alternative))
                if best is None:
                    break
                union.extend(best)
            else:
                requirements.append(union)
        index += 1
    return requirements


def _score(disjunction: Sequence[_Key]) -> float:
    """Lower is better: cheap kinds, long (selective) keys, few alternatives."""
    total = 0.0
    for kind, key in disjunction:
        total += _KIND_COST[kind] + 3.0 / len(key)
        if key.decode() in _COMMON_WORDS:
            total += 4.0
    return total


def _best(requirements: Sequence[list[_Key]]) -> list[_Key] | None:
    usable = [r for r in requirements if r and all(key for _kind, key in r)]
    if not usable:
        return None
    return min(usable, key=_score)


def _required_keys(pattern: re.Pattern[str]) -> list[_Key] | None:
    """The best disjunction of keys ``pattern`` needs, or None (the pattern always runs)."""
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # pragma: no cover - the pattern compiled, so it parses
        return None
    return _best(_requirements(list(parsed)))


class _Prefilter:
    """Index of patterns by required literal; gives the candidate patterns for a blob."""

    __slots__ = ("always", "contains", "exact", "exact_keys", "prefix", "suffix")

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        exact: dict[bytes, list[int]] = {}
        prefix: dict[bytes, list[int]] = {}
        suffix: dict[bytes, list[int]] = {}
        contains: dict[bytes, list[int]] = {}
        always: list[int] = []
        tables = (exact, prefix, suffix, contains)
        for index, pattern in enumerate(patterns):
            keys = _required_keys(pattern)
            if keys is None:
                always.append(index)
                continue
            for kind, key in set(keys):
                tables[kind].setdefault(key, []).append(index)
        self.exact = exact
        self.exact_keys = frozenset(exact)
        self.prefix = prefix
        self.suffix = suffix
        self.contains = tuple(contains.items())
        self.always = tuple(always)

    def candidates(self, blob: str) -> list[int]:
        """Indices of the patterns that may match ``blob``, ascending (declaration order)."""
        if not blob.isascii():
            blob = blob.translate(_FOLD)
        data = blob.lower().encode("utf-8", "surrogatepass")
        tokens = set(data.translate(_TOKEN_TABLE).split())
        found: set[int] = set(self.always)
        exact = self.exact
        for token in tokens & self.exact_keys:
            found.update(exact[token])
        if self.prefix:
            prefix = self.prefix
            for key in {token[:_AFFIX] for token in tokens} & prefix.keys():
                found.update(prefix[key])
        if self.suffix:
            suffix = self.suffix
            for key in {token[-_AFFIX:] for token in tokens} & suffix.keys():
                found.update(suffix[key])
        for key, indices in self.contains:
            if key in data:
                found.update(indices)
        return sorted(found)


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
    sequence of ``(regex, code)`` pairs (a str or a compiled ``re.Pattern[str]``), most specific
    first. Both are copied: changing them afterwards does not change the classifier.

    ``limit`` caps the text blob (head and tail kept); ``max_depth`` caps the chain walk;
    ``attribute`` names the structured attribute consulted first (``error_code``).

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
        "_limit",
        "_max_depth",
        "_prefilter",
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
        compiled = [_compile(entry, position) for position, entry in enumerate(patterns)]
        self._catalog: dict[str, C] = dict(catalog)
        self._regexes: tuple[re.Pattern[str], ...] = tuple(regex for regex, _ in compiled)
        self._codes: tuple[C, ...] = tuple(code for _, code in compiled)
        self._prefilter = _Prefilter(self._regexes)
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
        catalog = self._catalog
        chain = walk_chain(exc, max_depth=self._max_depth) if exc is not None else []
        if catalog:
            for node in chain:
                code = _attribute(node, self._attribute)
                if isinstance(code, str) and code in catalog:
                    return catalog[code], "attribute", code, None, None
        limit = self._limit
        if chain:
            blob = _flatten(chain, limit)
            if message:
                blob = _cap(f"{blob}\n{message}", limit)
        elif message:
            blob = _cap(message, limit)
        else:
            return None
        if catalog and "code" in blob:
            for envelope in iter_envelopes(blob):
                if envelope.code is not None and envelope.code in catalog:
                    return catalog[envelope.code], "envelope", envelope.code, envelope, None
        regexes = self._regexes
        for index in self._prefilter.candidates(blob):
            match = regexes[index].search(blob)
            if match is not None:
                return self._codes[index], "pattern", match.group(), None, index
        return None
