"""The filters the backend v2 list endpoints accept: one table, read by the client (to check
what it sends), the export (``params.filter``, ``synapse export --filter``) and the emulator (to
apply them to its items).

The keys and types come from the published package's ``openapi.yaml`` (the query parameters of
``GET /v2/tasks/``, ``/v2/assignments/``, ``/v2/ground-truths/``; ``dev/REAL_V2_API.md`` §2),
``cursor`` and ``per_page`` aside: the client sets those itself.

Values are checked by the schema's type:

* ``int`` / ``number`` — an integer (``number``: any decimal, as for ``project`` of assignments);
* ``bool`` — ``true``/``false`` (also ``1``/``0``, any case), sent as ``true``/``false``;
* ``choice`` — one of the schema's enum values;
* ``datetime`` — an RFC 3339 date-time (``2026-01-01T00:00:00Z``; an offset is required, ``Z``
  or ``+09:00``);
* lists — comma-separated (``users=3,4``). Where the schema describes a comma-separated list
  (ids, tags, classes) it goes out as one ``key=3,4``; the multiple-choice ones
  (``status_label``, ``status_review``, ``categories``) go out repeated, ``key=a&key=b``, as
  the schema's ``explode`` form says.

Semantics (what the emulator applies; the backend's own are django-filter's): scalar filters
match equal values, ``__gt``/``__gte``/``__lt``/``__lte`` and ``_after`` (``>=``)/``_before``
(``<=``) compare, and a list matches an item whose value (or one of whose values) is among it.
Several filters combine with AND.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

__all__ = [
    "LIST_FILTERS",
    "RESERVED_KEYS",
    "FilterValue",
    "ListFilter",
    "accepted_keys",
    "check_filters",
    "parse_filter_arg",
    "parse_value",
]

Kind = Literal["int", "number", "bool", "choice", "datetime", "ints", "choices", "strs"]
#: The comparison a filter makes between an item's attribute and the value asked for.
Op = Literal["eq", "gt", "gte", "lt", "lte", "in"]
#: What a caller may pass for one filter: a string (as on the command line), an int, a bool, or
#: for a list filter a sequence of those.
FilterValue = str | int | bool | Sequence[str | int]

#: Query parameters the client sets itself and a filter may not name.
RESERVED_KEYS: Final = frozenset({"cursor", "per_page"})

_LIST_KINDS: Final = frozenset({"ints", "choices", "strs"})
_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})
# RFC 3339 date-time (the schema's format): a date, T, a time, optional fraction, an offset.
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
_INT = re.compile(r"[+-]?\d{1,30}")


@dataclass(frozen=True, slots=True)
class ListFilter:
    """One accepted query parameter of a list endpoint: its ``key``, the ``kind`` of value, the
    item attribute it tests (``field``) with ``op``, the allowed ``choices`` (enums), and for a
    list whether it is sent repeated (``repeat``) rather than comma-joined."""

    key: str
    kind: Kind
    field: str
    op: Op = "eq"
    choices: tuple[str, ...] = ()
    repeat: bool = False

    @property
    def is_list(self) -> bool:
        """Whether the filter takes several values."""
        return self.kind in _LIST_KINDS

    @property
    def element_kind(self) -> str:
        """The kind of one value: ``int`` for ``ints``, ``choice`` for ``choices``..."""
        return _ELEMENT_KINDS.get(self.kind, self.kind)

    def describe(self) -> str:
        """The value the filter takes, in words (for messages and docs)."""
        text = " | ".join(self.choices) if self.choices else self.element_kind
        return f"{text}, comma-separated" if self.is_list else text


_ELEMENT_KINDS: Final = {"ints": "int", "choices": "choice", "strs": "str"}


def _f(key: str, kind: Kind, field: str | None = None, op: Op = "eq",
       choices: tuple[str, ...] = ()) -> ListFilter:
    return ListFilter(key, kind, field or key, op, choices, repeat=kind == "choices")


def _ranges(field: str, kind: Kind) -> list[ListFilter]:
    """``field``'s comparisons: ``__gt``, ``__gte``, ``__lt``, ``__lte``."""
    return [_f(f"{field}__{op}", kind, field, op) for op in ("gt", "gte", "lt", "lte")]


def _dates(field: str) -> list[ListFilter]:
    """A date-time range filter: ``_after``/``_before`` (inclusive) and the four comparisons."""
    return [
        _f(f"{field}_after", "datetime", field, "gte"),
        _f(f"{field}_before", "datetime", field, "lte"),
        *_ranges(field, "datetime"),
    ]


_STATUS_LABEL: Final = ("completed", "in_progress", "skipped", "stand_by")
_STATUS_REVIEW: Final = ("completed", "in_progress", "rejected", "skipped", "stand_by")
_CATEGORY: Final = ("test", "train", "validation")


def _table(filters: Iterable[ListFilter]) -> Mapping[str, ListFilter]:
    return {item.key: item for item in sorted(filters, key=lambda item: item.key)}


#: The filters of each resource's list, by key (resource names as in URLs).
LIST_FILTERS: Final[Mapping[str, Mapping[str, ListFilter]]] = {
    "tasks": _table([
        _f("project", "int"),
        _f("has_data", "bool"),
        _f("is_discarded", "bool"),
        _f("schema", "choice", choices=("any", "dm_schema_v1")),
    ]),
    "assignments": _table([
        _f("project", "number"),
        _f("workshop", "number"),
        _f("tasks", "ints", "task", "in"),
        _f("users", "ints", "user", "in"),
        _f("reviewers", "ints", "reviewer", "in"),
        _f("groups", "ints", "group", "in"),
        _f("stages", "ints", "stage", "in"),
        _f("tags", "ints", "tags", "in"),
        _f("task_tags", "ints", "task_tags", "in"),
        _f("status_label", "choices", op="in", choices=_STATUS_LABEL),
        _f("status_review", "choices", op="in", choices=_STATUS_REVIEW),
        _f("is_confirmed", "bool"),
        _f("is_discarded", "bool"),
        _f("is_discard_confirmed", "bool"),
        _f("id", "int"),
        *_ranges("id", "int"),
        _f("id__in", "ints", "id", "in"),
        *(
            item
            for field in ("created", "label_submitted", "labeler_last_action_at",
                          "last_labeled", "last_reviewed", "reviewer_last_action_at")
            for item in _dates(field)
        ),
    ]),
    "ground-truths": _table([
        _f("ground_truth_dataset", "int"),
        _f("task", "int"),
        _f("id", "int"),
        _f("category", "choice", choices=_CATEGORY),
        _f("categories", "choices", "category", "in", _CATEGORY),
        _f("classes", "strs", "classes", "in"),
    ]),
}


def accepted_keys(resource: str) -> tuple[str, ...]:
    """The filter keys ``resource``'s list accepts, sorted.

    Raises:
        ValueError: ``resource`` is not ``tasks``, ``assignments`` or ``ground-truths``.
    """
    return tuple(_filters_of(resource))


def _filters_of(resource: str) -> Mapping[str, ListFilter]:
    try:
        return LIST_FILTERS[resource]
    except KeyError:
        raise ValueError(
            f"unknown resource {resource!r}; expected one of: {', '.join(LIST_FILTERS)}"
        ) from None


def _scalar(spec: ListFilter, kind: str, raw: object) -> Any:
    """One value of ``kind`` parsed from ``raw`` (a str, or an int/bool given in Python)."""
    if isinstance(raw, bool):
        if kind != "bool":
            raise ValueError("a boolean is not accepted here")
        return raw
    text = str(raw).strip() if isinstance(raw, int | str) else None
    if text is None:
        raise ValueError(f"a {type(raw).__name__} is not accepted here")
    if kind in ("int", "ints"):
        if not _INT.fullmatch(text):
            raise ValueError(f"{text!r} is not an integer")
        return int(text)
    if kind == "number":
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise ValueError(f"{text!r} is not a number")
        return number
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a boolean (true or false)")
    if kind == "datetime":
        if not _DATETIME.fullmatch(text):
            raise ValueError(f"{text!r} is not an RFC 3339 date-time (2026-01-01T00:00:00Z)")
        try:
            return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date-time") from None
    if spec.choices and text not in spec.choices:
        raise ValueError(f"{text!r} is not one of: {', '.join(spec.choices)}")
    if not text:
        raise ValueError("the value is empty")
    return text


def parse_value(spec: ListFilter, raw: object, *, strict: bool = False) -> Any:
    """The typed value of filter ``spec`` given as ``raw``: an int, ``Decimal``, bool, str or
    aware ``datetime``; for a list filter a tuple of them (a string is split on commas).
    ``strict`` takes a boolean only as the query spells it (``true``/``false``), as the
    emulator reads a query; otherwise ``True``, ``1``, ``0``... are accepted too.

    Raises:
        ValueError: the value does not have the filter's type (the message says why).
    """
    if strict and spec.kind == "bool" and raw not in ("true", "false"):
        raise ValueError(f"{raw!r} is not a boolean (true or false)")
    if not spec.is_list:
        return _scalar(spec, spec.kind, raw)
    if isinstance(raw, str):
        parts: Sequence[object] = raw.split(",")
    elif isinstance(raw, Sequence) and not isinstance(raw, bytes):
        parts = raw
    else:
        parts = [raw]
    values = tuple(_scalar(spec, spec.kind, part) for part in parts)
    if not values:
        raise ValueError("the list is empty")
    return values


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def check_filters(
    resource: str, filters: Mapping[str, FilterValue] | None
) -> dict[str, str | list[str]]:
    """``filters`` checked against ``resource``'s table and turned into query parameters
    (values normalised: ``true``/``false``, lists comma-joined or a list of repeated values).

    Raises:
        ValueError: an unknown or reserved key (the message names the accepted keys), a value of
            the wrong type, or an unknown resource.
        TypeError: ``filters`` is not a mapping or a key not a string.
    """
    table = _filters_of(resource)
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise TypeError(f"filters must be a mapping, not {type(filters).__name__}")
    params: dict[str, str | list[str]] = {}
    for key, raw in filters.items():
        if not isinstance(key, str):
            raise TypeError(f"a filter key must be a str, not {type(key).__name__}")
        if key in RESERVED_KEYS:
            raise ValueError(
                f"filter {key!r} is reserved: the client sets {' and '.join(sorted(RESERVED_KEYS))}"
            )
        spec = table.get(key)
        if spec is None:
            raise ValueError(
                f"unknown filter {key!r} for {resource}; accepted: {', '.join(table)}"
            )
        try:
            value = parse_value(spec, raw)
        except ValueError as exc:
            raise ValueError(f"filter {key!r} ({spec.describe()}): {exc}") from None
        if not spec.is_list:
            params[key] = _query_text(value)
        elif spec.repeat:
            params[key] = [_query_text(v) for v in value]
        else:
            params[key] = ",".join(_query_text(v) for v in value)
    return params


def parse_filter_arg(text: str) -> tuple[str, str]:
    """One ``key=value`` of ``--filter``, split at the first ``=``.

    Raises:
        ValueError: no ``=``, or an empty key or value.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not value.strip():
        raise ValueError(f"{text!r} is not key=value")
    return key, value.strip()
