"""The error tree holds the seed's Error Reference Table, and every class behaves as promised.

Each row of the table is a case: the class exists (and is exported), sits on its branch, and the
default ``RetryPolicy()`` retries it exactly when the table says "Retried: Yes" — checked both by
``is_retryable`` and by running it through the engine. Then the per-class promises: unique
codes, one-sentence docstrings, ``correlation_id``, readable ``repr``, ``pickle``, the
``Backend<Semantic>`` combinations and the id errors built from the offending id.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import synapse_sdk
from synapse_sdk import exceptions
from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import (
    INSTANCE_ID_PATTERN,
    AttemptRecord,
    BackendError,
    BackendRateLimitError,
    BackendServiceUnavailableError,
    InvalidConversationIdError,
    InvalidInputError,
    InvalidInstanceIdError,
    ListeningNotActiveError,
    NetworkTimeoutError,
    RateLimitError,
    SynapError,
    SynapPermanentError,
    SynapTransientError,
    backend_error_class,
    validate_instance_id,
)
from synapse_sdk.retry import Retrying, testing

# The seed's Error Reference Table: error, type, retried, common cause, resolution.
REFERENCE_TABLE = [
    ("NetworkTimeoutError", "Transient", "Yes", "Network issues, DNS failures",
     "Check connectivity; increase timeouts"),
    ("RateLimitError", "Transient", "Yes", "Too many requests", "Reduce frequency; upgrade plan"),
    ("ServiceUnavailableError", "Transient", "Yes", "Synap Cloud maintenance",
     "Wait and retry; check status page"),
    ("AgentUnavailableError", "Transient", "Yes", "Agent restarting or overloaded",
     "SDK retries automatically; queue if exhausted"),
    ("InvalidInputError", "Permanent", "No", "Bad request data", "Fix input parameters"),
    ("InvalidInstanceIdError", "Permanent", "No", "Wrong instance ID", "Verify in Dashboard"),
    ("InvalidConversationIdError", "Permanent", "No", "Conversation not found",
     "Check conversation exists"),
    ("AuthenticationError", "Permanent", "No", "Invalid/revoked credentials",
     "Re-bootstrap or check config"),
    ("CertificateExpiredError", "Permanent", "No", "SDK offline too long",
     "Re-bootstrap instance"),
    ("CertificateRenewalError", "Permanent", "No", "CA unreachable during renewal",
     "Contact support"),
    ("BootstrapKeyInvalidError", "Permanent", "No", "Token consumed or expired",
     "Generate new token in Dashboard"),
    ("BootstrapError", "Permanent", "No", "Init failure beyond token issues",
     "Check connectivity; retry initialize()"),
    ("ContextNotFoundError", "Permanent", "No", "No memories exist for resource",
     "Treat as empty state; ingest first"),
    ("SessionExpiredError", "Permanent", "No", "Session idle or invalidated",
     "Re-initialize SDK"),
    ("ListeningAlreadyActiveError", "Permanent", "No", "listen() called twice",
     "Skip; existing stream still active"),
    ("ListeningNotActiveError", "Permanent", "No", "stop_listening() with no stream",
     "Safe to ignore"),
]
TABLE_NAMES = [row[0] for row in REFERENCE_TABLE]
BRANCHES = {"Transient": SynapTransientError, "Permanent": SynapPermanentError}

ALL_ERROR_CLASSES: list[type[SynapError]] = [
    value
    for name in exceptions.__all__
    if isinstance(value := getattr(exceptions, name), type) and issubclass(value, SynapError)
]
BACKEND_COMBINED = [
    cls for cls in ALL_ERROR_CLASSES if issubclass(cls, BackendError) and cls is not BackendError
]


def make(cls: type[SynapError], message: str = "boom", **kwargs: Any) -> SynapError:
    """An instance of ``cls`` whatever its constructor needs."""
    if issubclass(cls, InvalidInstanceIdError):
        return cls("inst_bad", message, **kwargs)
    if issubclass(cls, InvalidConversationIdError):
        return cls("conv-1", message, **kwargs)
    return cls(message, **kwargs)


@pytest.mark.parametrize(("name", "kind", "retried", "cause", "resolution"), REFERENCE_TABLE,
                         ids=TABLE_NAMES)
def test_reference_table_row(name: str, kind: str, retried: str, cause: str,
                             resolution: str) -> None:
    cls = getattr(exceptions, name)
    assert getattr(synapse_sdk, name) is cls  # exported at the top level too
    assert issubclass(cls, BRANCHES[kind])
    other = SynapPermanentError if kind == "Transient" else SynapTransientError
    assert not issubclass(cls, other)
    error = make(cls)
    assert RetryPolicy().is_retryable(error) is (retried == "Yes")

    calls = 0

    def operation() -> None:
        nonlocal calls
        calls += 1
        raise make(cls)

    with testing() as waits, pytest.raises(cls) as caught:
        Retrying(RetryPolicy()).call(operation)
    expected_attempts = RetryPolicy().max_attempts if retried == "Yes" else 1
    assert calls == expected_attempts
    assert len(waits) == expected_attempts - 1
    assert len(caught.value.attempts) == expected_attempts


#: The Synap SDK's tree: these credential problems are kinds of authentication failure.
AUTHENTICATION_KINDS = ["CertificateExpiredError", "CertificateRenewalError",
                        "BootstrapKeyInvalidError"]


@pytest.mark.parametrize("name", AUTHENTICATION_KINDS)
def test_credential_errors_are_authentication_errors(name: str) -> None:
    cls = getattr(exceptions, name)
    assert issubclass(cls, exceptions.AuthenticationError)
    assert issubclass(cls, SynapPermanentError)
    assert cls.code != exceptions.AuthenticationError.code  # still told apart by its own code
    with pytest.raises(exceptions.AuthenticationError):
        raise make(cls)
    backend = exceptions.backend_error_class(cls)("refused", status_code=401)
    assert isinstance(backend, exceptions.AuthenticationError)
    assert isinstance(backend, BackendError)
    assert not RetryPolicy().is_retryable(backend)


def test_table_is_the_whole_tree() -> None:
    leaves = {
        cls.__name__
        for cls in ALL_ERROR_CLASSES
        if not issubclass(cls, BackendError)
        and cls not in (SynapError, SynapTransientError, SynapPermanentError)
    }
    assert leaves == set(TABLE_NAMES)
    assert len(TABLE_NAMES) == 16


def test_codes_are_unique_and_stable_strings() -> None:
    semantic = [cls for cls in ALL_ERROR_CLASSES if cls not in BACKEND_COMBINED]
    codes = [cls.code for cls in semantic]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert isinstance(code, str)
        assert code == code.lower()
        assert " " not in code


@pytest.mark.parametrize("cls", BACKEND_COMBINED, ids=lambda c: c.__name__)
def test_backend_combined_class_is_both(cls: type[BackendError]) -> None:
    semantic = cls.__mro__[2]
    assert issubclass(cls, BackendError)
    assert issubclass(cls, semantic)
    assert cls.code == semantic.code  # the semantic code, shared by the backend-reported form
    assert backend_error_class(semantic) is cls
    error = cls("refused", status_code=400, error_code="some_code")
    assert isinstance(error, BackendError)
    assert isinstance(error, semantic)
    assert RetryPolicy().is_retryable(error) is issubclass(semantic, SynapTransientError)


def test_backend_error_class_falls_back_to_plain_backend_error() -> None:
    assert backend_error_class(None) is BackendError
    assert backend_error_class(NetworkTimeoutError) is BackendError  # never a backend answer
    assert backend_error_class(ListeningNotActiveError) is BackendError  # a local misuse
    assert issubclass(backend_error_class(InvalidInstanceIdError), InvalidInstanceIdError)
    assert backend_error_class(RateLimitError) is BackendRateLimitError


# --- the registry: which class for which answer ---------------------------------------------

HTTP_ANSWERS = [
    # (status, envelope code, operation, class raised, outcome unknown)
    (429, None, None, exceptions.BackendRateLimitError, False),
    (503, None, None, exceptions.BackendServiceUnavailableError, False),
    (503, "agent_unavailable", None, exceptions.BackendAgentUnavailableError, False),
    (408, None, None, exceptions.BackendServiceUnavailableError, False),
    (500, None, None, exceptions.BackendServiceUnavailableError, True),
    (502, "teapot", None, exceptions.BackendServiceUnavailableError, True),
    (599, None, None, exceptions.BackendServiceUnavailableError, True),
    (501, None, None, BackendError, False),
    (505, None, None, BackendError, False),
    (400, "invalid_ids", None, exceptions.BackendInvalidInputError, False),
    (404, None, None, exceptions.BackendInvalidInputError, False),
    (422, None, None, exceptions.BackendInvalidInputError, False),
    (401, None, None, exceptions.BackendAuthenticationError, False),
    (403, None, None, exceptions.BackendAuthenticationError, False),
    (418, None, None, BackendError, False),
    (302, None, None, BackendError, False),
    # A known code wins over the status; the status still says whether it may have been applied.
    (401, "session_expired", None, exceptions.BackendSessionExpiredError, False),
    (404, "context_not_found", None, exceptions.BackendContextNotFoundError, False),
    (500, "rate_limited", None, exceptions.BackendRateLimitError, True),
    (401, "certificate_expired", "renew", exceptions.BackendCertificateExpiredError, False),
    # An operation may give a code its own meaning.
    (403, "binding_revoked", "session", exceptions.BackendAuthenticationError, False),
    (403, "binding_revoked", "renew", exceptions.BackendCertificateRenewalError, False),
    (404, "invalid_instance_id", None, exceptions.BackendInvalidInstanceIdError, False),
]


@pytest.mark.parametrize(("status", "code", "operation", "expected", "unknown"), HTTP_ANSWERS)
def test_the_registry_picks_the_class_of_an_http_answer(
    status: int, code: str | None, operation: str | None, expected: type, unknown: bool
) -> None:
    match = exceptions.registry.for_http(status, code, operation)
    assert backend_error_class(match.error) is expected
    assert match.outcome_unknown is unknown


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("UNAUTHENTICATED", None, exceptions.AuthenticationError),
        ("PERMISSION_DENIED", None, exceptions.AuthenticationError),
        ("RESOURCE_EXHAUSTED", None, RateLimitError),
        ("UNAVAILABLE", None, exceptions.ServiceUnavailableError),
        ("UNAVAILABLE", "stream_dropped", exceptions.ServiceUnavailableError),
        ("UNAVAILABLE", "agent_unavailable", exceptions.AgentUnavailableError),
        ("DEADLINE_EXCEEDED", None, NetworkTimeoutError),
        ("INVALID_ARGUMENT", None, InvalidInputError),
        ("NOT_FOUND", None, InvalidInputError),
        ("UNAUTHENTICATED", "session_expired", exceptions.SessionExpiredError),
        ("INTERNAL", None, None),  # the caller decides (the stream: a broken connection)
    ],
)
def test_the_registry_picks_the_class_of_a_grpc_status(
    status: str, code: str | None, expected: type | None
) -> None:
    assert exceptions.registry.for_grpc(status, code) is expected


def test_every_backend_code_has_a_backend_form() -> None:
    for cls in ALL_ERROR_CLASSES:
        if cls not in BACKEND_COMBINED and (cls.backend_codes or cls.http_statuses):
            assert issubclass(backend_error_class(cls), cls), cls


def test_declarations_are_not_inherited_and_conflicts_are_refused() -> None:
    class Quota(RateLimitError):
        """A subclass that declares nothing takes over no answer."""

    assert exceptions.registry.for_http(429).error is RateLimitError
    with pytest.raises(TypeError, match="both claim the backend code 'rate_limited'"):

        class Clash(SynapTransientError):
            """Claims a free status and a taken code: neither is entered."""

            http_statuses = (499,)
            backend_codes = ("rate_limited",)

    assert exceptions.registry.for_http(499).error is BackendError  # nothing half-registered


def test_build_error_passes_the_subject_first() -> None:
    error = exceptions.build_error(
        exceptions.BackendInvalidConversationIdError,
        "gone",
        {"conversation_id": "conv-9", "instance_id": "inst_x"},
        status_code=404,
    )
    assert error.conversation_id == "conv-9" and error.status_code == 404
    unknown = exceptions.build_error(InvalidInstanceIdError, "gone", {})
    assert unknown.instance_id is None
    plain = exceptions.build_error(RateLimitError, "slow", {}, retry_after_seconds=2)
    assert plain.retry_after_seconds == 2


def test_a_rate_limited_backend_response_is_caught_both_ways() -> None:
    error = backend_error_class(RateLimitError)(
        "slow down", status_code=429, error_code="rate_limited", retry_after_seconds=1.5
    )
    with pytest.raises(RateLimitError):
        raise error
    with pytest.raises(BackendError):
        raise error
    assert error.retry_after_seconds == 1.5
    assert error.status_code == 429


@pytest.mark.parametrize("cls", ALL_ERROR_CLASSES, ids=lambda c: c.__name__)
def test_docstring_is_one_sentence_first(cls: type[SynapError]) -> None:
    doc = cls.__doc__
    assert doc, cls
    summary = " ".join(doc.strip().split("\n\n")[0].split())
    assert summary.endswith("."), summary
    assert ". " not in summary.rstrip("."), f"{cls.__name__}: more than one sentence: {summary}"


@pytest.mark.parametrize("cls", ALL_ERROR_CLASSES, ids=lambda c: c.__name__)
def test_correlation_id_keyword_and_readable_repr(cls: type[SynapError]) -> None:
    error = make(cls, "it failed", correlation_id="corr-42")
    assert error.correlation_id == "corr-42"
    assert "corr-42" in str(error)
    text = repr(error)
    assert text.startswith(f"{cls.__name__}(")
    assert "'it failed'" in text
    assert "correlation_id='corr-42'" in text
    plain = make(cls, "it failed")
    assert plain.correlation_id is None
    assert "correlation_id" not in repr(plain)
    assert str(plain) == "it failed"


def test_repr_examples() -> None:
    assert repr(RateLimitError("slow", retry_after_seconds=2, correlation_id="c")) == (
        "RateLimitError('slow', correlation_id='c', retry_after_seconds=2.0)"
    )
    assert repr(InvalidInputError("bad")) == "InvalidInputError('bad')"
    many = BackendError("bulk", status_code=207, failed_ids=range(10), error_code="partial")
    assert "<10 ids>" in repr(many)


def _records() -> tuple[AttemptRecord, ...]:
    return (
        AttemptRecord(1, "ServiceUnavailableError", "service_unavailable", 0.01, 0.4),
        AttemptRecord(2, "ServiceUnavailableError", "service_unavailable", 0.02, None),
    )


@pytest.mark.parametrize("cls", ALL_ERROR_CLASSES, ids=lambda c: c.__name__)
def test_pickle_round_trip_with_attempts(cls: type[SynapError]) -> None:
    kwargs: dict[str, Any] = {"correlation_id": "corr-7"}
    if issubclass(cls, BackendError):
        kwargs.update(
            status_code=503,
            error_code="service_unavailable",
            detail="down",
            failed_ids=[1, "two"],
            failed_codes={1: "item_unavailable", "two": None},
            retry_after_seconds=3,
            outcome_unknown=True,
        )
    elif issubclass(cls, RateLimitError):
        kwargs.update(retry_after_seconds=1.25)
    error = make(cls, "round trip", **kwargs)
    error.attempts = _records()
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is cls
    assert str(clone) == str(error)
    assert repr(clone) == repr(error)
    assert clone.__dict__ == error.__dict__
    assert clone.attempts == _records()
    assert clone.args == error.args


def test_backend_error_from_a_message_alone_finds_the_envelope() -> None:
    pytest.importorskip("synapse_sdk.envelopes")
    error = BackendError(
        'bulk fetch failed: {"error": {"code": "rate_limited", "detail": "slow down", '
        '"retry_after": 1.5, "failed": [{"id": 7, "code": "item_unavailable", '
        '"retryable": true}]}}'
    )
    assert error.error_code == "rate_limited"
    assert error.detail == "slow down"
    assert error.retry_after_seconds == 1.5
    assert error.failed_ids == (7,)
    assert error.failed_codes == {7: "item_unavailable"}
    assert '"code": "rate_limited"' in str(error)
    clone = pickle.loads(pickle.dumps(error))
    assert clone.error_code == "rate_limited"
    assert clone.envelope == error.envelope


def test_backend_error_explicit_fields_win_over_the_envelope() -> None:
    pytest.importorskip("synapse_sdk.envelopes")
    error = BackendError(
        '{"error": {"code": "from_text", "detail": "text"}}', error_code="explicit", detail="d"
    )
    assert error.error_code == "explicit"
    assert error.detail == "d"


def test_backend_error_without_an_envelope() -> None:
    error = BackendError("")
    assert error.error_code is None
    assert error.failed_ids == ()
    assert error.retry_after_seconds is None


def test_invalid_instance_id_built_from_the_offending_id() -> None:
    malformed = InvalidInstanceIdError("inst_XYZ")
    assert malformed.instance_id == "inst_XYZ"
    assert "'inst_XYZ'" in str(malformed)
    assert "inst_" in str(malformed) and "16" in str(malformed)  # names the expected format
    missing = InvalidInstanceIdError("inst_0123456789abcdef", correlation_id="c")
    assert "does not exist" in str(missing)
    assert missing.correlation_id == "c"
    long_id = "x" * 500
    assert len(str(InvalidInstanceIdError(long_id))) < 200  # the id is shortened in messages
    assert InvalidInstanceIdError(12345).instance_id == 12345
    assert "12345" in str(InvalidInstanceIdError(12345))
    assert "instance_id='inst_XYZ'" in repr(malformed)
    assert isinstance(malformed, InvalidInputError)


def test_invalid_conversation_id_built_from_the_offending_id() -> None:
    error = InvalidConversationIdError("conv-9", correlation_id="c")
    assert error.conversation_id == "conv-9"
    assert "'conv-9'" in str(error)
    assert "conversation_id='conv-9'" in repr(error)
    assert InvalidConversationIdError("c", "custom").message == "custom"


@pytest.mark.parametrize("value", ["inst_0123456789abcdef", "inst_ffffffffffffffff"])
def test_validate_instance_id_accepts_the_format(value: str) -> None:
    assert validate_instance_id(value) == value
    assert INSTANCE_ID_PATTERN.fullmatch(value)


@pytest.mark.parametrize(
    "value",
    ["", "inst_", "inst_0123456789ABCDEF", "inst_0123456789abcde", "inst_0123456789abcdef0",
     " inst_0123456789abcdef", "inst_0123456789abcdeg", None, 42, b"inst_0123456789abcdef"],
)
def test_validate_instance_id_rejects_the_rest(value: object) -> None:
    with pytest.raises(InvalidInstanceIdError) as caught:
        validate_instance_id(value)
    assert caught.value.instance_id == value


def test_rate_limit_retry_after_is_a_number_or_none() -> None:
    assert RateLimitError("x").retry_after_seconds is None
    assert RateLimitError("x", retry_after_seconds=2).retry_after_seconds == 2.0
    with pytest.raises(ValueError, match="retry_after_seconds"):
        RateLimitError("x", retry_after_seconds=-1)
    with pytest.raises(ValueError, match="retry_after_seconds"):
        RateLimitError("x", retry_after_seconds=float("nan"))
    with pytest.raises(TypeError, match="retry_after_seconds"):
        RateLimitError("x", retry_after_seconds="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry_after_seconds"):
        RateLimitError("x", retry_after_seconds=True)


def test_outcome_unknown_defaults_false_and_is_settable_on_transient_errors() -> None:
    assert SynapError("x").outcome_unknown is False
    assert exceptions.NetworkTimeoutError("x").outcome_unknown is False
    assert exceptions.NetworkTimeoutError("x", outcome_unknown=True).outcome_unknown is True
    assert "outcome_unknown=True" in repr(
        exceptions.NetworkTimeoutError("x", outcome_unknown=True)
    )
    assert BackendServiceUnavailableError("x", outcome_unknown=True).outcome_unknown is True


def test_attempts_default_to_empty() -> None:
    assert SynapError("x").attempts == ()
    assert "attempts" not in repr(SynapError("x"))


def test_misuse_is_outside_the_tree() -> None:
    for builtin in (ValueError, TypeError):
        assert not issubclass(builtin, SynapError)
    with pytest.raises(TypeError):
        RateLimitError("x", retry_after_seconds=[1])  # type: ignore[arg-type]
