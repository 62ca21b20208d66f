"""The job area against the client: progress, status transitions and atomic bulk logs."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients.backend_v2 import MAX_LOGS_PER_REQUEST
from synapse_sdk.config import SDKConfig
from synapse_sdk.emulator import Emulator
from synapse_sdk.exceptions import BackendInvalidInputError


def _log(n: int, **extra: Any) -> dict[str, Any]:
    return {"event": "export", "step": "fetch", "level": "info",
            "data": {"code": "EXPORT_FETCHING", "n": n}, "datetime": "2026-12-03T10:00:00Z",
            **extra}


@pytest.fixture
def running() -> Any:
    with Emulator(items=1) as emu, BackendV2Client(
        SDKConfig(retry_policy=None), base_url=emu.url, token=emu.token, tenant=emu.tenant
    ) as client:
        yield emu, client


def test_progress_and_status_are_patched_and_transitions_are_checked(running: Any) -> None:
    emu, client = running
    job_id = emu.create_job()
    progress = {"record": {"steps": {}}, "current_progress": {"overall": 5}}
    detail = client.jobs.update(job_id, status="RUNNING", progress_record=progress)
    assert (detail["id"], detail["status"], detail["progress_record"]) == (
        job_id, "RUNNING", progress
    )
    done = client.jobs.update(job_id, status="SUCCEEDED", result={"exported": 1})
    assert done["status"] == "SUCCEEDED" and not done["is_active"] and done["completed"]
    assert client.jobs.update(job_id, status="SUCCEEDED")["status"] == "SUCCEEDED"  # idempotent
    with pytest.raises(BackendInvalidInputError) as info:
        client.jobs.update(job_id, status="PENDING")
    assert info.value.error_code == "INVALID_TRANSITION"
    with pytest.raises(BackendInvalidInputError) as missing:
        client.jobs.update("00000000-0000-0000-0000-000000000000", status="RUNNING")
    assert missing.value.status_code == 404
    with pytest.raises(ValueError, match="update takes"):
        client.jobs.update(job_id, colour="red")


def test_logs_go_in_bulk_chunks_all_or_none(running: Any) -> None:
    emu, client = running
    job_id = emu.create_job()
    one = client.jobs.create_log(job_id, _log(0))
    assert one["job_id"] == job_id and one["data"]["n"] == 0 and one["file"] is None
    stored = client.jobs.create_logs(job_id, [_log(n) for n in range(MAX_LOGS_PER_REQUEST + 5)])
    assert [log["data"]["n"] for log in stored] == list(range(MAX_LOGS_PER_REQUEST + 5))
    bulk = [r for r in emu.requests if r.path.endswith("/logs/bulk/")]
    assert len(bulk) == 2 and all(r.idempotency_key is None for r in bulk)
    with pytest.raises(BackendInvalidInputError) as info:
        client.jobs.create_logs(job_id, [_log(1), _log(2, level="LOUD")])
    assert info.value.error_code == "VALIDATION_ERROR"
    assert len(emu.state.jobs.logs(job_id)) == 1 + MAX_LOGS_PER_REQUEST + 5  # none of the two


def test_a_bulk_over_the_limit_is_bulk_size_exceeded(running: Any) -> None:
    emu, client = running
    job_id = emu.create_job()
    logs = [_log(n) for n in range(MAX_LOGS_PER_REQUEST + 1)]
    response = client.transport.request  # the client never sends it: ask by hand
    with pytest.raises(BackendInvalidInputError) as info:
        response("POST", f"/v2/jobs/{job_id}/logs/bulk/", json={"logs": logs})
    assert info.value.error_code == "BULK_SIZE_EXCEEDED"


@pytest.mark.anyio
async def test_the_async_client_reports_to_jobs_too() -> None:
    async with Emulator(items=1) as emu, AsyncBackendV2Client(
        SDKConfig(retry_policy=None), base_url=emu.url, token=emu.token, tenant=emu.tenant
    ) as client:
        job_id = emu.create_job()
        assert (await client.jobs.update(job_id, status="RUNNING"))["status"] == "RUNNING"
        assert (await client.jobs.create_log(job_id, _log(0)))["level"] == "info"
        stored = await client.jobs.create_logs(job_id, [_log(1), _log(2, level="warning")])
        assert [log["level"] for log in stored] == ["info", "warning"]
        with pytest.raises(BackendInvalidInputError):
            await client.jobs.update(job_id, status="PENDING")
