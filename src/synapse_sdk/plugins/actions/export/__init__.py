"""The export action category: its log message codes and its failure classifier."""

from synapse_sdk.plugins.actions.export.failure_classifier import (
    EXPORT_FAILURES,
    EXPORT_RETRY_SEMANTICS,
    classify_export_error,
)
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode

__all__ = [
    "EXPORT_FAILURES",
    "EXPORT_RETRY_SEMANTICS",
    "ExportLogMessageCode",
    "classify_export_error",
]
