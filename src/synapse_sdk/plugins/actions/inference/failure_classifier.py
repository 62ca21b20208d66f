"""Classify an inference failure into an :class:`InferenceLogMessageCode` — data for the engine.

The same two layers as the export category: the v2 catalog
:data:`_V2_ERROR_CODE_TO_INFERENCE_CODE` first, then the ordered v1 patterns
:data:`_V1_PATTERNS` (first declared match wins).
"""

from __future__ import annotations

from synapse_sdk.failures import Gated
from synapse_sdk.plugins import failure_patterns as fp
from synapse_sdk.plugins.actions.inference.log_messages import InferenceLogMessageCode
from synapse_sdk.plugins.failure_semantics import FailureCategory, RetrySemantics

__all__ = ["INFERENCE_FAILURES", "INFERENCE_RETRY_SEMANTICS", "classify_inference_error"]

_I = InferenceLogMessageCode

#: Backend v2 ``error.code`` → inference code. Consulted before any pattern.
_V2_ERROR_CODE_TO_INFERENCE_CODE: dict[str, InferenceLogMessageCode] = {
    'model_not_loaded': _I.INFERENCE_FAILED_MODEL_NOT_LOADED,
    'model_not_found': _I.INFERENCE_FAILED_MODEL_NOT_FOUND,
    'input_too_large': _I.INFERENCE_FAILED_INPUT_TOO_LARGE,
    'invalid_input': _I.INFERENCE_FAILED_INVALID_INPUT,
    'inference_timeout': _I.INFERENCE_FAILED_TIMEOUT,
    'partial_failure': _I.INFERENCE_FAILED_BATCH_PARTIAL,
    'rate_limited': _I.INFERENCE_FAILED_RATE_LIMITED,
    # Our transport's codes: a 3xx it did not follow, a body over its bound, a body that
    # is not the API's JSON. None of them changes on a retry.
    'redirect_refused': _I.INFERENCE_FAILED_REDIRECT_REFUSED,
    'response_too_large': _I.INFERENCE_FAILED_RESPONSE_TOO_LARGE,
    'malformed_response': _I.INFERENCE_FAILED_MALFORMED_RESPONSE,
}

#: The v1 layer: (pattern, code) in priority order — the first declared match wins.
_V1_PATTERNS: list[tuple[str, InferenceLogMessageCode]] = [
    # A second run of a job the backend still has running: "Job is currently running".
    (fp.JOB_RUNNING, _I.INFERENCE_FAILED_JOB_RUNNING),
    # A plugin built for another SDK version: "No module named 'synapse_sdk.plugins.x'",
    # "'NoneType' object has no attribute 'export'", no log_dev_event, "No such option: --debug".
    (fp.SDK_MISMATCH, _I.INFERENCE_FAILED_SDK_MISMATCH),
    # The model server is up but the model is not: "model 'resnet' is not loaded yet", "model
    # not ready", KServe/Triton "ModelNotReady". Before the not-found pattern ("model ... not").
    (
        Gated(
            r"\bModelNotReady\b|(?i:\bmodel\b[^\n]{0,80}?\bnot (?:yet )?(?:loaded|ready)\b"
            r"|\bmodel (?:is )?(?:still )?loading\b)",
            "modelnotready", "not loaded", "not ready", "not yet loaded", "not yet ready",
            "model loading", "model is loading", "model still loading", "model is still loading",
        ),
        _I.INFERENCE_FAILED_MODEL_NOT_LOADED,
    ),
    # No such model: "model 'resnet-9' not found", "unknown model", ModelNotFoundError.
    (
        Gated(
            r"\bModelNotFound(?:Error)?\b|(?i:\bmodel\b[^\n]{0,80}?\bnot found\b|\bno such model\b"
            r"|\bunknown model\b)",
            "modelnotfound", "not found", "no such model", "unknown model",
        ),
        _I.INFERENCE_FAILED_MODEL_NOT_FOUND,
    ),
    # Host or GPU memory exhausted while running the model: "CUDA out of memory", MemoryError.
    (fp.OUT_OF_MEMORY, _I.INFERENCE_FAILED_OUT_OF_MEMORY),
    # Input over the limit: "413 Payload Too Large", "maximum context length is 4096 tokens".
    (
        Gated(
            r"(?i:maximum context length|exceeds the maximum (?:input|sequence) length"
            r"|\btoo many tokens\b)|" + fp.PAYLOAD_TOO_LARGE,
            "maximum context length", "exceeds the maximum", "too many tokens",
            *fp.PAYLOAD_TOO_LARGE.words,
        ),
        _I.INFERENCE_FAILED_INPUT_TOO_LARGE,
    ),
    # Input the model cannot take: PIL "cannot identify image file", dtype/shape mismatches.
    (
        Gated(
            r"\bUnidentifiedImageError\b|(?i:cannot identify image file|\binvalid input\b"
            r"|\bunsupported input\b|\binput (?:shape|dtype) mismatch\b)",
            "unidentifiedimageerror", "cannot identify image file", "invalid input",
            "unsupported input", "input shape mismatch", "input dtype mismatch",
        ),
        _I.INFERENCE_FAILED_INVALID_INPUT,
    ),
    # Request rejected by validation (pydantic, HTTP 422): also the input's fault.
    (fp.VALIDATION, _I.INFERENCE_FAILED_INVALID_INPUT),
    # Data without the shape the code expects: "cannot unpack non-iterable int object".
    (fp.DATA_SHAPE, _I.INFERENCE_FAILED_INVALID_INPUT),
    # A response or input that does not parse: JSONDecodeError, UnicodeDecodeError.
    (fp.MALFORMED_DATA, _I.INFERENCE_FAILED_MALFORMED_DATA),
    # Weights or an input file missing: FileNotFoundError "[Errno 2] No such file".
    (fp.FILE_NOT_FOUND, _I.INFERENCE_FAILED_FILE_NOT_FOUND),
    # Denied locally or by the server: PermissionError, HTTP 401/403.
    (fp.PERMISSION_DENIED, _I.INFERENCE_FAILED_PERMISSION),
    (fp.AUTHENTICATION, _I.INFERENCE_FAILED_PERMISSION),
    # The rate limiter without a v2 envelope: "429 Too Many Requests".
    (fp.RATE_LIMITED, _I.INFERENCE_FAILED_RATE_LIMITED),
    # The shared transport block: a response cut short or a connection dropped mid-request, no
    # connection to the model server, HTTP 502/503/504, a model too slow, any other failure.
    *fp.network_patterns(
        incomplete_response=_I.INFERENCE_FAILED_CONNECTION_LOST,
        connection_lost=_I.INFERENCE_FAILED_CONNECTION_LOST,
        server_unreachable=_I.INFERENCE_FAILED_SERVER_UNREACHABLE,
        service_unavailable=_I.INFERENCE_FAILED_SERVICE_UNAVAILABLE,
        timeout=_I.INFERENCE_FAILED_TIMEOUT,
        network=_I.INFERENCE_FAILED_NETWORK,
    ),
    # A named step failed for a reason none of the above named.
    (fp.STEP_FAILED, _I.INFERENCE_FAILED_STEP),
    # The action's own generic failure: "inference failed", an InferenceError.
    (
        Gated(r"\bInferenceError\b|(?i:\binference failed\b)",
              "inferenceerror", "inference failed"),
        _I.INFERENCE_FAILED,
    ),
]

#: What a caller should do about each failure code.
INFERENCE_RETRY_SEMANTICS: dict[InferenceLogMessageCode, RetrySemantics] = {
    # The same request gets the same redirect, oversized or malformed answer.
    _I.INFERENCE_FAILED_REDIRECT_REFUSED: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_RESPONSE_TOO_LARGE: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_MALFORMED_RESPONSE: RetrySemantics.NO_RETRY,
    # A model that is loading becomes ready: wait, then retry.
    _I.INFERENCE_FAILED_MODEL_NOT_LOADED: RetrySemantics.BACKOFF_THEN_RETRY,
    _I.INFERENCE_FAILED_MODEL_NOT_FOUND: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_INPUT_TOO_LARGE: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_INVALID_INPUT: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_TIMEOUT: RetrySemantics.BACKOFF_THEN_RETRY,
    _I.INFERENCE_FAILED_BATCH_PARTIAL: RetrySemantics.RETRY_FAILED_ITEMS,
    _I.INFERENCE_FAILED_RATE_LIMITED: RetrySemantics.BACKOFF_THEN_RETRY,
    _I.INFERENCE_FAILED_OUT_OF_MEMORY: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_MALFORMED_DATA: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_FILE_NOT_FOUND: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_PERMISSION: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_CONNECTION_LOST: RetrySemantics.BACKOFF_THEN_RETRY,
    _I.INFERENCE_FAILED_SERVER_UNREACHABLE: RetrySemantics.BACKOFF_THEN_RETRY,
    _I.INFERENCE_FAILED_SERVICE_UNAVAILABLE: RetrySemantics.BACKOFF_THEN_RETRY,
    _I.INFERENCE_FAILED_NETWORK: RetrySemantics.BACKOFF_THEN_RETRY,
    # A plugin for another SDK version fails the same way until it is reinstalled or upgraded.
    _I.INFERENCE_FAILED_SDK_MISMATCH: RetrySemantics.NO_RETRY,
    # Retrying would start a duplicate run once the running one ends: wait for it instead.
    _I.INFERENCE_FAILED_JOB_RUNNING: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED_STEP: RetrySemantics.NO_RETRY,
    _I.INFERENCE_FAILED: RetrySemantics.NO_RETRY,
}

#: The inference category: codes, catalog, patterns and semantics, checked once at import.
INFERENCE_FAILURES = FailureCategory(
    name="inference",
    codes=InferenceLogMessageCode,
    catalog=_V2_ERROR_CODE_TO_INFERENCE_CODE,
    patterns=_V1_PATTERNS,
    retry_semantics=INFERENCE_RETRY_SEMANTICS,
    fallback=InferenceLogMessageCode.INFERENCE_FAILED,
)


def classify_inference_error(
    exc: BaseException | None = None, message: str | None = None
) -> InferenceLogMessageCode | None:
    """The inference code for ``exc`` (its whole chain) and/or ``message``; None if no match.

    Never raises on odd input; use ``... or InferenceLogMessageCode.INFERENCE_FAILED`` for a
    code regardless.
    """
    return INFERENCE_FAILURES.classify(exc, message)
