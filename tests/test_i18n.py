"""Locale negotiation and safe template formatting (``synapse_sdk.i18n``)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_sdk.i18n import (
    LANGUAGE_ENV_VAR,
    current_language,
    locale_candidates,
    negotiate_language,
    normalize_language,
    resolve_language,
    safe_format,
    safe_str,
    template_fields,
    use_language,
)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("str() blew up")

    def __repr__(self) -> str:
        raise RuntimeError("repr() blew up")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("format() blew up")


# --- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("ko", "ko"),
        ("KO", "ko"),
        ("ko-KR", "ko-KR"),
        ("ko-kr", "ko-KR"),
        ("ko_KR", "ko-KR"),
        ("ko_KR.UTF-8", "ko-KR"),
        ("ko_KR.utf8@euro", "ko-KR"),
        ("  en-us  ", "en-US"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
    ],
)
def test_normalize_language(tag: str, expected: str) -> None:
    assert normalize_language(tag) == expected


@pytest.mark.parametrize("tag", ["", "C", "POSIX", "k", "ko--KR", "한국어", "en;q=0.9", "x" * 300])
def test_normalize_rejects_non_tags_with_value_error(tag: str) -> None:
    with pytest.raises(ValueError, match="not a language tag"):
        normalize_language(tag)


def test_normalize_rejects_non_strings_with_type_error() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        normalize_language(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("ko-KR", ("ko-KR", "ko", "en")),
        ("ko_KR.UTF-8", ("ko-KR", "ko", "en")),
        ("KO", ("ko", "en")),
        ("en-GB", ("en-GB", "en")),
        ("en", ("en",)),
        ("zh-Hant-TW", ("zh-Hant-TW", "zh-Hant", "zh", "en")),
    ],
)
def test_locale_candidates_go_from_specific_to_english(tag: str, expected: tuple[str, ...]) -> None:
    assert locale_candidates(tag) == expected


# --- the chain: explicit → context → env → en -------------------------------------------------


def test_chain_explicit_wins_over_everything() -> None:
    env = {LANGUAGE_ENV_VAR: "ja"}
    with use_language("de"):
        assert resolve_language("ko_KR", "fr", environ=env) == "ko-KR"


def test_chain_context_argument_then_context_var_then_env_then_english() -> None:
    env = {LANGUAGE_ENV_VAR: "ja_JP.UTF-8"}
    with use_language("de"):
        assert resolve_language(None, "fr", environ=env) == "fr"
        assert resolve_language(None, None, environ=env) == "de"
    assert resolve_language(None, None, environ=env) == "ja-JP"
    assert resolve_language(None, None, environ={}) == "en"


@pytest.mark.parametrize("value", ["", "C", "POSIX", "???", "   "])
def test_unusable_environment_value_falls_back_to_english(value: str) -> None:
    assert resolve_language(environ={LANGUAGE_ENV_VAR: value}) == "en"


def test_real_environment_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LANGUAGE_ENV_VAR, "KO")
    assert resolve_language() == "ko"
    monkeypatch.delenv(LANGUAGE_ENV_VAR)
    assert resolve_language() == "en"


def test_invalid_explicit_or_context_tag_is_a_caller_bug() -> None:
    with pytest.raises(ValueError):
        resolve_language("not a tag!")
    with pytest.raises(ValueError):
        resolve_language(None, "!!")
    with pytest.raises(TypeError):
        resolve_language(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError), use_language("??"):
        pass


def test_use_language_is_scoped_and_restored() -> None:
    assert current_language() is None
    with use_language("ko_KR"):
        assert current_language() == "ko-KR"
        with use_language(None):
            assert current_language() is None
        assert current_language() == "ko-KR"
    assert current_language() is None


def test_use_language_does_not_leak_between_threads() -> None:
    seen: list[str | None] = []
    with use_language("ko"):
        thread = threading.Thread(target=lambda: seen.append(current_language()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_use_language_does_not_leak_between_tasks() -> None:
    async def task(tag: str) -> str:
        with use_language(tag):
            await asyncio.sleep(0)
            return resolve_language(environ={})

    async def main() -> list[str]:
        return list(await asyncio.gather(task("ko"), task("en-GB"), task("de")))

    assert asyncio.run(main()) == ["ko", "en-GB", "de"]


def test_negotiate_language_picks_the_first_available_candidate() -> None:
    available = {"en": "x", "ko": "y"}
    assert negotiate_language(available, "ko-KR") == "ko"
    assert negotiate_language(available, "ja") == "en"
    assert negotiate_language({"fr"}, "ja", environ={}) is None
    assert negotiate_language(available, environ={LANGUAGE_ENV_VAR: "ko_KR.UTF-8"}) == "ko"


# --- safe_format ------------------------------------------------------------------------------


def test_safe_format_fills_parameters_and_specs() -> None:
    assert safe_format("{a} of {b}", {"a": 1, "b": 2}) == "1 of 2"
    assert safe_format("{n:,} items, {r:.1f}s, {s!r}", {"n": 12345, "r": 1.25, "s": "x"}) == (
        "12,345 items, 1.2s, 'x'"
    )
    assert safe_format("{{literal}} {a}", {"a": "A"}) == "{literal} A"
    assert safe_format("no fields") == "no fields"


def test_missing_parameter_stays_visible() -> None:
    assert safe_format("saved {count} files to {dest}", {"count": 3}) == "saved 3 files to {dest}"
    assert safe_format("{n:>5} and {m!r:>3}", {}) == "{n:>5} and {m!r:>3}"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("50% {", "50% {"),
        ("oops } {a}", "oops } A"),
        ("{a} {", "A {"),
        ("{{a}} {a} {", "{a} A {"),
        ("{a!x}", "{a!x}"),
        ("{", "{"),
        ("}", "}"),
    ],
)
def test_bad_template_never_raises(template: str, expected: str) -> None:
    assert safe_format(template, {"a": "A"}) == expected


def test_attribute_index_and_positional_fields_are_never_evaluated() -> None:
    secret = {"token": "s3cr3t"}
    out = safe_format("{obj.__class__} {obj[token]} {0} {}", {"obj": secret})
    assert out == "{obj.__class__} {obj[token]} {0} {}"
    assert "s3cr3t" not in out


def test_unprintable_values_are_survived() -> None:
    bad = _Unprintable()
    assert safe_format("x={x}", {"x": bad}) == "x=<unprintable _Unprintable>"
    assert safe_format("x={x!r}", {"x": bad}) == "x=<unprintable _Unprintable>"
    assert safe_format("x={x:>4}", {"x": bad}) == "x=<unprintable _Unprintable>"
    assert safe_format("x={x} {", {"x": bad}) == "x=<unprintable _Unprintable> {"
    assert safe_str(bad) == "<unprintable _Unprintable>"


def test_spec_that_does_not_fit_the_value_is_ignored() -> None:
    assert safe_format("{n:d} files", {"n": "three"}) == "three files"
    assert safe_format("{n:{w}}|", {"n": 7, "w": 3}) == "  7|"


def test_safe_format_rejects_wrong_argument_types() -> None:
    with pytest.raises(TypeError, match="template"):
        safe_format(None, {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="params"):
        safe_format("{a}", [("a", 1)])  # type: ignore[arg-type]


@given(st.text(max_size=200), st.dictionaries(st.text(max_size=8), st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=20), st.just(_Unprintable())
), max_size=5))
def test_safe_format_never_raises(template: str, params: dict[str, object]) -> None:
    assert isinstance(safe_format(template, params), str)


def test_template_fields() -> None:
    assert template_fields("{a} of {b:,} {{c}}") == frozenset({"a", "b"})
    with pytest.raises(ValueError):
        template_fields("{")
    with pytest.raises(TypeError):
        template_fields(1)  # type: ignore[arg-type]
