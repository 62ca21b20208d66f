"""Job reporting: an action's progress, coded messages, metrics and status on the backend job.

Against the emulator over a real socket (its job routes), or a loopback server answering 503,
or a port nobody listens on; on fake clocks (nothing sleeps).
"""

from __future__ import annotations

import json
import logging
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.clients.backend_v2 import BackendV2Client, rate_limited_paths
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RateLimit
from synapse_sdk.exceptions import RateLimitError, ServiceUnavailableError
from synapse_sdk.plugins.action import (
    JOB_LOG_FILENAME,
    ActionStepError,
    BaseAction,
    read_job_log,
)
from synapse_sdk.plugins.actions.export.action import (
    ExportAction,
    ExportProgress,
    JobLockedError,
)
from synapse_sdk.plugins.actions.export.exporter import BaseExporter
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.job_reporter import (
    EVENT_DISABLED,
    EVENT_DROPPED,
    EVENT_UNSENT,
    JOB_ID_ENV,
    JobReporter,
    job_id_from_env,
)

from .conftest import RawServer, read_request

SECRET = "syn_planted-secret-token-0123456789"
POLICY = RetryPolicy(max_attempts=2, backoff_base=0.1, backoff_max=0.5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(items=120, clock=clock, sleep=clock.sleep, token=SECRET) as emulator:
        yield emulator


def _client(url: str, clock: FakeClock, token: str = SECRET, tenant: str = "t") -> BackendV2Client:
    config = SDKConfig(retry_policy=POLICY)
    return BackendV2Client(
        config, base_url=url, token=token, tenant=tenant, sleep=clock.sleep, clock=clock
    )


def _export(
    emu: Emulator, clock: FakeClock, out: Path, language: str = "en", **kwargs: Any
) -> ExportAction:
    config = SDKConfig(
        backend_url=emu.url, token=emu.token, tenant=emu.tenant, retry_policy=POLICY,
        language=language,
    )
    return ExportAction(
        {"out_dir": out, "batch_size": 30, "page_size": 50}, config=config,
        sleep=clock.sleep, monotonic=clock, clock=clock, **kwargs,
    )


def _job_requests(emu: Emulator, tail: str) -> list[Any]:
    return [r for r in emu.requests if "/v2/jobs/" in r.path and r.path.endswith(tail)]


def _local_codes(action: BaseAction[Any]) -> list[str]:
    return [event["code"] for event in read_job_log(action.job_dir / JOB_LOG_FILENAME)]


# -- the export reports to its job --------------------------------------------------------------


def test_the_job_gets_status_progress_metrics_result_and_every_coded_message(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    job_id = emu.create_job()
    with _export(emu, clock, tmp_path, job_id=job_id) as action:
        summary = action.run()
        local = _local_codes(action)
        stats = action.job_reporter.stats  # type: ignore[union-attr]
    job = emu.state.jobs.detail(job_id)
    assert job is not None and job["status"] == "SUCCEEDED" and not job["is_active"]
    current = job["progress_record"]["current_progress"]
    assert current == {
        "step": "export", "phase": "done", "exported": 120, "skipped": 0, "failed": 0,
        "pending": 0, "percent": 100,
    }
    assert job["metrics_record"] == {"record": {"steps": {"export": {
        "exported": 120, "skipped": 0, "failed": 0, "failed_by_code": {},
    }}}}
    assert job["result"] == json.loads(json.dumps(summary.as_dict()))
    steps = job["progress_record"]["record"]["steps"]
    assert {name: steps[name]["status"] for name in steps if name != "export"} == dict.fromkeys(
        ("initialize", "fetch", "convert", "save", "finalize"), "done"
    )
    logs = emu.state.jobs.logs(job_id)
    assert [log["data"]["key"] for log in logs] == local  # every local line, in order
    first, last = logs[0], logs[-1]
    assert (first["event"], first["step"], first["level"]) == ("message", "initialize", "info")
    assert first["data"] == {"key": "EXPORT_INITIALIZED", "content": "Export initialized.",
                             "params": {}}
    assert (last["data"]["key"], last["level"], last["step"]) == (
        "EXPORT_COMPLETED", "success", "finalize"
    )
    # RUNNING first, then the snapshots, the final PATCH last; the messages in few requests.
    patches = _job_requests(emu, f"{job_id}/")
    assert patches[0].method == "PATCH" and len(patches) == stats.patches
    assert len(_job_requests(emu, "/logs/bulk/")) == stats.log_requests == 1
    assert stats.sent == len(local) and stats.dropped == stats.buffered == 0


def test_korean_runs_send_the_english_text_and_the_params_for_the_backend_to_render(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    job_id = emu.create_job()
    with _export(emu, clock, tmp_path, language="ko", job_id=job_id) as action:
        action.run()
        local = list(read_job_log(action.job_dir / JOB_LOG_FILENAME))
    sent = emu.state.jobs.logs(job_id)
    target = next(log for log in sent if log["data"]["key"] == "EXPORT_TARGET")
    assert target["data"]["params"] == {"target": "tasks"}
    assert target["data"]["content"].isascii()
    local_target = next(event for event in local if event["code"] == "EXPORT_TARGET")
    assert local_target["language"] == "ko" and not local_target["text"].isascii()


def test_a_planted_token_reaches_nothing_sent_to_the_job(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    job_id = emu.create_job()
    with _export(emu, clock, tmp_path, job_id=job_id) as action, action.reporting():
        action.log_message(
            ExportLogMessageCode.EXPORT_FAILED_AUTHENTICATION, token=SECRET,
            nested={"api_key": SECRET, "ok": 1},
        )
    sent = json.dumps([emu.state.jobs.detail(job_id), emu.state.jobs.logs(job_id)])
    assert SECRET not in sent
    assert emu.state.jobs.logs(job_id)[0]["data"]["params"] == {
        "token": "[redacted]", "nested": {"api_key": "[redacted]", "ok": 1}
    }


class _Steps(BaseAction[Any]):
    """Runs ``body`` as a job (the generic BaseAction path)."""

    body: Any = None

    def run(self) -> Any:
        with self.reporting():
            self.report_progress("train", percent=50.0, epoch=1)
            self.report_metrics("train", loss=0.5)
            with self.step("train"):
                self.body()


@pytest.mark.parametrize(
    ("raised", "status"), [(None, "SUCCEEDED"), (RuntimeError, "FAILED"),
                           (KeyboardInterrupt, "STOPPED")],
)
def test_the_final_status_follows_how_the_run_ended(
    emu: Emulator, clock: FakeClock, tmp_path: Path, raised: type[BaseException] | None,
    status: str,
) -> None:
    job_id = emu.create_job()

    def body() -> None:
        if raised is not None:
            raise raised()

    client = _client(emu.url, clock, tenant=emu.tenant)
    with client, _Steps(job_dir=tmp_path, v2_client=client, job_id=job_id) as action:
        action.body = body
        if raised is None:
            action.run()
        else:
            with pytest.raises((raised, Exception)):
                action.run()
    job = emu.state.jobs.detail(job_id)
    assert job is not None and job["status"] == status
    assert job["metrics_record"] == {"record": {"steps": {"train": {"loss": 0.5}}}}
    current = job["progress_record"]["current_progress"]
    assert current == {
        "step": "train", "epoch": 1, "percent": 100 if status == "SUCCEEDED" else 50.0,
        # a KeyboardInterrupt is no step failing: the step was left running
        "status": {"SUCCEEDED": "done", "FAILED": "failed", "STOPPED": "running"}[status],
    }


def test_a_second_run_refused_the_lock_leaves_the_job_to_the_first(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    job_id = emu.create_job()
    seen: list[tuple[str, int]] = []
    second = _export(emu, clock, tmp_path, job_id=job_id)

    def run_second(progress: Any) -> None:
        if seen:
            return
        before = len(_job_requests(emu, "/"))
        with pytest.raises(JobLockedError):
            second.run()
        status = emu.state.jobs.detail(job_id)["status"]  # type: ignore[index]
        seen.append((status, len(_job_requests(emu, "/")) - before))

    with second, _export(emu, clock, tmp_path, job_id=job_id, on_progress=run_second) as first:
        assert first.run().ok
    # The refused run sent nothing: the job stayed RUNNING under the first, which ended it.
    assert seen == [("RUNNING", 0)]
    assert second.job_reporter is not None and second.job_reporter.stats.patches == 0
    assert emu.state.jobs.detail(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]


class _Recording:
    """The client's job routes, keeping the current progress each ``PATCH`` carried."""

    def __init__(self, jobs: Any) -> None:
        self.jobs, self.current = jobs, list[dict[str, Any]]()

    def update(self, job_id: str, **fields: Any) -> Any:
        if "progress_record" in fields:
            self.current.append(fields["progress_record"]["current_progress"])
        return self.jobs.update(job_id, **fields)

    def create_logs(self, job_id: str, entries: Any) -> Any:
        return self.jobs.create_logs(job_id, entries)


def test_without_ids_the_percent_is_sent_once_the_listing_has_finished(
    clock: FakeClock, tmp_path: Path
) -> None:
    profile = FaultProfile(seed=2, partial_failure_rate=0.2)  # failed items: a retry phase
    ticks = iter(range(10**6))  # the reporter's clock: every update is due
    states: list[ExportProgress] = []
    with Emulator(items=60, faults=profile, clock=clock, sleep=clock.sleep, token=SECRET) as emu:
        job_id = emu.create_job()
        with _client(emu.url, clock, tenant=emu.tenant) as client:
            routes = _Recording(client.jobs)
            reporter = JobReporter(
                routes, job_id, progress_interval=0.5, max_share=1.0, final_deadline=1e6,
                clock=lambda: float(next(ticks)),
            )
            with _export(emu, clock, tmp_path, job_reporter=reporter,
                         on_progress=states.append) as action:
                summary = action.run()
    assert summary.retry_rounds >= 1 and summary.total == 60
    by_phase = {phase: [c for c in routes.current if c.get("phase") == phase]
                for phase in ("main", "retry", "done")}
    assert all(by_phase.values())
    assert all("percent" not in c for c in by_phase["main"])  # the total is not known yet
    retry = [c["percent"] for c in by_phase["retry"]]
    assert retry == sorted(retry) and 0 < retry[0] < 100 and retry[-1] <= 100
    assert by_phase["done"][-1]["percent"] == 100 == routes.current[-1]["percent"]
    assert {s.total for s in states if s.phase != "main"} == {60}
    assert {s.total for s in states if s.phase == "main"} == {None}


def test_an_action_without_a_job_reports_nothing(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    with _export(emu, clock, tmp_path) as action:
        action.run()
        assert action.job_reporter is None
    assert not _job_requests(emu, "/")


# -- batching and throttling ---------------------------------------------------------------------


def test_messages_go_in_batches_and_progress_is_coalesced(emu: Emulator, clock: FakeClock) -> None:
    job_id = emu.create_job()
    with _client(emu.url, clock, tenant=emu.tenant) as client:
        reporter = JobReporter(client.jobs, job_id, batch_size=100, clock=clock)
        reporter.start()
        for n in range(450):
            reporter.message("EXPORT_CONVERTING", "info", {"n": n}, "Converting.", 0.0, "convert")
            reporter.progress("export", done=n)
        # 450 messages: 4 full batches so far; 450 progress updates: the first at once only.
        assert len(_job_requests(emu, "/logs/bulk/")) == 4
        assert len(_job_requests(emu, f"{job_id}/")) == 2  # RUNNING, one snapshot
        clock.advance(2.5)  # past flush_interval and progress_interval: the next event sends
        reporter.message("EXPORT_CONVERTING", "info", {"n": 450}, "Converting.", 0.0)
        assert len(_job_requests(emu, "/logs/bulk/")) == 5
        assert emu.state.jobs.detail(job_id)["progress_record"]["current_progress"] == {  # type: ignore[index]
            "step": "export", "done": 449,
        }
        reporter.finish("SUCCEEDED")
        reporter.finish("FAILED")  # only the first counts
    assert [log["data"]["params"]["n"] for log in emu.state.jobs.logs(job_id)] == list(range(451))
    assert emu.state.jobs.detail(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]
    assert reporter.stats.log_requests == 5 and reporter.stats.sent == 451


def test_reporter_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="job_id"):
        JobReporter(object(), " ")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        JobReporter(object(), "j", batch_size=1001)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        JobReporter(object(), "j", flush_interval=0)  # type: ignore[arg-type]
    reporter = JobReporter(object(), "j")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        reporter.finish("RUNNING")


def test_the_job_id_comes_from_the_platforms_variable() -> None:
    assert JOB_ID_ENV == "SYNAPSE_JOB_ID"
    assert job_id_from_env({"SYNAPSE_JOB_ID": " 3f2c9a4e-1b7d-4c55-9a0e-2d6f8b1c7e90 "}) == (
        "3f2c9a4e-1b7d-4c55-9a0e-2d6f8b1c7e90"
    )
    assert job_id_from_env({"SYNAPSE_JOB_ID": " "}) is None
    assert job_id_from_env({"RAY_JOB_ID": "02000000"}) is None


# -- a job endpoint that fails never fails the action ---------------------------------------------


def _answer_503(conn: socket.socket) -> None:
    """Answer every request on the connection with a 503 (JSON error body)."""
    while True:
        head = read_request(conn)
        if not head:
            return
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body_seen = head.split(b"\r\n\r\n", 1)[1]
        while len(body_seen) < length:
            body_seen += conn.recv(65536)
        body = b'{"error":{"code":"service_unavailable","message":"down"},"meta":{}}'
        conn.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )


@pytest.fixture
def down_server() -> Iterator[RawServer]:
    server = RawServer(_answer_503)
    yield server
    server.close()


def _job_base(kind: str, down_server: RawServer, closed_port: int) -> str:
    port = down_server.port if kind == "503" else closed_port
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("kind", ["503", "unreachable"])
def test_a_failing_job_endpoint_loses_no_local_line_and_bounds_its_buffer(
    emu: Emulator, clock: FakeClock, tmp_path: Path, kind: str, down_server: RawServer,
    closed_port: int, caplog: pytest.LogCaptureFixture,
) -> None:
    job_id = emu.create_job()
    caplog.set_level(logging.WARNING, logger="synapse_sdk.plugins.job_reporter")
    with _client(_job_base(kind, down_server, closed_port), clock) as down:
        reporter = JobReporter(
            down.jobs, job_id, batch_size=5, max_buffer=10, final_deadline=5.0, clock=clock
        )
        with _export(emu, clock, tmp_path, job_reporter=reporter) as action:
            summary = action.run()
            local = _local_codes(action)
    assert summary.ok and summary.exported == 120
    assert "EXPORT_COMPLETED" in local and len(local) > 10  # the local log has every line
    stats = reporter.stats
    assert stats.sent == 0 and stats.buffered == 0 and stats.failures >= 1
    assert stats.dropped == len(local)  # each given up and counted, none left in memory
    events = [r.msg for r in caplog.records]
    assert events.count(EVENT_DROPPED) == 1 and events.count(EVENT_UNSENT) == 1
    assert emu.state.jobs.detail(job_id)["status"] == "PENDING"  # type: ignore[index]


def test_sending_pauses_after_a_failure_instead_of_hammering_the_backend(
    clock: FakeClock, down_server: RawServer
) -> None:
    with _client(f"http://127.0.0.1:{down_server.port}", clock) as down:
        reporter = JobReporter(down.jobs, "j-1", batch_size=1, clock=clock)
        for n in range(20):
            reporter.message("EXPORT_CONVERTING", "info", {"n": n}, "x", 0.0)
        assert reporter.stats.failures == 1  # one failed call (its retries), then a pause
        clock.advance(2.0)
        reporter.message("EXPORT_CONVERTING", "info", {}, "x", 0.0)
        assert reporter.stats.failures == 2
        assert down.stats.requests == 2 * POLICY.max_attempts


def test_a_job_the_backend_does_not_know_turns_reporting_off_once(
    emu: Emulator, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="synapse_sdk.plugins.job_reporter")
    missing = "00000000-0000-0000-0000-000000000000"
    with _export(emu, clock, tmp_path, job_id=missing) as action:
        assert action.run().ok
        stats = action.job_reporter.stats  # type: ignore[union-attr]
        local = _local_codes(action)
    assert [r.msg for r in caplog.records].count(EVENT_DISABLED) == 1
    assert len(_job_requests(emu, "/")) == 1  # the RUNNING PATCH, answered 404; nothing after
    assert stats.failures == 1 and stats.buffered == 0 and stats.dropped == len(local)


def test_the_final_flush_stops_at_its_deadline(clock: FakeClock, closed_port: int) -> None:
    slow = RetryPolicy(max_attempts=10, backoff_base=1.0, backoff_max=1.0, jitter="none")
    config = SDKConfig(retry_policy=slow)
    with BackendV2Client(
        config, base_url=f"http://127.0.0.1:{closed_port}", token="t", tenant="t",
        sleep=clock.sleep, clock=clock,
    ) as down:
        reporter = JobReporter(down.jobs, "j-1", final_deadline=3.0, clock=clock)
        reporter.message("EXPORT_CONVERTING", "info", {}, "x", 0.0)
        started = clock()
        reporter.finish("SUCCEEDED")
    assert clock() - started <= 3.0 and not math.isinf(clock())
    assert reporter.stats.dropped == 1


# -- reporting stays a small share of the run ----------------------------------------------------


class _SlowRoutes:
    """Job routes whose every request takes ``took`` seconds on ``clock`` (paced, slow)."""

    def __init__(self, clock: FakeClock, took: float) -> None:
        self.clock, self.took, self.calls = clock, took, 0

    def update(self, job_id: str, **fields: Any) -> None:
        self.calls += 1
        self.clock.advance(self.took)

    def create_logs(self, job_id: str, entries: Any) -> None:
        self.update(job_id)


def test_slow_sends_put_the_next_one_off_so_reporting_takes_a_tenth_of_the_time(
    clock: FakeClock,
) -> None:
    routes = _SlowRoutes(clock, took=1.0)
    reporter = JobReporter(routes, "j-1", batch_size=1, max_share=0.1, clock=clock)
    reporter.message("EXPORT_CONVERTING", "info", {}, "x", 0.0)
    assert routes.calls == 1  # took 1 s: nothing more for the next 9 s
    clock.advance(8.5)
    reporter.message("EXPORT_CONVERTING", "info", {}, "x", 0.0)
    assert routes.calls == 1
    clock.advance(0.6)
    reporter.message("EXPORT_CONVERTING", "info", {}, "x", 0.0)
    assert routes.calls == 3 and reporter.stats.sent == 3  # the waiting one went along
    with pytest.raises(ValueError, match="max_share"):
        JobReporter(routes, "j-1", max_share=0)


def test_the_jobs_reports_are_paced_with_the_export_under_a_tight_rate_limit(
    clock: FakeClock, tmp_path: Path
) -> None:
    faults = FaultProfile(rate_limit=RateLimit(per_second=1.0, burst=2))
    with Emulator(items=60, faults=faults, clock=clock, sleep=clock.sleep) as emu:
        job_id = emu.create_job()
        with _export(emu, clock, tmp_path, job_id=job_id) as action:
            assert action.run().ok
        statuses = [r.status for r in emu.requests if "/v2/jobs/" in r.path]
        assert statuses and 429 not in statuses  # they waited their turn instead
        assert emu.state.jobs.detail(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]
    assert rate_limited_paths(job_id) >= {f"/v2/jobs/{job_id}/", f"/v2/jobs/{job_id}/logs/bulk/"}


class _BrokenFinish(BaseExporter):
    def additional_file_saving(self, output: Any) -> None:
        raise RuntimeError("the manifest could not be built")


def test_a_failed_export_leaves_its_job_failed_with_the_failed_step_marked(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    job_id = emu.create_job()
    with _export(emu, clock, tmp_path, job_id=job_id, exporter=_BrokenFinish()) as action:
        with pytest.raises(ActionStepError):
            action.run()
        local = _local_codes(action)
    job = emu.state.jobs.detail(job_id)
    assert job is not None and job["status"] == "FAILED" and job["result"] is None
    steps = job["progress_record"]["record"]["steps"]
    assert steps["finalize"]["status"] == "failed" and steps["save"]["status"] == "done"
    logs = emu.state.jobs.logs(job_id)
    assert [log["data"]["key"] for log in logs] == local
    assert logs[-1]["data"]["key"] == "EXPORT_FAILED_STEP" and logs[-1]["step"] == "finalize"
    assert logs[-1]["level"] in {"error", "danger"}


class _FlakyStart:
    """The client's job routes, except that the first update fails (an outage)."""

    def __init__(self, jobs: Any) -> None:
        self.jobs, self.failed = jobs, False

    def update(self, job_id: str, **fields: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise ServiceUnavailableError("down")
        return self.jobs.update(job_id, **fields)

    def create_logs(self, job_id: str, entries: Any) -> Any:
        return self.jobs.create_logs(job_id, entries)


class _NoteWhileFinishing:
    """The client's job routes; once ``armed``, the first log request and the final status
    ``PATCH`` each make the action log a rate-limit note (as the pacer does on a 429)."""

    def __init__(self, jobs: Any) -> None:
        self.jobs, self.armed, self.notes = jobs, False, 0
        self.action: BaseAction[Any] | None = None

    def _note(self) -> None:
        if self.armed and self.action is not None:
            self.notes += 1
            self.action.log_message(ExportLogMessageCode.EXPORT_RATE_LIMITED_WAITING, seconds=1)

    def update(self, job_id: str, **fields: Any) -> Any:
        if fields.get("status") == "SUCCEEDED":
            self._note()
        return self.jobs.update(job_id, **fields)

    def create_logs(self, job_id: str, entries: Any) -> Any:
        if self.notes == 0:
            self._note()
        return self.jobs.create_logs(job_id, entries)


def test_messages_logged_during_the_final_flush_reach_the_job(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    job_id = emu.create_job()
    with _client(emu.url, clock, tenant=emu.tenant) as client:
        routes = _NoteWhileFinishing(client.jobs)
        reporter = JobReporter(routes, job_id, clock=clock)
        with _Steps(job_dir=tmp_path, v2_client=client, job_reporter=reporter) as action:
            routes.action = action

            def body() -> None:
                action.log_message(ExportLogMessageCode.EXPORT_INITIALIZED)
                routes.armed = True  # the run ends now: the rest happens in the final flush

            action.body = body
            action.run()
            local = _local_codes(action)
    assert routes.notes == 2 and local.count("EXPORT_RATE_LIMITED_WAITING") == 2
    assert [log["data"]["key"] for log in emu.state.jobs.logs(job_id)] == local
    assert reporter.stats.sent == len(local) and reporter.stats.dropped == 0
    assert emu.state.jobs.detail(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]


@pytest.mark.parametrize("snapshot", [True, False])
def test_a_start_that_did_not_get_through_is_sent_again_before_the_end(
    emu: Emulator, clock: FakeClock, snapshot: bool
) -> None:
    job_id = emu.create_job()
    with _client(emu.url, clock, tenant=emu.tenant) as client:
        reporter = JobReporter(_FlakyStart(client.jobs), job_id, clock=clock)
        reporter.start()
        assert emu.state.jobs.detail(job_id)["status"] == "PENDING"  # type: ignore[index]
        if snapshot:  # the next update carries it
            clock.advance(5.0)
            reporter.progress("export", done=1)
            assert emu.state.jobs.detail(job_id)["status"] == "RUNNING"  # type: ignore[index]
        reporter.finish("SUCCEEDED")  # PENDING -> SUCCEEDED would be refused
    assert emu.state.jobs.detail(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]
    assert reporter.stats.failures == 1


class _Refusing:
    """Job routes that answer every request with ``error`` (a transient one)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def update(self, job_id: str, **fields: Any) -> Any:
        self.calls += 1
        raise self.error

    def create_logs(self, job_id: str, entries: Any) -> Any:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "pause"),
    [
        (ServiceUnavailableError("down"), 2.0),  # no hint: the first backoff
        (RateLimitError("slow down", retry_after_seconds=7.0), 7.0),  # the server's hint
        (RateLimitError("slow down", retry_after_seconds=3600.0), 60.0),  # capped at backoff_max
    ],
)
def test_a_transient_failure_pauses_sending_as_the_one_wait_decision_says(
    clock: FakeClock, error: Exception, pause: float
) -> None:
    routes = _Refusing(error)
    reporter = JobReporter(routes, "j", batch_size=1, clock=clock)  # type: ignore[arg-type]
    reporter.start()  # RUNNING refused: sending pauses
    assert routes.calls == 1
    clock.advance(pause - 0.01)
    reporter.message("EXPORT_CONVERTING", "info", {}, "Converting.", 0.0)
    assert routes.calls == 1  # still paused
    clock.advance(0.02)
    reporter.message("EXPORT_CONVERTING", "info", {}, "Converting.", 0.0)
    assert routes.calls > 1
