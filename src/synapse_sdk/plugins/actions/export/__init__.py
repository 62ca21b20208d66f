"""The export action category: its log message codes, its failure classifier, and the
exporter hooks plugins subclass (:class:`BaseExporter`)."""

from synapse_sdk.plugins.actions.export.exporter import (
    BaseExporter,
    ExportOutput,
    OriginalFile,
)
from synapse_sdk.plugins.actions.export.failure_classifier import (
    EXPORT_FAILURES,
    EXPORT_RETRY_SEMANTICS,
    classify_export_error,
)
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode

__all__ = [
    "EXPORT_FAILURES",
    "EXPORT_RETRY_SEMANTICS",
    "BaseExporter",
    "ExportLogMessageCode",
    "ExportOutput",
    "OriginalFile",
    "classify_export_error",
]
