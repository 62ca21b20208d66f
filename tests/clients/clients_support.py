"""Helpers for the client tests: a fake clock, scripted and fake backends for httpx.MockTransport.

Imported by the test modules as ``clients_support`` (``conftest.py`` puts this folder on
``sys.path``; pytest's importlib mode does not).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_testkit.scripted import FakeTime

BASE = "https://backend.test"
TOKEN = "tok-SECRET-1234567890"
TENANT = "acme"


#: A clock that only moves when slept on; records every sleep (the shared fake time).
Clock = FakeTime


def policy(**changes: Any) -> RetryPolicy:
    """A deterministic policy: no jitter, no budget."""
    base: dict[str, Any] = {
        "max_attempts": 3,
        "backoff_base": 0.5,
        "jitter": "none",
        "budget_capacity": None,
    }
    return RetryPolicy(**(base | changes))


def config(retry: RetryPolicy | None = None, **changes: Any) -> SDKConfig:
    return SDKConfig(
        retry_policy=retry if retry is not None else policy(),
        backend_url=BASE,
        token=TOKEN,
        **{"tenant": TENANT, **changes},
    )


Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """A response with a JSON body (``body`` bytes/str are sent as is)."""
    if isinstance(body, bytes | str):
        return httpx.Response(status, content=body, headers=headers)
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


def envelope(code: str, status: int, **extra: Any) -> httpx.Response:
    return reply(status, {"error": {"code": code, "detail": f"{code} happened", **extra}})


@dataclass
class Scripted:
    """A MockTransport handler answering from a script, in order, recording every request."""

    script: list[Reply]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def item(item_id: int, resource: str = "assignments") -> dict[str, Any]:
    return {"id": item_id, "resource": resource, "project_id": 1, "data": {"n": item_id}}


@dataclass
class FakeBulk:
    """A bulk-fetch/list backend: ``fail[id]`` lists the per-item codes of successive requests
    naming that id (``item_unavailable`` retryable, others not); ``invalid`` ids give a 400."""

    fail: dict[int, list[str]] = field(default_factory=dict)
    invalid: set[int] = field(default_factory=set)
    total: int = 0
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["synapse-access-token"] == TOKEN
        if request.method == "GET":
            limit = int(request.url.params["per_page"])
            start = int(request.url.params.get("cursor", "0"))
            ids = range(start, min(start + limit, self.total))
            nxt = str(start + limit) if start + limit < self.total else None
            pagination = {"next_cursor": nxt, "previous_cursor": None, "per_page": limit}
            body = {"data": [item(i) for i in ids], "meta": {"pagination": pagination}}
            return reply(200, body)
        ids = json.loads(request.content)["ids"]
        assert len(ids) <= 200
        bad = [i for i in ids if i in self.invalid]
        if bad:
            return envelope("invalid_ids", 400, invalid_ids=bad)
        data, failed = [], []
        for i in ids:
            codes = self.fail.get(i)
            if codes:
                code = codes.pop(0)
                failed.append({"id": i, "code": code, "retryable": code == "item_unavailable"})
            else:
                data.append(item(i))
        if not failed:
            return reply(200, {"data": data, "meta": {"request_id": "r"}})
        error = {"code": "partial_failure", "detail": "some failed", "failed": failed}
        return reply(207, {"data": data, "error": error, "meta": {"request_id": "r"}})

    def bulk_bodies(self) -> list[list[int]]:
        return [json.loads(r.content)["ids"] for r in self.requests if r.method == "POST"]


def sync_client(
    handler: Callable[[httpx.Request], httpx.Response],
    clock: Clock,
    cfg: SDKConfig | None = None,
) -> BackendV2Client:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return BackendV2Client(cfg or config(), http_client=http, sleep=clock.sleep, clock=clock)


def async_client(
    handler: Callable[[httpx.Request], httpx.Response],
    clock: Clock,
    cfg: SDKConfig | None = None,
) -> AsyncBackendV2Client:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AsyncBackendV2Client(cfg or config(), http_client=http, sleep=clock.asleep, clock=clock)


def ids_of(items: Iterable[dict[str, Any]]) -> list[Any]:
    return [i["id"] for i in items]
