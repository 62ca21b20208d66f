"""Locale negotiation and safe template formatting for user-facing messages.

Which language a message is rendered in is decided by one chain, first hit wins::

    explicit argument  →  context setting  →  $SYNAPSE_LANGUAGE  →  "en"

The *context setting* is whatever the caller passes as ``context=`` (an action's or
``SDKConfig.language``), or else the language set for the current thread/task with
:func:`use_language`. A tag is normalised before use — ``ko_KR.UTF-8``, ``ko-kr`` and ``KO-KR``
all become ``ko-KR`` — and looked up from the most to the least specific form
(``ko-KR`` → ``ko``), then English.

:func:`safe_format` renders a ``str.format``-style template and never raises on the data it is
given: a missing parameter stays visible as ``{name}``, a malformed template (a stray brace) is
rendered as literally as possible, and a value whose ``str()`` or ``__format__`` raises is shown
as ``<unprintable TypeName>``. Attribute and index access in fields (``{x.__class__}``,
``{x[0]}``) is never evaluated.

Only the standard library is imported here.
"""

from __future__ import annotations

import contextlib
import os
import re
import string
from collections.abc import Container, Iterator, Mapping
from contextvars import ContextVar

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGE_ENV_VAR",
    "SUPPORTED_LANGUAGES",
    "current_language",
    "locale_candidates",
    "negotiate_language",
    "normalize_language",
    "resolve_language",
    "safe_format",
    "safe_str",
    "supported_language",
    "template_fields",
    "use_language",
]

#: The language every chain ends in.
DEFAULT_LANGUAGE = "en"
#: The languages the SDK's messages are written in.
SUPPORTED_LANGUAGES: frozenset[str] = frozenset({"en", "ko"})
#: The environment variable consulted after the explicit and context settings.
LANGUAGE_ENV_VAR = "SYNAPSE_LANGUAGE"

# language[-_]script/region..., then an optional POSIX ``.codeset`` and ``@modifier``.
_TAG = re.compile(
    r"(?P<lang>[A-Za-z]{2,8})(?P<rest>(?:[-_][A-Za-z0-9]{1,8}){0,4})"
    r"(?:\.[A-Za-z0-9_-]{1,32})?(?:@[A-Za-z0-9_-]{1,32})?"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Fallback for a template ``string.Formatter`` rejects: escaped braces and simple fields only.
_SIMPLE_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FORMATTER = string.Formatter()
# A number in a format spec (width, precision) above this makes the spec ignored: "{n:999999999}",
# or a nested width taken from the data ("{n:{w}}"), would otherwise allocate a gigabyte.
_MAX_SPEC_NUMBER = 1000
_SPEC_NUMBER = re.compile(r"0*(\d+)")

_context_language: ContextVar[str | None] = ContextVar("synapse_sdk_language", default=None)


def normalize_language(tag: str) -> str:
    """Return the canonical form of a language tag: ``ko_KR.UTF-8`` → ``ko-KR``, ``KO`` → ``ko``.

    The language subtag is lower-cased, a two-letter region upper-cased, a four-letter script
    title-cased; POSIX codeset (``.UTF-8``) and modifier (``@euro``) suffixes are dropped.

    Raises:
        TypeError: ``tag`` is not a string.
        ValueError: ``tag`` is not a language tag (empty, ``C``, ``POSIX``, punctuation, ...).
    """
    if not isinstance(tag, str):
        raise TypeError(f"language tag must be a string, not {type(tag).__name__}")
    match = _TAG.fullmatch(tag.strip())
    if match is None or match.group("lang").upper() in {"C", "POSIX"}:
        shown = tag if len(tag) <= 40 else tag[:40] + "…"
        raise ValueError(f"not a language tag: {shown!r} (expected e.g. 'en', 'ko', 'ko-KR')")
    parts = [match.group("lang").lower()]
    for sub in re.split(r"[-_]", match.group("rest"))[1:]:
        if len(sub) == 2 and sub.isalpha():
            parts.append(sub.upper())
        elif len(sub) == 4 and sub.isalpha():
            parts.append(sub.title())
        else:
            parts.append(sub.lower())
    return "-".join(parts)


def locale_candidates(tag: str) -> tuple[str, ...]:
    """The lookup order for ``tag``, most specific first, ending in :data:`DEFAULT_LANGUAGE`.

    ``"ko_KR.UTF-8"`` → ``("ko-KR", "ko", "en")``; ``"en-US"`` → ``("en-US", "en")``.

    Raises:
        TypeError, ValueError: as :func:`normalize_language`.
    """
    parts = normalize_language(tag).split("-")
    out = ["-".join(parts[:end]) for end in range(len(parts), 0, -1)]
    if DEFAULT_LANGUAGE not in out:
        out.append(DEFAULT_LANGUAGE)
    return tuple(out)


def supported_language(tag: str) -> str | None:
    """The language of :data:`SUPPORTED_LANGUAGES` that ``tag`` asks for, or None when it asks
    for one the SDK has no messages in (``ko-KR`` → ``ko``; ``fr``, ``kr`` → None; rendering
    would fall back to English).

    Raises:
        TypeError, ValueError: as :func:`normalize_language`.
    """
    primary = normalize_language(tag).split("-")[0]
    return primary if primary in SUPPORTED_LANGUAGES else None


def current_language() -> str | None:
    """The language set with :func:`use_language` for the current thread or task, if any."""
    return _context_language.get()


@contextlib.contextmanager
def use_language(tag: str | None) -> Iterator[None]:
    """Within the block, render messages in ``tag`` unless a call names a language itself.

    The setting is a :class:`contextvars.ContextVar`, so threads and asyncio tasks do not see
    each other's. ``None`` clears it for the block.

    Raises:
        TypeError, ValueError: ``tag`` is not a valid language tag (see :func:`normalize_language`).
    """
    token = _context_language.set(None if tag is None else normalize_language(tag))
    try:
        yield
    finally:
        _context_language.reset(token)


def resolve_language(
    language: str | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Pick the language tag to render in: ``language`` → ``context`` (or :func:`use_language`)
    → ``$SYNAPSE_LANGUAGE`` → ``"en"``, normalised.

    An unusable environment value (``C``, garbage) is skipped, since it is the user's machine
    speaking, not the caller; an invalid explicit or context tag is the caller's bug and raises.

    Raises:
        TypeError: ``language`` or ``context`` is neither a string nor None.
        ValueError: ``language`` or ``context`` is not a language tag.
    """
    for given in (language, context if context is not None else _context_language.get()):
        if given is not None:
            return normalize_language(given)
    env = (os.environ if environ is None else environ).get(LANGUAGE_ENV_VAR)
    if env:
        try:
            return normalize_language(env)
        except ValueError:
            pass
    return DEFAULT_LANGUAGE


def negotiate_language(
    available: Container[str],
    language: str | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The first of :func:`locale_candidates` (of :func:`resolve_language`) in ``available``.

    ``available`` holds normalised tags (a template dict's keys, say). Returns None when not even
    English is available.

    Raises:
        TypeError, ValueError: as :func:`resolve_language`.
    """
    for candidate in locale_candidates(resolve_language(language, context, environ=environ)):
        if candidate in available:
            return candidate
    return None


def safe_str(value: object) -> str:
    """``str(value)``, or ``<unprintable TypeName>`` when that raises; never raises itself.

    The result is a plain ``str`` even when ``__str__`` returns a subclass (whose ``len()``,
    slicing or ``format()`` may be overridden).
    """
    try:
        text = str(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _convert(value: object, conversion: str | None) -> object:
    if conversion == "r":
        return repr(value)
    if conversion == "a":
        return ascii(value)
    if conversion == "s":
        return str(value)
    return value


def _format_value(value: object, conversion: str | None, spec: str) -> str:
    if any(
        len(digits) > 4 or int(digits) > _MAX_SPEC_NUMBER for digits in _SPEC_NUMBER.findall(spec)
    ):
        spec = ""
    try:
        return format(_convert(value, conversion), spec)
    except Exception:
        # A spec that does not fit the value (``{n:d}`` given "3") or a broken __format__/__repr__:
        # show the value plainly rather than lose the message.
        return safe_str(value)


def _render_simple(template: str, params: Mapping[str, object]) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        return safe_str(params[name]) if name in params else token

    return _SIMPLE_FIELD.sub(replace, template)


def safe_format(template: str, params: Mapping[str, object] | None = None) -> str:
    """Render ``template`` (``str.format`` syntax) with ``params``; never raises on bad data.

    * a placeholder without a parameter stays as written (``"{count}"``);
    * a template ``str.format`` would reject (``"50% {"``) is rendered with its simple
      ``{name}`` fields filled and the stray braces left as they are;
    * fields with attribute or index access (``{x.y}``, ``{x[0]}``) and positional fields are
      left as written, never evaluated;
    * a value whose ``str()``, ``repr()`` or ``__format__`` raises becomes
      ``<unprintable TypeName>``; a format spec that does not fit the value, or asks for a
      width or precision above 1000, is ignored.

    Raises:
        TypeError: ``template`` is not a string or ``params`` is not a mapping (caller bugs).
    """
    if not isinstance(template, str):
        raise TypeError(f"template must be a string, not {type(template).__name__}")
    if params is None:
        params = {}
    elif not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, not {type(params).__name__}")
    try:
        pieces = list(_FORMATTER.parse(template))
    except ValueError:
        return _render_simple(template, params)
    out: list[str] = []
    for literal, field, spec, conversion in pieces:
        out.append(literal)
        if field is None:
            continue
        if (
            not _IDENTIFIER.fullmatch(field)
            or field not in params
            or conversion not in (None, "r", "s", "a")
        ):
            written = field + (f"!{conversion}" if conversion else "")
            out.append("{" + written + (f":{spec}" if spec else "") + "}")
            continue
        if spec and "{" in spec:
            spec = _render_simple(spec, params)
        out.append(_format_value(params[field], conversion, spec or ""))
    return "".join(out)


def template_fields(template: str) -> frozenset[str]:
    """The placeholder names in ``template`` (``"{a} of {b:,}"`` → ``{"a", "b"}``).

    Used to check that translations of one message take the same parameters.

    Raises:
        TypeError: ``template`` is not a string.
        ValueError: the template is malformed (a stray brace).
    """
    if not isinstance(template, str):
        raise TypeError(f"template must be a string, not {type(template).__name__}")
    return frozenset(field for _, field, _, _ in _FORMATTER.parse(template) if field is not None)
