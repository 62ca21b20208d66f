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
classifier extracts from each pattern literals it cannot match without (from the parsed regex:
literal runs, the separators around them, alternations) and indexes the patterns by them. With
a few dozen patterns, each one's most selective literal is looked for directly (a C substring
search each); with more, the lowercased blob is split once into word tokens and the patterns are
filtered with set intersections over int bitmasks. Only the survivors run their regex, in
declaration order, so the answer is exactly the naive loop's (a property test compares them).
"""

from __future__ import annotations

import importlib
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import itemgetter, or_
from types import MappingProxyType
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


# --- the literal prefilter ---------------------------------------------------------------------
#
# The prefilter never changes an answer, only how many regexes run: a pattern is skipped only
# when the blob lacks a literal the pattern cannot match without. Literals are taken from the
# parsed regex (``re._parser``, the parser ``re.compile`` itself uses: literal runs, the
# alternatives of a branch, the bodies of groups and of repeats done at least once) and compared
# with the blob lowercased (so IGNORECASE needs no special case: the four non-ASCII letters it
# equates with ASCII ones are folded first), split into tokens of ASCII letters and digits;
# everything else (punctuation, "_", whitespace, non-ASCII) separates tokens.
#
# A literal word is known to be a whole token when the pattern puts a separator (a literal
# punctuation or space character, a class of such, \s, \W, \b, ^, $) on both sides of it
# (EXACT), the start of a token when only before it (PREFIX, compared on its first 5
# characters). Any literal run is also a plain substring of the lowered blob (CONTAINS); that
# costs a scan per literal, so it is tested last and only for patterns still in the running.
#
# Each pattern is indexed under up to five such requirements ("slots"). With few patterns, each
# pattern's most selective literal (its "gate") is searched for directly; with many, the blob is
# tokenized once and every slot is filled with set intersections and ORs of int bitmasks (bit i
# = pattern i), token slots first. The survivors come out in declaration order, and only their
# regexes run.

_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

_EXACT, _PREFIX, _CONTAINS = 0, 1, 2
_KIND_COST = (1.0, 2.0, 6.0)
# Prefix keys are compared on this many characters (one slice per token at query time).
_AFFIX = 5
# Requirements indexed per pattern, and checked per candidate.
_SLOTS = 3
_CHECKS = 2
# Up to this many distinct gate literals, testing each one against the blob (a fast C substring
# search) is cheaper than tokenizing the blob; above it, the token index is.
_MAX_GATES = 64
_SEGMENT = re.compile(r"[a-z0-9]+")
# Words so common in exception text that they select almost nothing.
_COMMON_WORDS = frozenset(
    {"error", "exception", "failed", "file", "line", "the", "a", "an", "in", "to", "of", "is"}
)
# Blob bytes → token bytes: ASCII letters and digits kept, every other byte (punctuation, "_",
# whitespace, each byte of a non-ASCII character) becomes a separator.
_TOKEN_TABLE = bytes(
    byte if chr(byte).isascii() and chr(byte).isalnum() else 0x20 for byte in range(256)
)
# Non-ASCII letters an IGNORECASE pattern matches to ASCII ones (U+0130, U+0131, U+017F,
# U+212A): folded before lowercasing so the required ASCII literals stay visible.
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})
_FOLDED = ("\u0130", "\u0131", "\u017f", "\u212a")
_PREFIX_OF = itemgetter(slice(None, _AFFIX))
_NO_TOKENS: frozenset[bytes] = frozenset()

# (kind, lowercase text); a requirement is a disjunction: a tuple of keys, one must be present.
_Key = tuple[int, str]
_Requirement = tuple[_Key, ...]


def _separator(char: str) -> bool:
    """Whether a blob character matched as ``char`` is always a token separator."""
    return char.isascii() and not char.isalnum()


def _bounds(item: tuple[Any, Any], side: str) -> bool:
    """Whether ``item`` guarantees a separator (or a string edge) on its ``side`` ("left": its
    first character) next to a neighbouring literal run."""
    op, av = item
    if op is _c.LITERAL:
        return _separator(chr(av))
    if op is _c.IN:
        return bool(av) and all(_in_member_bounds(member) for member in av)
    if op is _c.AT:
        return av in (
            _c.AT_BOUNDARY,
            _c.AT_BEGINNING,
            _c.AT_BEGINNING_LINE,
            _c.AT_BEGINNING_STRING,
            _c.AT_END,
            _c.AT_END_LINE,
            _c.AT_END_STRING,
        )
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        low, _high, sub = av
        return bool(low >= 1 and len(sub) == 1 and _bounds(sub[0], side))
    if op is _c.SUBPATTERN:
        sub = av[3]
        return bool(sub) and _bounds(sub[0] if side == "left" else sub[-1], side)
    if op is _c.BRANCH:
        return all(alt and _bounds(alt[0] if side == "left" else alt[-1], side) for alt in av[1])
    return False


def _in_member_bounds(member: tuple[Any, Any]) -> bool:
    op, av = member
    if op is _c.LITERAL:
        return _separator(chr(av))
    if op is _c.CATEGORY:
        return av in (_c.CATEGORY_SPACE, _c.CATEGORY_NOT_WORD)
    return False


def _run_requirements(run: str, left: bool, right: bool) -> list[_Requirement]:
    """Requirements from one literal run (lowercase ASCII); ``left``/``right``: whether the
    pattern puts a separator right before/after it."""
    requirements: list[_Requirement] = []
    if _SEGMENT.search(run):
        requirements.append(((_CONTAINS, run),))  # (a run of punctuation selects nothing)
    for segment in _SEGMENT.finditer(run):
        word = segment.group()
        bounded_left = segment.start() > 0 or left
        bounded_right = segment.end() < len(run) or right
        if bounded_left and bounded_right:
            requirements.append(((_EXACT, word),))
        elif bounded_left and len(word) >= _AFFIX:
            requirements.append(((_PREFIX, word[:_AFFIX]),))
    return requirements


def _requirements(
    items: Sequence[tuple[Any, Any]], left: bool = False, right: bool = False
) -> list[_Requirement]:
    """Requirements every match of the parsed sequence ``items`` satisfies; ``left``/``right``:
    whether the enclosing pattern puts a separator right before/after the sequence."""
    requirements: list[_Requirement] = []
    index = 0
    count = len(items)
    while index < count:
        op, av = items[index]
        before = _bounds(items[index - 1], "right") if index > 0 else left
        if op is _c.LITERAL and chr(av).isascii():
            end = index
            while end < count and items[end][0] is _c.LITERAL and chr(items[end][1]).isascii():
                end += 1
            run = "".join(chr(items[i][1]) for i in range(index, end)).lower()
            after = _bounds(items[end], "left") if end < count else right
            requirements.extend(_run_requirements(run, before, after))
            if end < count and items[end][0] is _c.BRANCH:
                # The parser factors a common prefix out of alternatives ("c(?:ancelled|losed)"
                # for "cancelled|closed"): put it back into each, so their words are whole.
                after_branch = _bounds(items[end + 1], "left") if end + 1 < count else right
                alternatives = [[*items[index:end], *alt] for alt in items[end][1][1]]
                requirements.extend(_branch_requirements(alternatives, before, after_branch))
                index = end + 1
                continue
            index = end
            continue
        after = _bounds(items[index + 1], "left") if index + 1 < count else right
        if op is _c.SUBPATTERN:
            requirements.extend(_requirements(av[3], before, after))
        elif op is _c.ATOMIC_GROUP:
            requirements.extend(_requirements(av, before, after))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            if av[0] >= 1:
                # Repetitions neighbour each other, so only a single one keeps the context.
                single = av[1] == 1
                requirements.extend(_requirements(av[2], before and single, after and single))
        elif op is _c.BRANCH:
            requirements.extend(_branch_requirements(av[1], before, after))
        index += 1
    return requirements


def _branch_requirements(
    alternatives: Sequence[Any], left: bool, right: bool
) -> list[_Requirement]:
    """``a|b``: a disjunction of one requirement of each alternative; the alternatives' best,
    second best and third best give up to three."""
    ranked: list[list[_Requirement]] = []
    for alternative in alternatives:
        own = sorted(set(_requirements(alternative, left, right)), key=lambda r: _score(r, {}))
        if not own:
            return []  # an alternative needing no literal: the branch requires nothing
        ranked.append(own)
    combined: dict[_Requirement, None] = {}
    for rank in range(_SLOTS):
        keys = {key for own in ranked for key in own[min(rank, len(own) - 1)]}
        combined[tuple(sorted(keys))] = None
    return list(combined)


def _score(requirement: _Requirement, frequency: Mapping[_Key, int]) -> float:
    """Lower is better: cheap kinds, long (selective) keys, keys few other patterns share."""
    total = 0.0
    for key in requirement:
        kind, text = key
        total += _KIND_COST[kind] + 3.0 / len(text) + 0.25 * math.log2(1 + frequency.get(key, 0))
        if text in _COMMON_WORDS:
            total += 4.0
    return total


def _pattern_requirements(pattern: re.Pattern[str]) -> list[_Requirement]:
    """The distinct requirements of ``pattern`` (empty: no literal could be extracted)."""
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # pragma: no cover - the pattern compiled, so it parses
        return []
    found: dict[_Requirement, None] = {}
    for requirement in _requirements(list(parsed)):
        if requirement and all(text for _kind, text in requirement):
            found[tuple(sorted(set(requirement)))] = None
    return list(found)


def _implied(requirement: _Requirement, by: _Requirement) -> bool:
    """Whether ``by`` holding makes ``requirement`` hold (every literal of ``requirement`` lies
    inside one of ``by``'s), so checking it as well would select nothing more."""
    return all(any(text in other for _k, other in by) for _kind, text in requirement)


def _plan(
    requirements: Sequence[list[_Requirement]],
) -> list[tuple[list[_Requirement], list[_Requirement]]]:
    """Per pattern: the requirements to index and the ones to check per candidate.

    Indexed: up to :data:`_SLOTS` requirements cheap to test in bulk (:func:`_cheap`), best
    first; a pattern with none is indexed by its best requirement of any kind. Checked: up to
    :data:`_CHECKS` more. A requirement that one already chosen implies is left out.
    """
    frequency: dict[_Key, int] = {}
    for own in requirements:
        for key in {key for requirement in own for key in requirement}:
            frequency[key] = frequency.get(key, 0) + 1
    plans: list[tuple[list[_Requirement], list[_Requirement]]] = []
    for own in requirements:
        ranked = sorted(own, key=lambda r: (not _cheap(r), _score(r, frequency)))
        indexed: list[_Requirement] = []
        for requirement in ranked:
            if len(indexed) == _SLOTS or not _cheap(requirement):
                break
            if not _implied_by_any(requirement, indexed):
                indexed.append(requirement)
        if not indexed and ranked:
            indexed.append(ranked[0])
        checks: list[_Requirement] = []
        for requirement in ranked:
            if len(checks) < _CHECKS and not _implied_by_any(requirement, (*indexed, *checks)):
                checks.append(requirement)
        plans.append((indexed, checks))
    return plans


def _cheap(requirement: _Requirement) -> bool:
    """Whether testing ``requirement`` for every pattern at once is cheap: token keys, and
    one-word substrings long enough to be searched among the few long tokens only."""
    return all(
        kind != _CONTAINS or _long_threshold(text) >= _CHEAP_WORD for kind, text in requirement
    )


def _implied_by_any(requirement: _Requirement, chosen: Sequence[_Requirement]) -> bool:
    return any(_implied(requirement, other) for other in chosen)


# One-word substring literals are searched only among the tokens long enough to hold them (a
# one-word literal lies inside one token): a literal of at least each of these lengths among
# the tokens at least that long.
_LONG_WORDS = (8, 12, 17, 25, 40)
_MIN_BUCKET = 8
# One-word substrings at least this long are cheap enough to test for every pattern at once.
_CHEAP_WORD = 17


def _long_threshold(text: str) -> int:
    """The bucket a one-word literal is searched in (0: search the whole lowered blob)."""
    if not (text.isascii() and text.isalnum()):
        return 0
    return max((length for length in _LONG_WORDS if len(text) >= length), default=0)


def _gate(requirements: Sequence[_Requirement]) -> tuple[str, ...] | None:
    """A cheap test for small jobs: literals one of which the lowered blob must contain (the
    most selective requirement: longest literal, fewest alternatives), or None."""
    if not requirements:
        return None
    best = max(requirements, key=lambda r: (min(len(text) for _k, text in r), -len(r)))
    return tuple({text: None for _kind, text in best})


def _lowered(blob: str) -> str:
    """The blob as the prefilter compares it: IGNORECASE's special letters folded, lowercased."""
    if blob.isascii() or not any(char in blob for char in _FOLDED):
        return blob.lower()  # translate() over non-ASCII text is slow: only when it matters
    return blob.translate(_FOLD).lower()


# A blob's features, indexed by key kind: its tokens, the 5-character prefixes of its longer
# tokens (a 5-character token is its own prefix), the lowered text (for substring literals).
_Features = tuple[frozenset[bytes], frozenset[bytes], str]
# Requirements checked per candidate: (kind, key) alternatives, token keys as bytes.
_Checks = tuple[tuple[tuple[int, Any], ...], ...]


_NO_FEATURES: _Features = (_NO_TOKENS, _NO_TOKENS, "")
_NO_CHECKS: Mapping[int, _Checks] = MappingProxyType({})


def _verified(checks: _Checks, features: _Features) -> bool:
    """Whether the blob meets every requirement in ``checks`` (one alternative of each)."""
    for requirement in checks:
        for kind, key in requirement:
            if key in features[kind] or (kind == _PREFIX and key in features[_EXACT]):
                break
        else:
            return False
    return True


class _Prefilter:
    """Patterns indexed by required literals; gives the mask of those that may match a blob.

    Pattern ``i``'s indexed requirement number ``j`` is bit ``j * n + i`` of the masks stored
    per key, so one OR over the present keys fills every slot at once; a pattern is a candidate
    when its bit is set in every slot (``free`` sets the bits of patterns with fewer
    requirements). Candidates then pass their ``checks`` before their regex runs.
    """

    __slots__ = (
        "checks",
        "count",
        "everything",
        "free",
        "gate_free",
        "gate_lengths",
        "gate_masks",
        "gate_texts",
        "long_groups",
        "prefixes",
        "substrings",
        "tables",
    )

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        requirements = [_pattern_requirements(pattern) for pattern in patterns]
        gate_masks: dict[str, int] = {}
        gate_free = 0
        for index, own in enumerate(requirements):
            gate = _gate(own)
            if gate is None:
                gate_free |= 1 << index
            for text in gate or ():
                gate_masks[text] = gate_masks.get(text, 0) | 1 << index
        self.gate_masks = gate_masks
        self.gate_texts = tuple(sorted(gate_masks, key=len))  # shortest first, see gated()
        self.gate_lengths = tuple(len(text) for text in self.gate_texts)
        self.gate_free = gate_free

        count = len(requirements)
        tables: tuple[dict[bytes, int], dict[bytes, int]] = ({}, {})
        substrings: dict[str, int] = {}
        free = 0
        checks: dict[int, _Checks] = {}
        for index, (indexed, verify) in enumerate(_plan(requirements)):
            for slot in range(_SLOTS):
                bit = 1 << (slot * count + index)
                if slot >= len(indexed):
                    free |= bit
                    continue
                for kind, text in indexed[slot]:
                    if kind == _CONTAINS:
                        substrings[text] = substrings.get(text, 0) | bit
                    else:
                        key = text.encode("ascii")
                        tables[kind][key] = tables[kind].get(key, 0) | bit
            if verify:
                checks[index] = tuple(
                    tuple((kind, text if kind == _CONTAINS else text.encode("ascii"))
                          for kind, text in requirement)
                    for requirement in verify
                )  # fmt: skip
        self.count = count
        self.everything = (1 << count) - 1
        self.free = free
        self.tables = tuple(
            (kind, table, frozenset(table)) for kind, table in enumerate(tables) if table
        )
        groups: dict[int, list[tuple[str, int]]] = {}
        for text, bits in substrings.items():
            groups.setdefault(_long_threshold(text), []).append((text, bits))
        # A bucket with few literals costs more to set up (a pass over the tokens) than it
        # saves: its literals move to the next shorter bucket, where they are found as well.
        lengths = sorted(groups, reverse=True)
        for longer_length, shorter_length in zip(lengths, [*lengths[1:], 0], strict=False):
            if longer_length and len(groups[longer_length]) < _MIN_BUCKET:
                groups.setdefault(shorter_length, []).extend(groups.pop(longer_length))
        self.substrings = tuple(groups.pop(0, ()))
        self.long_groups = tuple((length, tuple(groups[length])) for length in sorted(groups))
        self.checks = checks
        self.prefixes = any(kind == _PREFIX for kind, _t, _k in self.tables) or any(
            kind == _PREFIX for verify in checks.values() for r in verify for kind, _k in r
        )

    def gated(self, blob: str) -> int:
        """The candidates by gate literals alone (for small pattern sets)."""
        low = _lowered(blob)
        texts = self.gate_texts
        if texts and len(low) < self.gate_lengths[-1]:
            texts = texts[: bisect_right(self.gate_lengths, len(low))]  # longer ones cannot fit
        return reduce(
            or_, map(self.gate_masks.__getitem__, filter(low.__contains__, texts)), self.gate_free
        )

    def candidates(self, blob: str) -> tuple[int, _Features]:
        """The mask of patterns that may match ``blob`` (bit i = pattern i), and the blob's
        features for the per-candidate checks (:func:`_verified`)."""
        low = _lowered(blob)
        tokens = frozenset(low.encode("utf-8", "surrogatepass").translate(_TOKEN_TABLE).split())
        # Prefix keys are exactly _AFFIX long: a token of that length is its own prefix (and is
        # in ``tokens``), so only the longer tokens are sliced.
        longer = [token for token in tokens if len(token) > _AFFIX]
        prefixes = frozenset(map(_PREFIX_OF, longer)) if self.prefixes else _NO_TOKENS
        features: _Features = (tokens, prefixes, low)
        admitted = self.free
        for kind, table, keys in self.tables:
            present = keys.intersection(features[kind])
            if kind == _PREFIX:
                present |= keys.intersection(tokens)
            if present:
                admitted = reduce(or_, map(table.__getitem__, present), admitted)
        for text, bits in self.substrings:
            if text in low:
                admitted |= bits
        pool = longer
        for length, group in self.long_groups:
            pool = [token for token in pool if len(token) >= length]
            haystack = b" ".join(pool).decode("ascii")
            for text, bits in group:
                if text in haystack:
                    admitted |= bits
        count = self.count
        mask = admitted & self.everything
        for slot in range(1, _SLOTS):
            mask &= admitted >> (slot * count)
        return mask, features


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
        chain = _walk(exc, self._max_depth, DEFAULT_MAX_NODES) if exc is not None else []
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
        elif message is not None:
            blob = _cap(message, limit)
        else:
            return None  # nothing to classify
        if catalog and "code" in blob:
            for envelope in iter_envelopes(blob):
                if envelope.code is not None and envelope.code in catalog:
                    return catalog[envelope.code], "envelope", envelope.code, envelope, None
        regexes = self._regexes
        prefilter = self._prefilter
        if len(prefilter.gate_texts) <= _MAX_GATES:
            # A small set: one substring test per gate literal beats tokenizing the blob.
            mask = prefilter.gated(blob)
            checks: Mapping[int, _Checks] = _NO_CHECKS
            features = _NO_FEATURES
        else:
            mask, features = prefilter.candidates(blob)
            checks = prefilter.checks
        while mask:  # lowest bit first: declaration order
            bit = mask & -mask
            mask ^= bit
            index = bit.bit_length() - 1
            verify = checks.get(index)
            if verify is not None and not _verified(verify, features):
                continue
            match = regexes[index].search(blob)
            if match is not None:
                return self._codes[index], "pattern", match.group(), None, index
        return None
