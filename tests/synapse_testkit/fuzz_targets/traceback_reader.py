#!/usr/bin/env python3
"""Fuzz the traceback reader of ``synapse classify``: ``synapse_sdk.cli.classify.split_records``.

The first input byte picks a shape: the payload as text (UTF-8 with undecodable bytes replaced,
as the command reads files), or real tracebacks (raised and formatted by ``traceback`` when the
harness starts: chains by cause and by context, exception groups, a ``logger.exception`` line
above one, log lines around them) mutated by the input: lines deleted, duplicated, swapped,
re-indented, un-boxed, cut short, fuzz text inserted, CRLF line ends.

Invariants (an ``AssertionError`` is a libFuzzer crash):

* ``split_records`` never raises and terminates;
* records come in input order, their line numbers within the input;
* a ``line`` record is exactly one non-blank input line, stripped;
* a ``traceback`` record starts at a ``Traceback (most recent call last):`` header, or on the
  line directly above one; its message lines are non-blank pieces of its own input lines and
  its summary is one of them (or empty when it has none);
* every non-blank line belongs to exactly one record: it starts one, or lies inside a
  traceback record; text without a traceback header gives one ``line`` record per non-blank
  line;
* an unmutated real traceback is one record whose summary is the exception line Python
  printed last.

Run: ``python fuzz/fuzz_traceback_reader.py -max_total_time=60 CORPUS_DIR [SEED_DIR]``.
"""

from __future__ import annotations

import logging
from io import StringIO

from synapse_sdk.cli.classify import Record, split_records
from synapse_testkit.hostile import (
    TRACEBACK_HEADER,
    Provider,
    formatted,
    pick,
    provider,
    raise_by_cause,
    raise_by_context,
    raise_file_group,
    raise_multiline,
    raise_nested_group,
    text,
)

HEADER = TRACEBACK_HEADER


def _logged() -> str:
    out = StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("fuzz_traceback_reader")
    log.addHandler(handler)
    log.propagate = False
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError:
        log.exception("bulk fetch failed")
    log.removeHandler(handler)
    return out.getvalue()


REAL: list[tuple[str, str]] = [
    formatted(call)
    for call in (
        raise_by_cause,
        raise_by_context,
        raise_file_group,
        raise_nested_group,
        raise_multiline,
    )
]
GROUPS = {2, 3}  # REAL indexes whose last printed line is a member's, not the group's
LOGGED = _logged()


def _lines(source: str) -> list[str]:
    return [line.rstrip("\r") for line in source.split("\n")]


def _is_header(line: str) -> bool:
    return HEADER in line


def check(source: str) -> list[Record]:
    records = split_records(source)
    lines = _lines(source)
    assert split_records(source) == records, "not deterministic"
    starts = [r.line for r in records]
    assert starts == sorted(set(starts)), starts
    assert all(1 <= s <= len(lines) for s in starts), starts
    owner: dict[int, Record] = {}
    for number, record in enumerate(records):
        end = starts[number + 1] if number + 1 < len(records) else len(lines) + 1
        first = lines[record.line - 1]
        assert first.strip(), ("a record starts on a blank line", record)
        if record.kind == "line":
            assert record.message_lines == [first.strip()] and record.summary == first.strip()
            span = range(record.line, record.line + 1)
        else:
            assert record.kind == "traceback", record.kind
            below = lines[record.line] if record.line < len(lines) else ""
            assert _is_header(first) or _is_header(below), (first, below)
            span = range(record.line, end)
            own = "\n".join(lines[record.line - 1 : end - 1])
            for piece in record.message_lines:
                assert piece and piece == piece.strip() and piece in own, (piece, record)
            assert record.summary in record.message_lines or (
                record.summary == "" and not record.message_lines
            ), record
        for index in span:
            owner[index] = record
    for index, line in enumerate(lines, start=1):
        if line.strip():
            assert index in owner, ("a non-blank line in no record", index, line)
    if HEADER not in source:
        assert all(r.kind == "line" for r in records)
        assert len(records) == sum(1 for line in lines if line.strip())
    return records


def _mutate(fdp: Provider, lines: list[str]) -> list[str]:
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        if not lines:
            break
        at = fdp.ConsumeIntInRange(0, len(lines) - 1)
        operation = fdp.ConsumeIntInRange(0, 9)
        if operation == 0:
            del lines[at]
        elif operation == 1:
            lines.insert(at, lines[at])
        elif operation == 2:
            other = fdp.ConsumeIntInRange(0, len(lines) - 1)
            lines[at], lines[other] = lines[other], lines[at]
        elif operation == 3:
            lines[at] = " " * fdp.ConsumeIntInRange(0, 6) + lines[at].lstrip()
        elif operation == 4:
            lines[at] = lines[at].replace("|", "").replace("+-", "")
        elif operation == 5:
            lines[at] = lines[at][: fdp.ConsumeIntInRange(0, len(lines[at]))]
        elif operation == 6:
            lines.insert(at, text(fdp, 40))
        elif operation == 7:
            lines.insert(at, pick(fdp, (HEADER, "", "  ", "During handling of the above "
                                        "exception, another exception occurred:", "+------",
                                        "  | ValueError: x", "2024-05-01 10:00:00 ERROR y")))
        elif operation == 8:
            lines[at] += "\r"
        else:
            del lines[at:]
    return lines


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, payload = data[0] % 3, data[1:]
    if mode == 0:
        check(payload.decode("utf-8", "replace"))
        return
    fdp = provider(payload)
    if mode == 1:
        index = fdp.ConsumeIntInRange(0, len(REAL) - 1)
        source, last = REAL[index]
        records = check(source)
        assert len(records) == 1 and records[0].kind == "traceback", records
        if index not in GROUPS:
            assert records[0].summary == last, (records[0].summary, last)
        check("\n".join(_mutate(fdp, source.split("\n"))))
    else:
        parts = [pick(fdp, REAL)[0] if fdp.ConsumeBool() else LOGGED for _ in range(3)]
        parts.insert(fdp.ConsumeIntInRange(0, 3), text(fdp, 80) + "\n")
        check("\n".join(_mutate(fdp, "".join(parts).split("\n"))))

