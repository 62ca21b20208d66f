"""Classify a training failure into a :class:`TrainLogMessageCode` — data for the generic engine.

The same two layers as the export category: the v2 catalog :data:`_V2_ERROR_CODE_TO_TRAIN_CODE`
first, then the ordered v1 patterns :data:`_V1_PATTERNS` (first declared match wins).
"""

from __future__ import annotations

from synapse_sdk.failures import Gated
from synapse_sdk.plugins import failure_patterns as fp
from synapse_sdk.plugins.actions.train.log_messages import TrainLogMessageCode
from synapse_sdk.plugins.failure_semantics import FailureCategory, RetrySemantics

__all__ = ["TRAIN_FAILURES", "TRAIN_RETRY_SEMANTICS", "classify_train_error"]

_T = TrainLogMessageCode

#: Backend v2 ``error.code`` → train code. Consulted before any pattern.
_V2_ERROR_CODE_TO_TRAIN_CODE: dict[str, TrainLogMessageCode] = {
    'dataset_not_found': _T.TRAIN_FAILED_DATASET_NOT_FOUND,
    'model_not_found': _T.TRAIN_FAILED_BASE_MODEL_NOT_FOUND,
    'insufficient_gpu': _T.TRAIN_FAILED_INSUFFICIENT_RESOURCES,
    'resources_exhausted': _T.TRAIN_FAILED_INSUFFICIENT_RESOURCES,
    'invalid_hyperparameters': _T.TRAIN_FAILED_INVALID_HYPERPARAMETERS,
    'checkpoint_write_failed': _T.TRAIN_FAILED_CHECKPOINT_WRITE,
    'job_cancelled': _T.TRAIN_CANCELLED,
    # Our transport's codes: a 3xx it did not follow, a body over its bound, a body that
    # is not the API's JSON. None of them changes on a retry.
    'redirect_refused': _T.TRAIN_FAILED_REDIRECT_REFUSED,
    'response_too_large': _T.TRAIN_FAILED_RESPONSE_TOO_LARGE,
    'malformed_response': _T.TRAIN_FAILED_MALFORMED_RESPONSE,
}

#: The v1 layer: (pattern, code) in priority order — the first declared match wins.
_V1_PATTERNS: list[tuple[str, TrainLogMessageCode]] = [
    # A second run of a job the backend still has running: "Job is currently running".
    (fp.JOB_RUNNING, _T.TRAIN_FAILED_JOB_RUNNING),
    # A plugin built for another SDK version: "No module named 'synapse_sdk.plugins.x'",
    # "'NoneType' object has no attribute 'export'", no log_dev_event, "No such option: --debug".
    (fp.SDK_MISMATCH, _T.TRAIN_FAILED_SDK_MISMATCH),
    # Host or GPU memory exhausted: torch.cuda.OutOfMemoryError "CUDA out of memory",
    # MemoryError, "[Errno 12] Cannot allocate memory", OOMKilled.
    (fp.OUT_OF_MEMORY, _T.TRAIN_FAILED_OUT_OF_MEMORY),
    # No GPU to run on: torch "No CUDA GPUs are available", "CUDA is not available".
    (
        Gated(
            r"(?i:no cuda gpus are available|\bcuda (?:is )?not available\b|\bno gpus? "
            r"(?:found|available)\b|all cuda-capable devices are busy)",
            "no cuda gpus", "cuda is not available", "cuda not available",
            "cuda-capable devices are busy", "no gpu",
        ),
        _T.TRAIN_FAILED_INSUFFICIENT_RESOURCES,
    ),
    # The GPU software stack is broken: "Found no NVIDIA driver on your system", "CUDA driver
    # version is insufficient for CUDA runtime version". Needs an administrator.
    (
        Gated(
            r"(?i:found no nvidia driver|cuda driver version is insufficient"
            r"|no kernel image is available for execution)",
            "nvidia driver", "cuda driver", "no kernel image",
        ),
        _T.TRAIN_FAILED_CONFIGURATION,
    ),
    # The loss went to NaN/inf: "Loss is nan, stopping training", "non-finite loss".
    (
        Gated(
            r"(?i:\bloss (?:is|became|was) (?:nan|inf)\b|\bnan loss\b|\bloss (?:has )?diverged\b"
            r"|\bnon-finite loss\b)",
            "loss is ", "loss became ", "loss was ", "nan loss", "diverged", "non-finite loss",
        ),
        _T.TRAIN_FAILED_DIVERGED,
    ),
    # Model and data do not fit: torch "mat1 and mat2 shapes cannot be multiplied",
    # "size mismatch for fc.weight", "Expected input ... to have 3 channels".
    (
        Gated(
            r"(?i:shapes cannot be multiplied|\bsize mismatch for\b|\bshape mismatch\b"
            r"|\bexpected input\b[^\n]{0,80}?\bto have \d{1,9} channels)",
            "shapes cannot be multiplied", "size mismatch for", "shape mismatch", "expected input",
        ),
        _T.TRAIN_FAILED_MODEL_DATA_MISMATCH,
    ),
    # Saving a checkpoint failed: "failed to save checkpoint", "checkpoint write failed".
    (
        Gated(
            r"(?i:\b(?:failed to|could not|cannot|unable to) (?:save|write) (?:the )?checkpoint\b"
            r"|\bcheckpoint (?:save|write) failed\b)",
            "save checkpoint", "write checkpoint", "save the checkpoint", "write the checkpoint",
            "checkpoint save failed", "checkpoint write failed",
        ),
        _T.TRAIN_FAILED_CHECKPOINT_WRITE,
    ),
    # The dataset is missing: "dataset 'cats-v2' not found", DatasetNotFoundError.
    (
        Gated(
            r"\bDatasetNotFoundError\b"
            r"|(?i:\bdataset\b[^\n]{0,80}?\bnot found\b|\bno such dataset\b)",
            "datasetnotfounderror", "not found", "no such dataset",
        ),
        _T.TRAIN_FAILED_DATASET_NOT_FOUND,
    ),
    # Hyperparameters out of range: "invalid hyperparameter", "learning rate must be positive".
    (
        Gated(
            r"(?i:\binvalid hyperparameters?\b|\b(?:learning[ _]rate|batch[ _]size|epochs?)\b"
            r"[^\n]{0,40}?\bmust be\b)",
            "invalid hyperparameter", "must be",
        ),
        _T.TRAIN_FAILED_INVALID_HYPERPARAMETERS,
    ),
    # The run was stopped from outside: KeyboardInterrupt, SIGTERM/SIGKILL, preemption.
    (
        Gated(
            r"\bKeyboardInterrupt\b|\bSIGTERM\b|\bSIGKILL\b|(?i:\b(?:killed|terminated) by signal\b"
            r"|\bpreempted\b)",
            "keyboardinterrupt", "sigterm", "sigkill", "by signal", "preempted",
        ),
        _T.TRAIN_FAILED_INTERRUPTED,
    ),
    # Checkpoints and logs fill the disk: "[Errno 28] No space left on device".
    (fp.DISK_FULL, _T.TRAIN_FAILED_DISK_FULL),
    # A weights or data file is missing: FileNotFoundError "[Errno 2] No such file".
    (fp.FILE_NOT_FOUND, _T.TRAIN_FAILED_FILE_NOT_FOUND),
    # Annotations that do not parse: JSONDecodeError, UnicodeDecodeError.
    (fp.MALFORMED_DATA, _T.TRAIN_FAILED_MALFORMED_DATA),
    # Data without the shape the converter expects: "cannot unpack non-iterable int object",
    # "'<=' not supported between instances of 'int' and 'list'" (a data-format problem too).
    (fp.DATA_SHAPE, _T.TRAIN_FAILED_MALFORMED_DATA),
    # Denied locally or by the backend: PermissionError, HTTP 401/403.
    (fp.PERMISSION_DENIED, _T.TRAIN_FAILED_PERMISSION),
    (fp.AUTHENTICATION, _T.TRAIN_FAILED_PERMISSION),
    # The shared transport block, all one code: any transport failure while fetching data or
    # reporting (refused, dropped, cut short, unavailable, timed out).
    *fp.network_patterns(
        incomplete_response=_T.TRAIN_FAILED_NETWORK,
        connection_lost=_T.TRAIN_FAILED_NETWORK,
        server_unreachable=_T.TRAIN_FAILED_NETWORK,
        service_unavailable=_T.TRAIN_FAILED_NETWORK,
        timeout=_T.TRAIN_FAILED_NETWORK,
        network=_T.TRAIN_FAILED_NETWORK,
    ),
    # Training parameters rejected by validation (pydantic, HTTP 422).
    (fp.VALIDATION, _T.TRAIN_FAILED_VALIDATION),
    # Environment or settings an administrator must fix.
    (fp.CONFIGURATION, _T.TRAIN_FAILED_CONFIGURATION),
    # A named step failed for a reason none of the above named.
    (fp.STEP_FAILED, _T.TRAIN_FAILED_STEP),
    # The action's own generic failure: "training failed", a TrainError.
    (
        Gated(r"\bTrainError\b|(?i:\btrain(?:ing)? failed\b)",
              "trainerror", "train failed", "training failed"),
        _T.TRAIN_FAILED,
    ),
]

#: What a caller should do about each failure code.
TRAIN_RETRY_SEMANTICS: dict[TrainLogMessageCode, RetrySemantics] = {
    # The same request gets the same redirect, oversized or malformed answer.
    _T.TRAIN_FAILED_REDIRECT_REFUSED: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_RESPONSE_TOO_LARGE: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_MALFORMED_RESPONSE: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_DATASET_NOT_FOUND: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_BASE_MODEL_NOT_FOUND: RetrySemantics.NO_RETRY,
    # GPUs free up as other jobs finish: wait, then schedule again.
    _T.TRAIN_FAILED_INSUFFICIENT_RESOURCES: RetrySemantics.BACKOFF_THEN_RETRY,
    _T.TRAIN_FAILED_INVALID_HYPERPARAMETERS: RetrySemantics.NO_RETRY,
    # Usually a storage hiccup (network file systems); the run resumes from the last checkpoint.
    _T.TRAIN_FAILED_CHECKPOINT_WRITE: RetrySemantics.BACKOFF_THEN_RETRY,
    _T.TRAIN_CANCELLED: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_OUT_OF_MEMORY: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_DIVERGED: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_MODEL_DATA_MISMATCH: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_INTERRUPTED: RetrySemantics.BACKOFF_THEN_RETRY,
    _T.TRAIN_FAILED_DISK_FULL: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_FILE_NOT_FOUND: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_MALFORMED_DATA: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_PERMISSION: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_NETWORK: RetrySemantics.BACKOFF_THEN_RETRY,
    _T.TRAIN_FAILED_VALIDATION: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_CONFIGURATION: RetrySemantics.NO_RETRY,
    # A plugin for another SDK version fails the same way until it is reinstalled or upgraded.
    _T.TRAIN_FAILED_SDK_MISMATCH: RetrySemantics.NO_RETRY,
    # Retrying would start a duplicate run once the running one ends: wait for it instead.
    _T.TRAIN_FAILED_JOB_RUNNING: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED_STEP: RetrySemantics.NO_RETRY,
    _T.TRAIN_FAILED: RetrySemantics.NO_RETRY,
}

#: The train category: codes, catalog, patterns and semantics, checked once at import.
TRAIN_FAILURES = FailureCategory(
    name="train",
    codes=TrainLogMessageCode,
    catalog=_V2_ERROR_CODE_TO_TRAIN_CODE,
    patterns=_V1_PATTERNS,
    retry_semantics=TRAIN_RETRY_SEMANTICS,
    fallback=TrainLogMessageCode.TRAIN_FAILED,
)


def classify_train_error(
    exc: BaseException | None = None, message: str | None = None
) -> TrainLogMessageCode | None:
    """The train code for ``exc`` (its whole chain) and/or ``message``; None if nothing matched.

    Never raises on odd input; use ``... or TrainLogMessageCode.TRAIN_FAILED`` for a code
    regardless.
    """
    return TRAIN_FAILURES.classify(exc, message)
