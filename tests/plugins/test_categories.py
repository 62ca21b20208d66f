"""What holds for every action category (export, upload, train, inference).

Every code has en and ko templates with identical placeholders; every catalog entry wins over the
patterns; unknown backend codes fall through; the category data is validated; every regex the
classifier applies is linear by construction (proved on its parse tree); classification never
raises.
"""

from __future__ import annotations

import importlib
import json
import re
import string
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk import envelopes, failures, retry_after
from synapse_sdk.exceptions import BackendError
from synapse_sdk.plugins import failure_patterns, failure_semantics
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.failure_semantics import FailureCategory, RetrySemantics
from synapse_sdk.plugins.log_messages import (
    LogLevel,
    LogMessageCode,
    registered_codes,
    resolve_log_message,
    templates_for,
)

CATEGORIES = [get_category(name) for name in CATEGORY_NAMES]
IDS = list(CATEGORY_NAMES)
_HANGUL = re.compile("[가-힣]")


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


# --- messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_every_code_has_en_and_ko_with_identical_placeholders(
    category: FailureCategory[Any],
) -> None:
    registered = set(registered_codes(category.codes))
    assert registered == set(category.codes), "every member is registered"
    for code in registered:
        templates = templates_for(code)
        assert {"en", "ko"} <= set(templates), code
        en, ko = templates["en"], templates["ko"]
        assert en.strip() and ko.strip(), code
        assert _fields(en) == _fields(ko), code
        assert _HANGUL.search(ko), f"{code.name}: the ko template is not Korean"
        for name in _fields(en):
            assert name.isidentifier(), f"{code.name}: placeholder {name!r}"
            assert name != "language", f"{code.name}: 'language' is resolve_log_message's own"


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_rendering_every_code_in_both_languages(category: FailureCategory[Any]) -> None:
    for code in category.codes:
        params = {name: 7 for name in _fields(templates_for(code)["en"])}
        for language in ("en", "ko", "ko-KR", "ja"):
            text, level = resolve_log_message(code, language, **params)
            assert "{" not in text and level is code.level


def test_code_values_are_unique_across_categories() -> None:
    values = [code.value for category in CATEGORIES for code in category.codes]
    assert len(values) == len(set(values))


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_failure_codes_and_retry_semantics(category: FailureCategory[Any]) -> None:
    prefix = category.fallback.value
    for code in category.codes:
        if code in category.retry_semantics:
            assert code.level in (LogLevel.WARNING, LogLevel.ERROR, LogLevel.CRITICAL), code
        else:
            assert not code.value.startswith(prefix + "_"), f"{code.name} has no semantics"
    partial = [code for code in category.catalog.values() if code.name.endswith("BATCH_PARTIAL")]
    for code in partial:
        assert code.level is LogLevel.WARNING
        assert category.retry_semantics[code] is RetrySemantics.RETRY_FAILED_ITEMS
    assert category.failure_codes()[-1] is category.fallback


# --- the two layers ---------------------------------------------------------------------------


def _catalog_cases() -> list[tuple[FailureCategory[Any], str]]:
    return [(category, key) for category in CATEGORIES for key in category.catalog]


@pytest.mark.parametrize(
    ("category", "backend_code"),
    _catalog_cases(),
    ids=[f"{c.name}-{k}" for c, k in _catalog_cases()],
)
def test_every_catalog_code_wins_over_the_patterns(
    category: FailureCategory[Any], backend_code: str
) -> None:
    expected = category.catalog[backend_code]
    envelope = json.dumps({"error": {"code": backend_code, "detail": "..."}})
    assert category.classify(BackendError(f"request failed: {envelope}")) is expected
    assert category.classify(BackendError("request failed", error_code=backend_code)) is expected
    # v2 over v1: texts every category's patterns would otherwise claim.
    assert category.classify(KeyError(envelope)) is expected
    noisy = f"[Errno 111] Connection refused; [Errno 2] No such file or directory {envelope}"
    assert category.classify(message=noisy) is expected


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_unknown_backend_code_falls_through_to_the_patterns(category: FailureCategory[Any]) -> None:
    envelope = json.dumps({"error": {"code": "code_from_the_future"}})
    assert category.classify(BackendError(envelope)) is None
    via_pattern = category.classify(message="[Errno 111] Connection refused")
    assert via_pattern is not None
    assert category.classify(message=f"[Errno 111] Connection refused {envelope}") is via_pattern


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_without_an_envelope_only_the_patterns_answer(
    category: FailureCategory[Any], pattern_index: Callable[..., int | None]
) -> None:
    for key in category.catalog:
        text = f"request failed with {key} (code={key})"
        index = pattern_index(category.patterns, text)
        v1_only = None if index is None else category.patterns[index][1]
        assert category.classify(message=text) is v1_only, key


# --- the data is validated ----------------------------------------------------------------------


class _Codes(LogMessageCode):
    X_FAILED = ("X_FAILED", LogLevel.ERROR)
    X_DONE = ("X_DONE", LogLevel.SUCCESS)


class _Other(LogMessageCode):
    Y_FAILED = ("Y_FAILED", LogLevel.ERROR)


_OK: dict[str, Any] = {
    "name": "x",
    "codes": _Codes,
    "catalog": {"bad": _Codes.X_FAILED},
    "patterns": [(r"\bboom\b", _Codes.X_FAILED)],
    "retry_semantics": {_Codes.X_FAILED: RetrySemantics.NO_RETRY},
    "fallback": _Codes.X_FAILED,
}


def test_a_valid_category_classifies() -> None:
    category = FailureCategory(**_OK)
    assert category.classify(message="boom") is _Codes.X_FAILED
    assert category.classify(BackendError("", error_code="bad")) is _Codes.X_FAILED
    assert category.failure_codes() == (_Codes.X_FAILED,)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"catalog": {3: _Codes.X_FAILED}}, TypeError, "not a string"),
        ({"catalog": {"bad": _Other.Y_FAILED}}, TypeError, "not a _Codes member"),
        ({"patterns": [("(unclosed", _Codes.X_FAILED)]}, ValueError, "does not compile"),
        ({"patterns": [("ok", "X_FAILED")]}, TypeError, "not a _Codes member"),
        ({"retry_semantics": {}}, ValueError, "without retry semantics"),
        ({"retry_semantics": {_Codes.X_FAILED: "no_retry"}}, TypeError, "not RetrySemantics"),
        ({"fallback": _Other.Y_FAILED}, TypeError, "not a _Codes member"),
    ],
)
def test_bad_category_data_fails_at_import_time(
    change: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        FailureCategory(**{**_OK, **change})


def test_get_category() -> None:
    assert CATEGORY_NAMES == ("export", "upload", "train", "inference")
    assert get_category("export").name == "export"
    with pytest.raises(ValueError, match="unknown action category 'nope'"):
        get_category("nope")
    with pytest.raises(ValueError, match="unknown action category"):
        get_category(["export"])  # type: ignore[arg-type]


# --- no catastrophic backtracking ---------------------------------------------------------------
#
# A proof from the parse tree, not a stopwatch (the figures are benchmarks/redos_audit.py's).
# Python's re is a backtracking matcher: a search over n characters makes an attempt at each of
# the n + 1 start positions, and one attempt walks a tree of choices (which alternative of a
# branch, how many times a quantifier repeats) depth first until a leaf matches. Every regex
# classification applies to text is parsed with re._parser (the parser re.compile itself uses);
# the shipped ones (the fragments, the categories' patterns, _STEP_IN_TEXT and the envelope
# parser's bounded regex) must have:
#
# (a) a bounded width: getwidth()[1] <= _MAX_WIDTH characters (lookaround bodies too), so an
#     attempt reads at most _MAX_WIDTH + 1 characters (the 1: the character \b looks back at);
# (b) no quantifier inside a quantifier, `?` and {m,n} included (star height <= 1);
# (c) no unbounded quantifier (*, +, {m,}) at all;
# (d) at most _MAX_PATHS leaves in that tree, bounded on the parse (a sequence multiplies, a
#     branch adds, X{m,n} gives sum(P(X)**k for k in m..n)), and no backreference.
#
# Why that bounds the work: each leaf is reached by a path of at most W + N steps (W the width,
# N the parse nodes), so an attempt costs at most about P * (W + N) steps, a constant of the
# pattern whatever the text, and a search at most (n + 1) times that: linear in the text. The
# classifier hands its regexes a blob of at most DEFAULT_LIMIT characters (the last test below;
# for the engine, test_the_blob_handed_to_the_regexes_is_capped in tests/test_failures.py), so
# one classification costs at most patterns * (DEFAULT_LIMIT + 1) * that constant, for a message
# of any length. (a) alone bounds an attempt, but not usefully: (?:a|a){1,40}b is 41 characters
# wide with 2**40 paths; (b) makes P a product of small per-quantifier factors and (d) caps it.
# Today: width <= 120 and P <= 732 for the fragments and category patterns; _STEP_IN_TEXT has
# P = 211 200 (optional quotes and separators around a 1-64 character name; extract_failed_step
# applies it to the first 64 KiB of each message, still linear).
#
# Rule U, for a regex that needs an unbounded quantifier (the envelope parser's do: a JSON string
# has any length; it runs on the same capped blob, within its own MAX_* budgets). (U1) Every
# choice is decided by the next character: a quantifier's body cannot match empty and cannot
# start with a character that may follow it (so "go on" and "stop" never both apply), and the
# alternatives of a branch start with pairwise disjoint characters. Backtracking then fails at
# once at every choice point: an attempt costs O(characters it scans). (U2) Attempts do not
# rescan one another's runs: the regex is anchored (match/fullmatch: one attempt per call), or no
# unbounded quantifier consumes a character a match can start with (no attempt starts inside
# another's run), or nothing after its first character can fail (an attempt that starts
# succeeds, and finditer resumes after it); no unbounded quantifier in a lookaround. Characters
# are compared when one side is a finite set; otherwise the check fails: it is conservative.

_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

_MAX_WIDTH = 256
_MAX_PATHS = 1_000_000
_QUANTIFIERS = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)
_ONE_CHAR = (_c.LITERAL, _c.NOT_LITERAL, _c.IN, _c.ANY)
_ANYTHING = (_c.IN, [(_c.NEGATE, None)])  # a character class holding every character
_CATEGORIES = {
    _c.CATEGORY_DIGIT: r"\d",
    _c.CATEGORY_NOT_DIGIT: r"\D",
    _c.CATEGORY_SPACE: r"\s",
    _c.CATEGORY_NOT_SPACE: r"\S",
    _c.CATEGORY_WORD: r"\w",
    _c.CATEGORY_NOT_WORD: r"\W",
}

# Module-level regexes of the classify path that need an unbounded quantifier, and how they are
# applied: "scan" (finditer over the text: rule U2 is checked) or "anchored" (one attempt a call).
_UNBOUNDED_BY_DESIGN = {
    "envelopes._OPEN": "scan",  # finditer: each attempt starts at a "{", which \s and \\ skip
    "envelopes._LITERAL_TOKEN": "scan",  # finditer: an open string runs to the end of its line
    "envelopes._DQ_BODY": "anchored",  # .match, once per escaped candidate (MAX_CANDIDATES)
    "envelopes._SQ_BODY": "anchored",
    "retry_after._SECONDS": "anchored",  # .fullmatch on a value of at most 64 characters
}
# Module-level regexes of those modules that never see the text being classified.
_NOT_ON_THE_TEXT: dict[str, str] = {}


def _module_regexes() -> dict[str, re.Pattern[str]]:
    """The compiled regexes of the modules classification runs, by ``module.NAME``."""
    found = {}
    for module in (failures, envelopes, failure_semantics, retry_after):
        short = module.__name__.rsplit(".", 1)[-1]
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found[f"{short}.{name}"] = value
    return found


def _shipped_regexes() -> dict[str, str | re.Pattern[str]]:
    """Every regex held to rules (a)-(d), once, by where it is first seen: the shared fragments,
    the categories' own patterns, and the other module-level regexes of the classify path."""
    out: dict[str, str | re.Pattern[str]] = {}
    seen: set[str] = set()

    def add(label: str, regex: str | re.Pattern[str]) -> None:
        source = regex if isinstance(regex, str) else regex.pattern
        if source not in seen:
            seen.add(source)
            out[label] = regex

    for name in failure_patterns.__all__:
        value = getattr(failure_patterns, name)
        if isinstance(value, str):  # the fragments (not the network block or its mapper)
            add(name, value)
    for category in CATEGORIES:
        for index, (pattern, _) in enumerate(category.patterns):
            add(f"{category.name}[{index}]", pattern)
    for name, regex in _module_regexes().items():
        if name not in _UNBOUNDED_BY_DESIGN and name not in _NOT_ON_THE_TEXT:
            add(name, regex)
    return out


def _parse(regex: str | re.Pattern[str]) -> tuple[Any, int]:
    if isinstance(regex, str):
        regex = re.compile(regex)
    return _parser.parse(regex.pattern, regex.flags), regex.flags


def _nested(op: Any, av: Any) -> list[Any]:
    """The sequences nested in one parse node: a branch's alternatives, a group's body..."""
    if op is _c.BRANCH:
        return list(av[1])
    if op is _c.SUBPATTERN:
        return [av[3]]
    if op is _c.ATOMIC_GROUP:
        return [av]
    if op in (_c.ASSERT, _c.ASSERT_NOT):
        return [av[1]]
    if op in _QUANTIFIERS:
        return [av[2]]
    if op is _c.GROUPREF_EXISTS:
        return [sub for sub in av[1:] if sub is not None]
    return []


def _paths(items: Any, problems: dict[str, None], inside: bool = False) -> int:
    """Rule (d)'s bound on the leaves of ``items``' choice tree (saturating above _MAX_PATHS),
    noting breaches of (a) in lookarounds, (b), (c) and backreferences in ``problems``."""
    cap = _MAX_PATHS + 1
    total = 1
    for op, av in items:
        if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            problems["(d) a backreference"] = None
        if op in (_c.ASSERT, _c.ASSERT_NOT) and av[1].getwidth()[1] > _MAX_WIDTH:
            problems["(a) a lookaround wider than the bound"] = None
        if op in _QUANTIFIERS:
            low, high, body = av
            if inside:
                problems["(b) a quantifier inside a quantifier"] = None
            if high is _c.MAXREPEAT:
                problems["(c) an unbounded quantifier"] = None
            each = _paths(body, problems, inside=True)
            if high is _c.MAXREPEAT or (each > 1 and high > 40):
                count = cap  # (each >= 2: 2**40 is over the cap already)
            elif each == 1:
                count = high - low + 1
            else:
                count = sum(each**times for times in range(low, high + 1))
            total = min(total * count, cap)
        elif op is _c.BRANCH:
            total = min(total * sum(_paths(alt, problems, inside) for alt in av[1]), cap)
        else:
            for sub in _nested(op, av):
                total = min(total * _paths(sub, problems, inside), cap)
    return total


def _redos_problems(regex: str | re.Pattern[str]) -> list[str]:
    """Which of rules (a)-(d) ``regex`` breaks (empty: its searches are linear in the text)."""
    parsed, _flags = _parse(regex)
    problems: dict[str, None] = {}
    width = parsed.getwidth()[1]
    if width > _MAX_WIDTH:
        wide = "unbounded width" if width >= 2**32 else f"{width} characters wide"
        problems[f"(a) {wide}"] = None
    if _paths(parsed, problems) > _MAX_PATHS:
        problems[f"(d) more than {_MAX_PATHS:,} paths"] = None
    return sorted(problems)


# Rule U: first characters, disjoint character sets, and every choice decided by one character.


def _first(items: Any) -> tuple[list[Any], bool]:
    """The one-character nodes a match of ``items`` can start with, and whether it can be empty
    (zero-width assertions are skipped; a backreference may start with anything)."""
    starts: list[Any] = []
    for op, av in items:
        if op in _ONE_CHAR:
            return [*starts, (op, av)], False
        if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            return [*starts, _ANYTHING], False
        if op in _QUANTIFIERS:
            inner, empty = _first(av[2])
            starts += inner
            if av[0] >= 1 and not empty:
                return starts, False
        elif op in (_c.BRANCH, _c.SUBPATTERN, _c.ATOMIC_GROUP):
            empty = False
            for sub in _nested(op, av):
                inner, sub_empty = _first(sub)
                starts += inner
                empty = empty or sub_empty
            if not empty:
                return starts, False
    return starts, True


def _finite(node: Any) -> set[str] | None:
    """The characters of a literal or of a plain ``[...]`` of literals, else None."""
    op, av = node
    if op is _c.LITERAL:
        return {chr(av)}
    if op is _c.IN and all(kind is _c.LITERAL for kind, _ in av):
        return {chr(value) for _, value in av}
    return None


def _accepts(node: Any, char: str, flags: int) -> bool:
    """Whether the one-character node matches ``char``."""
    op, av = node
    if op is _c.LITERAL:
        return chr(av) == char
    if op is _c.NOT_LITERAL:
        return chr(av) != char
    if op is _c.ANY:
        return char != "\n" or bool(flags & re.DOTALL)
    hit = negate = False
    for kind, value in av:
        if kind is _c.NEGATE:
            negate = True
        elif kind is _c.LITERAL:
            hit = hit or chr(value) == char
        elif kind is _c.RANGE:
            hit = hit or value[0] <= ord(char) <= value[1]
        elif kind is _c.CATEGORY:
            hit = hit or re.fullmatch(_CATEGORIES[value], char) is not None
        else:  # pragma: no cover - the parser gives no other member kinds
            raise AssertionError(f"unknown class member {kind}")
    return hit != negate


def _disjoint(left: list[Any], right: list[Any], flags: int) -> bool:
    """Whether no character starts both (proved only when one side of each pair is finite)."""
    for a in left:
        for b in right:
            chars, other = _finite(a), b
            if chars is None:
                chars, other = _finite(b), a
            if chars is None or any(_accepts(other, char, flags) for char in chars):
                return False
    return True


def _choices(items: Any, follow: list[Any], flags: int, problems: dict[str, None]) -> list[Any]:
    """Check rule U1 on every choice in ``items`` (``follow``: the characters that may start
    what comes after them); return the first characters of the unbounded quantifiers' bodies."""
    loops: list[Any] = []
    for index, (op, av) in enumerate(items):
        rest, rest_empty = _first(items[index + 1 :])
        after = rest + follow if rest_empty else rest
        if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            problems["U1: a backreference"] = None
        if op in _QUANTIFIERS:
            low, high, body = av
            starts, empty = _first(body)
            if high is _c.MAXREPEAT:
                loops += starts
            if low != high and (empty or not _disjoint(starts, after, flags)):
                problems["U1: a quantifier may go on or stop at the same character"] = None
            loops += _choices(body, starts + after if high > 1 else after, flags, problems)
        elif op is _c.BRANCH:
            firsts = [_first(alt) for alt in av[1]]
            starts = [first + after if empty else first for first, empty in firsts]
            if sum(empty for _, empty in firsts) > 1 or any(
                not _disjoint(one, other, flags)
                for i, one in enumerate(starts)
                for other in starts[i + 1 :]
            ):
                problems["U1: two alternatives may start alike"] = None
            for alt in av[1]:
                loops += _choices(alt, after, flags, problems)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if _choices(av[1], [], flags, problems):
                problems["U2: a lookaround scans a run at every attempt"] = None
        else:
            for sub in _nested(op, av):
                loops += _choices(sub, after, flags, problems)
    return loops


def _cannot_fail(items: Any) -> bool:
    """Whether ``items`` match anywhere, greedily and without backtracking: only optional
    quantifiers, and groups of them."""
    return all(
        (op in _QUANTIFIERS and av[0] == 0) or (op is _c.SUBPATTERN and _cannot_fail(av[3]))
        for op, av in items
    )


def _rule_u_problems(regex: str | re.Pattern[str], use: str) -> list[str]:
    """Which part of rule U ``regex`` breaks when applied as ``use``: "scan" (finditer, search,
    sub over a text) or "anchored" (match or fullmatch: one attempt per call)."""
    parsed, flags = _parse(regex)
    problems: dict[str, None] = {}
    if flags & re.IGNORECASE:
        problems["U1: case-insensitive classes are not compared"] = None
    items = list(parsed)
    loops = _choices(items, [], flags, problems)
    if use == "anchored":
        problems.pop("U2: a lookaround scans a run at every attempt", None)
    elif not _disjoint(_first(items)[0], loops, flags):
        alternatives = items[0][1][1] if len(items) == 1 and items[0][0] is _c.BRANCH else [items]
        if not all(
            _cannot_fail(alt[1:] if alt and alt[0][0] in _ONE_CHAR else alt) for alt in alternatives
        ):
            problems["U2: an attempt may fail after a run the next one rescans"] = None
    return sorted(problems)


@pytest.mark.parametrize("regex", list(_shipped_regexes().values()), ids=list(_shipped_regexes()))
def test_every_shipped_regex_is_linear_by_construction(regex: str | re.Pattern[str]) -> None:
    assert _redos_problems(regex) == []


@pytest.mark.parametrize("name", list(_UNBOUNDED_BY_DESIGN))
def test_the_unbounded_regexes_of_the_classify_path_follow_rule_u(name: str) -> None:
    regex = _module_regexes()[name]
    assert _redos_problems(regex), f"{name} meets (a)-(d): drop it from _UNBOUNDED_BY_DESIGN"
    assert _rule_u_problems(regex, _UNBOUNDED_BY_DESIGN[name]) == []


def test_every_module_regex_of_the_classify_path_is_accounted_for() -> None:
    # Module-level regexes not named in the two tables are in _shipped_regexes(), held to (a)-(d).
    module = _module_regexes()
    assert {*_UNBOUNDED_BY_DESIGN, *_NOT_ON_THE_TEXT} <= set(module)
    assert not set(_UNBOUNDED_BY_DESIGN) & set(_NOT_ON_THE_TEXT)
    shipped = _shipped_regexes()
    assert {"failure_semantics._STEP_IN_TEXT", "envelopes._ESCAPED_CHAR"} <= set(shipped)
    sources = {regex if isinstance(regex, str) else regex.pattern for regex in shipped.values()}
    for name, regex in module.items():
        if name not in _UNBOUNDED_BY_DESIGN and name not in _NOT_ON_THE_TEXT:
            assert regex.pattern in sources, name


@pytest.mark.parametrize(
    ("pattern", "rules"),
    [
        (r"(a+)+$", "abcd"),  # exponential
        (r"(a|a)*b", "acd"),  # exponential: two ways through each "a"
        (r"(\w+\s?)*$", "abcd"),  # exponential
        (r".*.*=.*", "acd"),  # cubic
        (r"(?=\w*!)", "acd"),  # quadratic: an unbounded lookahead at every position
        (r"(?:a|a){1,40}b", "d"),  # bounded and star height 1, but 2**40 ways to fail
        (r"(?:\w{1,9}\s?){1,9}$", "bd"),  # bounded, but nested
        (r"(\w{1,9})=\1", "d"),  # a backreference
    ],
)
def test_the_checker_flags_known_bad_patterns(pattern: str, rules: str) -> None:
    assert {problem[1] for problem in _redos_problems(pattern)} == set(rules)
    assert _rule_u_problems(pattern, "scan"), "rule U must not excuse it either"


@pytest.mark.parametrize(
    ("pattern", "anchored_is_fine"),
    [
        (r"\w*!", True),  # quadratic in a scan: each attempt runs to the end of the run, fails
        # The envelope parser's token regex before the fix: in "{'\'\'\'..." each escaped
        # quote started an attempt that ran to the end of the line (0.66 s for 16 KB, 11 s for
        # 64 KB); now an open string ends its token at the end of the line.
        (r"""'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|[{}]""", True),
        (r"\s*\s*x", False),  # a run of spaces splits between the two in n ways
    ],
)
def test_rule_u_flags_quadratic_scans(pattern: str, anchored_is_fine: bool) -> None:
    assert _rule_u_problems(pattern, "scan")
    assert (_rule_u_problems(pattern, "anchored") == []) is anchored_is_fine


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
def test_a_2_mb_message_reaches_the_regexes_capped(category: FailureCategory[Any]) -> None:
    # The engine's side: test_failures.py::test_the_blob_handed_to_the_regexes_is_capped.
    phrase = "[Errno 111] Connection refused"
    code = category.classify(message=phrase)
    assert code is not None
    filler = "x " * 1_000_000  # 2 MB that no pattern matches
    assert category.classify(message=phrase + filler) is code  # the head is kept
    assert category.classify(message=filler + phrase) is code  # the tail is kept
    # The middle of a 2 MB text never reaches a regex: only DEFAULT_LIMIT characters do.
    assert len(failures.flatten_exception(RuntimeError(filler))) <= failures.DEFAULT_LIMIT
    assert category.classify(message=filler + phrase + filler) is None
    assert category.classify(RuntimeError(filler + phrase + filler)) is None


# --- gates never change an answer ---------------------------------------------------------------
#
# A Gated pattern is skipped when none of its words is in the lowercased (special letters folded)
# blob, so each word list must cover every text its regex can match. Hypothesis generates texts
# the regex matches (st.from_regex, all alternatives and case variants), puts them in noise, swaps
# in the non-ASCII letters IGNORECASE equates with ASCII ones, and checks the gate admits every
# text the regex matches. Then per category: the classifier (gated) answers exactly what the
# plain loop over the same regexes answers.

_GATED = {
    source: source
    for category in CATEGORIES
    for source, _code in category.patterns
    if isinstance(source, failures.Gated)
}
_SPECIAL = {"k": "\u212a", "K": "\u212a", "s": "\u017f", "S": "\u017f",
            "i": "\u0131", "I": "\u0130"}  # fmt: skip
_noise = st.text(alphabet=st.sampled_from(" \n:'_-.é\u00a0abcXYZ09"), max_size=12)


@st.composite
def _matching_text(draw: st.DrawFn, regex: str) -> str:
    text = draw(_noise) + draw(st.from_regex(regex)) + draw(_noise)
    if draw(st.booleans()):
        swap = draw(st.sets(st.sampled_from(sorted(_SPECIAL)), max_size=4))
        text = "".join(_SPECIAL[c] if c in swap else c for c in text)
    return text


def test_every_shipped_pattern_of_a_category_is_gated() -> None:
    # An ungated pattern would scan every blob; the fragments and each category's own are gated.
    for category in CATEGORIES:
        patterns = category.patterns
        ungated = [i for i, (p, _c) in enumerate(patterns) if not isinstance(p, failures.Gated)]
        assert ungated == [], category.name


@pytest.mark.parametrize("regex", list(_GATED), ids=[f"gate{i}" for i in range(len(_GATED))])
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_a_gate_admits_every_text_its_regex_matches(
    regex: failures.Gated, data: st.DataObject
) -> None:
    text = data.draw(_matching_text(regex))
    if re.search(regex, text):
        lowered = failures._gate_text(text)
        assert any(word in lowered for word in regex.words), (text, regex.words)


@pytest.mark.parametrize("category", CATEGORIES, ids=IDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_gates_never_change_a_categorys_answer(
    category: FailureCategory[Any], data: st.DataObject
) -> None:
    sources = [str(source) for source, _code in category.patterns]
    picked = data.draw(st.lists(st.sampled_from(sources), min_size=1, max_size=3))
    text = "".join(data.draw(_matching_text(regex)) for regex in picked)
    plain = next((code for source, code in category.patterns if re.search(source, text)), None)
    assert category.classifier.classify(message=text) is plain


# --- never raises ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(CATEGORIES),
    st.text(max_size=400),
    st.sampled_from([RuntimeError, KeyError, OSError, BackendError, ValueError]),
)
def test_classification_never_raises(
    category: FailureCategory[Any], text: str, kind: type[Exception]
) -> None:
    exc = kind(text)
    exc.__context__ = RuntimeError(text[::-1])
    for code in (category.classify(exc), category.classify(message=text), category.classify()):
        assert code is None or isinstance(code, category.codes)
