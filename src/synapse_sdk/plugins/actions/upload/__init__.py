"""The upload action category: its log message codes and its failure classifier."""

from synapse_sdk.plugins.actions.upload.failure_classifier import (
    UPLOAD_FAILURES,
    UPLOAD_RETRY_SEMANTICS,
    classify_upload_error,
)
from synapse_sdk.plugins.actions.upload.log_messages import UploadLogMessageCode

__all__ = [
    "UPLOAD_FAILURES",
    "UPLOAD_RETRY_SEMANTICS",
    "UploadLogMessageCode",
    "classify_upload_error",
]
