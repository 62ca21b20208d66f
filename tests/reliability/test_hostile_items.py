"""Issue 13's item cases: a backend that serves hostile items, odd ids and cycling cursors to
the real export (the ``synapse export`` CLI as a subprocess, or :class:`ExportAction`), from a
scripted server on 127.0.0.1 (:mod:`synapse_testkit.hostile_items`).

Before the fixes one bad item stopped every run for good, an id could overwrite another item's
file, odd ids crashed the CLI with a traceback, and a cycling cursor never ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.clients.backend_v2 import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.config import SDKConfig
from synapse_sdk.exceptions import BackendError
from synapse_sdk.plugins.actions.export.action import ExportAction, ExportSummary
from synapse_sdk.plugins.actions.export.steps import UnsafeItemIdError, item_filename, name_key
from synapse_testkit.hostile_items import HostileItemsServer

TOKEN = "hostile-items-test-token"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
DEEP = b"[" * 100_000 + b"]" * 100_000
PNG_JSON = b'{"an original": "that is itself JSON"}'


def _original(name: str, content: bytes, **overrides: Any) -> dict[str, Any]:
    return {
        "url": f"/files/{name}",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        **overrides,
    }


def _item(item_id: Any, original: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": item_id, "project_id": 1, "data": {"label": str(item_id)}, "original": original}


def _export(server: HostileItemsServer, out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """Run ``synapse export --json`` against ``server``; its exit code and JSON output."""
    command = [
        sys.executable, "-c", "from synapse_sdk.cli import main; main()", "export",
        "--backend", server.url, "--token", TOKEN, "--out", str(out), "--json",
        "--lang", "en", "--retry-rounds", "1", *extra,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    return proc.returncode, json.loads(lines[0])


# -- 4. one bad item is its own failure; the rest of the run goes on ------------------------------

LONG_ID = "한" * 80  # 80 characters, 240 bytes: too long a file name on most filesystems


def _bad_items_server() -> HostileItemsServer:
    items = [
        _item(1, _original("1", PNG)),
        _item(2, _original("2", PNG, size=-1)),
        _item(3, _original("3", PNG, sha256="not hex at all")),
        _item(4, _original("4", PNG, url=12345)),
        _item(5, _original("5", PNG, url="file:///etc/passwd")),
        _item(6, _original("6", DEEP)),
        _item(LONG_ID, _original("long", PNG)),
        _item(7, _original("7", PNG)),
    ]
    files = {"1": PNG, "2": PNG, "3": PNG, "4": PNG, "5": PNG, "6": DEEP, "long": PNG, "7": PNG}
    return HostileItemsServer(items, files=files)


def test_bad_items_fail_alone_and_every_other_item_is_written_and_marked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _bad_items_server() as server:
        code, summary = _export(server, out)
        assert code == 3, summary  # items failed; the run itself completed
        assert summary["exported"] == 3 and summary["failed"] == 5
        assert summary["failed_by_code"] == {"malformed_item": 4, "unsafe_id": 1}
        named = {item["id"]: item["code"] for item in summary["failed_items"]}
        assert named == {2: "malformed_item", 3: "malformed_item", 4: "malformed_item",
                         5: "malformed_item", LONG_ID: "unsafe_id"}  # fmt: skip
        files = sorted(p.name for p in (out / "tasks").iterdir())
        # The deep JSON original is kept: the sniff could not prove it JSON, so it is text.
        assert files == ["1.json", "1.png", "6.json", "6.txt", "7.json", "7.png"]
        assert (out / "tasks" / "6.txt").read_bytes() == DEEP

        # A rerun does not stop at the same item: the good ones are skipped, the bad ones named.
        code, again = _export(server, out)
    assert code == 3
    assert (again["exported"], again["skipped"], again["failed"]) == (0, 3, 5)


# -- 5. file names of different items never collide ----------------------------------------------

NFC_E, NFD_E = "caf\u00e9", "cafe\u0301"
#: Each refused before it is fetched; each would overwrite another item's file or be
#: unwritable where outputs move (Windows, macOS).
CLASHING = ["5.original", "5.ORIGINAL", "CON", "nul", "nul.txt", "COM1", "lpt9.x",
            "trailing ", "trailing.", "what?", "a|b", 'quote"d', "star*"]  # fmt: skip
#: The first of each pair is written; the second would be the same file elsewhere.
TWINS = [("Mixed", "mixed"), (NFC_E, NFD_E)]


def _action_export(server: HostileItemsServer, out: Path) -> ExportSummary:
    config = SDKConfig(backend_url=server.url, token=TOKEN, language="en")
    with ExportAction({"out_dir": out, "retry_rounds": 1}, config=config) as action:
        return action.run()


def test_ids_whose_files_could_collide_are_refused_not_written(tmp_path: Path) -> None:
    items = [_item(5, _original("5", PNG_JSON))]
    items += [_item(i, _original("x", PNG)) for i in CLASHING]
    items += [_item(i, _original("x", PNG)) for pair in TWINS for i in pair]
    out = tmp_path / "out"
    with HostileItemsServer(items, files={"5": PNG_JSON, "x": PNG}) as server:
        summary = _action_export(server, out)
        fetched = server.requests
        assert summary.exported == 1 + len(TWINS)
        assert summary.failed_by_code == {"unsafe_id": len(CLASHING) + len(TWINS)}
        refused = {item["id"] for item in summary.failed_items}
        assert refused == {*CLASHING, *(second for _, second in TWINS)}
        names = sorted(p.name for p in (out / "tasks").iterdir())
        assert names == sorted(["5.json", "5.original.json", "Mixed.json", "Mixed.png",
                                f"{NFC_E}.json", f"{NFC_E}.png"])  # fmt: skip
        # Item 5's JSON original is intact: nothing wrote over it.
        assert (out / "tasks" / "5.original.json").read_bytes() == PNG_JSON

        # The first claimant keeps its name across runs, whatever order the listing takes.
        server.items.reverse()
        again = _action_export(server, out)
    assert (again.exported, again.skipped) == (0, 1 + len(TWINS))
    assert {item["id"] for item in again.failed_items} == refused
    assert server.requests > fetched


# -- 6. odd ids: any valid id fits, one item per id, a bad one is a clear error ------------------

BIG = 2**63  # beyond SQLite's INTEGER


def test_huge_ids_fit_and_an_id_and_its_string_form_are_one_item(tmp_path: Path) -> None:
    items = [_item(i) for i in (1, BIG, 2, 3, BIG * 2**64)]
    listed = [{"id": i} for i in (1, BIG, "2", 2, 3, str(BIG * 2**64), BIG * 2**64)]
    out = tmp_path / "out"
    with HostileItemsServer(items, pages={"": (listed, None)}) as server:
        code, summary = _export(server, out)
        assert code == 0, summary
        assert (summary["exported"], summary["failed"]) == (5, 0)
        assert (summary["requests"], summary["retried"]) == (2, 0)  # one list, one bulk fetch
        names = sorted(p.name for p in (out / "tasks").iterdir())
        assert names == sorted(f"{i}.json" for i in (1, BIG, 2, 3, BIG * 2**64))
        code, again = _export(server, out)
    assert code == 0
    assert (again["exported"], again["skipped"]) == (0, 5)


def test_a_listed_id_that_is_no_id_is_a_malformed_answer_not_a_traceback(tmp_path: Path) -> None:
    for bad in (None, 2.5, True, {"nested": 1}):
        listed = [{"id": 1}, {"id": bad}]
        with HostileItemsServer([_item(1)], pages={"": (listed, None)}) as server:
            code, answer = _export(server, tmp_path / "out")
        assert code == 1, answer
        assert answer["error"]["step"] == "fetch"
        assert answer["error"]["code"] == "EXPORT_FAILED_MALFORMED_RESPONSE", answer


# -- 3. a cursor that cycles ends the listing -----------------------------------------------------

CYCLE: dict[str, tuple[list[Any], str | None]] = {
    "": ([{"id": 1}], "A"),
    "A": ([{"id": 2}], "B"),
    "B": ([{"id": 3}], "A"),  # back to A: A -> B -> A -> ... forever
}


def test_a_cycling_cursor_is_a_malformed_answer_after_one_round(tmp_path: Path) -> None:
    with HostileItemsServer([_item(i) for i in (1, 2, 3)], pages=CYCLE) as server:
        code, answer = _export(server, tmp_path / "out")
    assert code == 1, answer
    assert answer["error"] == {
        "code": "EXPORT_FAILED_MALFORMED_RESPONSE",
        "message": answer["error"]["message"],
        "step": "fetch",
    }
    assert server.list_requests == 3  # "", A, B; B's cursor A was seen: no fourth request


def test_both_clients_stop_a_cycling_listing() -> None:
    with HostileItemsServer(pages=CYCLE) as server:
        with BackendV2Client(base_url=server.url, token=TOKEN) as client:
            seen: list[Any] = []
            with pytest.raises(BackendError) as info:
                seen.extend(item["id"] for item in client.tasks.iter(limit=1))
        assert info.value.error_code == "malformed_response"
        assert seen == [1, 2, 3] and server.list_requests == 3

        async def walk() -> list[Any]:
            async with AsyncBackendV2Client(base_url=server.url, token=TOKEN) as client:
                return [item["id"] async for item in client.tasks.iter(limit=1)]

        with pytest.raises(BackendError) as info:
            asyncio.run(walk())
        assert info.value.error_code == "malformed_response"
        assert server.list_requests == 6


# -- the naming rules, one by one ----------------------------------------------------------------


@pytest.mark.parametrize(
    "item_id",
    [*CLASHING, "COM¹", "conin$", "aux.tar.gz", "x" * 100 + "é" * 60, "lone\ud800surrogate"],
)
def test_item_filename_refuses_names_that_are_not_portable(item_id: str) -> None:
    with pytest.raises(UnsafeItemIdError):
        item_filename(item_id, "json")


@pytest.mark.parametrize("item_id", ["console", "nullable", "com10", "a.original.b", "é" * 109])
def test_item_filename_keeps_names_that_only_look_close(item_id: str) -> None:
    assert item_filename(item_id, "json") == f"{item_id}.json"


def test_name_key_ignores_case_and_normalisation_only() -> None:
    assert name_key("Mixed") == name_key("mixed") == name_key("MIXED")
    assert name_key(NFC_E) == name_key(NFD_E)
    assert name_key("Straße") == name_key("STRASSE")  # full case folding: refused, not risked
    assert name_key(5) == name_key("5") and name_key("a-1") != name_key("a_1")
