"""The train action category: its log message codes and its failure classifier."""

from synapse_sdk.plugins.actions.train.failure_classifier import (
    TRAIN_FAILURES,
    TRAIN_RETRY_SEMANTICS,
    classify_train_error,
)
from synapse_sdk.plugins.actions.train.log_messages import TrainLogMessageCode

__all__ = [
    "TRAIN_FAILURES",
    "TRAIN_RETRY_SEMANTICS",
    "TrainLogMessageCode",
    "classify_train_error",
]
