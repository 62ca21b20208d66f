"""Classify an export failure into an :class:`ExportLogMessageCode` — data for the generic engine.

Two layers (see ``docs/failure-classification.md``):

1. the v2 catalog :data:`_V2_ERROR_CODE_TO_EXPORT_CODE` — a backend ``error.code`` found on the
   chain (a ``BackendError.error_code``) or in its text (``{"error": {"code": ...}}``) wins;
   an unknown code falls through;
2. the ordered v1 patterns :data:`_V1_PATTERNS` — the first *declared* pattern that matches the
   flattened chain wins, so the most specific is declared first.

Adding a backend code never touches matching logic: a member in ``log_messages.py``, one line
in the catalog, one regression test. :data:`EXPORT_RETRY_SEMANTICS` says what a caller should
do about each failure code.
"""

from __future__ import annotations

from synapse_sdk.failures import Gated
from synapse_sdk.plugins import failure_patterns as fp
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.failure_semantics import (
    FailureCategory,
    RetrySemantics,
    extract_failed_step,
)

__all__ = [
    "EXPORT_FAILURES",
    "EXPORT_RETRY_SEMANTICS",
    "classify_export_error",
    "extract_failed_step",
]

_E = ExportLogMessageCode

#: Backend v2 ``error.code`` → export code. Consulted before any pattern.
_V2_ERROR_CODE_TO_EXPORT_CODE: dict[str, ExportLogMessageCode] = {
    'invalid_ids': ExportLogMessageCode.EXPORT_FAILED_BAD_REQUEST,
    'partial_failure': ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
    'rate_limited': ExportLogMessageCode.EXPORT_FAILED_RATE_LIMITED,
    # Our transport's codes: a 3xx it did not follow, a body over its bound, a body that
    # is not the API's JSON. None of them changes on a retry.
    'redirect_refused': ExportLogMessageCode.EXPORT_FAILED_REDIRECT_REFUSED,
    'response_too_large': ExportLogMessageCode.EXPORT_FAILED_RESPONSE_TOO_LARGE,
    'malformed_response': ExportLogMessageCode.EXPORT_FAILED_MALFORMED_RESPONSE,
    # The platform's v2 API (docs/backend-api.md): a bulk request over 200 ids, a bad input.
    'ids_limit_exceeded': ExportLogMessageCode.EXPORT_FAILED_BAD_REQUEST,
    'VALIDATION_ERROR': ExportLogMessageCode.EXPORT_FAILED_VALIDATION,
}

#: The v1 layer: (pattern, code) in priority order — the first declared match wins.
_V1_PATTERNS: list[tuple[str, ExportLogMessageCode]] = [
    # The output storage's failures, mapped into the tree at the storage boundary
    # (synapse_sdk.storage.errors); first, since their chains also hold the storage library's
    # own PermissionError / FileNotFoundError / OSError.
    (Gated(r"\bStorageAccessDeniedError\b", "storageaccessdeniederror"),
     _E.EXPORT_FAILED_STORAGE_ACCESS_DENIED),
    (Gated(r"\bStorageNotFoundError\b", "storagenotfounderror"),
     _E.EXPORT_FAILED_STORAGE_NOT_FOUND),
    (Gated(r"\bStorage(?:Throttled|Unavailable)Error\b", "storagethrottlederror",
           "storageunavailableerror"), _E.EXPORT_FAILED_SERVICE_UNAVAILABLE),
    (Gated(r"\bStorageTimeoutError\b", "storagetimeouterror"), _E.EXPORT_FAILED_TIMEOUT),
    # A second run of a job the backend still has running: "Job is currently running".
    (fp.JOB_RUNNING, _E.EXPORT_FAILED_JOB_RUNNING),
    # A plugin built for another SDK version: "No module named 'synapse_sdk.plugins.x'",
    # "'NoneType' object has no attribute 'export'", no log_dev_event, "No such option: --debug".
    (fp.SDK_MISMATCH, _E.EXPORT_FAILED_SDK_MISMATCH),
    # Storage backend the export cannot write to: "Unsupported storage type 's3x'",
    # "storage provider 'ftp' is not supported", "No storage provider for scheme 'gopher'".
    (
        Gated(
            r"(?i:\bunsupported storage\b|\bno storage provider\b"
            r"|\bstorage (?:type|provider|backend|scheme)\b[^\n]{0,80}?\bnot supported\b)",
            "unsupported storage", "no storage provider", "not supported",
        ),
        _E.EXPORT_FAILED_STORAGE_UNSUPPORTED,
    ),
    # A field the converter expected is missing from the data: raw KeyError('annotations').
    (Gated(r"\bKeyError\b", "keyerror"), _E.EXPORT_FAILED_INVALID_KEY),
    # Data that does not parse: json.JSONDecodeError "Expecting value", UnicodeDecodeError.
    (fp.MALFORMED_DATA, _E.EXPORT_FAILED_MALFORMED_DATA),
    # An item without its files: "'NoneType' object is not iterable" next to a "files" field.
    (fp.FILES_MISSING, _E.EXPORT_FAILED_FILES_MISSING),
    # Data without the shape the converter expects: "cannot unpack non-iterable int object",
    # "'<=' not supported between instances of 'int' and 'list'" (a data-format problem too).
    (fp.DATA_SHAPE, _E.EXPORT_FAILED_MALFORMED_DATA),
    # An output file from an earlier run is in the way: FileExistsError "[Errno 17] File exists".
    (fp.FILE_EXISTS, _E.EXPORT_FAILED_FILE_EXISTS),
    # A file the export reads is missing: FileNotFoundError "[Errno 2] No such file or directory".
    (fp.FILE_NOT_FOUND, _E.EXPORT_FAILED_FILE_NOT_FOUND),
    # The output disk is full: "[Errno 28] No space left on device" (not transient: no retry).
    (fp.DISK_FULL, _E.EXPORT_FAILED_DISK_FULL),
    # OS permission bits or an HTTP 403: PermissionError "[Errno 13] Permission denied".
    (fp.PERMISSION_DENIED, _E.EXPORT_FAILED_PERMISSION),
    # The server's TLS certificate failed verification (self-signed, unknown CA, wrong host).
    # Before AUTHENTICATION: the transport raises it as an AuthenticationError, but the token
    # is not the problem.
    (fp.TLS_VERIFICATION, _E.EXPORT_FAILED_TLS),
    # Credentials refused: HTTP 401, the backend's "unauthorized" code, an expired token.
    (fp.AUTHENTICATION, _E.EXPORT_FAILED_AUTHENTICATION),
    # The rate limiter without a v2 envelope: "429 Too Many Requests", "rate limit exceeded".
    (fp.RATE_LIMITED, _E.EXPORT_FAILED_RATE_LIMITED),
    # OS conditions that clear by themselves: EAGAIN, EINTR, EBUSY, EMFILE, ENOBUFS.
    (fp.TRANSIENT_OS, _E.EXPORT_FAILED_OS_TRANSIENT),
    # The shared transport block (see failure_patterns.NETWORK_FAILURES for its order): a
    # download cut short, a dropped connection, no connection at all, the service saying it is
    # down (HTTP 502/503/504), a timeout, any other transport failure.
    *fp.network_patterns(
        incomplete_response=_E.EXPORT_FAILED_INCOMPLETE_RESPONSE,
        connection_lost=_E.EXPORT_FAILED_CONNECTION_LOST,
        server_unreachable=_E.EXPORT_FAILED_SERVER_UNREACHABLE,
        service_unavailable=_E.EXPORT_FAILED_SERVICE_UNAVAILABLE,
        timeout=_E.EXPORT_FAILED_TIMEOUT,
        network=_E.EXPORT_FAILED_NETWORK,
    ),
    # Settings or data rejected by validation (pydantic, HTTP 422): needs an administrator.
    (fp.VALIDATION, _E.EXPORT_FAILED_VALIDATION),
    # Missing or wrong configuration: "ImproperlyConfigured", "missing required setting".
    (fp.CONFIGURATION, _E.EXPORT_FAILED_CONFIGURATION),
    # A step that failed for a reason none of the above named: "step 'convert' failed".
    (fp.STEP_FAILED, _E.EXPORT_FAILED_STEP),
    # The export's own generic failure: "export failed", an ExportError.
    (
        Gated(r"\bExportError\b|(?i:\bexport(?:ing)? failed\b)",
              "exporterror", "export failed", "exporting failed"),
        _E.EXPORT_FAILED,
    ),
]

#: What a caller should do about each failure code (the seed's retry-policy column).
EXPORT_RETRY_SEMANTICS: dict[ExportLogMessageCode, RetrySemantics] = {
    # The same request gets the same redirect, oversized or malformed answer.
    _E.EXPORT_FAILED_REDIRECT_REFUSED: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_RESPONSE_TOO_LARGE: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_MALFORMED_RESPONSE: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_BAD_REQUEST: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_NOT_SERVED: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_BATCH_PARTIAL: RetrySemantics.RETRY_FAILED_ITEMS,
    _E.EXPORT_FAILED_RATE_LIMITED: RetrySemantics.BACKOFF_THEN_RETRY,
    _E.EXPORT_FAILED_NETWORK: RetrySemantics.BACKOFF_THEN_RETRY,
    _E.EXPORT_FAILED_PERMISSION: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_STORAGE_UNSUPPORTED: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_STORAGE_ACCESS_DENIED: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_STORAGE_NOT_FOUND: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_INVALID_KEY: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_AUTHENTICATION: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_TLS: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_TIMEOUT: RetrySemantics.BACKOFF_THEN_RETRY,
    _E.EXPORT_FAILED_CONNECTION_LOST: RetrySemantics.BACKOFF_THEN_RETRY,
    _E.EXPORT_FAILED_SERVER_UNREACHABLE: RetrySemantics.BACKOFF_THEN_RETRY,
    _E.EXPORT_FAILED_SERVICE_UNAVAILABLE: RetrySemantics.BACKOFF_THEN_RETRY,
    _E.EXPORT_FAILED_INCOMPLETE_RESPONSE: RetrySemantics.BACKOFF_THEN_RETRY,
    _E.EXPORT_FAILED_FILE_NOT_FOUND: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_FILE_EXISTS: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_DISK_FULL: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_MALFORMED_DATA: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_VALIDATION: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_CONFIGURATION: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_OS_TRANSIENT: RetrySemantics.BACKOFF_THEN_RETRY,
    # A plugin for another SDK version fails the same way until it is reinstalled or upgraded.
    _E.EXPORT_FAILED_SDK_MISMATCH: RetrySemantics.NO_RETRY,
    # Retrying would start a duplicate run once the running one ends: wait for it instead.
    _E.EXPORT_FAILED_JOB_RUNNING: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_FILES_MISSING: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED_STEP: RetrySemantics.NO_RETRY,
    _E.EXPORT_FAILED: RetrySemantics.NO_RETRY,
}

#: The export category: codes, catalog, patterns and semantics, checked once at import.
EXPORT_FAILURES = FailureCategory(
    name="export",
    codes=ExportLogMessageCode,
    catalog=_V2_ERROR_CODE_TO_EXPORT_CODE,
    patterns=_V1_PATTERNS,
    retry_semantics=EXPORT_RETRY_SEMANTICS,
    fallback=ExportLogMessageCode.EXPORT_FAILED,
)


def classify_export_error(
    exc: BaseException | None = None, message: str | None = None
) -> ExportLogMessageCode | None:
    """The export code for ``exc`` (its whole chain) and/or ``message``; None if nothing matched.

    Depends on no SDK state and accepts any exception instance; never raises on odd input (an
    exception whose ``str()`` raises, cyclic chains, huge messages). Callers that need a code
    regardless use ``classify_export_error(exc) or ExportLogMessageCode.EXPORT_FAILED``.
    """
    return EXPORT_FAILURES.classify(exc, message)
