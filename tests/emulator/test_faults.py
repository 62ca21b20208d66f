"""Fault injection over real sockets on a fake clock: 429, 503, drops, 207, latency, determinism."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from synapse_sdk.emulator import DROP_KINDS, Emulator, FakeClock, FaultProfile, RateLimit
from synapse_sdk.emulator.backend_v2 import storage_path
from synapse_sdk.emulator.state import TokenBucket, format_seconds


def stored(emu: Emulator, item_id: int) -> str:
    """The presigned URL path of a task's original file, as its ``files_manifest`` gives it."""
    path = storage_path("tasks", item_id)
    return f"{path}?{emu.state.sign(path)}"

IDS = list(range(1, 201))


def test_207_shape_matches_the_contract() -> None:
    faults = FaultProfile(seed=1, partial_failure_rate=0.2, permanent_failure_rate=0.05)
    with Emulator(items=200, faults=faults) as emu, emu.client() as http:
        response = http.post("/v2/assignments/bulk-fetch/", json={"ids": IDS})
    assert response.status_code == 207
    body = response.json()
    assert set(body) == {"data", "error", "meta"}
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    error = body["error"]
    assert error["code"] == "partial_failure"
    assert isinstance(error["message"], str)
    failed = error["failed"]
    assert failed
    assert all(set(entry) == {"id", "code", "retryable"} for entry in failed)
    codes = {entry["code"] for entry in failed}
    assert codes == {"item_unavailable", "item_corrupted"}
    for entry in failed:
        assert entry["retryable"] is (entry["code"] == "item_unavailable")
    succeeded = [item["id"] for item in body["data"]]
    failed_ids = [entry["id"] for entry in failed]
    assert succeeded == [i for i in IDS if i not in set(failed_ids)]  # request order kept
    assert failed_ids == [i for i in IDS if i in set(failed_ids)]
    record = emu.requests[-1]
    assert record.status == 207
    assert record.failed_ids == tuple(failed_ids)
    assert record.fault == "partial_failure"


def test_corrupted_ids_always_fail_and_unavailable_ones_recover() -> None:
    faults = FaultProfile(seed=2, partial_failure_rate=0.3, permanent_failure_rate=0.05)
    corrupted = {i for i in IDS if faults.is_corrupted("tasks", i)}
    assert corrupted
    with Emulator(items=200, faults=faults) as emu, emu.client() as http:
        pending = set(IDS)
        for _ in range(30):
            response = http.post("/v2/tasks/bulk-fetch/", json={"ids": sorted(pending)})
            body = response.json()
            pending -= {item["id"] for item in body["data"]}
            if response.status_code == 200:
                break
            for entry in body["error"]["failed"]:
                assert (entry["code"] == "item_corrupted") == (entry["id"] in corrupted)
    assert pending == corrupted


def test_429_with_retry_after_then_allowed_after_the_fake_clock_advances(
    clock: FakeClock,
) -> None:
    faults = FaultProfile(rate_limit=RateLimit(per_second=2.0, burst=3))
    with Emulator(items=10, faults=faults, clock=clock) as emu, emu.client() as http:
        statuses = [http.get("/v2/tasks/").status_code for _ in range(3)]
        limited = http.get("/v2/tasks/")
        assert statuses == [200, 200, 200]
        assert limited.status_code == 429
        error = limited.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["retry_after"] == 1  # RFC 9110 delay-seconds: whole, rounded up
        assert limited.headers["retry-after"] == "1"
        assert limited.headers["retry-after-ms"] == "500"
        # Still empty a moment before the advertised time ...
        clock.advance(0.4)
        early = http.get("/v2/tasks/")
        assert early.status_code == 429
        assert early.headers["retry-after-ms"] == "100"
        # ... and allowed exactly when the Retry-After says.
        clock.advance(float(early.headers["retry-after"]))
        assert http.get("/v2/tasks/").status_code == 200
        # The object store (presigned URLs) is not rate limited.
        assert http.get(stored(emu, 1)).status_code == 200
        records = emu.requests
    assert [r.status for r in records] == [200, 200, 200, 429, 429, 200, 200]
    assert records[3].retry_after == 0.5
    assert records[3].fault == "rate_limited"
    assert records[4].time == pytest.approx(records[3].time + 0.4)


def test_each_token_has_its_own_bucket(clock: FakeClock) -> None:
    faults = FaultProfile(rate_limit=RateLimit(per_second=1.0, burst=1))
    with Emulator(items=5, faults=faults, clock=clock) as emu, emu.client() as first:
        second_token = emu.add_token()
        with httpx.Client(
            base_url=emu.url,
            headers={"SYNAPSE-ACCESS-TOKEN": second_token, "SYNAPSE-Tenant": emu.tenant},
        ) as second:
            assert first.get("/v2/tasks/").status_code == 200
            assert first.get("/v2/tasks/").status_code == 429
            assert second.get("/v2/tasks/").status_code == 200
            assert second.get("/v2/tasks/").status_code == 429


def test_503_inside_an_outage_window_only(clock: FakeClock) -> None:
    faults = FaultProfile(outages=((10.0, 12.5),))
    with Emulator(items=5, faults=faults, clock=clock) as emu, emu.client() as http:
        assert http.get("/v2/tasks/").status_code == 200
        clock.advance(10.0)
        down = http.post("/v2/tasks/bulk-fetch/", json={"ids": [1]})
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "service_unavailable"
        assert down.headers["retry-after"] == "3"  # whole seconds, rounded up
        assert down.headers["retry-after-ms"] == "2500"
        # Unauthenticated requests see the outage too: the whole backend is down.
        assert httpx.get(emu.url + stored(emu, 1)).status_code == 503
        assert httpx.get(emu.url + "/healthz").status_code == 200  # not part of the API
        clock.advance(float(down.headers["retry-after"]))
        assert http.post("/v2/tasks/bulk-fetch/", json={"ids": [1]}).status_code == 200
        records = emu.requests
    assert [r.status for r in records] == [200, 503, 503, 200, 200]
    assert records[1].fault == "outage"
    assert records[1].retry_after == 2.5


def _attempt(http: httpx.Client, path: str) -> str:
    try:
        response = http.get(path)
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        return type(exc).__name__
    return str(response.status_code)


def test_dropped_connections_break_on_the_client_in_both_ways() -> None:
    faults = FaultProfile(seed=4, drop_rate=1.0)
    with Emulator(items=20, faults=faults) as emu, emu.client() as http:
        paths = [stored(emu, i) for i in range(1, 13)]
        outcomes = [_attempt(http, path) for path in paths]
        # The connection pool survives: a clean request on a new emulator-side connection works.
        assert httpx.get(emu.url + "/healthz").status_code == 200
        records = emu.requests
    kinds = [r.fault for r in records[: len(paths)]]
    assert set(kinds) == set(DROP_KINDS)
    assert all(outcome in {"RemoteProtocolError", "ReadError"} for outcome in outcomes)
    for record in records[: len(paths)]:
        # A reset drops before any status line; a truncation sends 200 headers, then half a body.
        assert record.status == (None if record.fault == "drop_reset" else 200)


def test_truncated_body_is_shorter_than_its_content_length() -> None:
    faults = FaultProfile(seed=4, drop_rate=1.0)
    with Emulator(items=20, faults=faults) as emu, emu.client() as http:
        for item_id in range(1, 30):
            try:
                response = http.send(http.build_request("GET", stored(emu, item_id)), stream=True)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                continue  # reset before any response: the other kind of drop
            promised = int(response.headers["content-length"])
            received = bytearray()
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in response.iter_raw():
                    received.extend(chunk)
            response.close()
            assert len(received) < promised
            return
    pytest.fail("no truncated drop among the attempts")  # pragma: no cover


def test_a_retry_of_a_dropped_request_is_a_new_decision() -> None:
    faults = FaultProfile(seed=5, drop_rate=0.5)
    with Emulator(items=20, faults=faults) as emu, emu.client() as http:
        outcomes = [_attempt(http, "/v2/tasks/") for _ in range(12)]
    assert "200" in outcomes
    assert {"RemoteProtocolError", "ReadError"} & set(outcomes)
    expected = ["200" if faults.drop("GET /v2/tasks/? -", n) is None else "x" for n in range(12)]
    assert ["200" if o == "200" else "x" for o in outcomes] == expected


def test_latency_advances_a_fake_clock_instead_of_sleeping(clock: FakeClock) -> None:
    faults = FaultProfile(seed=6, latency=(0.05, 0.25))
    with (
        Emulator(items=5, faults=faults, clock=clock) as emu,
        emu.client() as http,
    ):
        for _ in range(5):
            assert http.get("/v2/tasks/").status_code == 200
        records = emu.requests
    assert len(clock.sleeps) == 5
    assert all(0.05 <= s <= 0.25 for s in clock.sleeps)
    assert [r.latency for r in records] == clock.sleeps
    assert clock() == pytest.approx(1000.0 + sum(clock.sleeps))


def test_latency_awaits_an_injected_async_sleep() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    faults = FaultProfile(seed=6, latency=(0.05, 0.25))
    with Emulator(items=5, faults=faults, sleep=record) as emu, emu.client() as http:
        assert http.post("/v2/tasks/bulk-fetch/", json={"ids": [1]}).status_code == 200
        assert http.get(stored(emu, 1)).status_code == 200
        records = emu.requests
    assert waits == [r.latency for r in records]
    assert all(0.05 <= w <= 0.25 for w in waits)


def _fault_trace(seed: int, order: list[list[int]]) -> dict[int, list[bool]]:
    """Per item id: did each of its fetches fail? (requests sent in the given order)."""
    faults = FaultProfile(seed=seed, partial_failure_rate=0.4)
    trace: dict[int, list[bool]] = {}
    with Emulator(items=60, seed=1, faults=faults) as emu, emu.client() as http:
        for ids in order:
            response = http.post("/v2/tasks/bulk-fetch/", json={"ids": ids})
            failed = {e["id"] for e in response.json().get("error", {}).get("failed", [])}
            for i in ids:
                trace.setdefault(i, []).append(i in failed)
    return trace


def test_fault_decisions_do_not_depend_on_request_interleaving() -> None:
    first, second = list(range(1, 31)), list(range(31, 61))
    forward = _fault_trace(7, [first, second, first, second])
    backward = _fault_trace(7, [second, first, second[::-1], first[::-1]])
    assert forward == backward
    assert any(any(fails) for fails in forward.values())
    assert _fault_trace(8, [first, second, first, second]) != forward


def test_same_seed_gives_identical_data_and_identical_fault_decisions(clock: FakeClock) -> None:
    def run() -> tuple[str, list[object], str]:
        faults = FaultProfile.preset("heavy", seed=3).replace(outages=())
        with (
            Emulator(items=300, seed=3, faults=faults, clock=FakeClock()) as emu,
            emu.client() as http,
        ):
            outcomes = []
            for start in (1, 101, 201, 1, 101):
                outcomes.append(_post(http, list(range(start, start + 100))))
            records: list[object] = [
                (r.path, r.ids, r.status, r.faults, r.failed_ids, r.latency) for r in emu.requests
            ]
            return emu.store.digest(), records, repr(outcomes)

    assert run() == run()


def _post(http: httpx.Client, ids: list[int]) -> object:
    try:
        response = http.post("/v2/tasks/bulk-fetch/", json={"ids": ids})
    except httpx.TransportError as exc:
        return type(exc).__name__
    return response.status_code, response.json().get("error")


def test_mild_preset_is_what_the_cli_default_promises() -> None:
    mild = FaultProfile.preset("mild")
    assert 0.01 <= mild.partial_failure_rate <= 0.05
    assert mild.permanent_failure_rate == 0
    assert mild.rate_limit is not None
    # A 2000-item export needs at least 10 bulk fetches plus its list pages: more than the
    # burst, so the limit is actually hit.
    assert mild.rate_limit.burst < 10
    assert 0 < mild.drop_rate <= 0.01
    heavy = FaultProfile.preset("heavy")
    combined = heavy.partial_failure_rate + heavy.permanent_failure_rate + heavy.drop_rate
    assert 0.15 <= combined <= 0.25
    assert heavy.outages
    assert FaultProfile.preset("none").is_clean


def test_token_bucket_refills_on_its_clock_and_tolerates_rounding() -> None:
    bucket = TokenBucket(RateLimit(per_second=3.0, burst=2), now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    wait = bucket.take(0.0)
    assert wait == pytest.approx(1 / 3)
    advertised, _, _ = format_seconds(wait)
    assert bucket.take(advertised) == 0.0  # rounded up to whole ms: never early
    assert bucket.take(advertised) > 0
    assert bucket.take(100.0) == 0.0  # refills only up to the burst
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) > 0
    assert bucket.take(50.0) > 0  # a clock going back never adds tokens


@pytest.mark.parametrize(
    ("seconds", "header", "millis"),
    [
        (0.5, "1", "500"),
        (1 / 3, "1", "334"),
        (2.0, "2", "2000"),
        (1e-9, "1", "1"),
        (86400.0004, "86401", "86400001"),
    ],
)
def test_retry_after_is_rounded_up_to_whole_seconds_and_milliseconds(
    seconds: float, header: str, millis: str
) -> None:
    assert format_seconds(seconds)[1:] == (header, millis)


def test_request_log_records_drops_and_faults_and_resets() -> None:
    faults = FaultProfile(seed=9, drop_rate=0.5, partial_failure_rate=0.5)
    with Emulator(items=50, faults=faults) as emu, emu.client() as http:
        for start in range(1, 50, 10):
            _post(http, list(range(start, start + 10)))
        counts = Counter(f for r in emu.requests for f in r.faults)
        assert len(emu.requests) == 5
        emu.reset_log()
        assert emu.requests == []
    assert counts["partial_failure"] + counts["drop_reset"] + counts["drop_truncated"] > 0


def test_gateway_errors_answer_html_like_the_real_backends_gateway(clock: FakeClock) -> None:
    from synapse_sdk.clients import BackendV2Client
    from synapse_sdk.config import RetryPolicy, SDKConfig

    faults = FaultProfile(seed=2, gateway_error_rate=0.4)
    assert "gateway errors" in faults.describe() and "게이트웨이 오류" in faults.describe("ko")
    with Emulator(items=60, faults=faults, clock=clock) as emu:
        with emu.client() as http:
            answers = [http.get("/v2/tasks/", params={"per_page": n}) for n in range(1, 30)]
        gateway = [a for a in answers if a.status_code != 200]
        assert gateway and {a.status_code for a in gateway} <= {502, 503, 504, 520, 524}
        assert all(a.headers["content-type"].startswith("text/html") for a in gateway)
        policy = RetryPolicy(max_attempts=8, backoff_base=0.01, budget_capacity=None)
        with BackendV2Client(SDKConfig(retry_policy=policy), base_url=emu.url, token=emu.token,
                             tenant=emu.tenant, sleep=clock.sleep, clock=clock) as client:
            ids = [item["id"] for item in client.tasks.iter(limit=7)]
            assert [item["id"] for item in client.tasks.bulk_fetch(ids)] == ids
        faulted = [r for r in emu.requests if any(f.startswith("gateway_") for f in r.faults)]
    assert faulted and ids == list(range(1, 61))
