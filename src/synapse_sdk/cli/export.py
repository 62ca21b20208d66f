"""``synapse export``: export a project's tasks, assignments or ground truths to a folder.

Without ``--backend`` it starts the embedded emulator (the demo project, the ``mild`` fault
profile) so a first run shows rate limits and partial failures being handled. Rerunning over the
same ``--out`` resumes: exported items are skipped and the ledger's pending items retried.

Exit codes: 0 every item exported; 3 the export finished but items remain failed (each reported
with its code); 4 the backend refused the credentials; 1 the export stopped on another error
(what was done is kept: rerun to resume); 2 a usage error; 130 interrupted.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import click

from synapse_sdk.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ByteSize,
    SynapseCommand,
    cli_text,
    lang_option,
    make_stdout_tolerant,
)
from synapse_sdk.cli.emulator import check_faults

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from synapse_sdk.clients.list_filters import ListFilter
    from synapse_sdk.config import TokenKind
    from synapse_sdk.emulator import Emulator
    from synapse_sdk.plugins.actions.export.action import ExportProgress, ExportSummary
    from synapse_sdk.plugins.actions.export.exporter import BaseExporter
    from synapse_sdk.plugins.job_reporter import JobReporter

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
EXIT_ITEMS_FAILED: Final = 3
EXIT_AUTH: Final = 4

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
        "retried": "item fetches repeated (after a failure)",
        "retry_rounds": "retry requests (after the main pass)",
        "requests": "requests sent",
        "rate_limited": "rate-limited answers",
        "duration": "duration (s)",
        "executor": "executor",
        "workers": "workers",
        "failed_code": "failed: {code}",
        "emulator": "Using the embedded emulator at {url} ({items} items per resource; faults: "
        "{faults}). Pass --backend URL --token T to export from a real backend.",
        "progress": "Exporting {target}",
        "interrupted": "Interrupted. Run the same command again to resume.",
        "resume": "Run the same command again to resume; exported items are kept.",
        "busy": "Another export is running over {out} ({target}): wait for it to end or choose "
        "another folder.",
        "failed_step": "(the '{step}' step)",
        "bad_backend": "--backend {url!r} is not a backend URL ({reason}). A backend URL looks "
        "like https://backend.example.com or http://127.0.0.1:8000: http or https, a host, an "
        "optional port and path.",
        "not_backend": "{url} is not the synapse backend: its API answered 404 Not Found. "
        "Check --backend.",
        "needs_token": "--backend needs a token: --token T or SYNAPSE_TOKEN",
        "needs_tenant": "--backend needs a tenant: --tenant CODE or SYNAPSE_TENANT (the backend "
        "refuses requests without one)",
        "token_ascii": "the token holds non-ASCII characters; tokens are ASCII (letters, digits "
        "and punctuation). Check what was pasted.",
        "emulator_only": "{options} only apply to the embedded emulator, not with --backend",
        "out_empty": "it is empty: name a folder, e.g. --out ./export",
        "out_not_folder": "{path!r} exists and is not a folder",
        "out_under_file": "{path!r} cannot be a folder: {parent!r} is a file",
        "out_denied": "{path!r}: {reason}",
        "out_credentials": "{url} carries credentials in the URL, where they would be kept and "
        "shown with it: remove them and set them in the environment instead ({env})",
        "out_credentials_env": "the filesystem's own variables or configuration",
        "no_emulator": "cannot start the embedded emulator: {error}",
        "filter_form": "--filter {value!r} is not key=value (e.g. --filter status_label=completed)",
        "filter_key": "--filter {key!r} is not a filter of {target}; accepted: {keys}",
        "filter_twice": "--filter {key!r} is given twice; it takes one value",
        "filter_value": "--filter {key}: {error}",
        "kind_int": "an integer",
        "kind_number": "a number",
        "kind_bool": "true or false",
        "kind_datetime": "an RFC 3339 date-time with its offset (2026-01-01T00:00:00Z)",
        "kind_list": "{element}, several comma-separated",
        "mismatch": "{out} ({target}) was started with the filter {recorded}, not {given}. Run "
        "again with the same filter to resume, or export to another folder.",
        "no_filter": "(none)",
        "needs_ray": "--executor ray needs Ray, which is not installed: pip install '{extra}'",
        "ray_only": "{options} only apply to --executor ray",
        "ray_local": "RAY_ADDRESS is not set: started a local Ray instance for the export.",
        "local_out": "--out {out} is a local folder but the Ray cluster has {nodes} nodes: "
        "export to object storage (s3://…), or pass --shared-storage if every node mounts "
        "this folder.",
        "bad_job_id": "--job-id {value!r} is not a job id: job ids are UUIDs "
        "(such as 3f2c9a4e-1b7d-4c55-9a0e-2d6f8b1c7e90)",
        "job_sent": "Job {job}: {sent} messages sent.",
        "job_unsent": "Job {job}: {sent} messages sent; {unsent} could not be sent (the job log "
        "in {log} has every one).",
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
        "retried": "실패 후 다시 가져온 항목 수",
        "retry_rounds": "재시도 요청 수 (본 작업 이후)",
        "requests": "보낸 요청",
        "rate_limited": "요청 제한 응답",
        "duration": "소요 시간 (초)",
        "executor": "실행 방식",
        "workers": "워커 수",
        "failed_code": "실패: {code}",
        "emulator": "내장 에뮬레이터를 사용합니다: {url} (리소스별 {items}건, 장애 프로필: "
        "{faults}). 실제 백엔드에서 내보내려면 --backend URL --token T를 지정하세요.",
        "progress": "{target} 내보내는 중",
        "interrupted": "중단되었습니다. 같은 명령을 다시 실행하면 이어서 진행합니다.",
        "resume": "같은 명령을 다시 실행하면 이어서 진행합니다. 이미 내보낸 항목은 유지됩니다.",
        "busy": "이 폴더({out}, {target})에서 다른 내보내기가 실행 중입니다. 끝날 때까지 "
        "기다리거나 다른 폴더를 선택하세요.",
        "failed_step": "('{step}' 단계)",
        "bad_backend": "백엔드 URL이 아닙니다: --backend {url!r} ({reason}). 백엔드 URL은 "
        "https://backend.example.com 또는 http://127.0.0.1:8000처럼 http나 https, 호스트, "
        "선택적인 포트와 경로로 이루어집니다.",
        "not_backend": "이 주소는 synapse 백엔드가 아닙니다: {url}. API 요청에 404(찾을 수 "
        "없음)로 응답했습니다. --backend를 확인하세요.",
        "needs_token": "--backend에는 토큰이 필요합니다: --token T 또는 SYNAPSE_TOKEN",
        "needs_tenant": "--backend에는 테넌트가 필요합니다: --tenant CODE 또는 SYNAPSE_TENANT "
        "(테넌트가 없는 요청은 백엔드가 거부합니다)",
        "token_ascii": "토큰에 ASCII가 아닌 문자가 있습니다. 토큰은 ASCII 문자(영문자, 숫자, "
        "문장 부호)로만 이루어집니다. 붙여 넣은 값을 확인하세요.",
        "emulator_only": "{options} 옵션은 내장 에뮬레이터에만 쓰이며 --backend와 함께 쓸 수 "
        "없습니다.",
        "out_empty": "비어 있습니다. 폴더를 지정하세요(예: --out ./export).",
        "out_not_folder": "폴더가 아닙니다: {path!r}",
        "out_under_file": "폴더를 만들 수 없습니다: {path!r} (상위 경로가 파일입니다: {parent!r})",
        "out_denied": "{path!r}: {reason}",
        "out_credentials": "{url}: URL에 자격 증명이 들어 있습니다. URL에 넣으면 URL과 함께 "
        "저장되고 표시되므로, URL에서 빼고 환경 변수로 지정하세요({env}).",
        "out_credentials_env": "해당 파일 시스템의 환경 변수나 설정",
        "no_emulator": "내장 에뮬레이터를 시작할 수 없습니다: {error}",
        "filter_form": "키=값 형식이 아닙니다: --filter {value!r} (예: --filter "
        "status_label=completed)",
        "filter_key": "{target}에 쓸 수 없는 필터입니다: --filter {key!r}. 쓸 수 있는 필터: "
        "{keys}",
        "filter_twice": "같은 필터를 두 번 지정했습니다: --filter {key!r}. 이 필터에는 값을 "
        "하나만 지정할 수 있습니다.",
        "filter_value": "--filter {key}의 값이 올바르지 않습니다: {value!r} (필요한 값: "
        "{expected})",
        "kind_int": "정수",
        "kind_number": "숫자",
        "kind_bool": "true 또는 false",
        "kind_datetime": "시간대를 포함한 RFC 3339 날짜·시각(예: 2026-01-01T00:00:00Z)",
        "kind_list": "{element}, 여러 개는 쉼표로 구분",
        "mismatch": "이 폴더({out}, {target})는 다른 필터로 시작한 내보내기입니다(처음 필터: "
        "{recorded}, 지금 필터: {given}). 이어서 진행하려면 처음과 같은 필터로 다시 실행하고, "
        "다른 항목을 내보내려면 다른 폴더를 지정하세요.",
        "no_filter": "(없음)",
        "needs_ray": "--executor ray를 쓰려면 Ray가 필요하지만 설치되어 있지 않습니다: "
        "pip install '{extra}'",
        "ray_only": "{options} 옵션은 --executor ray와 함께 쓸 때만 적용됩니다.",
        "ray_local": "RAY_ADDRESS가 설정되지 않아 내보내기용 로컬 Ray 인스턴스를 시작했습니다.",
        "local_out": "--out으로 지정한 {out}은(는) 로컬 폴더인데, Ray 클러스터에는 노드가 "
        "{nodes}개 있습니다. 객체 스토리지(s3://…)로 내보내거나, 모든 노드가 이 폴더를 "
        "마운트하고 있다면 --shared-storage를 지정하세요.",
        "bad_job_id": "작업 ID가 아닙니다: --job-id {value!r}. 작업 ID는 "
        "3f2c9a4e-1b7d-4c55-9a0e-2d6f8b1c7e90 같은 UUID입니다.",
        "job_sent": "작업 {job}: 메시지 {sent}건을 보냈습니다.",
        "job_unsent": "작업 {job}: 메시지 {sent}건을 보냈고 {unsent}건은 보내지 못했습니다(모든 "
        "메시지는 {log}의 작업 로그에 남아 있습니다).",
    },
}


def _labels(language: str) -> dict[str, str]:
    from synapse_sdk.i18n import locale_candidates

    for candidate in locale_candidates(language):
        if candidate in _LABELS:
            return _LABELS[candidate]
    return _LABELS["en"]


def _check_out(ctx: click.Context, param: click.Parameter, value: str) -> str | Path:
    """``--out`` must name a folder (existing or not) that is not under a file; a storage URL
    stays a string (checked by the export's parameters) and carries no credentials (refused
    with exit 2: they belong in the environment, e.g. ``AWS_*``)."""
    from synapse_sdk.storage import (
        carries_credentials,
        credential_variables,
        is_url,
        redact_url,
    )

    labels = _labels(ctx.params.get("language") or "en")
    if not value.strip():
        raise click.BadParameter(labels["out_empty"], ctx=ctx, param=param)
    if is_url(value):
        if carries_credentials(value):
            env = credential_variables(value) or labels["out_credentials_env"]
            raise click.BadParameter(
                labels["out_credentials"].format(url=redact_url(value), env=env),
                ctx=ctx,
                param=param,
            )
        return value
    path = Path(value)
    try:
        if path.exists() and not path.is_dir():
            raise click.BadParameter(
                labels["out_not_folder"].format(path=value), ctx=ctx, param=param
            )
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise click.BadParameter(
                        labels["out_under_file"].format(path=value, parent=str(parent)),
                        ctx=ctx,
                        param=param,
                    )
                break
    except OSError:
        pass  # not even visible to us: creating it reports the permission error
    return path


def _check_token(token: str | None, labels: dict[str, str]) -> str | None:
    """The token with surrounding whitespace (a pasted newline) removed; None when empty.

    Raises:
        click.UsageError: the token holds non-ASCII or control characters.
    """
    if token is None:
        return None
    token = token.strip()
    if not token.isascii() or not token.isprintable():
        raise click.UsageError(labels["token_ascii"])
    return token or None


@click.command(cls=SynapseCommand)
@click.option(
    "--target",
    type=click.Choice(["tasks", "assignments", "ground-truths"]),
    default="tasks",
    show_default=True,
    help="What to export.",
)
@lang_option()
@click.option(
    "--out",
    "out_dir",
    required=True,
    callback=_check_out,
    metavar="DIR|URL",
    help="Output folder, or an fsspec URL (s3://bucket/prefix, memory://x); running again "
    "over it resumes.",
)
@click.option(
    "--state-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Local folder of the ledger and job log [default: DIR/.synapse-export, or a folder "
    "derived from the URL under $XDG_STATE_HOME/synapse-sdk/export].",
)
@click.option(
    "--backend",
    default=None,
    metavar="URL",
    help="Backend URL, such as https://backend.example.com (default: the embedded emulator).",
)
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
    "--original-bytes",
    type=ByteSize(),
    default=None,
    help="Make every original file of the embedded emulator this size (300M, 1G; 1 K = 1024), "
    "streamed [default: small demo files].",
)
@click.option(
    "--max-original-bytes",
    type=ByteSize(),
    default=None,
    help="Refuse an original file larger than this (300M, 1G): that item fails with "
    "response_too_large, the others go on [default: no bound; originals are streamed].",
)
@click.option(
    "--retry-rounds",
    default=6,
    show_default=True,
    type=click.IntRange(0, 10),
    help="How many times an item that failed retryably is fetched again.",
)
@click.option(
    "--exporter",
    "exporter_spec",
    default=None,
    metavar="MODULE:CLASS",
    help="A BaseExporter subclass whose hooks convert and write each item (the module is "
    "imported from the current folder or the installed packages).",
)
@click.option(
    "--response-mode",
    type=click.Choice(["inline", "presigned"]),
    default="inline",
    show_default=True,
    help="How the backend sends each item's data: inline, or behind presigned URLs the export "
    "downloads.",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Export only the items the list filter selects (repeatable; lists comma-separated: "
    "--target assignments --filter status_label=completed,skipped). Keys per target: see "
    "docs/backend-api.md.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where items are fetched, converted and written: this process, or worker actors on "
    "the Ray cluster at RAY_ADDRESS (a local instance when unset; needs synapse-sdk[ray]).",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 256),
    help="Worker actors of --executor ray [default: 2].",
)
@click.option(
    "--shared-storage",
    is_flag=True,
    help="With --executor ray: the local --out is on a mount every node of the cluster shares.",
)
@click.option(
    "--job-id",
    envvar="SYNAPSE_JOB_ID",
    default=None,
    show_envvar=True,
    metavar="ID",
    help="The backend job this export runs as: its progress, messages and final status are "
    "reported to it (the embedded emulator creates it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def export(
    target: str,
    language: str,
    out_dir: str | Path,
    state_dir: Path | None,
    backend: str | None,
    token: str | None,
    tenant: str | None,
    token_kind: str,
    faults: str | None,
    items: int | None,
    seed: int | None,
    original_bytes: int | None,
    max_original_bytes: int | None,
    retry_rounds: int,
    exporter_spec: str | None,
    response_mode: str,
    filters: tuple[str, ...],
    executor: str,
    workers: int | None,
    shared_storage: bool,
    job_id: str | None,
    as_json: bool,
) -> None:
    """Export every --target item (its JSON record and original file) into --out, exactly once.

    Exit codes: 0 all exported, 3 some items failed (reported with their codes), 4 the
    credentials were refused, 1 stopped on another error (rerun to resume), 2 usage error.
    """
    make_stdout_tolerant()
    labels = _labels(language)
    token = _check_token(token, labels)
    if backend is not None:
        given = [name for name, value in (("--faults", faults), ("--items", items),
                                          ("--seed", seed), ("--original-bytes", original_bytes))
                 if value is not None]
        if given:
            raise click.UsageError(labels["emulator_only"].format(options=", ".join(given)))
        if not token:
            raise click.UsageError(labels["needs_token"])
        tenant = tenant.strip() if tenant else None
        if not tenant:
            raise click.UsageError(labels["needs_tenant"])
    selection = _filters(filters, target, labels)
    _check_executor(executor, workers, shared_storage, labels)
    exporter = _load_exporter(exporter_spec, executor) if exporter_spec is not None else None
    job_id = _check_job_id(job_id, labels)
    emulator: Emulator | None = None
    if backend is None:
        emulator = _start_emulator(items, seed, faults, original_bytes, labels)
        if job_id is not None:
            emulator.create_job("export", {"target": target}, job_id)
        backend, token, tenant, token_kind = (
            emulator.url, emulator.token, emulator.tenant, "access"
        )
    stdout = sys.stdout
    if executor == "ray":
        # Ray prints its workers' troubles (a worker killed...) to sys.stdout from a thread of
        # its own: they go to stderr, and stdout keeps only the summary or the JSON object.
        sys.stdout = sys.stderr
    job = _Job(
        target, out_dir, state_dir, backend, token, tenant, "drf" if token_kind == "drf" else
        "access", language, retry_rounds, max_original_bytes, exporter, job_id, as_json,
        labels, selection, response_mode, executor, workers or 2, shared_storage, stdout,
    )
    try:
        code = _run(job, emulator)
    finally:
        if emulator is not None:
            emulator.stop()
    sys.exit(code)


def _filters(given: tuple[str, ...], target: str, labels: dict[str, str]) -> dict[str, str]:
    """The ``--filter`` options as the export's ``filter``: a list filter given twice has its
    values joined.

    Raises:
        click.UsageError: (exit 2) not ``key=value``, a key the target's list does not accept
            (the accepted ones named), a scalar filter given twice, a value of the wrong type.
    """
    from synapse_sdk.clients.list_filters import LIST_FILTERS, check_filters, parse_filter_arg

    table = LIST_FILTERS[target]
    selection: dict[str, str] = {}
    for text in given:
        try:
            key, value = parse_filter_arg(text)
        except ValueError:
            raise click.UsageError(labels["filter_form"].format(value=text)) from None
        spec = table.get(key)
        if spec is None:
            raise click.UsageError(labels["filter_key"].format(
                key=key, target=target, keys=", ".join(table)))
        if key in selection and not spec.is_list:
            raise click.UsageError(labels["filter_twice"].format(key=key))
        selection[key] = f"{selection[key]},{value}" if key in selection else value
        try:
            check_filters(target, {key: selection[key]})
        except ValueError as exc:
            error = str(exc).split(": ", 1)[-1]  # the value's fault, without the key repeated
            raise click.UsageError(labels["filter_value"].format(
                key=key, error=error, value=selection[key], expected=_expected(spec, labels),
            )) from None
    return selection


def _expected(spec: ListFilter, labels: dict[str, str]) -> str:
    """What a filter's value must be, in the labels' language."""
    kind = spec.element_kind
    element = " | ".join(spec.choices) if spec.choices else labels.get(f"kind_{kind}", kind)
    return labels["kind_list"].format(element=element) if spec.is_list else element


def _check_executor(
    executor: str, workers: int | None, shared_storage: bool, labels: dict[str, str]
) -> None:
    """``--workers`` and ``--shared-storage`` only go with ``--executor ray``, which needs Ray.

    Raises:
        click.UsageError: (exit 2) either is violated.
    """
    if executor != "ray":
        given = [name for name, value in (("--workers", workers),
                                          ("--shared-storage", shared_storage)) if value]
        if given:
            raise click.UsageError(labels["ray_only"].format(options=", ".join(given)))
        return
    from synapse_sdk.plugins.actions.export.distributed import RAY_EXTRA, ray_available

    if not ray_available():
        raise click.UsageError(labels["needs_ray"].format(extra=RAY_EXTRA))


def _check_job_id(job_id: str | None, labels: dict[str, str]) -> str | None:
    """``--job-id`` (or ``SYNAPSE_JOB_ID``) stripped; blank is none.

    Raises:
        click.UsageError: (exit 2) it is not a UUID.
    """
    job_id = (job_id or "").strip() or None
    if job_id is not None:
        try:
            uuid.UUID(job_id)
        except ValueError:
            raise click.UsageError(labels["bad_job_id"].format(value=job_id[:40])) from None
    return job_id


def _load_exporter(spec: str, executor: str) -> BaseExporter:
    """The ``--exporter`` plugin, imported with the current folder on the path; with
    ``--executor ray``, checked to reach the workers before any starts.

    Raises:
        click.UsageError: (exit 2) the module or class is missing or not a BaseExporter, or
            Ray workers could not import or unpickle it.
    """
    from synapse_sdk.plugins.actions.export.exporter import load_exporter

    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        exporter = load_exporter(spec)
        if executor == "ray":
            from synapse_sdk.plugins.actions.export.distributed import check_portable_exporter

            check_portable_exporter(exporter)
        return exporter
    except ValueError as exc:
        raise click.UsageError(f"--exporter: {exc}") from exc


def _start_emulator(
    items: int | None,
    seed: int | None,
    faults: str | None,
    original_bytes: int | None,
    labels: dict[str, str],
) -> Emulator:
    from synapse_sdk.emulator import DEFAULT_ITEMS

    try:
        from synapse_sdk.emulator import Emulator

        return Emulator(
            items=DEFAULT_ITEMS if items is None else items,
            seed=0 if seed is None else seed,
            faults="mild" if faults is None else faults,
            original_bytes=original_bytes,
        ).start()
    except (OSError, RuntimeError, ValueError) as exc:
        raise click.ClickException(labels["no_emulator"].format(error=exc)) from exc


class _Stop(Exception):
    """The export cannot start or went no further: report ``code``/``message`` and exit."""

    def __init__(
        self, code: str, message: str, exit_code: int, step: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.exit_code = code, message, exit_code
        self.step, self.hint = step, hint


def _make_out(out_dir: Path, language: str) -> list[Path]:
    """Create ``out_dir`` (and missing parents); return the folders created, outermost first.

    Raises:
        _Stop: it cannot be created (a usage error under a file; else the permission message);
            nothing is left half-created.
    """
    created: list[Path] = []
    try:
        missing = [p for p in (out_dir, *out_dir.parents) if not p.exists()][::-1]
        for folder in missing:
            folder.mkdir()
            created.append(folder)
    except FileExistsError:
        pass  # made by someone else meanwhile: fine
    except OSError as exc:
        _remove_created(created)
        raise _os_stop(exc, out_dir, language) from exc
    return created


def _remove_created(created: list[Path]) -> None:
    """Remove folders this run created, innermost first, if they are still empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def _os_stop(exc: OSError, out_dir: str | Path, language: str) -> _Stop:
    """The report of a folder the export cannot use: a usage error when a file stands in the
    way, else the classified code (permission denied, read-only, disk full) with exit 1."""
    from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
    from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
    from synapse_sdk.plugins.log_messages import resolve_log_message

    labels = _labels(language)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return _Stop("usage_error", labels["out_not_folder"].format(path=str(out_dir)), EXIT_USAGE)
    code = classify_export_error(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or code is None:
        code = ExportLogMessageCode.EXPORT_FAILED_PERMISSION
    reason = os.strerror(exc.errno) if exc.errno is not None else type(exc).__name__
    message = resolve_log_message(code, language).text
    detail = labels["out_denied"].format(path=str(exc.filename or out_dir), reason=reason)
    return _Stop(code.value, f"{message} {detail}", EXIT_ABORTED)


@dataclass(frozen=True, slots=True)
class _Job:
    """What the command line asked for, checked."""

    target: str
    out_dir: str | Path  # a local folder, or a storage URL
    state_dir: Path | None
    backend: str
    token: str | None
    tenant: str | None
    token_kind: TokenKind
    language: str
    retry_rounds: int
    max_original_bytes: int | None
    exporter: BaseExporter | None
    job_id: str | None
    as_json: bool
    labels: dict[str, str]
    filter: dict[str, str]
    response_mode: str = "inline"
    executor: str = "local"
    workers: int = 2
    shared_storage: bool = False
    #: Where the summary or the JSON object goes (the process's stdout).
    stdout: TextIO | None = None


def _run(job: _Job, emulator: Emulator | None) -> int:
    from rich.console import Console

    labels, language = job.labels, job.language

    err = Console(stderr=True, highlight=False)
    interactive = err.is_terminal and not job.as_json
    if emulator is not None and not job.as_json:
        err.print(
            labels["emulator"].format(
                url=emulator.url, items=emulator.items, faults=emulator.faults.describe(language)
            ),
            markup=False,
        )
    # The embedded emulator's size is the total, unless a filter selects part of it.
    total = emulator.items if emulator is not None and not job.filter else None
    description = labels["progress"].format(target=_term(job.target, language))
    progress = _progress(err, description, total, interactive)
    try:
        return _export(job, err, progress)
    except _Stop as stop:
        _fail(job.as_json, err, stop, language, job.stdout)
        return stop.exit_code
    except KeyboardInterrupt:
        err.print(labels["interrupted"], markup=False)
        return EXIT_INTERRUPTED


def _term(value: str, language: str) -> str:
    from synapse_sdk.plugins.log_messages import term

    return str(term(value, language))


def _export(job: _Job, err: Console, progress: _Progress | None) -> int:
    """Set the export up (folder, client, lock) and run it; every way it can stop is a
    :class:`_Stop`."""
    from pydantic import ValidationError

    from synapse_sdk.config import SDKConfig
    from synapse_sdk.plugins.action import ActionStepError
    from synapse_sdk.plugins.actions.export.action import (
        ExportAction,
        JobLockedError,
        JobMismatchError,
    )
    from synapse_sdk.plugins.actions.export.chunks import ChunkExecutor
    from synapse_sdk.plugins.actions.export.distributed import SharedStorageError
    from synapse_sdk.storage.errors import redact_url

    out_dir, language, labels, as_json = job.out_dir, job.language, job.labels, job.as_json
    executor: ChunkExecutor | None = None
    if job.executor == "ray":
        from synapse_sdk.plugins.actions.export.distributed import RayExecutor

        executor = RayExecutor(
            workers=job.workers,
            shared_storage=job.shared_storage,
            notice=lambda _: err.print(labels["ray_local"], markup=False),
        )
    try:
        config = SDKConfig(
            backend_url=job.backend,
            token=job.token,
            tenant=job.tenant,
            token_kind=job.token_kind,
            language=language,
        )
        action = ExportAction(
            {
                "target": job.target,
                "out_dir": out_dir,
                "state_dir": job.state_dir,
                "language": language,
                "retry_rounds": job.retry_rounds,
                "response_mode": job.response_mode,
                "max_original_bytes": job.max_original_bytes,
                "filter": job.filter,
            },
            config=config,
            console=None if as_json else (progress.console if progress is not None else err),
            on_progress=progress.update_from if progress is not None else None,
            exporter=job.exporter,
            executor=executor,
            job_id=job.job_id,
        )
    except (ValidationError, ValueError) as exc:
        raise _Stop("usage_error", str(exc), EXIT_USAGE) from exc
    except OSError as exc:  # --out cannot even be looked at
        raise _os_stop(exc, out_dir, language) from exc
    with action:
        try:
            action.v2_client  # noqa: B018 - build the client now: a bad URL is a usage error
        except ValueError as exc:
            text = str(exc)
            if not text.startswith("base_url "):  # e.g. CA certificates it cannot load
                raise _Stop("usage_error", text, EXIT_USAGE) from exc
            reason = text.removeprefix("base_url ").split(", got ")[0]
            message = labels["bad_backend"].format(url=job.backend, reason=reason)
            raise _Stop("usage_error", message, EXIT_USAGE) from exc
        created = _make_out(out_dir, language) if isinstance(out_dir, Path) else []
        try:
            if progress is not None:
                progress.start()
            try:
                summary = action.run()
            except KeyboardInterrupt:
                if progress is not None:
                    progress.show_saved(action.target_dir)
                raise
            finally:
                if progress is not None:
                    progress.stop()
        except ActionStepError as exc:
            raise _step_stop(exc, job.backend, language, labels) from exc
        except JobLockedError as exc:
            busy = labels["busy"].format(out=str(out_dir), target=_term(job.target, language))
            raise _Stop("job_locked", busy, EXIT_ABORTED) from exc
        except JobMismatchError as exc:
            shown = {
                name: JobMismatchError.shown(selection) or labels["no_filter"]
                for name, selection in (("recorded", exc.recorded), ("given", exc.given))
            }
            message = labels["mismatch"].format(
                out=redact_url(str(out_dir)), target=_term(job.target, language), **shown
            )
            raise _Stop("job_mismatch", message, EXIT_USAGE) from exc
        except SharedStorageError as exc:  # a local --out on a cluster of several nodes
            message = labels["local_out"].format(out=str(out_dir), nodes=exc.nodes)
            raise _Stop("usage_error", message, EXIT_USAGE) from exc
        except OSError as exc:  # the job folder or its lock, before any step ran
            _remove_created(created)
            raise _os_stop(exc, out_dir, language) from exc
        reporter = action.job_reporter
        report = _job_report(reporter) if reporter is not None else None
        _print_summary(summary, job, report, action.job_dir)
    return EXIT_OK if summary.ok else EXIT_ITEMS_FAILED


def _job_report(reporter: JobReporter) -> dict[str, object]:
    """What reached the backend job, for the summary: ``sent`` messages stored, ``dropped``
    given up, ``unconfirmed`` sent without an answer, and ``unsent`` the two together (the
    messages the job may lack; the local job log has every one)."""
    stats = reporter.stats
    return {
        "job_id": reporter.job_id, "sent": stats.sent, "dropped": stats.dropped,
        "unconfirmed": stats.unconfirmed, "unsent": stats.dropped + stats.unconfirmed,
    }


def _step_stop(exc: Exception, backend: str, language: str, labels: dict[str, str]) -> _Stop:
    """The report of a step that failed as a whole (from its ``ActionStepError``)."""
    from synapse_sdk.exceptions import AuthenticationError, BackendError
    from synapse_sdk.failures import walk_chain
    from synapse_sdk.plugins.action import ActionStepError
    from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
    from synapse_sdk.plugins.log_messages import resolve_log_message

    assert isinstance(exc, ActionStepError)
    chain = walk_chain(exc)
    auth = any(isinstance(e, AuthenticationError) for e in chain)
    code = exc.message_code or ExportLogMessageCode.EXPORT_FAILED
    if auth and code is not ExportLogMessageCode.EXPORT_FAILED_TLS:
        code = ExportLogMessageCode.EXPORT_FAILED_AUTHENTICATION
    not_found = next(
        (e for e in chain if isinstance(e, BackendError) and e.status_code == 404), None
    )
    if not_found is not None and exc.step == "fetch":
        # The API itself is not there: a plain web server, or a wrong path in the URL.
        message = labels["not_backend"].format(url=backend)
        return _Stop("not_a_backend", message, EXIT_ABORTED, exc.step)
    message = resolve_log_message(code, language).text
    step = labels["failed_step"].format(step=_term(exc.step, language))
    return _Stop(
        code.value, f"{message} {step}", EXIT_AUTH if auth else EXIT_ABORTED, exc.step,
        labels["resume"] if _rerun_may_fix(chain) else None,
    )


#: Disk errors a rerun fixes once space is freed.
_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})


def _rerun_may_fix(chain: list[BaseException]) -> bool:
    """Whether what stopped the export is transient (a backend or storage that was down, rate
    limited or timing out; a full disk), so running again resumes it. A permanent or
    configuration error (refused credentials, a malformed or too large answer, access denied)
    stops a rerun the same way: no rerun is suggested."""
    from synapse_sdk.exceptions import SynapTransientError

    return any(
        isinstance(e, SynapTransientError)
        or (isinstance(e, OSError) and e.errno in _SPACE_ERRNOS)
        for e in chain
    )


def _fail(
    as_json: bool, err: Console, stop: _Stop, language: str, stdout: TextIO | None = None
) -> None:
    """Report an export that stopped, once: a JSON object on stdout (with ``--json``), and the
    message on stderr."""
    if as_json:
        error = {"code": stop.code, "message": stop.message, "step": stop.step}
        click.echo(
            json.dumps({"ok": False, "exit_code": stop.exit_code, "error": error},
                       ensure_ascii=False),
            file=stdout,
        )
    err.print(cli_text(language, "error", message=stop.message), markup=False, style="bold red")
    if stop.hint is not None:
        err.print(stop.hint, markup=False)


def _print_summary(
    summary: ExportSummary, job: _Job, report: dict[str, object] | None, job_dir: Path
) -> None:
    """Print the summary on stdout: one JSON object with ``--json`` (and ``job_report``, see
    :func:`_job_report`, when the export ran as a backend job), else a table and a line saying
    what reached the job."""
    labels = job.labels
    if job.as_json:
        data = {**summary.as_dict(), "exit_code": _exit_code(summary)}
        if report is not None:
            data["job_report"] = report
        click.echo(json.dumps(data, ensure_ascii=False), file=job.stdout)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=labels["title"], title_justify="left", show_header=False)
    table.add_column(labels["field"])
    table.add_column(labels["value"], justify="right")
    data = {**summary.as_dict(), "target": _term(summary.target, job.language)}
    for key in ("target", "out_dir", "exported", "skipped", "failed"):
        table.add_row(labels[key], str(data[key]))
    for code, count in sorted(summary.failed_by_code.items()):
        table.add_row(labels["failed_code"].format(code=code), str(count))
    for key in ("retried", "retry_rounds", "requests", "rate_limited", "duration", "executor",
                "workers"):
        table.add_row(labels[key], str(data[key]))
    out = Console(highlight=False, file=job.stdout)
    out.print(table)
    if report is not None:
        line = labels["job_unsent" if report["unsent"] else "job_sent"]
        out.print(line.format(
            job=report["job_id"], sent=report["sent"], unsent=report["unsent"], log=str(job_dir)
        ), markup=False, soft_wrap=True)  # one line, however narrow the terminal


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
        """Show ``state`` (with its total once listing has given one); the final state (phase
        ``done``) also ends the bar, so it stays above the messages that close the export."""
        if state.total is not None:
            self._progress.update(self._task, total=state.total)
        self._progress.update(self._task, completed=state.done)
        if state.phase == "done":
            self._progress.update(self._task, total=state.done)
            self._progress.stop()

    def show_saved(self, folder: Path) -> None:
        """After an interruption: show at least the item records on disk in ``folder`` (items
        written since the last progress report included), so the bar matches what is saved."""
        try:
            with os.scandir(folder) as entries:
                saved = sum(
                    1 for e in entries
                    if e.name.endswith(".json") and not e.name.endswith(".original.json")
                    and not e.name.startswith(".")
                )
        except OSError:
            return
        task = self._progress.tasks[0]
        if saved > task.completed:
            self._progress.update(self._task, completed=saved)


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

