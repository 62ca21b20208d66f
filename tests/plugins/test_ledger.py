"""The durable ledger: state machine, idempotence, bounded iteration, kill safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapse_sdk.plugins.ledger import LEDGER_FILENAME, Ledger, LedgerRecord


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path, clock=FakeClock()) as led:
        yield led


def test_file_lives_in_the_job_folder_in_wal_mode(tmp_path: Path) -> None:
    with Ledger(tmp_path / "job"):
        pass
    path = tmp_path / "job" / LEDGER_FILENAME
    assert path.is_file()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_enqueue_then_export_then_idempotent(ledger: Ledger) -> None:
    assert ledger.enqueue_retry([1, 2, 3], "item_unavailable") == 3
    rec = ledger.get(2)
    assert rec is not None
    assert (rec.state, rec.code, rec.attempts) == ("pending", "item_unavailable", 1)
    assert ledger.enqueue_retry([2], "rate_limited") == 1
    rec = ledger.get(2)
    assert rec is not None and (rec.attempts, rec.code) == (2, "rate_limited")

    assert ledger.mark_exported([1, 2]) == 2
    first = ledger.get(1)
    assert ledger.mark_exported([1, 2]) == 0  # idempotent: nothing changes, not even `updated`
    assert ledger.get(1) == first
    assert first is not None and first.state == "exported" and first.code is None


def test_exported_is_terminal(ledger: Ledger) -> None:
    ledger.mark_exported(5)
    assert ledger.enqueue_retry([5], "item_unavailable") == 0
    assert ledger.mark_failed(5, "item_corrupted") == 0
    rec = ledger.get(5)
    assert rec is not None and rec.state == "exported"


def test_failed_can_be_retried_and_then_exported(ledger: Ledger) -> None:
    ledger.mark_failed([7], "item_unavailable")
    assert [r.id for r in ledger.iter_failed()] == [7]
    ledger.enqueue_retry([7], "item_unavailable")
    rec = ledger.get(7)
    assert rec is not None and (rec.state, rec.attempts) == ("pending", 2)
    ledger.mark_exported(7)
    assert ledger.summary().exported == 1


def test_summary_counts_and_failed_by_code(ledger: Ledger) -> None:
    ledger.mark_exported(range(10))
    ledger.enqueue_retry([10, 11], "item_unavailable")
    ledger.mark_failed_codes({12: "item_corrupted", 13: "invalid_id", 14: "invalid_id", 15: None})
    summary = ledger.summary()
    assert (summary.exported, summary.pending, summary.failed) == (10, 2, 4)
    assert summary.total == 16
    assert summary.failed_by_code == {None: 1, "invalid_id": 2, "item_corrupted": 1}


def test_fail_pending_keeps_last_code(ledger: Ledger) -> None:
    ledger.enqueue_retry([1], "item_unavailable")
    ledger.add_pending([2])
    assert ledger.fail_pending("gave_up") == 2
    assert ledger.get(1) == LedgerRecord(1, "failed", "item_unavailable", 1, ledger.get(1).updated)  # type: ignore[union-attr]
    rec = ledger.get(2)
    assert rec is not None and (rec.state, rec.code, rec.attempts) == ("failed", "gave_up", 0)


def test_a_permanent_code_is_not_overwritten_by_a_later_transient_one(ledger: Ledger) -> None:
    ledger.mark_failed([1], "item_corrupted")  # learned on a first run
    ledger.enqueue_retry([1, 2], "service_unavailable")  # a rerun: the whole request failed
    assert ledger.get(1).code == "service_unavailable"  # type: ignore[union-attr]  # last seen
    ledger.fail_pending()
    assert ledger.get(1).code == "item_corrupted"  # type: ignore[union-attr]  # what it is
    assert ledger.get(2).code == "service_unavailable"  # type: ignore[union-attr]
    ledger.enqueue_retry([1], "service_unavailable")
    ledger.mark_exported([1])  # it did export after all: nothing of the old code is kept
    ledger.requeue([1])
    ledger.fail_pending("gave_up")
    assert ledger.get(1).code == "gave_up"  # type: ignore[union-attr]


def test_each_run_has_its_own_attempts(ledger: Ledger) -> None:
    for _ in range(4):
        ledger.enqueue_retry([1], "item_unavailable")
    ledger.mark_failed([2], "rate_limited")
    ledger.mark_exported([3])
    assert [r.id for r in ledger.oldest_pending(10, max_attempts=2)] == []
    assert ledger.start_run() == 2
    assert [(r.id, r.attempts, r.code) for r in ledger.oldest_pending(10, max_attempts=2)] == [
        (1, 0, "item_unavailable")
    ]
    assert ledger.get(2).attempts == 0  # type: ignore[union-attr]


def test_requeue_puts_only_exported_items_back(ledger: Ledger) -> None:
    ledger.mark_exported([1, 2])
    ledger.mark_failed([3], "x")
    assert ledger.requeue([1, 3, 4], "damaged_on_disk") == 1
    assert [r.id for r in ledger.iter_exported()] == [2]
    assert [(r.id, r.code, r.attempts) for r in ledger.iter_pending()] == [
        (1, "damaged_on_disk", 0)
    ]
    assert ledger.get(3).state == "failed" and ledger.get(4) is None  # type: ignore[union-attr]


def test_a_version_1_ledger_is_upgraded_in_place(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / LEDGER_FILENAME)
    conn.executescript(
        "CREATE TABLE items (id NOT NULL PRIMARY KEY, state TEXT NOT NULL, code TEXT, "
        "attempts INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL);"
        "INSERT INTO items VALUES (7, 'failed', 'item_corrupted', 1, 0.0);"
        "PRAGMA user_version=1;"
    )
    conn.close()
    with Ledger(tmp_path) as led:
        assert led.get(7) == LedgerRecord(7, "failed", "item_corrupted", 1, 0.0)
        led.mark_failed([8], "invalid_id")
        led.enqueue_retry([8], "service_unavailable")
        led.fail_pending()
        assert led.get(8).code == "invalid_id"  # type: ignore[union-attr]


def test_add_pending_does_not_touch_known_items(ledger: Ledger) -> None:
    ledger.mark_exported(1)
    assert ledger.add_pending([1, 2]) == 1
    assert ledger.get(1).state == "exported"  # type: ignore[union-attr]
    assert ledger.get(2).state == "pending"  # type: ignore[union-attr]


def test_an_id_and_its_string_form_are_one_item_and_the_first_form_round_trips(
    ledger: Ledger,
) -> None:
    ledger.enqueue_retry([7, "7", "a/b"], None)
    ledger.mark_failed_codes({"8": "x", 8: "y"})
    assert [(r.id, r.attempts) for r in ledger.iter_pending()] == [(7, 1), ("a/b", 1)]
    assert isinstance(ledger.get("7").id, int)  # type: ignore[union-attr]
    assert [(r.id, r.code) for r in ledger.iter_failed()] == [("8", "y")]
    assert ledger.exported_among([7, "7"]) == set()
    ledger.mark_exported("7")
    assert ledger.exported_among([7, "7", 8]) == {7, "7"}


def test_any_integer_fits_beyond_sqlite_integer(ledger: Ledger) -> None:
    huge = [2**63, 2**64 + 1, -(2**63) - 1, 10**40]
    ledger.enqueue_retry(huge, "item_unavailable")
    ledger.mark_exported(10**40)
    assert sorted(r.id for r in ledger.iter_pending()) == sorted(huge[:3])
    assert ledger.exported_among(huge) == {10**40}
    assert ledger.get(2**63) is not None and ledger.get(str(2**63)) is not None


def test_a_schema_1_ledger_is_migrated_to_canonical_ids(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / LEDGER_FILENAME)
    db.executescript(
        "CREATE TABLE items (id NOT NULL PRIMARY KEY, state TEXT NOT NULL, code TEXT,"
        " attempts INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL);"
        "INSERT INTO items VALUES (1, 'exported', NULL, 0, 1.0), ('1', 'failed', 'x', 1, 1.0),"
        " ('a', 'pending', 'y', 2, 1.0), (2, 'failed', 'z', 1, 1.0);"
        "PRAGMA user_version=1;"
    )
    db.close()
    with Ledger(tmp_path) as ledger:
        assert ledger.get("1") == LedgerRecord(1, "exported", None, 0, 1.0)
        assert [r.id for r in ledger.iter_failed()] == [2]
        assert [r.id for r in ledger.iter_pending()] == ["a"]
        ledger.enqueue_retry([2**63], None)
    with Ledger(tmp_path) as again:  # opened again: already schema 2
        assert again.get(2**63) is not None


def test_iteration_is_batched_and_survives_changes_while_iterating(ledger: Ledger) -> None:
    ledger.enqueue_retry(range(1, 1201), "item_unavailable")
    seen = []
    for rec in ledger.iter_pending(batch=100):
        seen.append(rec.id)
        ledger.mark_exported(rec.id)  # changing state mid-iteration must not skip or repeat
    assert seen == list(range(1, 1201))  # integer ids in numeric order
    assert ledger.summary().pending == 0


def test_ids_are_listed_integers_by_value_then_strings_by_text(ledger: Ledger) -> None:
    ids: list[int | str] = [10, "b", 2, 2**70, -3, 1, "a", 100, 2**70 + 1, "10x", 0]
    ledger.mark_failed(ids, "item_corrupted")
    assert [r.id for r in ledger.iter_failed(batch=2)] == [
        -3, 0, 1, 2, 10, 100, 2**70, 2**70 + 1, "10x", "a", "b"
    ]


def test_a_ledger_made_before_the_numeric_order_gets_it_when_opened(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        ledger.mark_failed([10, 2, 1], "x")
    with sqlite3.connect(tmp_path / LEDGER_FILENAME) as conn:  # as the previous release left it
        conn.execute("DROP INDEX items_in_order")
        conn.execute("ALTER TABLE items DROP COLUMN number")
    with Ledger(tmp_path) as ledger:
        assert [r.id for r in ledger.iter_failed()] == [1, 2, 10]


def test_settings_are_recorded_and_survive_reopening(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        assert ledger.setting("filter") is None
        ledger.record_setting("filter", "{}")
        ledger.record_setting("filter", '{"project": "1"}')
    with Ledger(tmp_path) as ledger:
        assert ledger.setting("filter") == '{"project": "1"}'
        with pytest.raises(TypeError):
            ledger.record_setting("filter", 3)  # type: ignore[arg-type]


def test_oldest_pending_is_a_fifo_with_an_attempt_bound(ledger: Ledger) -> None:
    ledger.enqueue_retry([5, 6], "item_unavailable")  # updated 1001
    ledger.enqueue_retry([3], "item_unavailable")  # 1002
    ledger.enqueue_retry([5], "item_unavailable")  # 1003: 5 goes to the back, 2 attempts
    assert [r.id for r in ledger.oldest_pending(10)] == [6, 3, 5]
    assert [r.id for r in ledger.oldest_pending(2)] == [6, 3]
    assert [r.id for r in ledger.oldest_pending(10, max_attempts=1)] == [6, 3]
    assert ledger.oldest_pending(10, max_attempts=0) == []
    ledger.mark_exported(6)
    assert [r.id for r in ledger.oldest_pending(10)] == [3, 5]
    with pytest.raises(ValueError):
        ledger.oldest_pending(0)
    with pytest.raises(ValueError):
        ledger.oldest_pending(1, max_attempts=-1)


def test_exported_among_handles_more_ids_than_sql_parameters(ledger: Ledger) -> None:
    ledger.mark_exported(range(0, 3000, 2))
    assert ledger.exported_among(range(3000)) == set(range(0, 3000, 2))


@pytest.mark.parametrize("bad", [True, 1.5, None, b"1", object()])
def test_bad_ids_are_rejected_with_type_error_and_change_nothing(
    ledger: Ledger, bad: object
) -> None:
    with pytest.raises(TypeError, match="item id"):
        ledger.enqueue_retry([1, bad], "x")  # type: ignore[list-item]
    assert ledger.get(1) is None


def test_bad_code_is_rejected(ledger: Ledger) -> None:
    with pytest.raises(TypeError, match="failure code"):
        ledger.mark_failed(1, 42)  # type: ignore[arg-type]


def test_bad_batch_is_rejected(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="batch"):
        list(ledger.iter_pending(batch=0))


def test_closed_ledger_refuses_use(tmp_path: Path) -> None:
    led = Ledger(tmp_path)
    led.close()
    led.close()  # idempotent
    assert "closed" in repr(led)
    with pytest.raises(ValueError, match="closed"):
        led.summary()


def test_job_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        Ledger(path)


def test_a_foreign_database_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises((ValueError, sqlite3.DatabaseError)):
        Ledger(tmp_path)


def test_state_survives_reopening(tmp_path: Path) -> None:
    with Ledger(tmp_path) as led:
        led.mark_exported([1, 2])
        led.enqueue_retry([3], "item_unavailable")
    with Ledger(tmp_path) as led:
        summary = led.summary()
    assert (summary.exported, summary.pending) == (2, 1)


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["enqueue", "export", "fail"]),
        st.lists(st.integers(0, 12), max_size=4),
        st.sampled_from([None, "a", "b"]),
    ),
    max_size=30,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_matches_a_simple_model(tmp_path_factory: pytest.TempPathFactory, ops: list) -> None:
    model: dict[int, tuple[str, str | None, int]] = {}
    with Ledger(tmp_path_factory.mktemp("model")) as led:
        for op, named, code in ops:
            ids = list(dict.fromkeys(named))  # an id named twice in one call counts once
            if op == "enqueue":
                led.enqueue_retry(named, code)
                for i in ids:
                    state, _, attempts = model.get(i, ("new", None, 0))
                    if state != "exported":
                        model[i] = ("pending", code, attempts + 1)
            elif op == "export":
                led.mark_exported(named)
                for i in ids:
                    if model.get(i, ("new",))[0] != "exported":
                        model[i] = ("exported", None, model.get(i, ("", None, 0))[2])
            else:
                led.mark_failed(named, code)
                for i in ids:
                    state, _, attempts = model.get(i, ("new", None, 0))
                    if state != "exported":
                        model[i] = ("failed", code, attempts + 1)
        for i, (state, code, attempts) in model.items():
            rec = led.get(i)
            assert rec is not None
            assert (rec.state, rec.code, rec.attempts) == (state, code, attempts)
        summary = led.summary()
        assert summary.total == len(model)


def test_every_committed_change_survives_sigkill(tmp_path: Path) -> None:
    """A child marks items one transaction at a time and reports each commit; we kill -9 it
    mid-stream; every reported commit is in the ledger and the database is intact."""
    script = textwrap.dedent(
        """
        import sys
        from synapse_sdk.plugins.ledger import Ledger
        led = Ledger(sys.argv[1])
        i = 0
        while True:
            led.mark_exported([i])
            sys.stdout.write(f"{i}\\n"); sys.stdout.flush()
            i += 1
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    reported = []
    for line in proc.stdout:
        reported.append(int(line))
        if len(reported) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(tmp_path / LEDGER_FILENAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Ledger(tmp_path) as led:
        assert led.exported_among(reported) == set(reported)


def test_a_name_belongs_to_the_first_id_that_claims_it_across_reopenings(tmp_path: Path) -> None:
    with Ledger(tmp_path) as first:
        assert first.claim_names({"Mixed": "mixed", "other": "other"}) == set()
        assert first.claim_names({"mixed": "mixed", "Mixed": "mixed"}) == {"mixed"}
    with Ledger(tmp_path) as again:
        assert again.claim_names({"mixed": "mixed", "Mixed": "mixed", "new": "new"}) == {"mixed"}
        assert again.claim_names({5: "5", "5": "5"}) == set()  # one item by its string form
        with pytest.raises(TypeError):
            again.claim_names({"x": None})  # type: ignore[dict-item]
