"""Ctrl-C that no subcommand handles itself (one landing while click still parses options) ends
``synapse`` with the shell's 130 and one localized line, never click's "Aborted!" and exit 1."""

from __future__ import annotations

from typing import Any, NoReturn

import click
import pytest

from synapse_sdk.cli import main
from synapse_sdk.cli._common import EXIT_INTERRUPTED, SynapseCommand


def _ctrl_c(*args: Any, **kwargs: Any) -> NoReturn:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["messages"], "Interrupted."),
        (["messages", "--lang", "ko"], "중단되었습니다."),
        (["classify", "--lang=ko", "boom"], "중단되었습니다."),
    ],
)
def test_ctrl_c_while_parsing_options_exits_130(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    line: str,
) -> None:
    monkeypatch.setattr(SynapseCommand, "parse_args", _ctrl_c)
    with pytest.raises(SystemExit) as exited:
        main.main(args, prog_name="synapse")
    assert exited.value.code == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "Aborted" not in err and "Traceback" not in err
    assert err.strip().splitlines() == [line]


def test_ctrl_c_in_the_groups_own_parsing_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(click.Group, "parse_args", _ctrl_c)
    with pytest.raises(SystemExit) as exited:
        main.main(["--version"], prog_name="synapse")
    assert exited.value.code == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "Interrupted."


def test_a_mistake_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main.main(["messages", "--no-such-option"], prog_name="synapse")
    assert exited.value.code == 2
