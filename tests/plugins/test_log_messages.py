"""Log message codes, the template registry and rendering (``synapse_sdk.plugins.log_messages``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from enum import Enum

import pytest

from synapse_sdk.i18n import LANGUAGE_ENV_VAR, use_language
from synapse_sdk.plugins import log_messages
from synapse_sdk.plugins.log_messages import (
    LogLevel,
    LogMessageCode,
    ResolvedMessage,
    register_log_messages,
    registered_codes,
    resolve_log_message,
    templates_for,
)


class DemoCode(LogMessageCode):
    DEMO_SAVED = ("DEMO_SAVED", LogLevel.INFO)
    DEMO_DONE = ("DEMO_DONE", LogLevel.SUCCESS)
    DEMO_UNREGISTERED = ("DEMO_UNREGISTERED", LogLevel.WARNING)
    DEMO_EN_ONLY = ("DEMO_EN_ONLY", LogLevel.ERROR)


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test's registrations are undone afterwards (the registry is process-wide)."""
    monkeypatch.setattr(log_messages, "_registry", log_messages._registry)
    monkeypatch.delenv(LANGUAGE_ENV_VAR, raising=False)
    register_log_messages({
        DemoCode.DEMO_SAVED: {"en": "Saved {count} files.", "ko": "파일 {count}개를 저장했습니다."},
        DemoCode.DEMO_DONE: {"en": "Done.", "ko-KR": "완료했습니다.", "en-GB": "Finished."},
        DemoCode.DEMO_EN_ONLY: "Only English.",
    })
    yield


def test_levels_are_the_seven_lowercase_values() -> None:
    assert [level.value for level in LogLevel] == [
        "debug", "info", "success", "warning", "danger", "error", "critical",
    ]
    assert LogLevel.WARNING == "warning"


def test_member_value_is_the_string_and_level_is_carried() -> None:
    code = DemoCode.DEMO_SAVED
    assert code.value == "DEMO_SAVED"
    assert code.level is LogLevel.INFO
    assert DemoCode("DEMO_DONE") is DemoCode.DEMO_DONE
    assert isinstance(code, LogMessageCode)
    assert isinstance(code, Enum)
    assert repr(code) == "<DemoCode.DEMO_SAVED: info>"


def test_bad_member_declarations_fail_at_class_creation() -> None:
    with pytest.raises(TypeError, match="LogLevel"):
        class BadLevel(LogMessageCode):
            X = ("X", "error")

    with pytest.raises(TypeError, match="non-empty string"):
        class BadValue(LogMessageCode):
            Y = (3, LogLevel.INFO)


def test_resolve_renders_language_and_level() -> None:
    assert resolve_log_message(DemoCode.DEMO_SAVED, count=3) == ResolvedMessage(
        "Saved 3 files.", LogLevel.INFO
    )
    text, level = resolve_log_message(DemoCode.DEMO_SAVED, "ko", count=3)
    assert (text, level) == ("파일 3개를 저장했습니다.", LogLevel.INFO)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ko-KR", "파일 2개를 저장했습니다."),   # ko-KR → ko
        ("ko_KR.UTF-8", "파일 2개를 저장했습니다."),
        ("KO", "파일 2개를 저장했습니다."),
        ("ja", "Saved 2 files."),               # → en
        ("en-US", "Saved 2 files."),
    ],
)
def test_locale_chain_falls_back(language: str, expected: str) -> None:
    assert resolve_log_message(DemoCode.DEMO_SAVED, language, count=2).text == expected


def test_region_specific_template_is_preferred_and_not_used_for_the_bare_language() -> None:
    assert resolve_log_message(DemoCode.DEMO_DONE, "ko-KR").text == "완료했습니다."
    assert resolve_log_message(DemoCode.DEMO_DONE, "ko").text == "Done."
    assert resolve_log_message(DemoCode.DEMO_DONE, "en-GB").text == "Finished."


def test_unregistered_code_renders_as_its_value() -> None:
    assert resolve_log_message(DemoCode.DEMO_UNREGISTERED, "ko", x=1) == ResolvedMessage(
        "DEMO_UNREGISTERED", LogLevel.WARNING
    )


def test_plain_string_means_english() -> None:
    assert templates_for(DemoCode.DEMO_EN_ONLY) == {"en": "Only English."}
    assert resolve_log_message(DemoCode.DEMO_EN_ONLY, "ko").text == "Only English."


def test_a_parameter_may_be_called_code() -> None:
    register_log_messages({DemoCode.DEMO_EN_ONLY: "Item {item_id} failed ({code})."})
    assert resolve_log_message(DemoCode.DEMO_EN_ONLY, item_id=3, code="item_corrupted").text == (
        "Item 3 failed (item_corrupted)."
    )


def test_missing_parameter_never_raises() -> None:
    assert resolve_log_message(DemoCode.DEMO_SAVED, "ko").text == "파일 {count}개를 저장했습니다."


def test_unprintable_parameter_is_survived() -> None:
    class Bad:
        def __str__(self) -> str:
            raise ValueError("no")

    assert resolve_log_message(DemoCode.DEMO_SAVED, count=Bad()).text == (
        "Saved <unprintable Bad> files."
    )


def test_context_and_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LANGUAGE_ENV_VAR, "ko_KR.UTF-8")
    assert resolve_log_message(DemoCode.DEMO_SAVED, count=1).text == "파일 1개를 저장했습니다."
    with use_language("en"):
        assert resolve_log_message(DemoCode.DEMO_SAVED, count=1).text == "Saved 1 files."
        assert resolve_log_message(DemoCode.DEMO_SAVED, "ko", count=1).text.startswith("파일")


def test_reregistering_replaces_one_language_and_keeps_the_others() -> None:
    register_log_messages({DemoCode.DEMO_SAVED: {"ja": "{count} 件のファイルを保存しました。"}})
    assert set(templates_for(DemoCode.DEMO_SAVED)) == {"en", "ko", "ja"}
    register_log_messages({DemoCode.DEMO_SAVED: {"en": "Wrote {count} files."}})
    assert resolve_log_message(DemoCode.DEMO_SAVED, count=4).text == "Wrote 4 files."
    assert resolve_log_message(DemoCode.DEMO_SAVED, "ko", count=4).text.startswith("파일 4개")


def test_registered_codes_filters_by_kind() -> None:
    assert set(registered_codes(DemoCode)) == {
        DemoCode.DEMO_SAVED, DemoCode.DEMO_DONE, DemoCode.DEMO_EN_ONLY,
    }
    assert set(registered_codes(DemoCode)) <= set(registered_codes())


@pytest.mark.parametrize(
    ("messages", "error", "match"),
    [
        ([("x", "y")], TypeError, "mapping"),
        ({"DEMO_SAVED": "text"}, TypeError, "LogMessageCode"),
        ({DemoCode.DEMO_SAVED: 3}, TypeError, "string or a mapping"),
        ({DemoCode.DEMO_SAVED: {"en": 3}}, TypeError, "must be a string"),
        ({DemoCode.DEMO_SAVED: {"not a tag!": "x"}}, ValueError, "not a language tag"),
    ],
)
def test_register_rejects_bad_input_and_applies_nothing(
    messages: object, error: type[Exception], match: str
) -> None:
    before = dict(templates_for(DemoCode.DEMO_SAVED))
    batch = {DemoCode.DEMO_DONE: "changed"}
    if isinstance(messages, dict):
        batch = {**batch, **messages}
    with pytest.raises(error, match=match):
        register_log_messages(batch if isinstance(messages, dict) else messages)  # type: ignore[arg-type]
    assert dict(templates_for(DemoCode.DEMO_SAVED)) == before
    assert resolve_log_message(DemoCode.DEMO_DONE).text == "Done."


def test_resolve_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="LogMessageCode"):
        resolve_log_message("DEMO_SAVED")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a language tag"):
        resolve_log_message(DemoCode.DEMO_SAVED, "?!")
    with pytest.raises(ValueError, match="not a language tag"):
        resolve_log_message(DemoCode.DEMO_UNREGISTERED, "?!")


def test_registry_is_thread_safe_under_concurrent_writers_and_readers() -> None:
    codes = [DemoCode.DEMO_SAVED, DemoCode.DEMO_DONE, DemoCode.DEMO_EN_ONLY]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(n: int) -> None:
        start.wait()
        for i in range(200):
            register_log_messages({codes[i % 3]: {f"zz-q{n}": f"writer {n} {{count}}"}})

    def reader() -> None:
        start.wait()
        try:
            for _ in range(400):
                for code in codes:
                    resolve_log_message(code, "ko", count=1)
        except BaseException as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Every writer's every language landed: no lost update.
    for n in range(4):
        for code in codes:
            assert f"zz-q{n}" in templates_for(code)
