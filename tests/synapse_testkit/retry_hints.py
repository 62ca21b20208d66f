"""Hostile ``retry_after`` hints in a backend's 207 partial-failure body, shared by the bulk
client's and the export action's wait tests."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from typing import Any

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
