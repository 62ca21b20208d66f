"""Issue 14's families of real-world failures, in every category where each applies, raised by
the real libraries (requests, urllib3, tarfile, zipfile, click, the interpreter, the SDK's own
action steps) against loopback servers, never hand-typed strings.

1. requests' status errors: 5xx is the service failing (back off, retry), 4xx is not a network
   problem; 2. retries already spent below us (urllib3 MaxRetryError, requests RetryError);
3. ``*ReadError`` of archive libraries is not the network; 4. data-shape errors in converter code;
5. a plugin built for another SDK version; 6. "Job is currently running"; 7. a code-first
envelope the blob cap cuts; 8. the backend's word under ``raise ... from None``.
"""

from __future__ import annotations

import importlib
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from synapse_sdk.exceptions import BackendError
from synapse_sdk.failures import DEFAULT_LIMIT
from synapse_sdk.plugins.action import ActionStepError, BaseAction
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.failure_semantics import FailureCategory, RetrySemantics

CATEGORIES = {name: get_category(name) for name in CATEGORY_NAMES}
IDS = list(CATEGORY_NAMES)


def code(category: FailureCategory[Any], suffix: str) -> Any:
    """The category's ``<NAME>_FAILED_<suffix>`` member (train's transport codes are one)."""
    prefix = category.codes.__name__.removesuffix("LogMessageCode").upper()
    if category.name == "train" and suffix in {"SERVICE_UNAVAILABLE", "NETWORK"}:
        suffix = "NETWORK"
    if category.name == "inference" and suffix == "MALFORMED_SHAPE":
        return category.codes[f"{prefix}_FAILED_INVALID_INPUT"]
    if suffix == "MALFORMED_SHAPE":
        suffix = "MALFORMED_DATA"
    return category.codes[f"{prefix}_FAILED_{suffix}"]


def raised(fn: Callable[[], object]) -> BaseException:
    """The exception ``fn`` raises (it must raise)."""
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


# --- a loopback server answering each path with a scripted status and body ----------------------


class Server:
    """``GET``/``POST`` ``/<name>`` answers ``routes[name]`` (status, JSON body) on 127.0.0.1."""

    def __init__(self, routes: dict[str, tuple[int, object]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                status, body = routes[self.path.strip("/")]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


_HUGE_IDS = list(range(30_000))  # over 100 KB of ids
ROUTES: dict[str, tuple[int, object]] = {
    **{str(status): (status, {"detail": "x"})
       for status in (400, 404, 408, 409, 500, 502, 503, 504)},
    "running": (409, {"detail": "Job is currently running"}),
    "limited": (429, {"error": {"code": "rate_limited", "retry_after": 2}}),
    **{
        f"huge-{name}": (207, {"error": {"code": key, "failed_ids": _HUGE_IDS}})
        for name, key in [("export", "partial_failure"), ("upload", "partial_failure"),
                          ("train", "job_cancelled"), ("inference", "partial_failure")]
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server(ROUTES)
    yield srv
    srv.close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as sess:
        sess.trust_env = False  # loopback only, whatever the environment's proxies say
        yield sess


# --- 1. requests' status errors -----------------------------------------------------------------


@pytest.mark.parametrize("name", IDS)
@pytest.mark.parametrize("status", [500, 502, 503, 504, 400, 404, 408, 409])
def test_requests_5xx_is_the_service_failing_and_4xx_no_network_problem(
    name: str, status: int, server: Server, session: requests.Session
) -> None:
    exc = raised(lambda: session.get(server.url(str(status))).raise_for_status())
    assert isinstance(exc, requests.HTTPError)
    category = CATEGORIES[name]
    if status >= 500:
        assert f"{status} Server Error" in str(exc)
        assert category.classify(exc) is code(category, "SERVICE_UNAVAILABLE")
        assert category.semantics(category.classify(exc)) is RetrySemantics.BACKOFF_THEN_RETRY
    else:
        assert f"{status} Client Error" in str(exc)
        assert category.classify(exc) is None  # the generic fallback: no "try again" for a 404


# --- 2. retries already spent below us ----------------------------------------------------------


@pytest.mark.parametrize("name", IDS)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_exhausted_urllib3_and_requests_retries_are_the_service_unavailable(
    name: str, status: int, server: Server, session: requests.Session
) -> None:
    retry = Retry(total=1, status_forcelist=[status], backoff_factor=0)  # no sleeping
    session.mount("http://", HTTPAdapter(max_retries=retry))
    from_requests = raised(lambda: session.get(server.url(str(status))))
    assert isinstance(from_requests, requests.exceptions.RetryError)
    pool = urllib3.PoolManager(retries=retry)
    from_urllib3 = raised(lambda: pool.request("GET", server.url(str(status))))
    assert isinstance(from_urllib3, urllib3.exceptions.MaxRetryError)
    category = CATEGORIES[name]
    for exc in (from_requests, from_urllib3):
        assert f"too many {status} error responses" in str(exc)
        assert category.classify(exc) is code(category, "SERVICE_UNAVAILABLE")


# --- 3. archive ReadErrors are not the network --------------------------------------------------


def _bad_archives() -> list[BaseException]:
    garbage = b"this is not an archive " * 40
    return [
        raised(lambda: tarfile.open(fileobj=io.BytesIO(garbage))),
        raised(lambda: tarfile.open(fileobj=io.BytesIO(b"\x1f\x8b" + garbage), mode="r:gz")),
        raised(lambda: zipfile.ZipFile(io.BytesIO(garbage))),
    ]


@pytest.mark.parametrize("name", IDS)
def test_a_bad_archive_is_malformed_data_not_a_network_error(name: str) -> None:
    category = CATEGORIES[name]
    archives = _bad_archives()
    assert isinstance(archives[0], tarfile.ReadError)
    for exc in archives:
        assert category.classify(exc) is code(category, "MALFORMED_DATA"), exc
    # httpx's own ReadError is still the network.
    assert category.classify(httpx.ReadError("socket read failed")) is code(category, "NETWORK")


# --- 4. data-shape errors in converter code -----------------------------------------------------


def _convert(item: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """A converter that expects (label, box) pairs and files to copy."""
    pairs = [(label, box) for label, box in item["annotations"]]
    pairs.sort(key=lambda pair: pair[1])
    for entry in item["files"]:
        pairs.append((str(entry), []))
    return pairs


def _shape_errors() -> list[BaseException]:
    return [
        raised(lambda: _convert({"annotations": [1, 2], "files": []})),
        raised(lambda: sorted([3, [1, 2]])),
        raised(lambda: _convert({"annotations": [("a", 1), ("b", [2])], "files": []})),
    ]


class _Converter(BaseAction):  # type: ignore[type-arg]
    def run(self) -> Any:
        return None


@pytest.mark.parametrize("name", IDS)
def test_data_shape_errors_are_a_data_format_problem(name: str, tmp_path: Path) -> None:
    category = CATEGORIES[name]
    errors = _shape_errors()
    assert "cannot unpack non-iterable int object" in str(errors[0])
    assert "not supported between instances of" in str(errors[1])
    for exc in errors:
        assert category.classify(exc) is code(category, "MALFORMED_SHAPE"), exc
    # Also when a step wrapper carries it: the cause is the more specific signal.
    action = _Converter({"ids": [1]}, job_dir=tmp_path)
    with action, pytest.raises(ActionStepError) as step, action.step("convert"):
        _convert({"annotations": [7], "files": []})
    assert category.classify(step.value) is code(category, "MALFORMED_SHAPE")


def test_an_item_without_files_is_files_missing() -> None:
    export = CATEGORIES["export"]

    def files_of(item: dict[str, Any]) -> list[str]:
        try:
            return [str(entry) for entry in item["files"]]
        except TypeError as exc:
            raise ValueError(f"item {item['id']} files: {exc}") from exc

    exc = raised(lambda: files_of({"id": 17, "files": None}))
    assert "'NoneType' object is not iterable" in str(exc)
    assert export.classify(exc) is export.codes["EXPORT_FAILED_FILES_MISSING"]
    # The same TypeError with no "files" near it is no claim about files.
    bare = raised(lambda: [str(entry) for entry in None])  # type: ignore[attr-defined]
    assert export.classify(bare) is None


# --- 5. a plugin built for another SDK version --------------------------------------------------


def _mismatches(tmp_path: Path) -> list[BaseException]:
    @click.command()
    def runner() -> None:
        """The SDK's plugin runner as this version has it: no --debug."""

    none_client: Any = None
    dict_client: Any = {}
    action: Any = _Converter({"ids": [1]}, job_dir=tmp_path)
    return [
        raised(lambda: importlib.import_module("synapse_sdk.plugins.categories.export")),
        raised(lambda: none_client.export),
        raised(lambda: dict_client.export),
        raised(lambda: action.log_dev_event("converted", {"count": 1})),
        raised(lambda: runner.main(["--debug"], standalone_mode=False)),
    ]


@pytest.mark.parametrize("name", IDS)
def test_a_plugin_for_another_sdk_version_says_so(name: str, tmp_path: Path) -> None:
    category = CATEGORIES[name]
    mismatches = _mismatches(tmp_path)
    assert isinstance(mismatches[0], ModuleNotFoundError)
    assert isinstance(mismatches[-1], click.NoSuchOption)
    for exc in mismatches:
        assert category.classify(exc) is code(category, "SDK_MISMATCH"), exc
    assert category.semantics(code(category, "SDK_MISMATCH")) is RetrySemantics.NO_RETRY
    # A plugin's own missing module is not the SDK's business.
    own = raised(lambda: importlib.import_module("my_plugin_helpers_that_do_not_exist"))
    assert category.classify(own) is not code(category, "SDK_MISMATCH")


# --- 6. a second run of a running job -----------------------------------------------------------


@pytest.mark.parametrize("name", IDS)
def test_job_is_currently_running_has_its_own_code(
    name: str, server: Server, session: requests.Session
) -> None:
    response = session.post(server.url("running"))

    def start() -> None:
        raise BackendError(response.json()["detail"], status_code=response.status_code)

    exc = raised(start)
    category = CATEGORIES[name]
    running = code(category, "JOB_RUNNING")
    assert category.classify(exc) is running
    assert running.level == "warning"
    assert category.semantics(running) is RetrySemantics.NO_RETRY


# --- 7. a code-first envelope the cap cuts ------------------------------------------------------


@pytest.mark.parametrize("name", IDS)
def test_a_huge_envelope_cut_by_the_cap_still_classifies_by_its_code(
    name: str, server: Server, session: requests.Session
) -> None:
    response = session.get(server.url(f"huge-{name}"))
    assert len(response.text) > 100_000 > DEFAULT_LIMIT

    def fetch() -> None:
        raise RuntimeError(f"bulk fetch failed: {response.text}")

    category = CATEGORIES[name]
    backend_code = response.json()["error"]["code"]
    assert category.classify(raised(fetch)) is category.catalog[backend_code]
    assert category.classify(message=f"bulk fetch failed: {response.text}") is (
        category.catalog[backend_code]
    )


# --- 8. suppressed context ----------------------------------------------------------------------


def _hidden(inner: Callable[[], object], outer_message: str) -> BaseException:
    def plugin() -> None:
        try:
            inner()
        except Exception:
            raise RuntimeError(outer_message) from None

    return raised(plugin)


@pytest.mark.parametrize("name", ["export", "upload", "inference"])  # train has no rate code
def test_the_backends_word_under_raise_from_none_counts(
    name: str, server: Server, session: requests.Session
) -> None:
    response = session.get(server.url("limited"))

    def fetch() -> None:
        raise BackendError(response.text, status_code=response.status_code)

    exc = _hidden(fetch, "could not fetch page 3")
    assert exc.__suppress_context__ and isinstance(exc.__context__, BackendError)
    category = CATEGORIES[name]
    assert category.classify(exc) is category.catalog["rate_limited"]


@pytest.mark.parametrize("name", IDS)
def test_text_under_raise_from_none_never_names_the_failure(
    name: str, tmp_path: Path, server: Server, session: requests.Session
) -> None:
    category = CATEGORIES[name]
    # A missing file the code handled and replaced with its own error.
    missing = _hidden(lambda: (tmp_path / "settings.json").read_text(), "bad settings value")
    assert isinstance(missing.__context__, FileNotFoundError)
    assert category.classify(missing) is None
    # A 429 seen only as requests' text (no backend code) does not make it a rate limit.
    limited = _hidden(lambda: session.get(server.url("limited")).raise_for_status(), "no page 3")
    assert isinstance(limited.__context__, requests.HTTPError)
    assert category.classify(limited) is None
    # The visible error's own words still decide.
    denied = _hidden(lambda: (tmp_path / "x").read_text(), "[Errno 13] Permission denied: '/out'")
    assert category.classify(denied) is code(category, "PERMISSION")
