"""The inference action category: its log message codes and its failure classifier."""

from synapse_sdk.plugins.actions.inference.failure_classifier import (
    INFERENCE_FAILURES,
    INFERENCE_RETRY_SEMANTICS,
    classify_inference_error,
)
from synapse_sdk.plugins.actions.inference.log_messages import InferenceLogMessageCode

__all__ = [
    "INFERENCE_FAILURES",
    "INFERENCE_RETRY_SEMANTICS",
    "InferenceLogMessageCode",
    "classify_inference_error",
]
