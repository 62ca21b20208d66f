#!/usr/bin/env python3
"""Fuzz message rendering: ``synapse_sdk.plugins.log_messages.resolve_log_message`` with every
code of the four categories, and ``synapse_sdk.i18n.safe_format`` on fuzzed templates.

The first input byte picks a shape: a code with a language (None, a real tag in odd spellings,
or fuzzed garbage) and parameters (the template's own names, random and non-identifier names;
values plain or hostile: ``str``/``repr``/``__format__`` raising, a non-str ``str()``, a str
subclass whose methods raise, megabyte-sized text); or a template assembled from literal text,
fields with specs and conversions, nested specs, attribute/index fields, stray and doubled
braces, with hostile parameters.

Invariants (an ``AssertionError`` is a libFuzzer crash):

* ``resolve_log_message`` returns a ``ResolvedMessage(str, code.level)``; it raises only the
  documented ``ValueError`` for a language tag ``normalize_language`` rejects, and then always;
* with plain parameters for every field, the text is exactly ``template.format(**params)`` (step
  and target names translated) of
  the template the locale chain picks; a missing field stays visible as ``{name}``;
* ``safe_format`` never raises and returns a ``str``; a template without braces comes back
  unchanged; attribute and index fields are never evaluated (they stay as written); and when
  ``str.format`` accepts the template with plain values, both agree.

Run: ``python fuzz/fuzz_render.py -max_total_time=60 CORPUS_DIR [SEED_DIR]``.
"""

from __future__ import annotations

import string
from typing import Any

from synapse_sdk.i18n import locale_candidates, normalize_language, safe_format
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.log_messages import (
    TERM_PARAMETERS,
    LogMessageCode,
    ResolvedMessage,
    resolve_log_message,
    templates_for,
    term,
)
from synapse_testkit.hostile import Provider, make_value, pick, provider, text

CODES: tuple[LogMessageCode, ...] = tuple(
    code for name in CATEGORY_NAMES for code in get_category(name).all_codes()
)
_TAGS = ("en", "ko", "ko-KR", "ko_KR.UTF-8", "KO", "EN-us", "en_GB@euro", "fr", "zh-Hant-TW")
_NAMES = ("count", "step", "item_id", "code", "seconds", "target", "epoch", "model", "name", "x")
_FORMATTER = string.Formatter()


def _fields(template: str) -> list[tuple[str, str, str | None]]:
    """(field, spec, conversion) of every field; [] when the template does not parse."""
    try:
        return [
            (field, spec or "", conversion)
            for _, field, spec, conversion in _FORMATTER.parse(template)
            if field is not None
        ]
    except ValueError:
        return []


def _terms_shown(params: dict[str, Any], language: str) -> dict[str, Any]:
    """``params`` as a template shows them: step and target names translated."""
    return {k: term(v, language) if k in TERM_PARAMETERS else v for k, v in params.items()}


def _plain(value: object) -> bool:
    return type(value) in (int, str) and "{" not in str(value) and "}" not in str(value)


def check_resolve(fdp: Provider) -> None:
    code: LogMessageCode = pick(fdp, CODES)
    choice = fdp.ConsumeIntInRange(0, 2)
    language = None if choice == 0 else pick(fdp, _TAGS) if choice == 1 else text(fdp, 12)
    templates = templates_for(code)
    names = sorted({f for t in templates.values() for f, _, _ in _fields(t)})
    params: dict[str, Any] = {}
    for name in names:
        if fdp.ConsumeIntInRange(0, 3):
            params[name] = make_value(fdp) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 99)
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        name = pick(fdp, _NAMES) if fdp.ConsumeBool() else text(fdp, 6)
        if name != "language":
            params[name] = make_value(fdp)

    tag_error: type[Exception] | None = None
    if language is not None:
        try:
            normalize_language(language)
        except ValueError:
            tag_error = ValueError
    try:
        resolved = resolve_log_message(code, language, **params)
    except ValueError:
        assert tag_error is ValueError, (code, language)
        return
    assert tag_error is None, ("accepted a bad tag", language)
    assert isinstance(resolved, ResolvedMessage)
    assert type(resolved.text) is str and resolved.level is code.level

    if language is None:
        return  # the environment decides; not this harness's business
    chosen = next((c for c in locale_candidates(language) if c in templates), None)
    if chosen is None:
        assert resolved.text == code.value
        return
    template = templates[chosen]
    fields = _fields(template)
    if all(f in params and _plain(params[f]) for f, _, _ in fields):
        expected = template.format(**_terms_shown(params, chosen))
        assert resolved.text == expected, (resolved.text, template, params)
    for field, spec, conversion in fields:
        if field not in params and not spec and conversion is None:
            assert "{" + field + "}" in resolved.text, (field, resolved.text)


_PIECES = (
    "{a}", "{b}", "{a!r}", "{b!s}", "{a!a}", "{a:>8}", "{a:^{b}}", "{b:d}", "{a:,}", "{a:.3}",
    "{a.__class__}", "{a[0]}", "{0}", "{}", "{a!x}", "{{", "}}", "{", "}", "{a", "a}", "{:}",
    "{a:{b}{c}}", "{a:999999999}", "{a:{b:{c}}}", "{c:%}", "{ a }",
)  # fmt: skip


def check_safe_format(fdp: Provider) -> None:
    template = "".join(
        pick(fdp, _PIECES) if fdp.ConsumeBool() else text(fdp, 12)
        for _ in range(fdp.ConsumeIntInRange(0, 8))
    )
    params: dict[str, Any] = {}
    for name in ("a", "b", "c"):
        if fdp.ConsumeBool():
            params[name] = make_value(fdp) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 20)
    rendered = safe_format(template, params)
    assert type(rendered) is str
    if "{" not in template and "}" not in template:
        assert rendered == template
    fields = _fields(template)
    for field, _, _ in fields:
        if "." in field or "[" in field:
            assert "{" + field in rendered, (field, rendered)
    simple = all(
        f.isidentifier() and f in params and _plain(params[f]) and "{" not in spec
        and len(spec) < 4 and c in (None, "r", "s", "a")
        for f, spec, c in fields
    )  # fmt: skip
    if fields and simple:
        try:
            expected = template.format(**params)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return
        assert rendered == expected, (template, params, rendered, expected)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    fdp = provider(data[1:])
    if data[0] % 2:
        check_resolve(fdp)
    else:
        check_safe_format(fdp)

