"""The v2 error body's ``error.details`` ([{field, message}]) on the raised exception: a bounded,
sanitized tuple of ``(field, message)`` pairs, the first few quoted in ``str()``, never the token.
"""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest
from clients_support import TOKEN, Clock, config, policy

from synapse_sdk.clients import BackendV2Client
from synapse_sdk.clients._transport import MAX_ERROR_DETAILS, Transport
from synapse_sdk.emulator import Emulator
from synapse_sdk.exceptions import BackendError, BackendInvalidInputError
from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode


def raised(details: Any, clock: Clock, code: str = "VALIDATION_ERROR") -> BackendError:
    """The error a transport raises for a 400 whose ``error.details`` is ``details``."""
    body = {"error": {"code": code, "message": "bad input", "details": details},
            "meta": {"request_id": "req-1"}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=body)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    transport = Transport(config(policy(max_attempts=1)), http_client=http, sleep=clock.sleep,
                          clock=clock)
    with pytest.raises(BackendError) as caught:
        transport.request("GET", "/v2/tasks/")
    return caught.value


def test_the_emulators_validation_details_reach_the_exception() -> None:
    with Emulator(items=5) as emu, BackendV2Client(
        base_url=emu.url, token=emu.token, tenant=emu.tenant
    ) as client, pytest.raises(BackendInvalidInputError) as caught:
        client.transport.request("POST", "/v2/tasks/bulk-fetch/", json={"ids": [1]},
                                 params={"response_mode": "bogus"})
    error = caught.value
    assert error.error_code == "VALIDATION_ERROR"
    assert error.details == (("response_mode", "must be one of inline, presigned"),)
    assert "details: response_mode: must be one of inline, presigned" in str(error)
    assert classify_export_error(error) is ExportLogMessageCode.EXPORT_FAILED_VALIDATION
    assert pickle.loads(pickle.dumps(error)).details == error.details


def test_well_formed_details_are_kept_in_order(clock: Clock) -> None:
    error = raised([{"field": "ids", "message": "required"},
                    {"field": "per_page", "message": ["too big", "not a number"]},
                    {"message": "no field given"}], clock)
    assert error.details == (("ids", "required"), ("per_page", "too big; not a number"),
                             ("", "no field given"))
    assert "details: ids: required; per_page: too big; not a number; no field given" in str(error)
    assert "details=" in repr(error)


@pytest.mark.parametrize("details", [None, "ids: required", {"field": "ids"}, 7, [], [[1, 2]]])
def test_details_that_are_not_a_list_of_objects_give_none(clock: Clock, details: Any) -> None:
    error = raised(details, clock)
    assert error.details == ()
    assert "details:" not in str(error)
    assert error.error_code == "VALIDATION_ERROR"  # the rest of the body still counts


def test_non_string_values_are_shown_as_text_or_skipped(clock: Clock) -> None:
    error = raised([
        {"field": 3, "message": 4.5},
        {"field": "a", "message": None},  # no message: skipped
        {"field": {"deep": [1]}, "message": "kept, without a field"},
        {"field": "b", "message": {"nested": "object"}},  # no text: skipped
        {"field": True, "message": "a bool is no field"},
        {"field": "c", "message": [1, 2]},  # a list of non-strings: skipped
    ], clock)
    assert error.details == (("3", "4.5"), ("", "kept, without a field"),
                             ("", "a bool is no field"))


def test_huge_details_are_bounded(clock: Clock) -> None:
    entry = {"field": "f" * 5000, "message": "m" * 50_000}
    error = raised([entry] * 1000, clock)  # over the 64 KiB read of an error body
    assert error.details == () and error.error_code is None
    error = raised([{"field": "f" * 200, "message": "m" * 2000}] * 25, clock)  # under 64 KiB
    assert len(error.details) == MAX_ERROR_DETAILS
    for field, message in error.details:
        assert len(field) <= 100 and len(message) <= 300 and message.endswith("…")
    assert len(str(error)) < 3000  # three quoted, the rest counted
    assert "(+17 more)" in str(error)


def test_details_never_carry_the_token_or_forge_log_lines(clock: Clock) -> None:
    error = raised([{"field": f"token {TOKEN}", "message": f"echo\n{TOKEN}\r\nFAKE LOG\x1b[31m"},
                    {"field": "x", "message": "\u202eevil"}], clock)
    text = str(error) + repr(error) + repr(error.details)
    assert TOKEN not in text
    assert error.details[0] == ("token [REDACTED]", "echo [REDACTED]  FAKE LOG [31m")
    assert all(c.isprintable() for pair in error.details for part in pair for c in part)
    assert "\n" not in str(error)
