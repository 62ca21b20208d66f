"""A suite-wide secret sink: no planted secret may reach a log record or an SDK error's text.

Registered as a pytest plugin by ``tests/conftest.py``, so it watches every test of the suite.

What is planted (automatically, wherever a test makes one; or by hand with the ``secret_sink``
fixture's :meth:`SecretSink.plant`):

* backend bearer tokens handed to the transport (``token=``, ``SDKConfig.token``) and the tokens
  the backend emulator accepts (random ``emu_...`` ones and explicit ones);
* Synap bootstrap tokens and session tokens minted by the Synap emulator;
* every private key the Synap client generates and every client certificate it stores.

A secret is indexed by every 16-character window of its token-like runs (letters, digits and
``-_+/=.~``; shorter runs are too likely to occur by chance and are not indexed),
so any fragment of 19 characters or more is found too (windows are probed every 4 characters):
one line of a PEM body, a token cut short, a token inside a URL or a JSON escape.

What is watched, in every test (setup, call and teardown) and in the threads it starts:

* every log record that reaches the root logger, from any logger, with the ``synapse_sdk`` and
  ``httpx`` loggers forced to DEBUG: the formatted message, the exception text and traceback of
  ``exc_info``, ``stack_info`` and the ``repr`` of every ``extra`` field;
* every :class:`~synapse_sdk.exceptions.SynapError` built: its message when it is built, and
  its ``str()`` and ``repr()`` at the end of the test if it is still alive.

A test during which a planted secret showed up fails at teardown, naming the secret's kind and
where it was seen (never the secret). ``SYNAPSE_SECRET_SINK=off`` turns the sink off (to measure
its overhead). The cost is a dictionary look-up per 4 characters of the long runs of each text.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["SINK", "SecretSink", "secret_sink"]

_WINDOW = 16
_STEP = 4
#: Runs of the characters of tokens, base64 and URL-safe base64: what is indexed and searched.
_RUN = re.compile(rf"[A-Za-z0-9_\-+/=~.]{{{_WINDOW},}}")
#: Loggers forced to DEBUG while the sink is on (the SDK's own, and httpx's request lines).
_DEBUG_LOGGERS = ("synapse_sdk", "httpx")
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class SecretSink:
    """The index of planted secrets and the list of sightings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, str] = {}
        self._violations: list[str] = []
        self._errors: list[weakref.ref[BaseException]] = []
        self.planted = 0
        self.records_checked = 0
        self.errors_checked = 0

    # -- the index ------------------------------------------------------------------------

    def plant(self, secret: str | bytes | None, kind: str) -> None:
        """Watch for ``secret`` (and its fragments) from now on; ``kind`` names it in reports."""
        if secret is None:
            return
        text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else str(secret)
        windows = {
            run[i : i + _WINDOW]
            for run in _RUN.findall(text)
            for i in range(len(run) - _WINDOW + 1)
        }
        if not windows:
            return
        with self._lock:
            for window in windows:
                self._windows.setdefault(window, kind)
            self.planted += 1

    def find(self, text: str) -> str | None:
        """The kind of a planted secret found in ``text``, or None."""
        windows = self._windows
        if not windows or len(text) < _WINDOW:
            return None
        for run in _RUN.findall(text):
            for i in range(0, len(run) - _WINDOW + 1, _STEP):
                kind = windows.get(run[i : i + _WINDOW])
                if kind is not None:
                    return kind
        return None

    # -- sightings ------------------------------------------------------------------------

    def _check(self, text: str, where: str) -> None:
        kind = self.find(text)
        if kind is not None:
            with self._lock:
                self._violations.append(f"a planted {kind} appeared in {where}")

    def check_record(self, record: logging.LogRecord) -> None:
        """Look for planted secrets in everything a log record carries."""
        if not self._windows:
            return
        self.records_checked += 1
        where = f"log record {record.name}:{record.levelname}"
        try:
            self._check(record.getMessage(), where)
        except Exception:  # a record whose arguments do not format: check the raw parts
            self._check(f"{record.msg!r} {record.args!r}", where)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            self._check("".join(traceback.format_exception(error)), f"{where} (exc_info)")
            self._check(_safe_repr(error), f"{where} (exc_info repr)")
        for extra in (record.exc_text, record.stack_info):
            if extra:
                self._check(extra, where)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                self._check(_safe_repr(value), f"{where} (extra {key!r})")

    def note_error(self, error: BaseException, message: object) -> None:
        """An SDK error was built: check its message now, its str/repr at the test's end."""
        if not self._windows:
            return
        if isinstance(message, str):
            self._check(message, f"the message of a new {type(error).__name__}")
        with self._lock:
            self._errors.append(weakref.ref(error))

    def check_errors(self) -> None:
        """Check ``str()`` and ``repr()`` of the SDK errors of this test that are still alive."""
        with self._lock:
            refs, self._errors = self._errors, []
        for ref in refs:
            error = ref()
            if error is None:
                continue
            self.errors_checked += 1
            name = type(error).__name__
            self._check(_safe_str(error), f"str() of a {name}")
            self._check(_safe_repr(error), f"repr() of a {name}")

    def take_violations(self) -> list[str]:
        """The sightings so far (each once), forgetting them."""
        with self._lock:
            found, self._violations = self._violations, []
        return list(dict.fromkeys(found))

    @contextlib.contextmanager
    def expect_leak(self) -> Iterator[list[str]]:
        """For tests of the sink itself: the block must leak; its sightings are yielded (filled
        on exit) and not held against the test."""
        before = self.take_violations()
        seen: list[str] = []
        try:
            yield seen
        finally:
            self.check_errors()
            seen.extend(self.take_violations())
            with self._lock:
                self._violations[:0] = before
        assert seen, "the sink saw no planted secret where one was leaked on purpose"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return ""


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return ""


SINK = SecretSink()


class _SinkHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        SINK.check_record(record)


_HANDLER = _SinkHandler(logging.NOTSET)


# --- automatic planting --------------------------------------------------------------------


def _wrap(owner: Any, name: str, after: Callable[..., None]) -> None:
    """Replace ``owner.name`` by a wrapper calling ``after(result, *args, **kwargs)``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        after(result, *args, **kwargs)
        return result

    setattr(owner, name, wrapper)


def _install_planting() -> None:
    from synapse_sdk import exceptions
    from synapse_sdk.clients import _transport
    from synapse_sdk.clients.synap import _core, _credentials
    from synapse_sdk.emulator import state
    from synapse_sdk.emulator.synap import _service

    _wrap(_transport, "_validate_token", lambda token, *a, **k: SINK.plant(token, "backend token"))
    _wrap(
        state.EmulatorState,
        "add_token",
        lambda _, self, token, *a, **k: SINK.plant(token, "emulator bearer token"),
    )
    _wrap(
        _service.SynapService,
        "issue_bootstrap_token",
        lambda token, *a, **k: SINK.plant(token, "Synap bootstrap token"),
    )
    _wrap(
        _service.SynapService,
        "open_session",
        lambda answer, *a, **k: SINK.plant(answer.get("session_token"), "Synap session token"),
    )
    _wrap(
        _core,
        "new_key_and_csr",
        lambda pair, *a, **k: SINK.plant(pair[0], "Synap private key"),
    )

    def stored(creds: Any, self: Any, key_pem: bytes, response: Any) -> None:
        SINK.plant(creds.cert_pem, "Synap client certificate")

    _wrap(_credentials.CredentialStore, "save", stored)

    original_init = exceptions.SynapError.__init__

    @functools.wraps(original_init)
    def init(self: Any, message: str = "", *args: Any, **kwargs: Any) -> None:
        original_init(self, message, *args, **kwargs)
        SINK.note_error(self, message)

    exceptions.SynapError.__init__ = init  # type: ignore[method-assign]


def _enabled() -> bool:
    return os.environ.get("SYNAPSE_SECRET_SINK", "on").lower() not in ("off", "0", "no")


def _attach() -> None:
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    for name in _DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


# --- pytest hooks --------------------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    if _enabled():
        _install_planting()
        _attach()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    if _enabled():
        _attach()  # a test may have removed the handler or changed a level
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    result = yield
    if _enabled():
        SINK.check_errors()
        found = SINK.take_violations()
        if found:
            raise AssertionError(
                "planted secrets leaked during this test:\n  " + "\n  ".join(found)
            )
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _enabled():
        return
    SINK.check_errors()
    found = SINK.take_violations()
    if found:
        print("\nplanted secrets leaked outside any test:\n  " + "\n  ".join(found))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _enabled():
        terminalreporter.write_line(
            f"secret sink: {SINK.planted} secrets planted, {SINK.records_checked} log records "
            f"and {SINK.errors_checked} live SDK errors checked"
        )


@pytest.fixture
def secret_sink() -> SecretSink:
    """The suite's secret sink: plant extra secrets, or prove it sees a leak."""
    return SINK
