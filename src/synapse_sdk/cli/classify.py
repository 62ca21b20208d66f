"""``synapse classify``: classify Python tracebacks and log lines into log message codes.

Input (files, or ``-``/nothing for stdin) is split into records:

* a **traceback record** runs from ``Traceback (most recent call last):`` (or ``Exception Group
  Traceback``) through the final exception line, including chained tracebacks joined by "During
  handling of the above exception..." / "The above exception was the direct cause..." and the
  boxed members of an exception group. A log line directly above the traceback (what
  ``logger.exception`` prints) belongs to it. Only the exception lines — not file paths or source
  lines — are classified, so a frame in ``timeout_utils.py`` does not make a timeout;
* every other non-empty line is a record of its own.

Each record is classified with the category's classifier (``message=...``) and printed with its
code, level, retry semantics and message in the chosen language, then a summary table of counts
per code. Undecodable bytes are replaced, so binary input is survived; the exception line shown
has credentials (``Bearer ...``, ``token=...``, ``api_key: ...``) masked and control characters
replaced, so the output is safe to paste into a ticket or a log.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import click

from synapse_sdk.cli._common import (
    SynapseCommand,
    category_option,
    cli_text,
    lang_option,
    make_stdout_tolerant,
)

__all__ = ["Record", "classify", "split_records"]

_TB_HEADER = re.compile(r"(?:Exception Group )?Traceback \(most recent call last\):\s*$")
_CHAIN_SEPARATORS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
# A line that starts a new log record: an ISO date, or a level name as logging prints it.
_LOG_RECORD_START = re.compile(
    r"\s{0,4}\[?(?:\d{4}-\d{2}-\d{2}[ T]\d|(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b)"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Credentials a log line may carry: "Bearer <token>", "token=...", "api_key: ...", "password=...".
_SECRET = re.compile(
    r"(?i)(\b(?:access_token|refresh_token|token|api[_-]?key|secret|password|passwd"
    r"|authorization)[\"']?\s{0,3}[:=]\s{0,3}[\"']?(?:(?:bearer|basic|token)\s{1,3})?"
    r"|\bbearer\s{1,3})[^\s\"',;&]+"
)
_SHOWN_CHARS = 300

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass
class Record:
    """One classifiable unit of the input: a whole traceback or one log line."""

    line: int  # 1-based line number of its first line
    kind: Literal["traceback", "line"]
    #: The exception lines of a traceback (what is classified); the line itself for a log line.
    message_lines: list[str] = field(default_factory=list)
    #: The final exception line (the one Python prints last), or the log line.
    summary: str = ""

    @property
    def message(self) -> str:
        """The text handed to the classifier."""
        return "\n".join(self.message_lines)


def _decoration(line: str) -> tuple[str, bool, str]:
    """Strip exception-group box drawing: (content, was_decorated, boundary).

    ``boundary`` is ``"open"`` for a member separator (``+---- 1 ----``, ``+---- ... ----``),
    ``"close"`` for the line that closes a group's box (dashes only), else ``""``.
    """
    stripped = line.lstrip(" ")
    if stripped.startswith("+-"):
        return "", True, "close" if not stripped.strip("+- ") else "open"
    if stripped.startswith("+ ") and _TB_HEADER.match(stripped[2:]):
        return stripped[2:], True, ""
    if stripped.startswith("|"):
        rest = stripped[1:]
        return (rest[1:] if rest.startswith(" ") else rest), True, ""
    return line, False, ""


def _is_header(content: str) -> bool:
    return _TB_HEADER.match(content.strip()) is not None


def _is_separator(content: str) -> bool:
    return content.strip() in _CHAIN_SEPARATORS


def _next_nonblank(lines: list[str], start: int) -> int:
    while start < len(lines) and not lines[start].strip():
        start += 1
    return start


def _consume_traceback(lines: list[str], start: int, record: Record) -> int:
    """Read the traceback whose header is ``lines[start]``; return the index after it."""
    # frames | message | after_separator | section (a group member) | closed (a group's box)
    state = "frames"
    blocks: list[list[str]] = []
    i = start + 1
    while i < len(lines):
        raw = lines[i]
        content, decorated, boundary = _decoration(raw)
        if boundary:
            state = "section" if boundary == "open" else "closed"
        elif state == "closed" and not decorated:
            break  # the line after a group's closed box is not part of it
        elif not raw.strip() or (decorated and not content.strip()):
            after = _next_nonblank(lines, i)
            if after < len(lines):
                nxt = _decoration(lines[after])[0]
                if _is_separator(nxt) or (state == "after_separator" and _is_header(nxt)):
                    i = after
                    continue
            if not decorated:
                break
        elif _is_header(content):
            if state in ("message", "closed"):
                break  # a new traceback without a chain separator: a new record
            state = "frames"
        elif _is_separator(content):
            state = "after_separator"
        elif state in ("frames", "section") and content[:1] in (" ", "\t"):
            pass  # a frame, a source line, a caret line, "[Previous line repeated ...]"
        elif state == "message":
            if not decorated and _LOG_RECORD_START.match(raw):
                break
            blocks[-1].append(content.strip())
        else:
            state = "message"
            blocks.append([content.strip()])
        i += 1
    record.message_lines.extend(line for block in blocks for line in block)
    if blocks:
        record.summary = blocks[-1][0]
    return i


def split_records(text: str) -> list[Record]:
    """Split log text into traceback records and single-line records (see the module doc)."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    records: list[Record] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        header_here = _is_header(_decoration(line)[0])
        header_next = i + 1 < len(lines) and _is_header(_decoration(lines[i + 1])[0])
        if header_here or header_next:
            record = Record(line=i + 1, kind="traceback")
            if not header_here:  # the log line logger.exception prints above the traceback
                record.message_lines.append(line.strip())
                i += 1
            i = _consume_traceback(lines, i, record)
            if not record.summary:
                record.summary = record.message_lines[0] if record.message_lines else ""
            records.append(record)
        else:
            records.append(Record(line=i + 1, kind="line", message_lines=[line.strip()],
                                  summary=line.strip()))
            i += 1
    return records


def _shown(text: str, limit: int = _SHOWN_CHARS) -> str:
    """Text safe to print: credentials masked, control characters replaced, long text cut."""
    text = _SECRET.sub(r"\1***", _CONTROL.sub("\ufffd", text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_inputs(files: tuple[str, ...]) -> Iterable[tuple[str, str]]:
    """(source name, decoded text) per input; ``-`` or no files means stdin."""
    for name in files or ("-",):
        if name == "-":
            data = sys.stdin.buffer.read()
            yield "<stdin>", data.decode("utf-8", errors="replace")
            continue
        try:
            with open(name, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise click.FileError(name, hint=exc.strerror or str(exc)) from exc
        yield name, data.decode("utf-8", errors="replace")


@click.command(cls=SynapseCommand)
@click.argument(
    "files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True, exists=True)
)
@category_option()
@lang_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per record.")
@click.option("--no-summary", is_flag=True, help="Leave out the table of counts per code.")
def classify(
    files: tuple[str, ...], category: str, language: str, as_json: bool, no_summary: bool
) -> None:
    """Classify Python tracebacks and log lines in FILES (or stdin) into log message codes.

    Each traceback (with its chained causes) and each other non-empty line is one record; each
    is printed with its code, level and message, then a table of counts per code. With --json,
    stdout holds only JSON lines and the table goes to stderr.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from synapse_sdk.plugins.actions import get_category
    from synapse_sdk.plugins.failure_semantics import extract_failed_step
    from synapse_sdk.plugins.log_messages import resolve_log_message

    make_stdout_tolerant()
    failures = get_category(category)
    out = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    counts: Counter[str] = Counter()
    levels: dict[str, str] = {}

    for source, text in _read_inputs(files):
        for record in split_records(text):
            message = record.message
            code = failures.classify(message=message)
            key = code.value if code is not None else "(unclassified)"
            counts[key] += 1
            rendered = level = retry = None
            if code is not None:
                step = extract_failed_step(message)
                params = {"step": step} if step is not None else {}
                rendered, level_enum = resolve_log_message(code, language, **params)
                level = level_enum.value
                levels[key] = level
                semantics = failures.semantics(code)
                retry = semantics.value if semantics is not None else None
            if as_json:
                click.echo(json.dumps({
                    "source": source,
                    "line": record.line,
                    "kind": record.kind,
                    "code": code.value if code is not None else None,
                    "level": level,
                    "retry": retry,
                    "message": rendered,
                    "exception": _shown(record.summary, 1000),
                }, ensure_ascii=False))
                continue
            head = Text(f"{source}:{record.line}: ", style="dim")
            if code is None:
                head.append("unclassified", style="dim")
            else:
                head.append(code.value, style="bold")
                head.append(f" [{level}] ")
                head.append(rendered or "")
            out.print(head)
            out.print(Text("    " + _shown(record.summary), style="dim"))

    if no_summary:
        return
    def say(key: str, **params: Any) -> str:
        return cli_text(language, key, **params)

    table = Table(title=say("failures_title", category=category), title_justify="left")
    table.add_column(say("col_code"), no_wrap=True)
    table.add_column(say("col_level"), no_wrap=True)
    table.add_column(say("col_count"), justify="right")
    for key, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        shown = say("unclassified") if key == "(unclassified)" else key
        table.add_row(shown, levels.get(key, "-"), str(count))
    table.add_row(say("total"), "", str(sum(counts.values())), style="bold")
    (err if as_json else out).print(table)
