"""Log message codes, their levels, and the one place that renders them for a locale.

A category (export, upload, ...) declares its codes as an enum whose members carry a level::

    class ExportLogMessageCode(LogMessageCode):
        EXPORT_COMPLETED = ("EXPORT_COMPLETED", LogLevel.SUCCESS)

    register_log_messages({
        ExportLogMessageCode.EXPORT_COMPLETED: {
            "en": "Export completed.",
            "ko": "내보내기를 완료했습니다.",
        },
    })

    resolve_log_message(ExportLogMessageCode.EXPORT_COMPLETED, "ko-KR")
    # ResolvedMessage(text='내보내기를 완료했습니다.', level=<LogLevel.SUCCESS: 'success'>)

The locale chain is :mod:`synapse_sdk.i18n`'s (explicit → context → ``$SYNAPSE_LANGUAGE`` →
``en``; ``ko-KR`` → ``ko`` → ``en``) and ends in the code's own value when no template is
registered. Templates use ``str.format`` fields and are rendered with
:func:`synapse_sdk.i18n.safe_format`: a missing parameter stays visible as ``{name}``.

A few parameters name things of a fixed vocabulary (a step such as ``fetch``, a target such as
``tasks``): their values are translated too, from the terms registered with
:func:`register_terms` (in Korean ``'fetch' 단계`` reads ``'가져오기' 단계``); other values are
shown as given.

The registry is process-wide and thread-safe: writers build a new dict under a lock and swap it
in; readers never lock. Only the standard library is imported here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

from synapse_sdk.i18n import (
    DEFAULT_LANGUAGE,
    locale_candidates,
    normalize_language,
    resolve_language,
    safe_format,
)

__all__ = [
    "TERM_PARAMETERS",
    "LogLevel",
    "LogMessageCode",
    "ResolvedMessage",
    "register_log_messages",
    "register_terms",
    "registered_codes",
    "resolve_log_message",
    "templates_for",
    "term",
]

#: Parameters whose values are terms of a fixed vocabulary, translated when rendered.
TERM_PARAMETERS: frozenset[str] = frozenset({"step", "target"})


class LogLevel(StrEnum):
    """How a message is shown: the UI's colour and the log record's severity."""

    DEBUG = "debug"
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    DANGER = "danger"
    ERROR = "error"
    CRITICAL = "critical"


class LogMessageCode(Enum):
    """Base of every category's message codes; members are declared ``NAME = ("NAME", LogLevel.X)``.

    ``member.value`` is the stable string (what logs and the UI key on), ``member.level`` its
    :class:`LogLevel`. Subclass it once per category; it has no members itself.

    Raises:
        TypeError: (at class creation) a member is not declared as ``(str, LogLevel)``.
    """

    _value_: str
    _level: LogLevel

    def __new__(cls, value: str, level: LogLevel) -> LogMessageCode:
        if not isinstance(value, str) or not value:
            raise TypeError(f"{cls.__name__} member value must be a non-empty string: {value!r}")
        if not isinstance(level, LogLevel):
            raise TypeError(f"{cls.__name__}.{value} level must be a LogLevel, got {level!r}")
        member = object.__new__(cls)
        member._value_ = value
        member._level = level
        return member

    @property
    def level(self) -> LogLevel:
        """The level this code is logged and shown at."""
        return self._level

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}: {self.level.value}>"


class ResolvedMessage(NamedTuple):
    """A code rendered for one locale: the text to show and the level to show it at."""

    text: str
    level: LogLevel


_Templates = Mapping[str, str]
_lock = threading.Lock()
# Replaced wholesale under _lock, never mutated in place, so readers need no lock.
_registry: Mapping[LogMessageCode, _Templates] = MappingProxyType({})
# language -> term -> translation; replaced wholesale under _lock like _registry.
_terms: Mapping[str, Mapping[str, str]] = MappingProxyType({})


def _normalized_templates(code: LogMessageCode, entry: object) -> dict[str, str]:
    if isinstance(entry, str):
        return {DEFAULT_LANGUAGE: entry}
    if not isinstance(entry, Mapping):
        raise TypeError(
            f"templates for {code!r} must be a string or a mapping of language -> template, "
            f"not {type(entry).__name__}"
        )
    out: dict[str, str] = {}
    for language, template in entry.items():
        tag = normalize_language(language)
        if not isinstance(template, str):
            raise TypeError(
                f"template for {code!r} in {tag!r} must be a string, not {type(template).__name__}"
            )
        out[tag] = template
    return out


def register_log_messages(messages: Mapping[LogMessageCode, Mapping[str, str] | str]) -> None:
    """Register templates: ``{code: {"en": ..., "ko": ...}}``; a plain string means English.

    Registering a language a code already has replaces that one template; other languages stay,
    so a plugin may add a translation to the SDK's codes. All entries are validated before any is
    applied.

    Raises:
        TypeError: ``messages`` is not a mapping, a key is not a :class:`LogMessageCode`, or a
            template is not a string.
        ValueError: a language key is not a language tag.
    """
    global _registry
    if not isinstance(messages, Mapping):
        raise TypeError(f"messages must be a mapping, not {type(messages).__name__}")
    staged: dict[LogMessageCode, dict[str, str]] = {}
    for code, entry in messages.items():
        if not isinstance(code, LogMessageCode):
            raise TypeError(f"message keys must be LogMessageCode members, got {code!r}")
        staged.setdefault(code, {}).update(_normalized_templates(code, entry))
    with _lock:
        merged = dict(_registry)
        for code, templates in staged.items():
            merged[code] = MappingProxyType({**merged.get(code, {}), **templates})
        _registry = MappingProxyType(merged)


def register_terms(terms: Mapping[str, Mapping[str, str]]) -> None:
    """Register translations of terms: ``{"ko": {"fetch": "가져오기"}}`` (language → term → text).

    Raises:
        TypeError: a term or its translation is not a string.
        ValueError: a language key is not a language tag.
    """
    global _terms
    staged: dict[str, dict[str, str]] = {}
    for language, table in terms.items():
        tag = normalize_language(language)
        for name, text in table.items():
            if not isinstance(name, str) or not isinstance(text, str):
                raise TypeError(f"terms must map strings to strings, got {name!r}: {text!r}")
            staged.setdefault(tag, {})[name] = text
    with _lock:
        merged = {tag: dict(table) for tag, table in _terms.items()}
        for tag, table in staged.items():
            merged.setdefault(tag, {}).update(table)
        _terms = MappingProxyType({tag: MappingProxyType(t) for tag, t in merged.items()})


def term(value: object, language: str | None = None) -> object:
    """``value`` translated for ``language`` when it is a registered term, else ``value``.

    Raises:
        TypeError, ValueError: ``language`` is not a language tag (see :func:`resolve_log_message`).
    """
    if type(value) is not str:  # hostile str subclasses and other values are shown as given
        return value
    for candidate in locale_candidates(resolve_language(language)):
        table = _terms.get(candidate)
        if table is not None and value in table:
            return table[value]
    return value


def templates_for(code: LogMessageCode) -> Mapping[str, str]:
    """The registered templates of ``code`` by language (empty when none are registered)."""
    return _registry.get(code, MappingProxyType({}))


def registered_codes(kind: type[LogMessageCode] | None = None) -> tuple[LogMessageCode, ...]:
    """Every code with registered templates (of the enum ``kind`` only, when given)."""
    codes = tuple(_registry)
    if kind is None:
        return codes
    return tuple(code for code in codes if isinstance(code, kind))


def resolve_log_message(
    code: LogMessageCode, /, language: str | None = None, **params: Any
) -> ResolvedMessage:
    """Render ``code`` for ``language`` with ``params``; returns the text and the code's level.

    The language is chosen as :func:`synapse_sdk.i18n.resolve_language` says; the template is
    looked up from the most specific tag down (``ko-KR`` → ``ko`` → ``en``) and, when none is
    registered, the text is the code's value. A missing parameter stays visible as ``{name}``;
    a value whose ``str()`` raises is rendered as ``<unprintable Type>``. ``code`` is
    positional-only, so a template may use ``{code}``; ``{language}`` is the one reserved name.
    Values of :data:`TERM_PARAMETERS` are translated with :func:`term`.

    Raises:
        TypeError: ``code`` is not a :class:`LogMessageCode`, or ``language`` is not a string.
        ValueError: ``language`` is not a language tag.
    """
    if not isinstance(code, LogMessageCode):
        raise TypeError(f"code must be a LogMessageCode member, not {type(code).__name__}")
    candidates = locale_candidates(resolve_language(language))
    templates = _registry.get(code, {})
    for candidate in candidates:
        template = templates.get(candidate)
        if template is not None:
            table = _terms.get(candidate, {})
            shown = {
                name: table.get(value, value)
                if name in TERM_PARAMETERS and type(value) is str
                else value
                for name, value in params.items()
            }
            return ResolvedMessage(safe_format(template, shown), code.level)
    return ResolvedMessage(code.value, code.level)


# The steps actions share ("the 'fetch' step" reads "'가져오기' 단계").
register_terms({
    "ko": {
        "initialize": "준비",
        "fetch": "가져오기",
        "convert": "변환",
        "save": "저장",
        "upload": "업로드",
        "finalize": "마무리",
    },
})
