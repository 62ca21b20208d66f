"""``synapse export``: export a project's tasks, assignments or ground truths to a folder.

Without ``--backend`` it starts the embedded emulator (the demo project, the ``mild`` fault
profile) so a first run shows rate limits and partial failures being handled. Rerunning over the
same ``--out`` resumes: exported items are skipped and the ledger's pending items retried.

Exit codes: 0 every item exported; 3 the export finished but items remain failed (each reported
with its code); 4 the backend refused the credentials; 1 the export stopped on another error
(what was done is kept: rerun to resume); 2 a usage error; 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from synapse_sdk.cli.classify import _make_stdout_tolerant
from synapse_sdk.cli.emulator import check_faults

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from synapse_sdk.emulator import Emulator
    from synapse_sdk.plugins.actions.export.action import ExportProgress, ExportSummary

__all__ = [
    "EXIT_ABORTED",
    "EXIT_AUTH",
    "EXIT_INTERRUPTED",
    "EXIT_ITEMS_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "export",
]

EXIT_OK: Final = 0
EXIT_ABORTED: Final = 1
EXIT_USAGE: Final = 2
EXIT_ITEMS_FAILED: Final = 3
EXIT_AUTH: Final = 4
EXIT_INTERRUPTED: Final = 130

#: Labels of the summary table and the CLI's own lines, per language (messages of the export
#: itself come from the export log-message templates).
_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Export summary",
        "field": "",
        "value": "",
        "target": "target",
        "out_dir": "output folder",
        "exported": "exported",
        "skipped": "skipped (already exported)",
        "failed": "failed",
        "retried": "items retried",
        "retry_rounds": "retry rounds",
        "requests": "requests sent",
        "rate_limited": "rate-limited answers",
        "duration": "duration (s)",
        "failed_code": "failed: {code}",
        "emulator": "Using the embedded emulator at {url} ({items} items per resource; faults: "
        "{faults}). Pass --backend URL --token T to export from a real backend.",
        "progress": "Exporting {target}",
        "interrupted": "Interrupted. Run the same command again to resume.",
        "resume": "Run the same command again to resume; exported items are kept.",
        "busy": "Another export is running over this folder.",
    },
    "ko": {
        "title": "내보내기 요약",
        "field": "",
        "value": "",
        "target": "대상",
        "out_dir": "출력 폴더",
        "exported": "내보냄",
        "skipped": "건너뜀 (이미 내보냄)",
        "failed": "실패",
        "retried": "재시도한 항목",
        "retry_rounds": "재시도 횟수",
        "requests": "보낸 요청",
        "rate_limited": "요청 제한 응답",
        "duration": "소요 시간 (초)",
        "failed_code": "실패: {code}",
        "emulator": "내장 에뮬레이터를 사용합니다: {url} (리소스별 {items}건, 장애 프로필: "
        "{faults}). 실제 백엔드에서 내보내려면 --backend URL --token T 를 지정하세요.",
        "progress": "{target} 내보내는 중",
        "interrupted": "중단되었습니다. 같은 명령을 다시 실행하면 이어서 진행합니다.",
        "resume": "같은 명령을 다시 실행하면 이어서 진행합니다. 이미 내보낸 항목은 유지됩니다.",
        "busy": "이 폴더에서 다른 내보내기가 실행 중입니다.",
    },
}


def _labels(language: str) -> dict[str, str]:
    from synapse_sdk.i18n import locale_candidates

    for candidate in locale_candidates(language):
        if candidate in _LABELS:
            return _LABELS[candidate]
    return _LABELS["en"]


def _check_language(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    from synapse_sdk.i18n import normalize_language, resolve_language

    try:
        return resolve_language() if value is None else normalize_language(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


@click.command()
@click.option(
    "--target",
    type=click.Choice(["tasks", "assignments", "ground-truths"]),
    default="tasks",
    show_default=True,
    help="What to export.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder; running again over it resumes.",
)
@click.option("--backend", default=None, metavar="URL", help="Backend URL (default: emulator).")
@click.option(
    "--token",
    envvar="SYNAPSE_TOKEN",
    default=None,
    show_envvar=True,
    metavar="TOKEN",
    help="Access token (syn_…) for --backend. Prefer the environment variable: it stays out "
    "of ps.",
)
@click.option(
    "--tenant",
    envvar="SYNAPSE_TENANT",
    default=None,
    show_envvar=True,
    metavar="CODE",
    help="Tenant code for --backend (sent as SYNAPSE-Tenant).",
)
@click.option(
    "--token-kind",
    type=click.Choice(["access", "drf"]),
    default="access",
    show_default=True,
    help="How --token is sent: access (SYNAPSE-ACCESS-TOKEN) or drf (legacy Authorization: "
    "Token).",
)
@click.option(
    "--lang",
    "language",
    callback=_check_language,
    metavar="TAG",
    help="Language of the messages: en, ko, ko-KR... [default: $SYNAPSE_LANGUAGE, then en]",
)
@click.option(
    "--faults",
    default=None,
    callback=check_faults,
    metavar="PROFILE",
    help="Fault profile of the embedded emulator: none, mild (default), heavy, or overrides "
    "such as 'heavy,drop_rate=0'.",
)
@click.option(
    "--items",
    default=None,
    type=click.IntRange(1, 1_000_000),
    help="Items per resource in the embedded emulator [default: 2000].",
)
@click.option("--seed", default=None, type=int, help="Seed of the embedded emulator [default: 0].")
@click.option(
    "--retry-rounds",
    default=6,
    show_default=True,
    type=click.IntRange(0, 10),
    help="How many times an item that failed retryably is fetched again.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def export(
    target: str,
    out_dir: Path,
    backend: str | None,
    token: str | None,
    tenant: str | None,
    token_kind: str,
    language: str,
    faults: str | None,
    items: int | None,
    seed: int | None,
    retry_rounds: int,
    as_json: bool,
) -> None:
    """Export every --target item (its JSON record and original file) into --out, exactly once.

    Exit codes: 0 all exported, 3 some items failed (reported with their codes), 4 the
    credentials were refused, 1 stopped on another error (rerun to resume), 2 usage error.
    """
    _make_stdout_tolerant()
    if backend is not None:
        given = [name for name, value in (("--faults", faults), ("--items", items),
                                          ("--seed", seed)) if value is not None]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} only apply to the embedded emulator, not with --backend"
            )
        if not token:
            raise click.UsageError("--backend needs a token: --token T or SYNAPSE_TOKEN")
        if not tenant:
            raise click.UsageError(
                "--backend needs a tenant: --tenant CODE or SYNAPSE_TENANT "
                "(the backend refuses requests without one)"
            )
    labels = _labels(language)
    emulator: Emulator | None = None
    if backend is None:
        emulator = _start_emulator(items, seed, faults)
        backend, token, tenant, token_kind = (
            emulator.url, emulator.token, emulator.tenant, "access"
        )
    try:
        code = _run(
            target=target,
            out_dir=out_dir,
            backend=backend,
            token=token,
            tenant=tenant,
            token_kind=token_kind,
            language=language,
            retry_rounds=retry_rounds,
            as_json=as_json,
            labels=labels,
            emulator=emulator,
        )
    finally:
        if emulator is not None:
            emulator.stop()
    sys.exit(code)


def _start_emulator(items: int | None, seed: int | None, faults: str | None) -> Emulator:
    from synapse_sdk.emulator import DEFAULT_ITEMS

    try:
        from synapse_sdk.emulator import Emulator

        return Emulator(
            items=DEFAULT_ITEMS if items is None else items,
            seed=0 if seed is None else seed,
            faults="mild" if faults is None else faults,
        ).start()
    except (OSError, RuntimeError, ValueError) as exc:
        raise click.ClickException(f"cannot start the embedded emulator: {exc}") from exc


def _run(
    *,
    target: str,
    out_dir: Path,
    backend: str,
    token: str | None,
    tenant: str | None,
    token_kind: str,
    language: str,
    retry_rounds: int,
    as_json: bool,
    labels: dict[str, str],
    emulator: Emulator | None,
) -> int:
    from pydantic import ValidationError
    from rich.console import Console

    from synapse_sdk.config import SDKConfig
    from synapse_sdk.exceptions import AuthenticationError
    from synapse_sdk.failures import walk_chain
    from synapse_sdk.plugins.action import ActionStepError
    from synapse_sdk.plugins.actions.export.action import ExportAction, JobLockedError
    from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
    from synapse_sdk.plugins.log_messages import resolve_log_message

    err = Console(stderr=True, highlight=False)
    interactive = err.is_terminal and not as_json
    if emulator is not None and not as_json:
        err.print(
            labels["emulator"].format(
                url=emulator.url, items=emulator.items, faults=emulator.faults.describe()
            ),
            markup=False,
        )
    total = emulator.items if emulator is not None else None
    progress = _progress(err, labels["progress"].format(target=target), total, interactive)
    try:
        config = SDKConfig(
            backend_url=backend,
            token=token,
            tenant=tenant,
            token_kind="drf" if token_kind == "drf" else "access",
            language=language,
        )
        action = ExportAction(
            {
                "target": target,
                "out_dir": out_dir,
                "language": language,
                "retry_rounds": retry_rounds,
            },
            config=config,
            console=None if as_json else (progress.console if progress is not None else err),
            on_progress=progress.update_from if progress is not None else None,
        )
    except (ValidationError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        with action:
            if progress is not None:
                progress.start()
            try:
                summary = action.run()
            finally:
                if progress is not None:
                    progress.stop()
    except ActionStepError as exc:
        chain = walk_chain(exc)
        auth = any(isinstance(e, AuthenticationError) for e in chain)
        code = exc.message_code or ExportLogMessageCode.EXPORT_FAILED
        if auth and code is not ExportLogMessageCode.EXPORT_FAILED_TLS:
            code = ExportLogMessageCode.EXPORT_FAILED_AUTHENTICATION
        message = resolve_log_message(code, language).text
        exit_code = EXIT_AUTH if auth else EXIT_ABORTED
        _fail(as_json, err, code.value, message, exit_code, exc.step,
              None if auth else labels["resume"])
        return exit_code
    except JobLockedError as exc:
        _fail(as_json, err, "job_locked", f"{labels['busy']} ({exc})", EXIT_ABORTED, None, None)
        return EXIT_ABORTED
    except KeyboardInterrupt:
        err.print(labels["interrupted"], markup=False)
        return EXIT_INTERRUPTED
    _print_summary(summary, as_json, labels)
    return EXIT_OK if summary.ok else EXIT_ITEMS_FAILED


def _fail(
    as_json: bool,
    err: Console,
    code: str,
    message: str,
    exit_code: int,
    step: str | None,
    hint: str | None,
) -> None:
    """Report an export that stopped: a JSON object on stdout, or the message on stderr."""
    if as_json:
        click.echo(
            json.dumps(
                {"ok": False, "exit_code": exit_code,
                 "error": {"code": code, "message": message, "step": step}},
                ensure_ascii=False,
            )
        )
    err.print(f"Error: {message}", markup=False, style="bold red")
    if hint is not None:
        err.print(hint, markup=False)


def _print_summary(summary: ExportSummary, as_json: bool, labels: dict[str, str]) -> None:
    if as_json:
        click.echo(json.dumps({**summary.as_dict(), "exit_code": _exit_code(summary)},
                              ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=labels["title"], title_justify="left", show_header=False)
    table.add_column(labels["field"])
    table.add_column(labels["value"], justify="right")
    data = summary.as_dict()
    for key in ("target", "out_dir", "exported", "skipped", "failed"):
        table.add_row(labels[key], str(data[key]))
    for code, count in sorted(summary.failed_by_code.items()):
        table.add_row(labels["failed_code"].format(code=code), str(count))
    for key in ("retried", "retry_rounds", "requests", "rate_limited", "duration"):
        table.add_row(labels[key], str(data[key]))
    Console(highlight=False).print(table)


def _exit_code(summary: ExportSummary) -> int:
    return EXIT_OK if summary.ok else EXIT_ITEMS_FAILED


class _Progress:
    """A rich progress bar on stderr fed by the export's progress callback."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self.console = progress.console

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def update_from(self, state: ExportProgress) -> None:
        self._progress.update(self._task, completed=state.done)


def _progress(err: Console, description: str, total: int | None, enabled: bool) -> _Progress | None:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    task = progress.add_task(description, total=total)
    return _Progress(progress, task)

