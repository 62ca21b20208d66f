"""BaseAction: typed params, structured log events, language, failed ids, ledger, steps."""

from __future__ import annotations

import io
import json
import logging
import pickle
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError
from rich.console import Console

from synapse_sdk.config import SDKConfig
from synapse_sdk.exceptions import BackendError, BackendRateLimitError
from synapse_sdk.plugins.action import (
    JOB_LOG_FILENAME,
    ActionStepError,
    BaseAction,
    FreeParams,
    read_job_log,
)
from synapse_sdk.plugins.ledger import Ledger
from synapse_sdk.plugins.log_messages import LogLevel, LogMessageCode, register_log_messages

SECRET = "tok_this-must-never-leak-123"


class _Code(LogMessageCode):
    T_ACTION_HELLO = ("T_ACTION_HELLO", LogLevel.INFO)
    T_ACTION_DONE = ("T_ACTION_DONE", LogLevel.SUCCESS)
    T_ACTION_CAREFUL = ("T_ACTION_CAREFUL", LogLevel.WARNING)
    T_ACTION_RED = ("T_ACTION_RED", LogLevel.DANGER)
    T_ACTION_BROKEN = ("T_ACTION_BROKEN", LogLevel.ERROR)
    T_ACTION_FATAL = ("T_ACTION_FATAL", LogLevel.CRITICAL)
    T_ACTION_TRACE = ("T_ACTION_TRACE", LogLevel.DEBUG)
    T_ACTION_STEP_FAILED = ("T_ACTION_STEP_FAILED", LogLevel.ERROR)
    T_ACTION_UNKNOWN = ("T_ACTION_UNKNOWN", LogLevel.ERROR)


register_log_messages(
    {
        _Code.T_ACTION_HELLO: {"en": "Hello {name}.", "ko": "안녕하세요 {name}."},
        _Code.T_ACTION_DONE: {"en": "Done.", "ko": "완료."},
        _Code.T_ACTION_CAREFUL: {"en": "Careful: {what}.", "ko": "주의: {what}."},
        _Code.T_ACTION_RED: {"en": "Red.", "ko": "빨강."},
        _Code.T_ACTION_BROKEN: {"en": "Broken ({error}).", "ko": "고장 ({error})."},
        _Code.T_ACTION_FATAL: {"en": "Fatal.", "ko": "치명적."},
        _Code.T_ACTION_TRACE: {"en": "Trace.", "ko": "추적."},
        _Code.T_ACTION_STEP_FAILED: {"en": "Step {step} failed.", "ko": "{step} 단계 실패."},
        _Code.T_ACTION_UNKNOWN: {"en": "Unknown failure.", "ko": "알 수 없는 실패."},
    }
)


class _Params(BaseModel):
    count: int = Field(ge=1)
    language: str | None = None


class _Action(BaseAction[_Params]):
    params_model = _Params
    step_failed_code = _Code.T_ACTION_STEP_FAILED
    unclassified_failure_code = _Code.T_ACTION_UNKNOWN

    def run(self) -> int:
        return self.params.count * 2

    def classify_failure(self, exc: BaseException) -> LogMessageCode | None:
        return _Code.T_ACTION_BROKEN if isinstance(exc, KeyError) else None


class _Free(BaseAction):  # type: ignore[type-arg]
    def run(self) -> Any:
        return self.params.ids


def _events(job_dir: Path) -> list[dict[str, Any]]:
    return list(read_job_log(job_dir / JOB_LOG_FILENAME))


# -- params ---------------------------------------------------------------------------------


def test_params_are_validated_into_the_model(tmp_path: Path) -> None:
    action = _Action({"count": 3}, job_dir=tmp_path)
    assert isinstance(action.params, _Params)
    assert action.run() == 6
    same = _Action(_Params(count=2), job_dir=tmp_path)
    assert same.params.count == 2


def test_bad_params_raise_validation_error_which_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        _Action({"count": 0}, job_dir=tmp_path)
    assert isinstance(info.value, ValueError)
    with pytest.raises(TypeError, match="mapping"):
        _Action([("count", 1)], job_dir=tmp_path)  # type: ignore[arg-type]


def test_action_without_model_accepts_any_keyword_as_attribute(tmp_path: Path) -> None:
    action = _Free({"ids": [1, 2]}, job_dir=tmp_path)
    assert isinstance(action.params, FreeParams)
    assert action.run() == [1, 2]


def test_config_must_be_an_sdk_config(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="SDKConfig"):
        _Action({"count": 1}, job_dir=tmp_path, config={"backend_url": "x"})  # type: ignore[arg-type]


# -- log_message ----------------------------------------------------------------------------


def test_log_message_writes_a_structured_json_line(tmp_path: Path) -> None:
    times = iter([100.0, 101.0])
    with _Action({"count": 1}, job_dir=tmp_path, clock=lambda: next(times)) as action:
        event = action.log_message(_Code.T_ACTION_HELLO, name="Ada")
        action.log_message(_Code.T_ACTION_DONE)
    assert event.text == "Hello Ada."
    (first, second) = _events(tmp_path)
    assert first == {
        "ts": 100.0,
        "action": "_Action",
        "code": "T_ACTION_HELLO",
        "level": "info",
        "params": {"name": "Ada"},
        "text": "Hello Ada.",
        "language": None,
    }
    assert (second["code"], second["level"], second["ts"]) == ("T_ACTION_DONE", "success", 101.0)


@pytest.mark.parametrize(
    ("code", "level"),
    [
        (_Code.T_ACTION_TRACE, logging.DEBUG),
        (_Code.T_ACTION_HELLO, logging.INFO),
        (_Code.T_ACTION_DONE, logging.INFO),
        (_Code.T_ACTION_CAREFUL, logging.WARNING),
        (_Code.T_ACTION_RED, logging.ERROR),
        (_Code.T_ACTION_BROKEN, logging.ERROR),
        (_Code.T_ACTION_FATAL, logging.CRITICAL),
    ],
)
def test_stdlib_logging_level_is_mapped_from_the_code_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, code: LogMessageCode, level: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="synapse_sdk.plugins.action")
    with _Action({"count": 1}, job_dir=tmp_path) as action:
        action.log_message(code, name="x", what="y", error="z")
    (record,) = [r for r in caplog.records if r.name == "synapse_sdk.plugins.action"]
    assert record.levelno == level
    assert record.code == code.value  # type: ignore[attr-defined]
    assert record.log_level == code.level.value  # type: ignore[attr-defined]
    assert record.event == "synapse_sdk.plugins.action.message"  # type: ignore[attr-defined]


def test_console_shows_the_text_unless_quiet(tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    with _Action({"count": 1}, job_dir=tmp_path, console=console) as action:
        action.log_message(_Code.T_ACTION_CAREFUL, what="[bold]markup is not interpreted[/]")
        action.log_message(_Code.T_ACTION_HELLO, quiet=True, name="hidden")
    out = buffer.getvalue()
    assert "Careful: [bold]markup is not interpreted[/]." in out
    assert "hidden" not in out
    assert len(_events(tmp_path)) == 2  # quiet events still reach the job log


def test_secret_parameters_never_reach_log_console_or_stdlib(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    with _Action({"count": 1}, job_dir=tmp_path, console=console) as action:
        action.log_message(
            _Code.T_ACTION_HELLO,
            name="{token}",
            token=SECRET,
            nested={"api_key": SECRET, "fine": 1},
        )
    text = (tmp_path / JOB_LOG_FILENAME).read_text(encoding="utf-8")
    assert SECRET not in text
    assert SECRET not in buffer.getvalue()
    assert SECRET not in caplog.text
    assert all(SECRET not in repr(r.__dict__) for r in caplog.records)
    (event,) = _events(tmp_path)
    assert event["params"]["token"] == "[redacted]"
    assert event["params"]["nested"] == {"api_key": "[redacted]", "fine": 1}


def test_params_that_are_not_json_are_written_as_text(tmp_path: Path) -> None:
    with _Action({"count": 1}, job_dir=tmp_path) as action:
        action.log_message(_Code.T_ACTION_HELLO, name=Path("/x"), ids={3}, big=list(range(500)))
    (event,) = _events(tmp_path)
    assert event["params"]["name"] == "/x"
    assert event["params"]["ids"] == [3]
    assert len(event["params"]["big"]) == 100  # bounded


def test_control_characters_from_params_are_escaped_on_the_terminal_and_in_stdlib_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A backend-chosen value (an item id) cannot clear the screen or forge a log line; the JSON
    job log keeps the exact text (JSON escapes it)."""
    import io

    from rich.console import Console

    hostile = "x\x1b[2J\r\nFAKE LINE\x9b"
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    caplog.set_level(logging.INFO, logger="synapse_sdk.plugins.action")
    with _Action({"count": 1}, job_dir=tmp_path, console=console) as action:
        event = action.log_message(_Code.T_ACTION_HELLO, name=hostile)
    assert event.text == f"Hello {hostile}."
    assert _events(tmp_path)[0]["text"] == f"Hello {hostile}."
    (record,) = [r for r in caplog.records if r.name == "synapse_sdk.plugins.action"]
    for shown in (record.getMessage(), out.getvalue().rstrip("\n")):
        assert shown == "Hello x\\x1b[2J\\r\\nFAKE LINE\\x9b."
        assert shown.isprintable()


def test_log_message_refuses_a_non_code(tmp_path: Path) -> None:
    with _Action({"count": 1}, job_dir=tmp_path) as action, pytest.raises(TypeError):
        action.log_message("T_ACTION_HELLO")  # type: ignore[arg-type]


def test_read_job_log_skips_a_line_cut_by_a_kill(tmp_path: Path) -> None:
    path = tmp_path / JOB_LOG_FILENAME
    path.write_text('{"code": "A"}\nnot json\n{"code": "B"}\n{"code": "C", "te', encoding="utf-8")
    assert [e["code"] for e in read_job_log(path)] == ["A", "B"]


# -- language -------------------------------------------------------------------------------


def test_language_chain_explicit_params_config_env_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNAPSE_LANGUAGE", raising=False)
    default = _Action({"count": 1}, job_dir=tmp_path / "a")
    assert default.log_message(_Code.T_ACTION_DONE).text == "Done."
    monkeypatch.setenv("SYNAPSE_LANGUAGE", "ko")
    from_env = _Action({"count": 1}, job_dir=tmp_path / "b")
    assert from_env.log_message(_Code.T_ACTION_DONE).text == "완료."
    from_config = _Action({"count": 1}, job_dir=tmp_path / "c", config=SDKConfig(language="en"))
    assert from_config.log_message(_Code.T_ACTION_DONE).text == "Done."
    from_params = _Action(
        {"count": 1, "language": "ko"}, job_dir=tmp_path / "d", config=SDKConfig(language="en")
    )
    assert from_params.log_message(_Code.T_ACTION_DONE).text == "완료."
    explicit = _Action({"count": 1, "language": "ko"}, job_dir=tmp_path / "e", language="en")
    assert explicit.log_message(_Code.T_ACTION_DONE).text == "Done."
    regional = _Action({"count": 1}, job_dir=tmp_path / "f", language="ko_KR.UTF-8")
    assert regional.language == "ko-KR"
    event = regional.log_message(_Code.T_ACTION_HELLO, name="민준")
    assert event.text == "안녕하세요 민준."
    assert event.language == "ko-KR"
    for action in (default, from_env, from_config, from_params, explicit, regional):
        action.close()


def test_bad_language_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="language tag"):
        _Action({"count": 1}, job_dir=tmp_path, language="!!")


# -- failed ids and the ledger --------------------------------------------------------------


def test_extract_failed_reads_backend_error_failed_ids(tmp_path: Path) -> None:
    exc = BackendError("partial", error_code="partial_failure", failed_ids=[3, "x", 9])
    with _Action({"count": 1}, job_dir=tmp_path) as action:
        assert action._extract_failed(exc) == [3, "x", 9]


def test_extract_failed_walks_the_chain(tmp_path: Path) -> None:
    inner = BackendRateLimitError("slow down", failed_ids=[5])
    try:
        try:
            raise inner
        except BackendError as exc:
            raise RuntimeError("step failed") from exc
    except RuntimeError as outer:
        with _Action({"count": 1}, job_dir=tmp_path) as action:
            assert action._extract_failed(outer) == [5]


def test_extract_failed_finds_an_envelope_in_a_plain_message(tmp_path: Path) -> None:
    exc = ValueError(
        'bulk fetch failed: {"error": {"code": "partial_failure", '
        '"failed": [{"id": 7, "code": "item_unavailable", "retryable": true}, {"id": 8}]}}'
    )
    with _Action({"count": 1}, job_dir=tmp_path) as action:
        assert action._extract_failed(exc) == [7, 8]
        assert action._extract_failed(KeyError("nothing here")) == []


def test_extract_failed_survives_a_hostile_envelope_attribute(tmp_path: Path) -> None:
    class RaisingEnvelope(Exception):
        @property
        def envelope(self) -> object:
            raise RuntimeError("no")

    class OddEnvelope(Exception):
        envelope = "not an envelope"

    text = '{"error": {"code": "partial_failure", "failed": [{"id": 4, "retryable": true}]}}'
    with _Action({"count": 1}, job_dir=tmp_path) as action:
        assert action._extract_failed(RaisingEnvelope(text)) == [4]  # the message still counts
        assert action._extract_failed(OddEnvelope(text)) == [4]  # falls back to the message


def test_extract_failed_survives_an_exception_whose_str_raises(tmp_path: Path) -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    with _Action({"count": 1}, job_dir=tmp_path) as action:
        assert action._extract_failed(Hostile()) == []


def test_enqueue_retry_is_durable_in_the_job_folder(tmp_path: Path) -> None:
    with _Action({"count": 1}, job_dir=tmp_path) as action:
        assert action._enqueue_retry(failed_ids=[1, 2, 2], code="item_unavailable") == 2
        assert action.ledger.path.parent == tmp_path
    with Ledger(tmp_path) as ledger:
        assert [(r.id, r.state, r.code) for r in ledger.iter_pending()] == [
            (1, "pending", "item_unavailable"),
            (2, "pending", "item_unavailable"),
        ]


def test_enqueue_retry_rejects_bad_ids(tmp_path: Path) -> None:
    with _Action({"count": 1}, job_dir=tmp_path) as action, pytest.raises(TypeError):
        action._enqueue_retry(failed_ids=[1.5])  # type: ignore[list-item]


# -- steps ----------------------------------------------------------------------------------


def test_step_failure_is_classified_logged_and_raised_from_its_cause(tmp_path: Path) -> None:
    cause = KeyError("annotations")
    action = _Action({"count": 1}, job_dir=tmp_path)
    with action, pytest.raises(ActionStepError) as info, action.step("convert"):
        raise cause
    error = info.value
    assert error.__cause__ is cause
    assert error.step == "convert"
    assert (error.action, error.message_code) == ("_Action", _Code.T_ACTION_BROKEN)
    assert "convert" in str(error)
    codes = [(e["code"], e["params"].get("step")) for e in _events(tmp_path)]
    assert codes == [("T_ACTION_BROKEN", "convert"), ("T_ACTION_STEP_FAILED", "convert")]


def test_unclassified_step_failure_uses_the_fallback_code(tmp_path: Path) -> None:
    action = _Action({"count": 1}, job_dir=tmp_path)
    with action, pytest.raises(ActionStepError) as info, action.step("save"):
        raise OSError("disk")
    assert info.value.message_code is None
    assert [e["code"] for e in _events(tmp_path)] == ["T_ACTION_UNKNOWN", "T_ACTION_STEP_FAILED"]


def test_nested_step_failure_is_logged_once(tmp_path: Path) -> None:
    action = _Action({"count": 1}, job_dir=tmp_path)
    with action, pytest.raises(ActionStepError) as info, action.step("outer"), action.step("in"):
        raise KeyError("x")
    assert info.value.step == "in"
    assert len(_events(tmp_path)) == 2


def test_keyboard_interrupt_is_not_a_step_failure(tmp_path: Path) -> None:
    action = _Action({"count": 1}, job_dir=tmp_path)
    with action, pytest.raises(KeyboardInterrupt), action.step("fetch"):
        raise KeyboardInterrupt
    assert not (tmp_path / JOB_LOG_FILENAME).exists() or _events(tmp_path) == []


def test_action_step_error_pickles() -> None:
    error = ActionStepError("fetch", "ExportAction", _Code.T_ACTION_BROKEN)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.step, copy.action) == ("fetch", "ExportAction")
    assert copy.message_code is _Code.T_ACTION_BROKEN


# -- client and lifecycle -------------------------------------------------------------------


def test_v2_client_needs_a_backend(tmp_path: Path) -> None:
    action = _Action({"count": 1}, job_dir=tmp_path)
    with action, pytest.raises(ValueError, match="backend"):
        _ = action.v2_client


def test_v2_client_is_built_once_from_config_and_closed_with_the_action(tmp_path: Path) -> None:
    config = SDKConfig(backend_url="http://127.0.0.1:9", token=SECRET)
    action = _Action({"count": 1}, job_dir=tmp_path, config=config)
    client = action.v2_client
    assert action.v2_client is client
    assert SECRET not in repr(client)
    action.close()
    assert action._v2_client is None
    action.close()  # idempotent


def test_injected_client_is_used_and_not_closed(tmp_path: Path) -> None:
    class Client:
        closed = False

        def close(self) -> None:
            self.closed = True

    injected = Client()
    action = _Action({"count": 1}, job_dir=tmp_path, v2_client=injected)  # type: ignore[arg-type]
    assert action.v2_client is injected
    action.close()
    assert not injected.closed


def test_default_job_dir_is_a_fresh_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with _Action({"count": 1}) as action:
        first = action.job_dir
        assert first.is_dir() and first == action.job_dir
        assert first.parent == tmp_path
        action.log_message(_Code.T_ACTION_DONE)
        assert json.loads((first / JOB_LOG_FILENAME).read_text())["code"] == "T_ACTION_DONE"
