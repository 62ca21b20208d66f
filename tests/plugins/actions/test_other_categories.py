"""The upload, train and inference failure classifiers: every v2 code of each catalog, every
declared v1 pattern of each category (a regression case per pattern), and errors raised for real.

The same shape as the export classifier's tests (``export/test_failure_classifier.py``), with the
three categories' tables side by side and one parametrised test per check.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_sdk.exceptions import BackendError
from synapse_sdk.plugins.actions import get_category
from synapse_sdk.plugins.actions.inference import (
    INFERENCE_RETRY_SEMANTICS,
    InferenceLogMessageCode,
    classify_inference_error,
)
from synapse_sdk.plugins.actions.inference import failure_classifier as inference_fc
from synapse_sdk.plugins.actions.train import (
    TRAIN_RETRY_SEMANTICS,
    TrainLogMessageCode,
    classify_train_error,
)
from synapse_sdk.plugins.actions.train import failure_classifier as train_fc
from synapse_sdk.plugins.actions.upload import (
    UPLOAD_RETRY_SEMANTICS,
    UploadLogMessageCode,
    classify_upload_error,
)
from synapse_sdk.plugins.actions.upload import failure_classifier as upload_fc
from synapse_sdk.plugins.failure_semantics import RetrySemantics

U = UploadLogMessageCode
T = TrainLogMessageCode
I = InferenceLogMessageCode  # noqa: E741 - the category's initial, like U and T
PatternIndex = Callable[[Sequence[tuple[str, object]], str], "int | None"]

UPLOAD_V2 = {
    "file_too_large": U.UPLOAD_FAILED_FILE_TOO_LARGE,
    "unsupported_file_type": U.UPLOAD_FAILED_UNSUPPORTED_FILE_TYPE,
    "checksum_mismatch": U.UPLOAD_FAILED_CHECKSUM_MISMATCH,
    "storage_quota_exceeded": U.UPLOAD_FAILED_QUOTA_EXCEEDED,
    "upload_url_expired": U.UPLOAD_FAILED_URL_EXPIRED,
    "duplicate_file": U.UPLOAD_FAILED_DUPLICATE,
    "partial_failure": U.UPLOAD_FAILED_BATCH_PARTIAL,
    "rate_limited": U.UPLOAD_FAILED_RATE_LIMITED,
    "redirect_refused": U.UPLOAD_FAILED_REDIRECT_REFUSED,
    "response_too_large": U.UPLOAD_FAILED_RESPONSE_TOO_LARGE,
    "malformed_response": U.UPLOAD_FAILED_MALFORMED_RESPONSE,
}

TRAIN_V2 = {
    "dataset_not_found": T.TRAIN_FAILED_DATASET_NOT_FOUND,
    "model_not_found": T.TRAIN_FAILED_BASE_MODEL_NOT_FOUND,
    "insufficient_gpu": T.TRAIN_FAILED_INSUFFICIENT_RESOURCES,
    "resources_exhausted": T.TRAIN_FAILED_INSUFFICIENT_RESOURCES,
    "invalid_hyperparameters": T.TRAIN_FAILED_INVALID_HYPERPARAMETERS,
    "checkpoint_write_failed": T.TRAIN_FAILED_CHECKPOINT_WRITE,
    "job_cancelled": T.TRAIN_CANCELLED,
    "redirect_refused": T.TRAIN_FAILED_REDIRECT_REFUSED,
    "response_too_large": T.TRAIN_FAILED_RESPONSE_TOO_LARGE,
    "malformed_response": T.TRAIN_FAILED_MALFORMED_RESPONSE,
}

INFERENCE_V2 = {
    "model_not_loaded": I.INFERENCE_FAILED_MODEL_NOT_LOADED,
    "model_not_found": I.INFERENCE_FAILED_MODEL_NOT_FOUND,
    "input_too_large": I.INFERENCE_FAILED_INPUT_TOO_LARGE,
    "invalid_input": I.INFERENCE_FAILED_INVALID_INPUT,
    "inference_timeout": I.INFERENCE_FAILED_TIMEOUT,
    "partial_failure": I.INFERENCE_FAILED_BATCH_PARTIAL,
    "rate_limited": I.INFERENCE_FAILED_RATE_LIMITED,
    "redirect_refused": I.INFERENCE_FAILED_REDIRECT_REFUSED,
    "response_too_large": I.INFERENCE_FAILED_RESPONSE_TOO_LARGE,
    "malformed_response": I.INFERENCE_FAILED_MALFORMED_RESPONSE,
}

UPLOAD_V1 = [
    (
        "botocore.exceptions.ClientError: An error occurred (BadDigest) when calling the "
        "PutObject operation: The Content-MD5 you specified did not match what we received.",
        U.UPLOAD_FAILED_CHECKSUM_MISMATCH,
    ),
    ("ValueError: sha256 mismatch for cat.png", U.UPLOAD_FAILED_CHECKSUM_MISMATCH),
    (
        "httpx.HTTPStatusError: Client error '403 Forbidden' for url 'https://s3/x': "
        "<Code>AccessDenied</Code><Message>Request has expired</Message>",
        U.UPLOAD_FAILED_URL_EXPIRED,
    ),
    (
        "httpx.HTTPStatusError: Client error '415 Unsupported Media Type' for url 'http://x/'",
        U.UPLOAD_FAILED_UNSUPPORTED_FILE_TYPE,
    ),
    ("RuntimeError: storage quota exceeded for project 3", U.UPLOAD_FAILED_QUOTA_EXCEEDED),
    (
        "httpx.HTTPStatusError: Client error '413 Request Entity Too Large' for url 'http://x/'",
        U.UPLOAD_FAILED_FILE_TOO_LARGE,
    ),
    ("BackendError: file cat.png already exists", U.UPLOAD_FAILED_DUPLICATE),
    (
        "FileNotFoundError: [Errno 2] No such file or directory: '/data/cat.png'",
        U.UPLOAD_FAILED_FILE_NOT_FOUND,
    ),
    (
        "json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1)",
        U.UPLOAD_FAILED_MALFORMED_DATA,
    ),
    ("PermissionError: [Errno 13] Permission denied: '/data/cat.png'", U.UPLOAD_FAILED_PERMISSION),
    (
        "httpx.HTTPStatusError: Client error '401 Unauthorized' for url 'http://x/'",
        U.UPLOAD_FAILED_AUTHENTICATION,
    ),
    (
        "httpx.HTTPStatusError: Client error '429 Too Many Requests' for url 'http://x/'",
        U.UPLOAD_FAILED_RATE_LIMITED,
    ),
    ("OSError: [Errno 16] Device or resource busy", U.UPLOAD_FAILED_OS_TRANSIENT),
    (
        "httpx.RemoteProtocolError: peer closed connection without sending complete message body "
        "(incomplete chunked read)",
        U.UPLOAD_FAILED_CONNECTION_LOST,
    ),
    ("BrokenPipeError: [Errno 32] Broken pipe", U.UPLOAD_FAILED_CONNECTION_LOST),
    ("httpx.ConnectError: [Errno 111] Connection refused", U.UPLOAD_FAILED_SERVER_UNREACHABLE),
    (
        "httpx.HTTPStatusError: Server error '502 Bad Gateway' for url 'http://x/'",
        U.UPLOAD_FAILED_SERVICE_UNAVAILABLE,
    ),
    ("httpx.WriteTimeout: timed out", U.UPLOAD_FAILED_TIMEOUT),
    (
        "ssl.SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
        U.UPLOAD_FAILED_NETWORK,
    ),
    ("ValidationError: 2 validation errors for UploadParams", U.UPLOAD_FAILED_VALIDATION),
    ("ActionStepError: step 'organize' failed", U.UPLOAD_FAILED_STEP),
    ("RuntimeError: upload failed", U.UPLOAD_FAILED),
    # issue 14's families (the real libraries raise these in test_real_world_families.py)
    ("BackendError: Job is currently running", U.UPLOAD_FAILED_JOB_RUNNING),
    ("AttributeError: 'dict' object has no attribute 'export'", U.UPLOAD_FAILED_SDK_MISMATCH),
    ("TypeError: cannot unpack non-iterable int object", U.UPLOAD_FAILED_MALFORMED_DATA),
]

TRAIN_V1 = [
    (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB "
        "total capacity; 13.02 GiB already allocated)",
        T.TRAIN_FAILED_OUT_OF_MEMORY,
    ),
    ("RuntimeError: No CUDA GPUs are available", T.TRAIN_FAILED_INSUFFICIENT_RESOURCES),
    (
        "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an "
        "NVIDIA GPU and installed a driver",
        T.TRAIN_FAILED_CONFIGURATION,
    ),
    ("FloatingPointError: Loss is nan, stopping training", T.TRAIN_FAILED_DIVERGED),
    (
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x512 and 2048x10)",
        T.TRAIN_FAILED_MODEL_DATA_MISMATCH,
    ),
    (
        "RuntimeError: Error(s) in loading state_dict for ResNet: size mismatch for fc.weight",
        T.TRAIN_FAILED_MODEL_DATA_MISMATCH,
    ),
    ("OSError: failed to save checkpoint epoch_3.pt", T.TRAIN_FAILED_CHECKPOINT_WRITE),
    ("ValueError: dataset 'cats-v2' not found", T.TRAIN_FAILED_DATASET_NOT_FOUND),
    (
        "ValueError: learning_rate must be positive, got -0.1",
        T.TRAIN_FAILED_INVALID_HYPERPARAMETERS,
    ),
    ("KeyboardInterrupt", T.TRAIN_FAILED_INTERRUPTED),
    ("RuntimeError: worker terminated by signal SIGTERM", T.TRAIN_FAILED_INTERRUPTED),
    ("OSError: [Errno 28] No space left on device", T.TRAIN_FAILED_DISK_FULL),
    (
        "FileNotFoundError: [Errno 2] No such file or directory: 'weights/base.pt'",
        T.TRAIN_FAILED_FILE_NOT_FOUND,
    ),
    (
        "json.decoder.JSONDecodeError: Unterminated string starting at: line 1 column 10 (char 9)",
        T.TRAIN_FAILED_MALFORMED_DATA,
    ),
    ("PermissionError: [Errno 13] Permission denied: '/ckpt'", T.TRAIN_FAILED_PERMISSION),
    (
        "httpx.HTTPStatusError: Client error '401 Unauthorized' for url 'http://x/'",
        T.TRAIN_FAILED_PERMISSION,
    ),
    (
        "httpx.RemoteProtocolError: peer closed connection without sending complete message body "
        "(received 5 bytes, expected 9)",
        T.TRAIN_FAILED_NETWORK,
    ),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", T.TRAIN_FAILED_NETWORK),
    ("httpx.ConnectError: All connection attempts failed", T.TRAIN_FAILED_NETWORK),
    ("BackendServiceUnavailableError: maintenance", T.TRAIN_FAILED_NETWORK),
    ("httpx.ReadTimeout: timed out", T.TRAIN_FAILED_NETWORK),
    ("httpx.NetworkError: network is down", T.TRAIN_FAILED_NETWORK),
    ("ValidationError: 1 validation error for TrainParams", T.TRAIN_FAILED_VALIDATION),
    ("RuntimeError: missing required environment variable WANDB_PROJECT",
     T.TRAIN_FAILED_CONFIGURATION),
    ("ActionStepError: step 'fit' failed", T.TRAIN_FAILED_STEP),
    ("TrainError: training failed", T.TRAIN_FAILED),
    # issue 14's families (the real libraries raise these in test_real_world_families.py)
    ("BackendError: Job is currently running", T.TRAIN_FAILED_JOB_RUNNING),
    ("AttributeError: 'dict' object has no attribute 'export'", T.TRAIN_FAILED_SDK_MISMATCH),
    ("TypeError: cannot unpack non-iterable int object", T.TRAIN_FAILED_MALFORMED_DATA),
]

INFERENCE_V1 = [
    ("RuntimeError: model is not loaded yet", I.INFERENCE_FAILED_MODEL_NOT_LOADED),
    ("tritonclient.InferenceServerException: ModelNotReady", I.INFERENCE_FAILED_MODEL_NOT_LOADED),
    ("ValueError: model 'resnet-9' not found", I.INFERENCE_FAILED_MODEL_NOT_FOUND),
    (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB",
        I.INFERENCE_FAILED_OUT_OF_MEMORY,
    ),
    (
        "BadRequestError: This model's maximum context length is 4096 tokens",
        I.INFERENCE_FAILED_INPUT_TOO_LARGE,
    ),
    (
        "httpx.HTTPStatusError: Client error '413 Payload Too Large' for url 'http://x/'",
        I.INFERENCE_FAILED_INPUT_TOO_LARGE,
    ),
    (
        "PIL.UnidentifiedImageError: cannot identify image file <_io.BytesIO object>",
        I.INFERENCE_FAILED_INVALID_INPUT,
    ),
    ("ValidationError: 1 validation error for PredictRequest", I.INFERENCE_FAILED_INVALID_INPUT),
    (
        "json.decoder.JSONDecodeError: Extra data: line 1 column 5 (char 4)",
        I.INFERENCE_FAILED_MALFORMED_DATA,
    ),
    (
        "FileNotFoundError: [Errno 2] No such file or directory: 'input.png'",
        I.INFERENCE_FAILED_FILE_NOT_FOUND,
    ),
    ("PermissionError: [Errno 13] Permission denied: '/models'", I.INFERENCE_FAILED_PERMISSION),
    ("AuthenticationError: invalid api token", I.INFERENCE_FAILED_PERMISSION),
    (
        "httpx.HTTPStatusError: Client error '429 Too Many Requests' for url 'http://x/'",
        I.INFERENCE_FAILED_RATE_LIMITED,
    ),
    (
        "http.client.IncompleteRead: IncompleteRead(0 bytes read)",
        I.INFERENCE_FAILED_CONNECTION_LOST,
    ),
    (
        "http.client.RemoteDisconnected: Remote end closed connection without response",
        I.INFERENCE_FAILED_CONNECTION_LOST,
    ),
    ("httpx.ConnectError: [Errno 111] Connection refused", I.INFERENCE_FAILED_SERVER_UNREACHABLE),
    (
        "httpx.HTTPStatusError: Server error '504 Gateway Timeout' for url 'http://x/'",
        I.INFERENCE_FAILED_SERVICE_UNAVAILABLE,
    ),
    ("grpc.RpcError: StatusCode.DEADLINE_EXCEEDED: Deadline Exceeded", I.INFERENCE_FAILED_TIMEOUT),
    ("httpx.LocalProtocolError: Illegal header value", I.INFERENCE_FAILED_NETWORK),
    ("ActionStepError: step 'postprocess' failed", I.INFERENCE_FAILED_STEP),
    ("InferenceError: inference failed", I.INFERENCE_FAILED),
    # issue 14's families (the real libraries raise these in test_real_world_families.py)
    ("BackendError: Job is currently running", I.INFERENCE_FAILED_JOB_RUNNING),
    ("AttributeError: 'dict' object has no attribute 'export'", I.INFERENCE_FAILED_SDK_MISMATCH),
    ("TypeError: cannot unpack non-iterable int object", I.INFERENCE_FAILED_INVALID_INPUT),
]


CATALOGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "upload": (upload_fc._V2_ERROR_CODE_TO_UPLOAD_CODE, UPLOAD_V2),
    "train": (train_fc._V2_ERROR_CODE_TO_TRAIN_CODE, TRAIN_V2),
    "inference": (inference_fc._V2_ERROR_CODE_TO_INFERENCE_CODE, INFERENCE_V2),
}
V1: dict[str, list[tuple[str, Any]]] = {
    "upload": UPLOAD_V1,
    "train": TRAIN_V1,
    "inference": INFERENCE_V1,
}
# A text each category's patterns claim, to show the catalog wins over them.
V1_NOISE = {
    "upload": "[Errno 2] No such file or directory",
    "train": "CUDA out of memory.",
    "inference": "httpx.ReadTimeout: timed out",
}


@pytest.mark.parametrize("name", CATALOGS)
def test_catalog_is_what_the_table_says(name: str) -> None:
    catalog, table = CATALOGS[name]
    assert catalog == table


@pytest.mark.parametrize(
    ("name", "backend_code"),
    [(name, code) for name, (_, table) in CATALOGS.items() for code in table],
)
def test_v2_code(name: str, backend_code: str) -> None:
    category = get_category(name)
    expected = CATALOGS[name][1][backend_code]
    envelope = json.dumps({"error": {"code": backend_code, "detail": "..."}})
    assert category.classify(BackendError(f"{name} failed: {envelope}")) is expected
    assert category.classify(message=f"{V1_NOISE[name]} {envelope}") is expected


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [(name, text, code) for name, cases in V1.items() for text, code in cases],
    ids=[f"{name}-{text[:40]}" for name, cases in V1.items() for text, _ in cases],
)
def test_v1_regression(name: str, text: str, expected: Any) -> None:
    assert get_category(name).classify(message=text) is expected


@pytest.mark.parametrize("name", V1)
def test_v1_regression_suite_covers_every_declared_pattern(
    name: str, pattern_index: PatternIndex
) -> None:
    patterns = get_category(name).patterns
    hit = {pattern_index(patterns, text) for text, _ in V1[name]}
    assert [i for i in range(len(patterns)) if i not in hit] == []


# --- raised for real ----------------------------------------------------------------------------


def test_upload_real_errors(tmp_path: Path, http: httpx.Client, closed_port: int) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        (tmp_path / "cat.png").open("rb")
    assert classify_upload_error(missing.value) is U.UPLOAD_FAILED_FILE_NOT_FOUND
    with pytest.raises(httpx.ConnectError) as refused:
        http.put(f"http://127.0.0.1:{closed_port}/upload", content=b"x" * 10, timeout=5)
    assert classify_upload_error(refused.value) is U.UPLOAD_FAILED_SERVER_UNREACHABLE


def test_train_real_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        (tmp_path / "dataset.json").read_text()
    assert classify_train_error(missing.value) is T.TRAIN_FAILED_FILE_NOT_FOUND
    with pytest.raises(MemoryError) as oom:
        bytearray(2**62)
    assert classify_train_error(oom.value) is T.TRAIN_FAILED_OUT_OF_MEMORY


def test_inference_real_errors(http: httpx.Client, silent_server: Any, closed_port: int) -> None:
    with pytest.raises(httpx.ReadTimeout) as timeout:
        http.post(silent_server.url, json={"x": 1}, timeout=httpx.Timeout(5, read=0.2))
    assert classify_inference_error(timeout.value) is I.INFERENCE_FAILED_TIMEOUT
    with pytest.raises(httpx.ConnectError) as refused:
        http.post(f"http://127.0.0.1:{closed_port}/predict", json={}, timeout=5)
    assert classify_inference_error(refused.value) is I.INFERENCE_FAILED_SERVER_UNREACHABLE
    with pytest.raises(json.JSONDecodeError) as garbage:
        json.loads("{'not': json}")
    assert classify_inference_error(garbage.value) is I.INFERENCE_FAILED_MALFORMED_DATA


def test_retry_semantics() -> None:
    assert UPLOAD_RETRY_SEMANTICS[U.UPLOAD_FAILED_BATCH_PARTIAL] is (
        RetrySemantics.RETRY_FAILED_ITEMS
    )
    assert UPLOAD_RETRY_SEMANTICS[U.UPLOAD_FAILED_FILE_TOO_LARGE] is RetrySemantics.NO_RETRY
    assert UPLOAD_RETRY_SEMANTICS[U.UPLOAD_FAILED_CHECKSUM_MISMATCH] is (
        RetrySemantics.BACKOFF_THEN_RETRY
    )
    assert TRAIN_RETRY_SEMANTICS[T.TRAIN_FAILED_INSUFFICIENT_RESOURCES] is (
        RetrySemantics.BACKOFF_THEN_RETRY
    )
    assert TRAIN_RETRY_SEMANTICS[T.TRAIN_FAILED_DIVERGED] is RetrySemantics.NO_RETRY
    assert INFERENCE_RETRY_SEMANTICS[I.INFERENCE_FAILED_MODEL_NOT_LOADED] is (
        RetrySemantics.BACKOFF_THEN_RETRY
    )
    assert INFERENCE_RETRY_SEMANTICS[I.INFERENCE_FAILED_INPUT_TOO_LARGE] is (
        RetrySemantics.NO_RETRY
    )


def test_the_docs_catalog_table_matches_the_code() -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "failure-classification.md"
    rows = [
        line for line in docs.read_text(encoding="utf-8").splitlines()
        if line.startswith(tuple(f"| {name} |" for name in CATALOGS))
    ]
    expected = []
    for name, (catalog, _) in CATALOGS.items():
        category = get_category(name)
        by_code: dict[Any, list[str]] = {}
        for key, code in catalog.items():
            by_code.setdefault(code, []).append(f"`{key}`")
        for code, keys in by_code.items():
            expected.append(
                f"| {name} | {', '.join(keys)} | `{code.value}` | {code.level.value} | "
                f"{category.retry_semantics[code].value} |"
            )
    assert rows == expected
