"""Korean that is Korean throughout: every registered template rendered in ko holds no Latin word
but codes, ids, option names, units and the acronyms Korean technical writing keeps; particles
agree with the word before them; and the CLI's own lines (the lock message, step and target
names, click's Usage:/Error: lines, table headers) are Korean with ``--lang ko``."""

from __future__ import annotations

import fcntl
import re
import subprocess
from pathlib import Path

import pytest

from synapse_sdk.cli._common import _TEXT
from synapse_sdk.cli.export import _LABELS, EXIT_ABORTED, EXIT_OK
from synapse_sdk.emulator import Emulator
from synapse_sdk.i18n import template_fields
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.log_messages import (
    LogMessageCode,
    registered_codes,
    resolve_log_message,
    templates_for,
)
from synapse_testkit.cli import run_synapse

for _name in CATEGORY_NAMES:
    get_category(_name)  # registers the category's templates

CODES: tuple[LogMessageCode, ...] = registered_codes()

#: Latin words Korean technical writing keeps as they are.
ACRONYMS = frozenset({"ID", "URL", "TLS", "CA", "GPU", "CPU", "API", "JSON", "HTTP", "HTTPS",
                      "NaN", "SHA", "ASCII", "OOM"})
#: Units, after a number.
UNITS = frozenset({"s", "ms", "MB", "GB", "KB", "B", "px"})
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]*")
#: Values a template's fields are rendered with: real step and target names (translated
#: terms), a backend code, an id, numbers.
_VALUES = {"step": "fetch", "target": "tasks", "code": "item_corrupted",
           "reason": "service_unavailable", "item_id": 42, "error": "TimeoutError"}


def _allowed(word: str) -> bool:
    return (
        word in ACRONYMS
        or word in UNITS
        or "_" in word  # a code: item_corrupted, EXPORT_FAILED
        or (word.isupper() and len(word) > 1)
        or word.endswith("Error")  # an exception type name
        or bool(re.fullmatch(r"v\d+", word))  # an API version
    )


def _latin_words(text: str) -> list[str]:
    text = re.sub(r"--[a-z][a-z-]*", "", text)  # option names
    text = re.sub(r"https?://\S+", "", text)
    return [w for w in _LATIN.findall(text) if not _allowed(w)]


@pytest.mark.parametrize("code", CODES, ids=[c.value for c in CODES])
def test_every_template_renders_korean_in_ko(code: LogMessageCode) -> None:
    templates = templates_for(code)
    assert "ko" in templates, f"{code.value} has no Korean template"
    params = {name: _VALUES.get(name, 3) for name in template_fields(templates["ko"])}
    for step in ("initialize", "fetch", "convert", "save", "finalize"):
        if "step" in params:
            params["step"] = step
        text = resolve_log_message(code, "ko", **params).text
        assert _latin_words(text) == [], text


_PARTICLE = re.compile(
    r"(.)(을\(를\)|를\(을\)|이\(가\)|가\(이\)|은\(는\)|는\(은\)|와\(과\)|과\(와\)|\(으\)로)"
)
_SPACED = re.compile(r"--[a-z][a-z-]*(?: [A-Z]+)? (을|를|이|가|은|는|으로|로|와|과|에|의)(?=\W|$)")


def _korean_texts() -> list[str]:
    texts = [t for code in CODES for tag, t in templates_for(code).items() if tag == "ko"]
    return texts + list(_LABELS["ko"].values()) + list(_TEXT["ko"].values())


def test_particles_agree_with_the_word_before_them() -> None:
    """A double particle (을(를)) only after a value whose last sound is unknown (a field or a
    quoted name); never a space between an option name and its particle."""
    for text in _korean_texts():
        for before, particle in _PARTICLE.findall(text):
            assert before in "}'\")", f"{particle} after a known word in {text!r}"
        assert not _SPACED.search(text), text


def test_the_retry_counts_read_clearly() -> None:
    assert "재시도 횟수" not in _LABELS["ko"].values()
    assert _LABELS["ko"]["retry_rounds"] != _LABELS["ko"]["retried"]


def synapse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_synapse(*args, language="ko", env=env)


def test_an_export_in_korean_names_its_target_in_korean(tmp_path: Path) -> None:
    result = synapse(
        "export", "--out", str(tmp_path), "--items", "5", "--faults", "none",
        env={"COLUMNS": "200"},
    )
    assert result.returncode == EXIT_OK
    assert "작업 내보내기를 시작합니다." in result.stderr
    assert "│ 대상" in result.stdout and "작업" in result.stdout
    assert "tasks" not in result.stdout.split("출력 폴더")[0]


def test_the_embedded_emulator_banner_describes_its_faults_in_korean(tmp_path: Path) -> None:
    result = synapse("export", "--out", str(tmp_path), "--items", "3", "--faults", "mild")
    assert result.returncode == EXIT_OK, result.stderr
    banner = result.stderr.split("내보내기를 준비했습니다.")[0]
    assert "요청 제한 초당 1건" in banner
    assert "retryable" not in banner and "rate limit" not in banner


def test_a_failed_step_is_named_in_korean(tmp_path: Path) -> None:
    with Emulator(items=5) as emu:
        url = emu.url  # nobody listens there once it stopped
    result = synapse("export", "--out", str(tmp_path), "--backend", url, "--token", "t")
    assert result.returncode == EXIT_ABORTED
    assert "'가져오기' 단계" in result.stderr
    assert "오류: " in result.stderr and "Error:" not in result.stderr
    assert "fetch" not in result.stderr


def test_the_lock_message_is_korean(tmp_path: Path) -> None:
    job = tmp_path / ".synapse-export" / "tasks"
    job.mkdir(parents=True)
    with open(job / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = synapse("export", "--out", str(tmp_path), "--items", "5", "--faults", "none")
    assert result.returncode == EXIT_ABORTED
    assert "다른 내보내기가 실행 중입니다" in result.stderr
    assert "another export" not in result.stderr.lower()


def test_classify_table_headers_are_korean(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("TimeoutError: read timed out\n")
    result = synapse("classify", str(log))
    assert result.returncode == EXIT_OK
    assert "코드" in result.stdout and "건수" in result.stdout and "합계" in result.stdout
    assert "count" not in result.stdout and "total" not in result.stdout
