"""What a failure code means for the caller: retry semantics, and the category record tying a
category's codes, catalog, patterns and semantics together.

A category module (``plugins/actions/<category>/failure_classifier.py``) holds data only — its
v2 catalog dict, its ordered v1 pattern list and its retry-semantics dict — and builds one
:class:`FailureCategory` from them. The record checks that data once, at import, and owns the
generic :class:`synapse_sdk.failures.FailureClassifier` that does the matching. Only the standard
library (and the SDK core) is imported here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from synapse_sdk.failures import FailureClassifier, walk_chain
from synapse_sdk.i18n import safe_str
from synapse_sdk.plugins.log_messages import LogMessageCode

__all__ = ["FailureCategory", "RetrySemantics", "extract_failed_step"]

C = TypeVar("C", bound=LogMessageCode)


class RetrySemantics(StrEnum):
    """What a caller should do about a failure code (the seed's "retry policy" column)."""

    #: Retrying the same request fails the same way: fix the input, data or setup first.
    NO_RETRY = "no_retry"
    #: Part of a batch succeeded: keep it, and re-issue the request for the failed items only.
    RETRY_FAILED_ITEMS = "retry_failed_items"
    #: A temporary condition: wait (the server's ``Retry-After`` when given), then retry.
    BACKOFF_THEN_RETRY = "backoff_then_retry"


@dataclass(frozen=True, eq=False)
class FailureCategory(Generic[C]):
    """One action category's classification data, validated, plus the classifier built from it.

    ``catalog`` maps backend v2 ``error.code`` strings to codes (consulted first); ``patterns``
    is the ordered v1 list (first declared match wins); ``retry_semantics`` says what a caller
    should do about each failure code; ``fallback`` is the generic failure code callers use when
    nothing matched (the seed's ``code or ExportLogMessageCode.EXPORT_FAILED``).

    Raises:
        TypeError: a catalog key is not a string, or a code is not a member of ``codes``.
        ValueError: a pattern does not compile, or a failure code (in the catalog, the patterns
            or ``fallback``) has no retry semantics.
    """

    name: str
    codes: type[C]
    catalog: Mapping[str, C]
    patterns: Sequence[tuple[str, C]]
    retry_semantics: Mapping[C, RetrySemantics]
    fallback: C
    classifier: FailureClassifier[C] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for key, code in self.catalog.items():
            if not isinstance(key, str):
                raise TypeError(f"{self.name} catalog key {key!r} is not a string")
            self._check_code(code, f"catalog[{key!r}]")
        for index, (pattern, code) in enumerate(self.patterns):
            self._check_code(code, f"patterns[{index}]")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{self.name} patterns[{index}] does not compile: {exc}") from exc
        used = [*self.catalog.values(), *(code for _, code in self.patterns), self.fallback]
        self._check_code(self.fallback, "fallback")
        missing = sorted({code.name for code in used if code not in self.retry_semantics})
        if missing:
            raise ValueError(f"{self.name} failure codes without retry semantics: {missing}")
        for code, semantics in self.retry_semantics.items():
            self._check_code(code, "retry_semantics")
            if not isinstance(semantics, RetrySemantics):
                raise TypeError(f"{self.name} retry_semantics[{code.name}] is not RetrySemantics")
        object.__setattr__(self, "classifier", FailureClassifier(self.catalog, self.patterns))

    def _check_code(self, code: object, where: str) -> None:
        if not isinstance(code, self.codes):
            raise TypeError(f"{self.name} {where} = {code!r} is not a {self.codes.__name__} member")

    def classify(self, exc: BaseException | None = None, message: str | None = None) -> C | None:
        """The code for ``exc`` (its whole chain) and/or ``message``; None when nothing matched.

        Never raises on odd input (see :class:`synapse_sdk.failures.FailureClassifier`).
        """
        return self.classifier.classify(exc, message)

    def semantics(self, code: C | None) -> RetrySemantics | None:
        """The retry semantics of ``code`` (None for progress codes and for None)."""
        return None if code is None else self.retry_semantics.get(code)

    def all_codes(self) -> tuple[C, ...]:
        """Every code of the category (failure, progress and status), in declaration order."""
        return tuple(self.codes)

    def failure_codes(self) -> tuple[C, ...]:
        """The category's failure codes (those with retry semantics), in declaration order."""
        return tuple(code for code in self.codes if code in self.retry_semantics)


# "step 'convert' failed", "step=convert failed", "failed at step 'save'", "Step save raised".
_STEP_IN_TEXT = re.compile(
    r"(?i:\bstep[ \t]{0,4}[:=]?[ \t]{0,4}[\"']?([\w.-]{1,64})[\"']?[ \t]{0,4}"
    r"(?:failed|raised|errored)\b"
    r"|\bfailed (?:at|in|during) step[ \t]{0,4}[:=]?[ \t]{0,4}[\"']?([\w.-]{1,64}))"
)
_MAX_SCAN = 64 * 1024


def extract_failed_step(source: object) -> str | None:
    """The name of the action step that failed, from an exception chain or a message.

    A ``step`` attribute (a non-empty string) on any exception of the chain wins, outermost
    first; otherwise the first "step 'X' failed" / "failed at step X" phrase in the messages (the
    first 64 KiB of each). Returns None when no step is named, or for anything that is neither
    an exception nor a string; never raises.
    """
    if isinstance(source, str):
        texts = [source]
    elif isinstance(source, BaseException):
        chain = walk_chain(source)
        for exc in chain:
            try:
                step = getattr(exc, "step", None)
            except Exception:  # a property that raises is no step name
                continue
            if isinstance(step, str) and step.strip():
                return step.strip()
        texts = [safe_str(exc) for exc in chain]
    else:
        return None
    for text in texts:
        match = _STEP_IN_TEXT.search(text[:_MAX_SCAN])
        if match is not None:
            return match.group(1) or match.group(2)
    return None
