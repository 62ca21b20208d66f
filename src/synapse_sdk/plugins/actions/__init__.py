"""Action categories: ``export``, ``upload``, ``train`` and ``inference``.

Each category package holds ``log_messages.py`` (its codes with en/ko templates) and
``failure_classifier.py`` (its v2 catalog, ordered v1 patterns and retry semantics, gathered in a
:class:`~synapse_sdk.plugins.failure_semantics.FailureCategory`). :func:`get_category` loads one
by name, for tools such as ``synapse classify`` that pick the category at run time.
"""

from __future__ import annotations

import importlib
from typing import Any

from synapse_sdk.plugins.failure_semantics import FailureCategory

__all__ = ["CATEGORY_NAMES", "get_category"]

#: category name -> (module, attribute) of its FailureCategory.
_CATEGORIES: dict[str, tuple[str, str]] = {
    "export": ("synapse_sdk.plugins.actions.export.failure_classifier", "EXPORT_FAILURES"),
    "upload": ("synapse_sdk.plugins.actions.upload.failure_classifier", "UPLOAD_FAILURES"),
    "train": ("synapse_sdk.plugins.actions.train.failure_classifier", "TRAIN_FAILURES"),
    "inference": (
        "synapse_sdk.plugins.actions.inference.failure_classifier",
        "INFERENCE_FAILURES",
    ),
}

#: The category names :func:`get_category` accepts.
CATEGORY_NAMES: tuple[str, ...] = tuple(_CATEGORIES)


def get_category(name: str) -> FailureCategory[Any]:
    """The :class:`FailureCategory` called ``name`` (its module is imported on first use).

    Raises:
        ValueError: ``name`` is not one of :data:`CATEGORY_NAMES`.
    """
    try:
        module_name, attr = _CATEGORIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown action category {name!r}; expected one of {', '.join(CATEGORY_NAMES)}"
        ) from None
    category: FailureCategory[Any] = getattr(importlib.import_module(module_name), attr)
    return category
