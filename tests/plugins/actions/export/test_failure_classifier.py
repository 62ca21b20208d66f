"""The export failure classifier: the seed's test list, plus errors raised for real.

Covers the three v2 catalog hits (one test per code), v2 over v1, unknown v2 codes falling through
to v1, no envelope skipping the catalog, a regression suite over every declared v1 pattern, and
exceptions raised by httpx against real loopback servers and by the OS, chains of every shape,
huge messages and exceptions that cannot be printed.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.exceptions import BackendError, BackendRateLimitError
from synapse_sdk.failures import DEFAULT_MAX_DEPTH, flatten_exception, walk_chain
from synapse_sdk.plugins.actions.export import failure_classifier as fc
from synapse_sdk.plugins.actions.export.failure_classifier import (
    EXPORT_FAILURES,
    EXPORT_RETRY_SEMANTICS,
    classify_export_error,
    extract_failed_step,
)
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.failure_semantics import RetrySemantics
from synapse_sdk.plugins.log_messages import LogLevel, resolve_log_message

E = ExportLogMessageCode
PatternIndex = Callable[[Sequence[tuple[str, object]], str], "int | None"]


def _envelope(code: str, **extra: object) -> str:
    return json.dumps({"error": {"code": code, "detail": "...", **extra}})


# --- the v2 catalog ---------------------------------------------------------------------------


def test_catalog_is_the_seeds_three_the_transports_three_and_the_real_apis_two() -> None:
    assert fc._V2_ERROR_CODE_TO_EXPORT_CODE == {
        "invalid_ids": E.EXPORT_FAILED_BAD_REQUEST,
        "partial_failure": E.EXPORT_FAILED_BATCH_PARTIAL,
        "rate_limited": E.EXPORT_FAILED_RATE_LIMITED,
        "redirect_refused": E.EXPORT_FAILED_REDIRECT_REFUSED,
        "response_too_large": E.EXPORT_FAILED_RESPONSE_TOO_LARGE,
        "malformed_response": E.EXPORT_FAILED_MALFORMED_RESPONSE,
        "ids_limit_exceeded": E.EXPORT_FAILED_BAD_REQUEST,
        "VALIDATION_ERROR": E.EXPORT_FAILED_VALIDATION,
    }


@pytest.mark.parametrize(
    ("error_code", "expected"),
    [
        ("redirect_refused", E.EXPORT_FAILED_REDIRECT_REFUSED),
        ("response_too_large", E.EXPORT_FAILED_RESPONSE_TOO_LARGE),
        ("malformed_response", E.EXPORT_FAILED_MALFORMED_RESPONSE),
    ],
)
def test_the_transports_codes_each_have_their_own_message(
    error_code: str, expected: ExportLogMessageCode
) -> None:
    # The transport's own texts: "malformed" would otherwise read as malformed item data.
    exc = BackendError(
        "GET /v2/tasks/ answered HTTP 200 with a body that is not valid UTF-8 JSON: malformed",
        error_code=error_code, status_code=200,
    )
    assert classify_export_error(exc) is expected
    assert fc.EXPORT_RETRY_SEMANTICS[expected] is RetrySemantics.NO_RETRY
    assert expected.level is LogLevel.ERROR
    assert resolve_log_message(expected, "ko").text != resolve_log_message(expected, "en").text


@pytest.mark.parametrize(
    ("code", "expected"),
    [("ids_limit_exceeded", E.EXPORT_FAILED_BAD_REQUEST),
     ("VALIDATION_ERROR", E.EXPORT_FAILED_VALIDATION)],
)
def test_the_real_v2_error_body_is_classified_by_its_code(code: str, expected: E) -> None:
    body = json.dumps({"error": {"code": code, "message": "x", "details": [
        {"field": "ids", "message": "x"}]}, "meta": {"request_id": "req_1"}})
    assert classify_export_error(BackendError(f"POST /v2/tasks/bulk-fetch/ answered HTTP 400: "
                                              f"{body}", error_code=code)) is expected


def test_v2_invalid_ids_is_bad_request() -> None:
    exc = BackendError(f"bulk fetch failed: {_envelope('invalid_ids', invalid_ids=[7, 9])}")
    assert classify_export_error(exc) is E.EXPORT_FAILED_BAD_REQUEST


def test_v2_partial_failure_is_batch_partial_the_seeds_example() -> None:
    exc = BackendError(
        'bulk fetch failed: '
        '{"error": {"code": "partial_failure", "detail": "..."}}'
    )
    assert classify_export_error(exc) is E.EXPORT_FAILED_BATCH_PARTIAL


def test_v2_rate_limited_is_rate_limited() -> None:
    exc = BackendRateLimitError(
        f"too many: {_envelope('rate_limited', retry_after=1.5)}", status_code=429
    )
    assert classify_export_error(exc) is E.EXPORT_FAILED_RATE_LIMITED


def test_v2_code_from_the_structured_attribute_without_text() -> None:
    exc = BackendError("bulk fetch failed", error_code="partial_failure", status_code=207)
    assert classify_export_error(exc) is E.EXPORT_FAILED_BATCH_PARTIAL


@pytest.mark.parametrize(
    "text",
    [
        "{'error': {'code': 'invalid_ids', 'invalid_ids': [1]}}",  # a Python dict repr
        '{"error": {"detail": "bad", "invalid_ids": [1], "code": "invalid_ids"}}',  # code last
        'HTTP 400: {"meta": {"request_id": "r1"}, "error": {"code": "invalid_ids"}}',
    ],
)
def test_v2_envelope_in_any_disguise(text: str) -> None:
    assert classify_export_error(RuntimeError(text)) is E.EXPORT_FAILED_BAD_REQUEST
    assert classify_export_error(message=text) is E.EXPORT_FAILED_BAD_REQUEST


def test_v2_wins_over_v1_keyerror_carrying_invalid_ids() -> None:
    exc = KeyError(_envelope("invalid_ids", invalid_ids=[3]))
    assert classify_export_error(KeyError("annotations")) is E.EXPORT_FAILED_INVALID_KEY
    assert classify_export_error(exc) is E.EXPORT_FAILED_BAD_REQUEST


def test_v2_wins_over_v1_even_when_a_network_pattern_matches() -> None:
    exc = BackendError(f"[Errno 111] Connection refused; {_envelope('partial_failure')}")
    assert classify_export_error(exc) is E.EXPORT_FAILED_BATCH_PARTIAL


def test_v2_in_the_cause_wins_over_v1_in_the_outer_error() -> None:
    try:
        try:
            raise BackendError(f"bulk fetch failed: {_envelope('rate_limited')}")
        except BackendError as inner:
            raise KeyError("data") from inner
    except KeyError as exc:
        assert classify_export_error(exc) is E.EXPORT_FAILED_RATE_LIMITED


def test_unknown_v2_code_falls_through_to_v1() -> None:
    exc = BackendError(f"Connection refused while fetching: {_envelope('brand_new_code')}")
    assert classify_export_error(exc) is E.EXPORT_FAILED_SERVER_UNREACHABLE
    assert classify_export_error(KeyError(_envelope("brand_new_code"))) is (
        E.EXPORT_FAILED_INVALID_KEY
    )
    assert classify_export_error(BackendError(_envelope("brand_new_code"))) is None


def test_numeric_code_is_a_status_not_a_catalog_key() -> None:
    text = '{"error": {"code": 429, "detail": "slow down"}}'
    assert classify_export_error(message=text) is None


def test_no_envelope_skips_the_catalog() -> None:
    # The catalog's keys as bare words are not an envelope: no v2 hit, and no v1 pattern.
    assert classify_export_error(message="partial_failure invalid_ids") is None
    assert classify_export_error(RuntimeError("code: partial_failure")) is None
    # ...so the v1 answer is what it was before the v2 layer existed.
    assert classify_export_error(KeyError("partial_failure")) is E.EXPORT_FAILED_INVALID_KEY


def test_nothing_to_classify() -> None:
    assert classify_export_error() is None
    assert classify_export_error(None, None) is None
    assert classify_export_error(message="") is None
    assert classify_export_error(RuntimeError()) is None


def test_message_and_exception_together() -> None:
    disk_full = "OSError: [Errno 28] No space left on device"
    assert classify_export_error(RuntimeError("boom"), message=disk_full) is (
        E.EXPORT_FAILED_DISK_FULL
    )


# --- v1 regression suite: every declared pattern -------------------------------------------

HTTPX_403 = (
    "httpx.HTTPStatusError: Client error '403 Forbidden' for url 'http://127.0.0.1/v2/tasks/'\n"
    "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/403"
)

V1_CASES: list[tuple[str, ExportLogMessageCode]] = [
    (
        "StorageAccessDeniedError: storage write failed on s3://out/x: AccessDenied: Access "
        "Denied\nPermissionError: Access Denied",
        E.EXPORT_FAILED_STORAGE_ACCESS_DENIED,
    ),
    (
        "StorageNotFoundError: storage list failed on s3://gone: NoSuchBucket\n"
        "FileNotFoundError: The specified bucket does not exist",
        E.EXPORT_FAILED_STORAGE_NOT_FOUND,
    ),
    ("StorageThrottledError: storage write failed: SlowDown", E.EXPORT_FAILED_SERVICE_UNAVAILABLE),
    ("StorageTimeoutError: storage write failed: ReadTimeoutError", E.EXPORT_FAILED_TIMEOUT),
    ("ValueError: Unsupported storage type 's3x'", E.EXPORT_FAILED_STORAGE_UNSUPPORTED),
    ("RuntimeError: storage provider 'ftp' is not supported", E.EXPORT_FAILED_STORAGE_UNSUPPORTED),
    ("KeyError: 'annotations'", E.EXPORT_FAILED_INVALID_KEY),
    ("KeyError: 'timeout'", E.EXPORT_FAILED_INVALID_KEY),
    (
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        E.EXPORT_FAILED_MALFORMED_DATA,
    ),
    (
        "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start "
        "byte",
        E.EXPORT_FAILED_MALFORMED_DATA,
    ),
    ("FileExistsError: [Errno 17] File exists: '/out/1.json'", E.EXPORT_FAILED_FILE_EXISTS),
    (
        "FileNotFoundError: [Errno 2] No such file or directory: '/data/1.png'",
        E.EXPORT_FAILED_FILE_NOT_FOUND,
    ),
    ("OSError: [Errno 28] No space left on device", E.EXPORT_FAILED_DISK_FULL),
    ("PermissionError: [Errno 13] Permission denied: '/out'", E.EXPORT_FAILED_PERMISSION),
    (HTTPX_403, E.EXPORT_FAILED_PERMISSION),
    (
        "httpx.HTTPStatusError: Client error '401 Unauthorized' for url 'http://x/v2/tasks/'",
        E.EXPORT_FAILED_AUTHENTICATION,
    ),
    (f"BackendError: {_envelope('unauthorized')}", E.EXPORT_FAILED_AUTHENTICATION),
    (
        "httpx.HTTPStatusError: Client error '429 Too Many Requests' for url 'http://x/'",
        E.EXPORT_FAILED_RATE_LIMITED,
    ),
    ("BlockingIOError: [Errno 11] Resource temporarily unavailable", E.EXPORT_FAILED_OS_TRANSIENT),
    ("OSError: [Errno 24] Too many open files", E.EXPORT_FAILED_OS_TRANSIENT),
    (
        "httpx.RemoteProtocolError: peer closed connection without sending complete message "
        "body (received 10 bytes, expected 100)",
        E.EXPORT_FAILED_INCOMPLETE_RESPONSE,
    ),
    (
        "http.client.IncompleteRead: IncompleteRead(10 bytes read, 90 more expected)",
        E.EXPORT_FAILED_INCOMPLETE_RESPONSE,
    ),
    (
        "httpx.RemoteProtocolError: Server disconnected without sending a response.",
        E.EXPORT_FAILED_CONNECTION_LOST,
    ),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", E.EXPORT_FAILED_CONNECTION_LOST),
    ("httpx.ConnectError: [Errno 111] Connection refused", E.EXPORT_FAILED_SERVER_UNREACHABLE),
    ("httpx.ConnectError: All connection attempts failed", E.EXPORT_FAILED_SERVER_UNREACHABLE),
    (
        "httpx.ConnectError: [Errno -2] Name or service not known",
        E.EXPORT_FAILED_SERVER_UNREACHABLE,
    ),
    ("httpx.ConnectTimeout: timed out", E.EXPORT_FAILED_SERVER_UNREACHABLE),
    (
        "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'http://x/'",
        E.EXPORT_FAILED_SERVICE_UNAVAILABLE,
    ),
    (f"BackendError: {_envelope('service_unavailable')}", E.EXPORT_FAILED_SERVICE_UNAVAILABLE),
    ("httpx.ReadTimeout: timed out", E.EXPORT_FAILED_TIMEOUT),
    ("TimeoutError: [Errno 110] Connection timed out", E.EXPORT_FAILED_TIMEOUT),
    (
        "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
        "failed: self-signed certificate",
        E.EXPORT_FAILED_TLS,
    ),
    (
        "synapse_sdk.exceptions.AuthenticationError: the server's TLS certificate failed "
        "verification; nothing was sent (ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] "
        "certificate verify failed: Hostname mismatch)",
        E.EXPORT_FAILED_TLS,
    ),
    ("httpx.NetworkError: socket closed", E.EXPORT_FAILED_NETWORK),
    (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ExportParams\n"
        "ids\n  Field required [type=missing, input_value={}, input_type=dict]",
        E.EXPORT_FAILED_VALIDATION,
    ),
    (
        "RuntimeError: missing required setting SYNAPSE_BACKEND_URL",
        E.EXPORT_FAILED_CONFIGURATION,
    ),
    ("ActionStepError: step 'convert' failed", E.EXPORT_FAILED_STEP),
    ("RuntimeError: export failed", E.EXPORT_FAILED),
    # issue 14's families (the real libraries raise these in test_real_world_families.py)
    ("BackendError: Job is currently running", E.EXPORT_FAILED_JOB_RUNNING),
    (
        "ModuleNotFoundError: No module named 'synapse_sdk.plugins.categories'",
        E.EXPORT_FAILED_SDK_MISMATCH,
    ),
    (
        "TypeError: item 7 files: 'NoneType' object is not iterable",
        E.EXPORT_FAILED_FILES_MISSING,
    ),
    ("TypeError: cannot unpack non-iterable int object", E.EXPORT_FAILED_MALFORMED_DATA),
]


@pytest.mark.parametrize(("text", "expected"), V1_CASES, ids=[c[0][:50] for c in V1_CASES])
def test_v1_regression(text: str, expected: ExportLogMessageCode) -> None:
    assert classify_export_error(message=text) is expected


def test_v1_regression_suite_covers_every_declared_pattern(pattern_index: PatternIndex) -> None:
    hit = {pattern_index(fc._V1_PATTERNS, text) for text, _ in V1_CASES}
    missing = [
        (i, code.name) for i, (_, code) in enumerate(fc._V1_PATTERNS) if i not in hit
    ]
    assert missing == [], "v1 patterns without a regression case"


def test_every_pattern_maps_to_an_export_failure_code_with_semantics() -> None:
    for _, code in fc._V1_PATTERNS:
        assert isinstance(code, ExportLogMessageCode)
        assert code in EXPORT_RETRY_SEMANTICS


# --- exceptions raised for real ---------------------------------------------------------------


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except BaseException as exc:  # the real thing, with its real traceback
        return exc
    raise AssertionError("expected the call to raise")


def test_real_httpx_connect_error_against_a_closed_port(
    http: httpx.Client, closed_port: int
) -> None:
    exc = _raised(lambda: http.get(f"http://127.0.0.1:{closed_port}/v2/tasks/", timeout=5))
    assert isinstance(exc, httpx.ConnectError)
    assert classify_export_error(exc) is E.EXPORT_FAILED_SERVER_UNREACHABLE


def test_real_httpx_read_timeout_against_a_server_that_never_answers(
    http: httpx.Client, silent_server: object
) -> None:
    url = silent_server.url  # type: ignore[attr-defined]
    exc = _raised(lambda: http.get(url, timeout=httpx.Timeout(5, read=0.2)))
    assert isinstance(exc, httpx.ReadTimeout)
    assert classify_export_error(exc) is E.EXPORT_FAILED_TIMEOUT


def test_real_response_cut_short(http: httpx.Client, truncating_server: object) -> None:
    url = truncating_server.url  # type: ignore[attr-defined]
    exc = _raised(lambda: http.get(url, timeout=5))
    assert isinstance(exc, httpx.RemoteProtocolError)
    assert classify_export_error(exc) is E.EXPORT_FAILED_INCOMPLETE_RESPONSE


def test_real_server_hangs_up_without_response(http: httpx.Client, hangup_server: object) -> None:
    url = hangup_server.url  # type: ignore[attr-defined]
    exc = _raised(lambda: http.get(url, timeout=5))
    assert isinstance(exc, httpx.RemoteProtocolError)
    assert classify_export_error(exc) is E.EXPORT_FAILED_CONNECTION_LOST


def test_real_json_decode_error() -> None:
    exc = _raised(lambda: json.loads("<html>502 Bad Gateway</html>"))
    assert isinstance(exc, json.JSONDecodeError)
    assert classify_export_error(exc) is E.EXPORT_FAILED_MALFORMED_DATA


def test_real_file_not_found(tmp_path: Path) -> None:
    exc = _raised(lambda: (tmp_path / "missing.json").read_text())
    assert isinstance(exc, FileNotFoundError)
    assert classify_export_error(exc) is E.EXPORT_FAILED_FILE_NOT_FOUND


def test_real_file_exists(tmp_path: Path) -> None:
    exc = _raised(lambda: os.mkdir(tmp_path))
    assert isinstance(exc, FileExistsError)
    assert classify_export_error(exc) is E.EXPORT_FAILED_FILE_EXISTS
    target = tmp_path / "a.json"
    target.write_text("{}")
    exc = _raised(lambda: os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    assert classify_export_error(exc) is E.EXPORT_FAILED_FILE_EXISTS


def test_real_key_error() -> None:
    item: dict[str, object] = {"id": 1}
    exc = _raised(lambda: item["annotations"])
    assert isinstance(exc, KeyError)
    assert classify_export_error(exc) is E.EXPORT_FAILED_INVALID_KEY


def _permission_error_as_nobody(path: Path) -> BaseException:
    """Open ``path`` from a forked child that dropped to uid/gid 65534; return its real error.

    As root, permission bits are not checked, so the failing syscall has to come from an
    unprivileged process; the child pickles the exception back through a pipe. Skips when
    privileges cannot be dropped here.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                path.read_text()
            except OSError as exc:
                os.write(write_end, pickle.dumps(exc))
                status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not payload:
        pytest.skip("could not drop privileges to provoke a real EACCES as root")
    exc = pickle.loads(payload)
    assert isinstance(exc, BaseException)
    return exc


def test_real_permission_error(tmp_path: Path) -> None:
    secret = tmp_path / "locked.json"
    secret.write_text("{}")
    secret.chmod(0)
    try:
        if os.geteuid() == 0:
            exc = _permission_error_as_nobody(secret)
        else:
            exc = _raised(secret.read_text)
    finally:
        secret.chmod(0o600)
    assert isinstance(exc, PermissionError)
    assert exc.errno == 13
    assert classify_export_error(exc) is E.EXPORT_FAILED_PERMISSION


# --- chains -------------------------------------------------------------------------------------


def test_explicit_cause_is_walked() -> None:
    def save() -> None:
        try:
            Path("/nonexistent/dir/out.json").write_text("{}")
        except FileNotFoundError as exc:
            raise RuntimeError("step 'save' failed") from exc

    exc = _raised(save)
    # The cause is the more specific signal than the step wrapper.
    assert classify_export_error(exc) is E.EXPORT_FAILED_FILE_NOT_FOUND
    assert extract_failed_step(exc) == "save"


def test_step_wrapper_alone_names_the_step() -> None:
    exc = RuntimeError("step 'convert' failed")
    exc.__cause__ = ValueError("odd value")
    assert classify_export_error(exc) is E.EXPORT_FAILED_STEP
    assert extract_failed_step(exc) == "convert"
    text, level = resolve_log_message(E.EXPORT_FAILED_STEP, "ko", step=extract_failed_step(exc))
    assert "'변환' 단계" in text and level is LogLevel.ERROR  # the step's name, in Korean


def test_implicit_context_is_walked() -> None:
    def convert() -> None:
        record: dict[str, object] = {}
        try:
            record["annotations"]
        except KeyError:
            raise ValueError("could not convert record 17")  # noqa: B904 - implicit context

    assert classify_export_error(_raised(convert)) is E.EXPORT_FAILED_INVALID_KEY


def test_suppressed_context_is_not_walked() -> None:
    def convert() -> None:
        try:
            {}["annotations"]
        except KeyError:
            raise RuntimeError("export failed") from None

    assert classify_export_error(_raised(convert)) is E.EXPORT_FAILED


def test_exception_group_members_are_walked(closed_port: int, http: httpx.Client) -> None:
    connect = _raised(lambda: http.get(f"http://127.0.0.1:{closed_port}/", timeout=5))
    group = ExceptionGroup("2 of 3 batches failed", [ValueError("odd"), connect])
    assert classify_export_error(group) is E.EXPORT_FAILED_SERVER_UNREACHABLE
    nested = BaseExceptionGroup("outer", [ExceptionGroup("inner", [KeyError("data")])])
    assert classify_export_error(nested) is E.EXPORT_FAILED_INVALID_KEY


def test_cyclic_chains_terminate() -> None:
    a = RuntimeError("a")
    b = RuntimeError("b: [Errno 28] No space left on device")
    a.__cause__ = b
    b.__cause__ = a
    assert classify_export_error(a) is E.EXPORT_FAILED_DISK_FULL
    c = ValueError("c")
    c.__context__ = c
    assert classify_export_error(c) is None
    assert extract_failed_step(a) is None


def _layers(root: BaseException, depth: int) -> BaseException:
    exc = root
    for i in range(depth):
        outer = RuntimeError(f"layer {i}")
        outer.__cause__ = exc
        exc = outer
    return exc


def test_a_deep_chain_does_not_recurse_forever() -> None:
    # 5000 layers: the walk stops DEFAULT_MAX_DEPTH links down (iteratively, no RecursionError),
    # so the KeyError at the bottom is out of reach and the generic layers match nothing.
    deep = _layers(KeyError("root"), 5000)
    assert len(walk_chain(deep)) == DEFAULT_MAX_DEPTH + 1
    assert classify_export_error(deep) is None
    # Within the cap, the root cause still decides.
    assert classify_export_error(_layers(KeyError("root"), DEFAULT_MAX_DEPTH)) is (
        E.EXPORT_FAILED_INVALID_KEY
    )


def test_two_megabyte_message() -> None:
    big = "x" * (2 * 1024 * 1024)
    assert classify_export_error(RuntimeError(big + " [Errno 111] Connection refused")) is (
        E.EXPORT_FAILED_SERVER_UNREACHABLE
    )
    assert classify_export_error(RuntimeError("[Errno 2] No such file or directory " + big)) is (
        E.EXPORT_FAILED_FILE_NOT_FOUND
    )
    assert classify_export_error(message=big) is None


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ exploded")


def test_exception_whose_str_raises() -> None:
    assert classify_export_error(_Unprintable()) is None
    wrapped = _Unprintable()
    wrapped.__cause__ = FileExistsError(17, "File exists", "/out/a.json")
    assert classify_export_error(wrapped) is E.EXPORT_FAILED_FILE_EXISTS
    assert extract_failed_step(wrapped) is None


def test_classifier_accepts_any_exception_instance() -> None:
    class Custom(BaseException):
        pass

    assert classify_export_error(Custom("[Errno 13] Permission denied")) is (
        E.EXPORT_FAILED_PERMISSION
    )
    assert classify_export_error(KeyboardInterrupt()) is None


_texts = st.text(max_size=300) | st.sampled_from([
    '{"error": {"code": "partial_failure"}}', '{"error": {"code": ', "[Errno 111]", "{", "}",
    "'", '"', "\\", "KeyError", "step '", "\x00", "\ud800",
])


@st.composite
def _chains(draw: st.DrawFn) -> BaseException:
    kinds = [RuntimeError, KeyError, ValueError, OSError, BackendError, _Unprintable]
    excs = [draw(st.sampled_from(kinds))(draw(_texts)) for _ in range(draw(st.integers(1, 4)))]
    for outer, inner in itertools.pairwise(excs):
        if draw(st.booleans()):
            outer.__cause__ = inner
        else:
            outer.__context__ = inner
    if draw(st.booleans()):
        excs[-1].__context__ = excs[0]  # a cycle
    if draw(st.booleans()):
        return ExceptionGroup("g", [e for e in excs if isinstance(e, Exception)])
    return excs[0]


@settings(max_examples=150, deadline=None)
@given(_chains(), st.none() | _texts)
def test_classification_never_raises(exc: BaseException, message: str | None) -> None:
    code = classify_export_error(exc, message)
    assert code is None or isinstance(code, ExportLogMessageCode)
    step = extract_failed_step(exc)
    assert step is None or isinstance(step, str)


# --- levels, retry semantics and step extraction ------------------------------------------------


def test_seed_levels_and_retry_semantics() -> None:
    assert E.EXPORT_FAILED_BAD_REQUEST.level is LogLevel.ERROR
    assert E.EXPORT_FAILED_BATCH_PARTIAL.level is LogLevel.WARNING
    assert E.EXPORT_FAILED_RATE_LIMITED.level is LogLevel.ERROR
    assert EXPORT_RETRY_SEMANTICS[E.EXPORT_FAILED_BAD_REQUEST] is RetrySemantics.NO_RETRY
    assert EXPORT_RETRY_SEMANTICS[E.EXPORT_FAILED_BATCH_PARTIAL] is (
        RetrySemantics.RETRY_FAILED_ITEMS
    )
    assert EXPORT_RETRY_SEMANTICS[E.EXPORT_FAILED_RATE_LIMITED] is (
        RetrySemantics.BACKOFF_THEN_RETRY
    )


def test_every_failure_code_has_semantics_and_progress_codes_have_none() -> None:
    for code in ExportLogMessageCode:
        is_failure = code.name.startswith("EXPORT_FAILED")
        assert (code in EXPORT_RETRY_SEMANTICS) is is_failure, code
        assert EXPORT_FAILURES.semantics(code) is EXPORT_RETRY_SEMANTICS.get(code)
    assert EXPORT_FAILURES.semantics(None) is None
    assert EXPORT_FAILURES.fallback is E.EXPORT_FAILED


@pytest.mark.parametrize(
    ("text", "step"),
    [
        ("step 'convert' failed", "convert"),
        ('Step "save_files" failed: disk', "save_files"),
        ("step=fetch failed", "fetch"),
        ("failed at step 'upload.results'", "upload.results"),
        ("export failed during step save", "save"),
        ("the step failed", None),
        ("no step here", None),
        ("", None),
    ],
)
def test_extract_failed_step_from_text(text: str, step: str | None) -> None:
    assert extract_failed_step(text) == step


def test_extract_failed_step_prefers_a_step_attribute() -> None:
    class StepFailure(Exception):
        def __init__(self, step: str) -> None:
            super().__init__(f"step '{step}' failed")
            self.step = step

    class BadAttribute(Exception):
        @property
        def step(self) -> str:
            raise RuntimeError("no")

    outer = RuntimeError("step 'other' failed")
    outer.__cause__ = StepFailure("convert")
    assert extract_failed_step(outer) == "convert"
    assert extract_failed_step(BadAttribute("step 'x' failed")) == "x"
    assert extract_failed_step(None) is None
    assert extract_failed_step(42) is None  # type: ignore[arg-type]


def test_flattened_text_is_what_the_patterns_see() -> None:
    exc = _raised(lambda: {}["annotations"])
    assert "KeyError" in flatten_exception(exc)


def test_the_docs_code_table_matches_the_code() -> None:
    docs = Path(__file__).resolve().parents[4] / "docs" / "failure-classification.md"
    rows = [line for line in docs.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `EXPORT_")]
    backend: dict[ExportLogMessageCode, list[str]] = {}
    for key, code in fc._V2_ERROR_CODE_TO_EXPORT_CODE.items():
        backend.setdefault(code, []).append(f"`{key}`")
    expected = []
    for code in ExportLogMessageCode:
        semantics = EXPORT_RETRY_SEMANTICS.get(code)
        v2 = ", ".join(backend[code]) if code in backend else "—"
        english = resolve_log_message(code, "en").text
        expected.append(
            f"| `{code.value}` | {code.level.value} | {v2} | "
            f"{semantics.value if semantics else '—'} | {english} |"
        )
    assert rows == expected
