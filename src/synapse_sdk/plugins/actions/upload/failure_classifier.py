"""Classify an upload failure into an :class:`UploadLogMessageCode` — data for the generic engine.

The same two layers as the export category: the v2 catalog :data:`_V2_ERROR_CODE_TO_UPLOAD_CODE`
first, then the ordered v1 patterns :data:`_V1_PATTERNS` (first declared match wins).
"""

from __future__ import annotations

from synapse_sdk.failures import Gated
from synapse_sdk.plugins import failure_patterns as fp
from synapse_sdk.plugins.actions.upload.log_messages import UploadLogMessageCode
from synapse_sdk.plugins.failure_semantics import FailureCategory, RetrySemantics

__all__ = ["UPLOAD_FAILURES", "UPLOAD_RETRY_SEMANTICS", "classify_upload_error"]

_U = UploadLogMessageCode

#: Backend v2 ``error.code`` → upload code. Consulted before any pattern.
_V2_ERROR_CODE_TO_UPLOAD_CODE: dict[str, UploadLogMessageCode] = {
    'file_too_large': _U.UPLOAD_FAILED_FILE_TOO_LARGE,
    'unsupported_file_type': _U.UPLOAD_FAILED_UNSUPPORTED_FILE_TYPE,
    'checksum_mismatch': _U.UPLOAD_FAILED_CHECKSUM_MISMATCH,
    'storage_quota_exceeded': _U.UPLOAD_FAILED_QUOTA_EXCEEDED,
    'upload_url_expired': _U.UPLOAD_FAILED_URL_EXPIRED,
    'duplicate_file': _U.UPLOAD_FAILED_DUPLICATE,
    'partial_failure': _U.UPLOAD_FAILED_BATCH_PARTIAL,
    'rate_limited': _U.UPLOAD_FAILED_RATE_LIMITED,
    # Our transport's codes: a 3xx it did not follow, a body over its bound, a body that
    # is not the API's JSON. None of them changes on a retry.
    'redirect_refused': _U.UPLOAD_FAILED_REDIRECT_REFUSED,
    'response_too_large': _U.UPLOAD_FAILED_RESPONSE_TOO_LARGE,
    'malformed_response': _U.UPLOAD_FAILED_MALFORMED_RESPONSE,
}

#: The v1 layer: (pattern, code) in priority order — the first declared match wins.
_V1_PATTERNS: list[tuple[str, UploadLogMessageCode]] = [
    # A second run of a job the backend still has running: "Job is currently running".
    (fp.JOB_RUNNING, _U.UPLOAD_FAILED_JOB_RUNNING),
    # A plugin built for another SDK version: "No module named 'synapse_sdk.plugins.x'",
    # "'NoneType' object has no attribute 'export'", no log_dev_event, "No such option: --debug".
    (fp.SDK_MISMATCH, _U.UPLOAD_FAILED_SDK_MISMATCH),
    # Integrity check failed after transfer: "checksum mismatch", S3 "BadDigest",
    # "The Content-MD5 you specified did not match what we received".
    (
        Gated(
            r"\bBadDigest\b|\bInvalidDigest\b|(?i:\b(?:checksum|digest|md5|sha-?256|crc32c?) "
            r"(?:mismatch|does not match|did not match)\b|content-md5 you specified did not match)",
            "baddigest", "invaliddigest", "mismatch", "does not match", "did not match",
        ),
        _U.UPLOAD_FAILED_CHECKSUM_MISMATCH,
    ),
    # A presigned upload URL past its expiry: S3 "Request has expired", "ExpiredToken".
    (
        Gated(
            r"\bExpiredToken\b|(?i:request has expired|presigned url (?:has )?expired"
            r"|signature (?:has )?expired|upload (?:url|link) (?:has )?expired)",
            "expiredtoken", "expired",
        ),
        _U.UPLOAD_FAILED_URL_EXPIRED,
    ),
    # The server refuses the media type: "415 Unsupported Media Type", "file type not allowed".
    (
        Gated(
            r"(?i:\b415 unsupported media type\b|unsupported (?:file|media|content) type"
            r"|file (?:type|extension) (?:is )?not (?:supported|allowed))",
            "unsupported", "not supported", "not allowed",
        ),
        _U.UPLOAD_FAILED_UNSUPPORTED_FILE_TYPE,
    ),
    # The storage account is full: "storage quota exceeded", "507 Insufficient Storage".
    (
        Gated(
            r"\bQuotaExceeded\b|(?i:\bstorage quota\b|\bquota exceeded\b|insufficient storage)",
            "quotaexceeded", "storage quota", "quota exceeded", "insufficient storage",
        ),
        _U.UPLOAD_FAILED_QUOTA_EXCEEDED,
    ),
    # The file exceeds the server's size limit: "413 Request Entity Too Large", EntityTooLarge.
    (
        Gated(r"\bEntityTooLarge\b|" + fp.PAYLOAD_TOO_LARGE,
              "entitytoolarge", *fp.PAYLOAD_TOO_LARGE.words),
        _U.UPLOAD_FAILED_FILE_TOO_LARGE,
    ),
    # The same file is already stored: "409 Conflict ... already exists", FileExistsError.
    (fp.FILE_EXISTS, _U.UPLOAD_FAILED_DUPLICATE),
    # The local file to send is gone: FileNotFoundError "[Errno 2] No such file or directory".
    (fp.FILE_NOT_FOUND, _U.UPLOAD_FAILED_FILE_NOT_FOUND),
    # Metadata or a manifest that does not parse: JSONDecodeError, UnicodeDecodeError.
    (fp.MALFORMED_DATA, _U.UPLOAD_FAILED_MALFORMED_DATA),
    # Data without the shape the converter expects: "cannot unpack non-iterable int object",
    # "'<=' not supported between instances of 'int' and 'list'" (a data-format problem too).
    (fp.DATA_SHAPE, _U.UPLOAD_FAILED_MALFORMED_DATA),
    # Local read permission or HTTP 403: PermissionError "[Errno 13] Permission denied".
    (fp.PERMISSION_DENIED, _U.UPLOAD_FAILED_PERMISSION),
    # Credentials refused: HTTP 401, "unauthorized", an expired token.
    (fp.AUTHENTICATION, _U.UPLOAD_FAILED_AUTHENTICATION),
    # The rate limiter without a v2 envelope: "429 Too Many Requests".
    (fp.RATE_LIMITED, _U.UPLOAD_FAILED_RATE_LIMITED),
    # OS conditions that clear by themselves: EAGAIN, EINTR, EBUSY, EMFILE.
    (fp.TRANSIENT_OS, _U.UPLOAD_FAILED_OS_TRANSIENT),
    # The shared transport block: a transfer cut short or dropped mid-upload, no connection at
    # all, HTTP 502/503/504, a slow transfer of a large file, any other transport failure.
    *fp.network_patterns(
        incomplete_response=_U.UPLOAD_FAILED_CONNECTION_LOST,
        connection_lost=_U.UPLOAD_FAILED_CONNECTION_LOST,
        server_unreachable=_U.UPLOAD_FAILED_SERVER_UNREACHABLE,
        service_unavailable=_U.UPLOAD_FAILED_SERVICE_UNAVAILABLE,
        timeout=_U.UPLOAD_FAILED_TIMEOUT,
        network=_U.UPLOAD_FAILED_NETWORK,
    ),
    # Upload settings or data rejected by validation.
    (fp.VALIDATION, _U.UPLOAD_FAILED_VALIDATION),
    # A named step failed for a reason none of the above named.
    (fp.STEP_FAILED, _U.UPLOAD_FAILED_STEP),
    # The upload's own generic failure: "upload failed", an UploadError.
    (
        Gated(r"\bUploadError\b|(?i:\bupload(?:ing)? failed\b)",
              "uploaderror", "upload failed", "uploading failed"),
        _U.UPLOAD_FAILED,
    ),
]

#: What a caller should do about each failure code.
UPLOAD_RETRY_SEMANTICS: dict[UploadLogMessageCode, RetrySemantics] = {
    # The same request gets the same redirect, oversized or malformed answer.
    _U.UPLOAD_FAILED_REDIRECT_REFUSED: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_RESPONSE_TOO_LARGE: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_MALFORMED_RESPONSE: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_FILE_TOO_LARGE: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_UNSUPPORTED_FILE_TYPE: RetrySemantics.NO_RETRY,
    # A mismatch is corruption in transit far more often than a bad file: send it again.
    _U.UPLOAD_FAILED_CHECKSUM_MISMATCH: RetrySemantics.BACKOFF_THEN_RETRY,
    _U.UPLOAD_FAILED_QUOTA_EXCEEDED: RetrySemantics.NO_RETRY,
    # Retrying means asking for a fresh upload URL first.
    _U.UPLOAD_FAILED_URL_EXPIRED: RetrySemantics.BACKOFF_THEN_RETRY,
    _U.UPLOAD_FAILED_DUPLICATE: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_BATCH_PARTIAL: RetrySemantics.RETRY_FAILED_ITEMS,
    _U.UPLOAD_FAILED_RATE_LIMITED: RetrySemantics.BACKOFF_THEN_RETRY,
    _U.UPLOAD_FAILED_FILE_NOT_FOUND: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_PERMISSION: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_AUTHENTICATION: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_MALFORMED_DATA: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_VALIDATION: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_CONNECTION_LOST: RetrySemantics.BACKOFF_THEN_RETRY,
    _U.UPLOAD_FAILED_SERVER_UNREACHABLE: RetrySemantics.BACKOFF_THEN_RETRY,
    _U.UPLOAD_FAILED_SERVICE_UNAVAILABLE: RetrySemantics.BACKOFF_THEN_RETRY,
    _U.UPLOAD_FAILED_TIMEOUT: RetrySemantics.BACKOFF_THEN_RETRY,
    _U.UPLOAD_FAILED_NETWORK: RetrySemantics.BACKOFF_THEN_RETRY,
    _U.UPLOAD_FAILED_OS_TRANSIENT: RetrySemantics.BACKOFF_THEN_RETRY,
    # A plugin for another SDK version fails the same way until it is reinstalled or upgraded.
    _U.UPLOAD_FAILED_SDK_MISMATCH: RetrySemantics.NO_RETRY,
    # Retrying would start a duplicate run once the running one ends: wait for it instead.
    _U.UPLOAD_FAILED_JOB_RUNNING: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED_STEP: RetrySemantics.NO_RETRY,
    _U.UPLOAD_FAILED: RetrySemantics.NO_RETRY,
}

#: The upload category: codes, catalog, patterns and semantics, checked once at import.
UPLOAD_FAILURES = FailureCategory(
    name="upload",
    codes=UploadLogMessageCode,
    catalog=_V2_ERROR_CODE_TO_UPLOAD_CODE,
    patterns=_V1_PATTERNS,
    retry_semantics=UPLOAD_RETRY_SEMANTICS,
    fallback=UploadLogMessageCode.UPLOAD_FAILED,
)


def classify_upload_error(
    exc: BaseException | None = None, message: str | None = None
) -> UploadLogMessageCode | None:
    """The upload code for ``exc`` (its whole chain) and/or ``message``; None if nothing matched.

    Never raises on odd input; use ``... or UploadLogMessageCode.UPLOAD_FAILED`` for a code
    regardless.
    """
    return UPLOAD_FAILURES.classify(exc, message)
