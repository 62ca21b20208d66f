"""The generic classifier: chain walking, flattening, the three layers and the gates."""

from __future__ import annotations

import pickle
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from synapse_sdk import failures
from synapse_sdk.envelopes import ErrorEnvelope
from synapse_sdk.exceptions import BackendError
from synapse_sdk.failures import (
    DEFAULT_LIMIT,
    Classification,
    FailureClassifier,
    Gated,
    flatten_exception,
    walk_chain,
    walk_suppressed,
)


def raised(exc: BaseException) -> BaseException:
    """``exc`` after a real raise (so it has a traceback, as in the wild)."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except BaseException as caught:
        return caught


def implicit(outer: BaseException, context: BaseException) -> BaseException:
    try:
        try:
            raise context
        except BaseException:
            raise outer  # noqa: B904 - the implicit context is what this test is about
    except BaseException as caught:
        return caught


# --- walk_chain ----------------------------------------------------------------------------------


def test_walk_follows_cause() -> None:
    exc = chained(RuntimeError("outer"), ValueError("root"))
    assert [type(e) for e in walk_chain(exc)] == [RuntimeError, ValueError]


def test_walk_follows_implicit_context() -> None:
    exc = implicit(RuntimeError("outer"), KeyError("k"))
    assert [type(e) for e in walk_chain(exc)] == [RuntimeError, KeyError]


def test_walk_skips_suppressed_context() -> None:
    try:
        try:
            raise KeyError("hidden")
        except KeyError:
            raise RuntimeError("outer") from None
    except RuntimeError as exc:
        assert exc.__context__ is not None
        assert walk_chain(exc) == [exc]


def test_walk_prefers_cause_to_context_and_keeps_both_when_not_suppressed() -> None:
    exc = RuntimeError("outer")
    exc.__cause__ = ValueError("cause")
    exc.__context__ = KeyError("context")
    exc.__suppress_context__ = False
    assert [type(e) for e in walk_chain(exc)] == [RuntimeError, ValueError, KeyError]


def test_walk_enters_groups_and_nested_groups() -> None:
    inner = ExceptionGroup("inner", [KeyError("a"), OSError("b")])
    group = ExceptionGroup("outer", [ValueError("c"), inner])
    group.__cause__ = TimeoutError("d")
    names = [type(e).__name__ for e in walk_chain(group)]
    assert names == ["ExceptionGroup", "ValueError", "ExceptionGroup", "KeyError", "OSError",
                     "TimeoutError"]  # fmt: skip


def test_walk_enters_base_exception_groups() -> None:
    group = BaseExceptionGroup("g", [KeyboardInterrupt(), ValueError("v")])
    assert [type(e) for e in walk_chain(group)] == [
        BaseExceptionGroup,
        KeyboardInterrupt,
        ValueError,
    ]


def test_walk_survives_cycles_through_context_and_cause() -> None:
    a, b, c = ValueError("a"), KeyError("b"), OSError("c")
    a.__context__ = b
    b.__context__ = a
    assert walk_chain(a) == [a, b]
    a.__cause__ = c
    c.__cause__ = a
    a.__suppress_context__ = False  # setting __cause__ suppressed the context; bring it back
    assert walk_chain(a) == [a, c, b]
    a.__cause__ = a  # a self-loop
    a.__suppress_context__ = False
    assert walk_chain(a) == [a, b]
    a.__suppress_context__ = True
    assert walk_chain(a) == [a]


def test_walk_survives_a_group_containing_itself_through_its_cause() -> None:
    member = ValueError("m")
    group = ExceptionGroup("g", [member])
    member.__cause__ = group
    assert walk_chain(group) == [group, member]


def _deep_chain(length: int) -> BaseException:
    exc: BaseException = ValueError("level 0")
    for level in range(1, length):
        outer = RuntimeError(f"level {level}")
        outer.__cause__ = exc
        exc = outer
    return exc


def test_walk_is_iterative_and_depth_capped_on_a_10000_deep_chain() -> None:
    exc = _deep_chain(10_000)
    chain = walk_chain(exc)
    assert len(chain) == failures.DEFAULT_MAX_DEPTH + 1
    assert str(chain[-1]) == f"level {10_000 - 1 - failures.DEFAULT_MAX_DEPTH}"
    assert len(walk_chain(exc, max_depth=3)) == 4
    assert len(walk_chain(exc, max_depth=20_000, max_nodes=20_000)) == 10_000
    assert walk_chain(exc, max_depth=0) == [exc]


def test_walk_node_cap_bounds_wide_groups() -> None:
    group = ExceptionGroup("wide", [ValueError(str(i)) for i in range(5_000)])
    assert len(walk_chain(group)) == failures.DEFAULT_MAX_NODES
    assert len(walk_chain(group, max_nodes=10)) == 10


def test_walk_survives_attributes_that_raise() -> None:
    class Weird(Exception):
        @property
        def __cause__(self) -> BaseException:  # type: ignore[override]
            raise RuntimeError("no cause for you")

    exc = Weird("w")
    exc.__context__ = KeyError("k")
    assert [type(e) for e in walk_chain(exc)] == [Weird, KeyError]


def test_walk_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="exception"):
        walk_chain("not an exception")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_depth"):
        walk_chain(ValueError(), max_depth=-1)
    with pytest.raises(ValueError, match="max_nodes"):
        walk_chain(ValueError(), max_nodes=0)
    with pytest.raises(TypeError, match="max_depth"):
        walk_chain(ValueError(), max_depth=1.5)  # type: ignore[arg-type]


# --- flatten_exception ---------------------------------------------------------------------------


class ProjectError(Exception):
    """An exception defined outside builtins."""


def test_flatten_lines_read_like_a_traceback_last_line() -> None:
    exc = chained(ProjectError("export failed"), KeyError("annotations"))
    assert flatten_exception(exc) == (
        f"{__name__}.ProjectError: export failed\nKeyError: 'annotations'"
    )
    assert flatten_exception(ValueError()) == "ValueError"


def test_flatten_names_nested_classes_by_qualified_name() -> None:
    class Inner(Exception):
        pass

    assert flatten_exception(Inner("x")).startswith(
        f"{__name__}.test_flatten_names_nested_classes_by_qualified_name.<locals>.Inner: x"
    )


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("broken __str__")


class StrReturnsNonStr(Exception):
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


class NothingPrints(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no")


def test_flatten_survives_str_raising_or_returning_a_non_str() -> None:
    assert flatten_exception(StrRaises("disk full")) == (
        f"{__name__}.StrRaises: <str() failed> StrRaises('disk full')"
    )
    assert "<str() failed>" in flatten_exception(StrReturnsNonStr("x"))
    text = flatten_exception(NothingPrints("a", 7, Unprintable()))
    assert text == f"{__name__}.NothingPrints: <str() failed> 'a', 7, <unprintable Unprintable>"


def test_flatten_caps_a_2_mb_message_keeping_head_and_tail() -> None:
    message = "HEAD " + "x" * 2_000_000 + " TAIL"
    text = flatten_exception(chained(RuntimeError("outer"), ValueError(message)))
    assert len(text) <= DEFAULT_LIMIT
    assert text.startswith("RuntimeError: outer\nValueError: HEAD ")
    assert text.endswith(" TAIL")
    small = flatten_exception(ValueError(message), limit=100)
    assert len(small) == 100 and small.startswith("ValueError: HEAD") and small.endswith("TAIL")


def test_flatten_rejects_a_tiny_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        flatten_exception(ValueError("x"), limit=10)


# --- FailureClassifier: the layers ----------------------------------------------------------------

CATALOG = {"invalid_ids": "BAD_REQUEST", "partial_failure": "PARTIAL", "rate_limited": "RATE"}
PATTERNS: list[tuple[str | re.Pattern[str], str]] = [
    (r"\bKeyError\b", "INVALID_KEY"),
    (r"(?i)connection\s+refused", "NETWORK"),
    (re.compile(r"permission denied", re.IGNORECASE), "PERMISSION"),
    (r"\b429\b|too many requests", "RATE_V1"),
    (r"step '(?P<step>\w+)' failed", "STEP"),
]


@pytest.fixture
def classifier() -> FailureClassifier[str]:
    return FailureClassifier(CATALOG, PATTERNS)


def test_each_catalog_code_in_a_message(classifier: FailureClassifier[str]) -> None:
    for code, expected in CATALOG.items():
        exc = BackendError(f'bulk fetch failed: {{"error": {{"code": "{code}", "detail": "..."}}}}')
        assert classifier.classify(exc) == expected


def test_structured_attribute_comes_first(classifier: FailureClassifier[str]) -> None:
    exc = BackendError(
        'text says {"error": {"code": "partial_failure"}} and KeyError',
        error_code="rate_limited",
    )
    result = classifier.explain(exc)
    assert result == Classification("RATE", "attribute", "rate_limited")


def test_structured_attribute_anywhere_in_the_chain(classifier: FailureClassifier[str]) -> None:
    exc = chained(RuntimeError("step 'fetch' failed"), BackendError("x", error_code="invalid_ids"))
    assert classifier.classify(exc) == "BAD_REQUEST"


def test_non_string_or_unknown_attribute_codes_fall_through(
    classifier: FailureClassifier[str],
) -> None:
    odd = ValueError("KeyError happened")
    odd.error_code = 429  # type: ignore[attr-defined]
    assert classifier.classify(odd) == "INVALID_KEY"
    unknown = BackendError("connection refused", error_code="brand_new_code")
    assert classifier.explain(unknown) == Classification(
        "NETWORK", "pattern", "connection refused", None, classifier.patterns[1][0], 1
    )


def test_v2_envelope_beats_v1_patterns(classifier: FailureClassifier[str]) -> None:
    exc = raised(KeyError('{"error": {"code": "invalid_ids", "invalid_ids": [4, 5]}}'))
    result = classifier.explain(exc)
    assert result is not None
    assert (result.code, result.layer, result.matched) == ("BAD_REQUEST", "envelope", "invalid_ids")
    assert result.envelope is not None and result.envelope.failed_ids == (4, 5)


def test_unknown_envelope_code_falls_through_to_patterns(
    classifier: FailureClassifier[str],
) -> None:
    exc = raised(KeyError('{"error": {"code": "brand_new_code"}}'))
    assert classifier.classify(exc) == "INVALID_KEY"


def test_a_later_known_envelope_is_used_when_the_first_is_unknown(
    classifier: FailureClassifier[str],
) -> None:
    exc = chained(
        RuntimeError('{"error": {"code": "brand_new_code"}}'),
        OSError('{"error": {"code": "rate_limited", "retry_after": 2}}'),
    )
    result = classifier.explain(exc)
    assert result is not None and result.code == "RATE"
    assert result.envelope == ErrorEnvelope("rate_limited", retry_after_seconds=2.0)


def test_no_envelope_skips_the_catalog(classifier: FailureClassifier[str]) -> None:
    assert classifier.classify(raised(PermissionError(13, "Permission denied"))) == "PERMISSION"
    assert classifier.classify(ValueError("nothing to see")) is None


def test_first_declared_pattern_wins_not_the_leftmost_match() -> None:
    classifier = FailureClassifier({}, [(r"late", "FIRST_DECLARED"), (r"early", "SECOND")])
    result = classifier.explain(message="early ... late")
    assert result is not None
    assert (result.code, result.matched, result.index) == ("FIRST_DECLARED", "late", 0)


def test_message_only_and_exception_plus_message(classifier: FailureClassifier[str]) -> None:
    assert classifier.classify(message="HTTP 429 Too Many Requests") == "RATE_V1"
    assert classifier.classify(ValueError("x"), message="step 'save' failed") == "STEP"
    assert classifier.classify() is None
    assert classifier.classify(message="") is None


def test_empty_catalog_and_patterns() -> None:
    assert FailureClassifier({}, []).classify(KeyError("x")) is None
    only_catalog = FailureClassifier({"rate_limited": 1}, [])
    assert only_catalog.classify(message='{"error": {"code": "rate_limited"}}') == 1


def test_codes_can_be_any_type() -> None:
    sentinel = object()
    classifier = FailureClassifier({"c": sentinel}, [(r"x", None), (r"y", 0)])
    assert classifier.classify(message='{"error": {"code": "c"}}') is sentinel
    assert classifier.classify(message="y") == 0


def test_classifier_copies_its_inputs() -> None:
    catalog = {"a": "A"}
    patterns = [(r"boom", "B")]
    classifier = FailureClassifier(catalog, patterns)
    catalog["b"] = "B"
    patterns.clear()
    assert classifier.catalog == {"a": "A"}
    assert classifier.classify(message="boom") == "B"
    assert classifier.classify(message='{"error": {"code": "b"}}') is None


def test_bad_construction_arguments() -> None:
    with pytest.raises(ValueError, match=r"pattern #1 '\(unclosed' is not a valid regex"):
        FailureClassifier({}, [(r"ok", 1), (r"(unclosed", 2)])
    with pytest.raises(TypeError, match="bytes pattern"):
        FailureClassifier({}, [(re.compile(rb"x"), 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="pair"):
        FailureClassifier({}, [r"no code"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"str or re\.Pattern"):
        FailureClassifier({}, [(42, 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="catalog keys"):
        FailureClassifier({1: "x"}, [])  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="mapping"):
        FailureClassifier([("a", 1)], [])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="patterns"):
        FailureClassifier({}, "abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        FailureClassifier({}, [], limit=5)


def test_bad_classify_arguments(classifier: FailureClassifier[str]) -> None:
    with pytest.raises(TypeError, match="exc"):
        classifier.classify("KeyError")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message"):
        classifier.classify(message=b"KeyError")  # type: ignore[arg-type]


def test_exceptions_that_fight_back_still_classify(classifier: FailureClassifier[str]) -> None:
    assert classifier.classify(StrRaises("Connection refused")) == "NETWORK"
    assert classifier.classify(NothingPrints("KeyError")) == "INVALID_KEY"
    cyclic = ValueError("a")
    other = KeyError("b")
    cyclic.__context__ = other
    other.__context__ = cyclic
    assert classifier.classify(cyclic) == "INVALID_KEY"
    assert classifier.classify(_deep_chain(10_000)) is None


def test_groups_are_classified_by_their_members(classifier: FailureClassifier[str]) -> None:
    group = ExceptionGroup(
        "2 tasks failed", [ValueError("x"), ConnectionRefusedError(111, "Connection refused")]
    )
    assert classifier.classify(group) == "NETWORK"


def test_the_blob_handed_to_the_regexes_is_capped() -> None:
    message = "HEAD " + "a" * 1_000_000 + " MIDDLE " + "a" * 1_000_000 + " TAIL"
    exc = ValueError(message)
    # What the regexes see is flatten_exception's text: at most `limit` characters.
    assert len(flatten_exception(exc, limit=4096)) == 4096
    assert len(flatten_exception(exc)) == DEFAULT_LIMIT
    classifier = FailureClassifier({}, [(r"MIDDLE", "MID"), (r"HEAD", "H"), (r"TAIL$", "T")])
    result = classifier.explain(exc)
    assert result is not None and (result.code, result.matched) == ("H", "HEAD")
    tail_only = FailureClassifier({}, [(r"MIDDLE", "MID"), (r"TAIL$", "T")], limit=4096)
    assert tail_only.classify(exc) == "T"  # the tail survives the cap, the middle does not
    assert tail_only.classify(message=message) == "T"
    # A pattern matching everything shows exactly what the regexes are handed: never more than
    # `limit` characters of a 2 MB text (tests/plugins/test_categories.py builds its linearity
    # proof on this cap).
    for limit in (4096, DEFAULT_LIMIT):
        everything = FailureClassifier({}, [(r"(?s)\A.*\Z", "ALL")], limit=limit)
        for result in (everything.explain(exc), everything.explain(message=message),
                       everything.explain(exc, message=message)):  # fmt: skip
            assert result is not None and len(result.matched) == limit


def test_a_code_first_envelope_head_counts_only_where_the_cap_cut_it() -> None:
    ids = ", ".join(str(i) for i in range(30_000))
    cut = f'bulk fetch failed: {{"error": {{"code": "partial_failure", "failed_ids": [{ids}]}}}}'
    classifier = FailureClassifier(CATALOG, PATTERNS)
    result = classifier.explain(RuntimeError(cut))
    assert result is not None and (result.code, result.layer) == ("PARTIAL", "envelope")
    assert result.envelope == ErrorEnvelope("partial_failure")
    assert classifier.classify(message=cut) == "PARTIAL"
    # Under the cap a head that does not parse is no envelope (the envelope parser decides).
    assert classifier.classify(message='{"error": {"code": "partial_failure", ') is None


def test_the_backends_word_under_raise_from_none_counts_but_its_text_does_not() -> None:
    classifier = FailureClassifier(CATALOG, PATTERNS)

    def hide(inner: BaseException, outer: BaseException) -> BaseException:
        try:
            try:
                raise inner
            except BaseException:
                raise outer from None
        except BaseException as caught:
            return caught

    limited = BackendError("slow down", error_code="rate_limited")
    hidden = hide(chained(RuntimeError("wrapped"), limited), ValueError("page 3 failed"))
    assert walk_suppressed(hidden)[1] is limited
    assert walk_chain(hidden) == [hidden]
    explained = classifier.explain(hidden)
    assert explained is not None and (explained.code, explained.layer) == ("RATE", "attribute")
    in_text = hide(BackendError('{"error": {"code": "invalid_ids"}}'), ValueError("x"))
    assert classifier.classify(in_text) == "BAD_REQUEST"
    # The visible chain's own backend word comes first.
    visible = hide(limited, BackendError("no", error_code="partial_failure"))
    assert classifier.classify(visible) == "PARTIAL"
    # Hidden text never reaches the patterns; the visible text still does.
    assert classifier.classify(hide(KeyError("x"), ValueError("odd"))) is None
    assert classifier.classify(hide(KeyError("x"), ValueError("connection refused"))) == "NETWORK"


def test_ignorecase_patterns_match_special_letters_through_the_gate() -> None:
    # Under IGNORECASE, the Kelvin sign matches k, the long s matches s, dotted/dotless I match i:
    # the gate folds them before looking for its word, so it never hides such a match.
    classifier = FailureClassifier({}, [(Gated(r"(?i)\bkiss\b", "kiss"), "KISS")])
    for text in ("KISS", "\u212aiss", "ki\u017f\u017f", "k\u0130ss", "k\u0131ss", "say kiss!"):
        assert classifier.classify(message=text) == "KISS", text
        assert re.search(r"(?i)\bkiss\b", text), text
    assert classifier.classify(message="kisses") is None


def test_a_gated_pattern_runs_only_when_one_of_its_words_is_there() -> None:
    # A gate that lies (its word is not in the text the regex matches) shows the regex is skipped.
    lying = FailureClassifier({}, [(Gated(r"refused", "nowhere"), "GATED"), (r"refused", "PLAIN")])
    assert lying.classify(message="Connection refused") == "PLAIN"
    honest = FailureClassifier({}, [(Gated(r"(?i)connection refused", "refused"), "GATED")])
    explained = honest.explain(message="[Errno 111] CONNECTION REFUSED")
    assert explained is not None and (explained.code, explained.matched) == (
        "GATED", "CONNECTION REFUSED"
    )
    assert honest.classify(message="connection reset") is None


def test_gated_is_a_regex_string_with_checked_words() -> None:
    gated = Gated(r"\bKeyError\b", "keyerror")
    assert isinstance(gated, str) and gated == r"\bKeyError\b" and gated.words == ("keyerror",)
    assert re.search(gated, "KeyError: 'x'")
    copy = pickle.loads(pickle.dumps(gated))
    assert (copy, copy.words, type(copy)) == (gated, gated.words, Gated)
    with pytest.raises(ValueError, match="at least one word"):
        Gated(r"x")
    for bad in ("KeyError", ""):
        with pytest.raises(ValueError, match="lowercase"):
            Gated(r"x", bad)


def test_thread_safety_same_answers_from_many_threads(classifier: FailureClassifier[str]) -> None:
    inputs: list[BaseException] = [
        KeyError("x"),
        ConnectionRefusedError("Connection refused"),
        BackendError('{"error": {"code": "partial_failure"}}'),
        ValueError("nothing"),
    ] * 50
    expected = [classifier.classify(exc) for exc in inputs]
    barrier = threading.Barrier(4)

    def run() -> list[str | None]:
        barrier.wait()
        return [classifier.classify(exc) for exc in inputs]

    with ThreadPoolExecutor(4) as pool:
        results = [f.result() for f in [pool.submit(run) for _ in range(4)]]
    assert all(result == expected for result in results)


# --- the loop is the naive loop -------------------------------------------------------------------

_WORDS = ["error", "timeout", "conn", "connection", "refused", "key", "keyerror", "kiss", "data_x",
          "id", "a", "ab", "abc", "429", "x1", "sk"]  # fmt: skip
_SEPARATORS = [" ", "  ", "_", ":", "'", ".", "-", "\n", "\t", "[", "]", "/", "=", "é", "\u00a0"]


def _word_case(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize(), word.replace("k", "\u212a"),
                            word.replace("s", "\u017f"), word.replace("i", "\u0130")])  # fmt: skip


_blob_words = st.sampled_from(_WORDS).flatmap(_word_case)
_blobs = st.lists(st.tuples(_blob_words, st.sampled_from(_SEPARATORS)), max_size=60).map(
    lambda parts: "".join(w + s for w, s in parts)
)

_atoms = st.one_of(
    st.sampled_from(_WORDS).map(re.escape),
    st.sampled_from([r"\s+", r"\s*", r"\d+", r"[_ ]", r"\b", r".{0,5}", r"\W", r":", "^", "$",
                     r"x?", r"(?:_\d+)?", r"[\s:]+"]),
)  # fmt: skip


@st.composite
def _gated_regexes(draw: st.DrawFn) -> Gated:
    """A regex of literal words and glue, gated by its words (a match holds every one of them)
    or by an alternation's alternatives (a match holds one)."""
    if draw(st.booleans()):
        words = draw(st.lists(st.sampled_from(_WORDS), min_size=2, max_size=3, unique=True))
        flags = "(?i)" if draw(st.booleans()) else ""
        return Gated(flags + "(?:" + "|".join(map(re.escape, words)) + ")", *words)
    parts = draw(st.lists(_atoms, min_size=1, max_size=4))
    word = draw(st.sampled_from(_WORDS))
    parts.insert(draw(st.integers(0, len(parts))), re.escape(word))
    flags = "(?i)" if draw(st.booleans()) else ""
    return Gated(flags + "".join(parts), word)


def _naive(patterns: Sequence[str], blob: str) -> int | None:
    for index, pattern in enumerate(patterns):
        if re.search(pattern, blob):
            return index
    return None


@given(st.lists(_gated_regexes(), min_size=1, max_size=30), _blobs)
@settings(max_examples=300, deadline=None)
def test_classify_with_gates_equals_the_naive_first_declared_match(
    patterns: list[Gated], blob: str
) -> None:
    gated = FailureClassifier({}, [(p, i) for i, p in enumerate(patterns)])
    plain = FailureClassifier({}, [(str(p), i) for i, p in enumerate(patterns)])
    expected = _naive(patterns, blob)
    assert gated.classify(message=blob) == expected
    assert plain.classify(message=blob) == expected


@given(
    st.lists(st.text(max_size=80), min_size=1, max_size=5),
    st.lists(st.sampled_from(["cause", "context", "group", "suppress", "cycle"]), max_size=5),
)
@settings(max_examples=200, deadline=None)
def test_classify_never_raises_on_arbitrary_chains(messages: list[str], links: list[str]) -> None:
    excs: list[BaseException] = [ValueError(m) for m in messages]
    for number, link in enumerate(links):
        outer, inner = excs[number % len(excs)], excs[(number + 1) % len(excs)]
        if link == "cause":
            outer.__cause__ = inner
        elif link == "context":
            outer.__context__ = inner
        elif link == "suppress":
            outer.__suppress_context__ = True
        elif link == "group":
            excs.append(ExceptionGroup("g", [outer, inner]))
        else:
            inner.__context__ = outer
    classifier = FailureClassifier(CATALOG, PATTERNS)
    for exc in excs:
        result = classifier.explain(exc)
        assert result is None or result.code in {*CATALOG.values(), *(c for _p, c in PATTERNS)}


@given(st.text(max_size=500))
@settings(max_examples=200, deadline=None)
def test_classify_never_raises_on_arbitrary_text(text: str) -> None:
    assume(text)
    classifier = FailureClassifier(CATALOG, PATTERNS)
    classifier.classify(message=text)
    classifier.classify(ValueError(text), message=text)
    classifier.classify(message='{"error": {"code": ' + text)
