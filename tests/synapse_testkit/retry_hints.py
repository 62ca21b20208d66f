"""Hostile ``retry_after`` hints in a backend's 207 partial-failure body, shared by the bulk
client's and the export action's wait tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import httpx

#: Hints (as JSON text) no caller may wait for: past any cap, quoted, a date a day ahead
#: (``DAY_AHEAD``, see :func:`hint_text`), beyond a float, absurdly long.
REFUSED_HINTS = ["3600", '"3600"', "DAY_AHEAD", "1e999", "9" * 400]


def hint_text(hint: str) -> str:
    """``hint`` as sent: ``DAY_AHEAD`` becomes an HTTP date a day from now (as a JSON string)."""
    if hint == "DAY_AHEAD":
        return json.dumps(formatdate(time.time() + 86_400, usegmt=True))
    return hint


def partial_body(first: dict[str, Any], retry_after: str) -> bytes:
    """A 207 body: ``first`` delivered, item 2 failed (retryable), ``retry_after`` as raw JSON
    text, so a hint JSON cannot hold as a Python float (``1e999``) is sent as written."""
    body = {"data": [first], "error": {
        "code": "partial_failure", "retry_after": "PLACEHOLDER",
        "failed": [{"id": 2, "code": "item_unavailable", "retryable": True}]}}  # fmt: skip
    return json.dumps(body).replace('"PLACEHOLDER"', retry_after).encode()


BULK_PATH = "/v2/tasks/bulk-fetch/"


def bulk_item(item_id: int) -> dict[str, Any]:
    """A task as the bulk route serves it."""
    return {"id": item_id, "resource": "tasks", "project_id": 1, "data": {"n": item_id}}


def scripted_bulk(
    answers: list[httpx.Response], sent: list[httpx.Request]
) -> Callable[[httpx.Request], httpx.Response]:
    """A ``MockTransport`` handler for the tasks bulk route: ``answers`` in order, then every
    id asked for served; each request is appended to ``sent``."""

    def backend(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        assert request.url.path == BULK_PATH
        if answers:
            return answers.pop(0)
        ids = json.loads(request.content)["ids"]
        return httpx.Response(200, json={"data": [bulk_item(i) for i in ids]})

    return backend


def partial_response(retry_after: str) -> httpx.Response:
    """A 207 of the tasks bulk route: item 1 served, item 2 retryable after ``retry_after``."""
    return httpx.Response(
        207, content=partial_body(bulk_item(1), retry_after),
        headers={"content-type": "application/json"},
    )
