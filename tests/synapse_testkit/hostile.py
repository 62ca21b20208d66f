"""Hostile exceptions and values the fuzz targets and the property tests build from bytes.

Nothing from ``synapse_sdk`` is imported here: each harness in ``fuzz/`` imports the SDK inside
``atheris.instrument_imports()``, and a module imported earlier would not be instrumented.

The builders read from anything shaped like ``atheris.FuzzedDataProvider`` (see
:class:`Provider`), so the same code serves the harnesses, hypothesis draws and
:func:`provider`, which reads fuzz bytes with atheris's provider when atheris is installed and
with :class:`BytesProvider` (plain Python, the same calls) when it is not.
"""

from __future__ import annotations

import errno
import json
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = [
    "HOSTILE_EXCEPTION_TYPES",
    "BytesProvider",
    "HostileStr",
    "Provider",
    "build_chain",
    "children",
    "make_exception",
    "make_value",
    "provider",
    "reachable",
    "text",
]

#: The longest text any builder consumes at once.
MAX_TEXT = 256


class Provider(Protocol):
    """The part of ``atheris.FuzzedDataProvider`` the builders use."""

    def ConsumeIntInRange(self, low: int, high: int) -> int: ...
    def ConsumeBool(self) -> bool: ...
    def ConsumeUnicode(self, count: int) -> str: ...
    def ConsumeFloat(self) -> float: ...
    def remaining_bytes(self) -> int: ...


class BytesProvider:
    """The :class:`Provider` calls read from a byte string in plain Python: how the fuzz targets
    run without atheris's native part. Not byte-compatible with atheris (a crash found by
    libFuzzer replays with atheris installed); exhausted input reads as zeros, as atheris's does.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, count: int) -> bytes:
        chunk = self._data[self._pos : self._pos + count]
        self._pos += len(chunk)
        return chunk

    def remaining_bytes(self) -> int:
        return len(self._data) - self._pos

    def ConsumeInt(self, size: int) -> int:
        return int.from_bytes(self._take(size).ljust(size, b"\0"), "little", signed=True)

    def ConsumeIntInRange(self, low: int, high: int) -> int:
        span = high - low
        if span <= 0:
            return low
        size = (span.bit_length() + 7) // 8
        return low + int.from_bytes(self._take(size), "little") % (span + 1)

    def ConsumeBool(self) -> bool:
        return bool(self.ConsumeIntInRange(0, 1))

    def ConsumeFloat(self) -> float:
        kind = self.ConsumeIntInRange(0, 5)
        specials = (0.0, -0.0, float("inf"), float("-inf"), float("nan"))
        if kind < len(specials):
            return specials[kind]
        return float(self.ConsumeInt(8)) / float(1 + self.ConsumeIntInRange(0, 1 << 16))

    def ConsumeUnicode(self, count: int) -> str:
        width = self.ConsumeIntInRange(0, 2)  # ASCII, 2-byte or 4-byte code points
        chars = []
        for _ in range(count):
            if not self.remaining_bytes():
                break
            if width == 0:
                chars.append(chr(self.ConsumeIntInRange(0, 0x7F)))
            else:
                chars.append(chr(self.ConsumeIntInRange(0, 0xFFFF if width == 1 else 0x10FFFF)))
        return "".join(chars)


def provider(data: bytes) -> Provider:
    """A provider over fuzz bytes: atheris's when it is installed, else :class:`BytesProvider`."""
    try:
        import atheris
    except ImportError:
        return BytesProvider(data)
    made: Provider = atheris.FuzzedDataProvider(data)
    return made


def text(fdp: Provider, limit: int = 64) -> str:
    """A short random text (any code points, lone surrogates included)."""
    return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, min(limit, MAX_TEXT)))


def pick(fdp: Provider, items: Sequence[Any]) -> Any:
    return items[fdp.ConsumeIntInRange(0, len(items) - 1)]


# --- hostile strings and values ------------------------------------------------------------------


class HostileStr(str):
    """A ``str`` subclass whose length, slicing, truthiness and formatting all raise: what a lazy
    translation proxy or a broken string wrapper can look like from the outside."""

    __slots__ = ()

    def __len__(self) -> int:
        raise RuntimeError("HostileStr.__len__")

    def __getitem__(self, key: Any) -> str:
        raise RuntimeError("HostileStr.__getitem__")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("HostileStr.__format__")

    def __bool__(self) -> bool:
        raise RuntimeError("HostileStr.__bool__")


class StrRaisesValue:
    def __str__(self) -> str:
        raise RuntimeError("str raises")


class ReprRaisesValue:
    def __repr__(self) -> str:
        raise RuntimeError("repr raises")


class NothingPrintsValue:
    def __str__(self) -> str:
        raise RuntimeError("str raises")

    def __repr__(self) -> str:
        raise RuntimeError("repr raises")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("format raises")


class FormatRaisesValue:
    def __format__(self, spec: str) -> str:
        raise ValueError(f"no format {spec!r}")


class StrReturnsNonStrValue:
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


class HostileStrValue:
    def __str__(self) -> str:
        return HostileStr("lazy")


def make_value(fdp: Provider) -> object:
    """A parameter value: plain (int, float incl. inf/nan, str with braces, None, bytes) or
    hostile (``str``/``repr``/``__format__`` raising, a non-str ``str()``, a huge text)."""
    kind = fdp.ConsumeIntInRange(0, 13)
    if kind == 0:
        return fdp.ConsumeIntInRange(-(10**12), 10**12)
    if kind == 1:
        return fdp.ConsumeFloat()
    if kind == 2:
        return text(fdp)
    if kind == 3:
        return None
    if kind == 4:
        return text(fdp).encode("utf-8", "surrogatepass")
    if kind == 5:
        return StrRaisesValue()
    if kind == 6:
        return ReprRaisesValue()
    if kind == 7:
        return NothingPrintsValue()
    if kind == 8:
        return FormatRaisesValue()
    if kind == 9:
        return StrReturnsNonStrValue()
    if kind == 10:
        return HostileStrValue()
    if kind == 11:
        return HostileStr(text(fdp))
    if kind == 12:
        return text(fdp, 8) * fdp.ConsumeIntInRange(0, 20_000)  # up to ~160k characters
    return [make_value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 2))]


# --- hostile exceptions --------------------------------------------------------------------------


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")


class StrAndReprRaise(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ exploded")


class StrReturnsNonStr(Exception):
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


class StrReturnsHostileStr(Exception):
    def __str__(self) -> str:
        return HostileStr(super().__str__())


class HugeStr(Exception):
    """``str()`` is the first argument repeated to about a megabyte."""

    def __str__(self) -> str:
        base = super().__str__() or "x"
        return base * (1_000_000 // len(base) + 1)


class CauseRaises(Exception):
    @property
    def __cause__(self) -> BaseException:  # type: ignore[override]
        raise RuntimeError("no cause for you")


class SuppressRaises(Exception):
    @property
    def __suppress_context__(self) -> bool:  # type: ignore[override]
        raise RuntimeError("no suppress for you")


class ErrorCodeRaises(Exception):
    @property
    def error_code(self) -> str:
        raise RuntimeError("no error_code for you")


class GroupMembersRaise(ExceptionGroup[Exception]):
    @property
    def exceptions(self) -> tuple[Exception, ...]:
        raise RuntimeError("no members for you")


class CustomBase(BaseException):
    """Not an ``Exception``: a classifier must accept any ``BaseException``."""


def _os_error(message: str) -> OSError:
    code = (errno.ENOENT, errno.EACCES, errno.EEXIST, errno.ENOSPC, errno.ECONNREFUSED, 0)
    return OSError(code[len(message) % len(code)], message, "/data/" + message[:8])


def _key_error_with_unprintable_key(message: str) -> KeyError:
    return KeyError(NothingPrintsValue())


#: Constructors of one exception from a message.
HOSTILE_EXCEPTION_TYPES: tuple[Callable[[str], BaseException], ...] = (
    ValueError,
    RuntimeError,
    KeyError,
    TimeoutError,
    ConnectionRefusedError,
    _os_error,
    StrRaises,
    StrAndReprRaise,
    StrReturnsNonStr,
    StrReturnsHostileStr,
    HugeStr,
    CauseRaises,
    SuppressRaises,
    ErrorCodeRaises,
    CustomBase,
    KeyboardInterrupt,
    _key_error_with_unprintable_key,
    lambda message: Exception(message, NothingPrintsValue(), 7),
)


def make_exception(
    fdp: Provider, codes: Sequence[str] = (), message: Callable[[Provider], str] = text
) -> BaseException:
    """One exception of a random (often hostile) type; sometimes with an ``error_code`` (one of
    ``codes``, a random text, a non-string) and a ``step`` attribute."""
    constructor: Callable[[str], BaseException] = pick(fdp, HOSTILE_EXCEPTION_TYPES)
    exc = constructor(message(fdp))
    target: Any = exc  # attributes no exception class declares
    extra = fdp.ConsumeIntInRange(0, 7)
    try:
        if extra == 1 and codes:
            target.error_code = pick(fdp, codes)
        elif extra == 2:
            target.error_code = text(fdp, 16)
        elif extra == 3:
            target.error_code = pick(fdp, (429, None, b"rate_limited", HostileStr("x")))
        elif extra == 4:
            target.step = text(fdp, 16)
        elif extra == 5:
            target.step = pick(fdp, (HostileStr("save"), 3, "  ", StrRaisesValue()))
    except AttributeError:
        pass  # a class whose property refuses the attribute
    return exc


def build_chain(
    fdp: Provider,
    codes: Sequence[str] = (),
    max_exceptions: int = 8,
    message: Callable[[Provider], str] = text,
) -> tuple[BaseException, list[BaseException]]:
    """A random graph of exceptions linked by causes, contexts, suppression and groups, cycles
    included; returns a root and every exception built."""
    excs = [
        make_exception(fdp, codes, message)
        for _ in range(fdp.ConsumeIntInRange(1, max_exceptions))
    ]
    for _ in range(fdp.ConsumeIntInRange(0, 2 * len(excs))):
        operation = fdp.ConsumeIntInRange(0, 6)
        outer: Any = pick(fdp, excs)
        inner: Any = pick(fdp, excs)
        try:
            if operation == 0:
                outer.__cause__ = inner
            elif operation == 1:
                outer.__context__ = inner
            elif operation == 2:
                outer.__suppress_context__ = fdp.ConsumeBool()
            elif operation == 3:
                outer.__cause__ = None
            elif operation in (4, 5):
                count = fdp.ConsumeIntInRange(1, 4)
                members = [pick(fdp, excs) for _ in range(count)]
                if operation == 5 and all(isinstance(m, Exception) for m in members):
                    excs.append(GroupMembersRaise(text(fdp, 16), members))
                else:
                    excs.append(BaseExceptionGroup(text(fdp, 16), members))
            else:
                outer.__context__ = outer  # a self-cycle
        except (AttributeError, TypeError):
            pass  # a hostile class that refuses the link
    return pick(fdp, excs), excs


# --- a reference for the chain walk --------------------------------------------------------------


def _attribute(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def children(exc: BaseException) -> list[BaseException]:
    """The links the chain walk is documented to follow: group members, ``__cause__``, and
    ``__context__`` unless suppressed; an attribute that raises counts as absent."""
    out: list[BaseException] = []
    if isinstance(exc, BaseExceptionGroup):
        members = _attribute(exc, "exceptions")
        if isinstance(members, tuple | list):
            out.extend(m for m in members if isinstance(m, BaseException))
    cause = _attribute(exc, "__cause__")
    if isinstance(cause, BaseException):
        out.append(cause)
    if not _attribute(exc, "__suppress_context__"):
        context = _attribute(exc, "__context__")
        if isinstance(context, BaseException):
            out.append(context)
    return out


def reachable(root: BaseException) -> dict[int, int]:
    """``id(exc)`` → shortest number of links from ``root``, for everything reachable."""
    distance = {id(root): 0}
    frontier = [root]
    while frontier:
        following: list[BaseException] = []
        for exc in frontier:
            for child in children(exc):
                if id(child) not in distance:
                    distance[id(child)] = distance[id(exc)] + 1
                    following.append(child)
        frontier = following
    return distance


def plain_message(exc: BaseException) -> str | None:
    """``str(exc)`` when it is an ordinary one-line string (what ``flatten_exception`` prints
    as is), else None."""
    try:
        message = str(exc)
    except Exception:
        return None
    if type(message) is not str or "\n" in message or len(message) > 1000:
        return None
    return message


# --- real tracebacks (for the reader of ``synapse classify``) -------------------------------------

TRACEBACK_HEADER = "Traceback (most recent call last):"


def formatted(call: Callable[[], object]) -> tuple[str, str]:
    """(the traceback Python prints for what ``call`` raises, the first line of its last line)."""
    try:
        call()
    except BaseException as exc:
        lines = traceback.format_exception(exc)
        return "".join(lines), lines[-1].strip().split("\n")[0]
    raise AssertionError("expected the call to raise")


def raise_by_cause() -> None:
    """An explicit chain: ``raise ... from`` a ``json`` error."""
    try:
        json.loads("<html>502</html>")
    except ValueError as exc:
        raise RuntimeError("step 'convert' failed") from exc


def raise_by_context() -> None:
    """An implicit chain: an error raised while handling a ``KeyError``."""
    record: dict[str, object] = {}
    try:
        record["annotations"]  # a KeyError, on purpose
    except KeyError:
        raise ValueError("could not convert record 7")  # noqa: B904 - the implicit chain


def raise_file_group() -> None:
    """An ``ExceptionGroup`` of two real ``FileNotFoundError``s."""
    errors: list[Exception] = []
    for path in ("/nonexistent/a.json", "/nonexistent/b.json"):
        try:
            with open(path):
                pass
        except OSError as exc:
            errors.append(exc)
    raise ExceptionGroup("2 files failed", errors)


def raise_nested_group() -> None:
    """A group inside a group."""
    raise ExceptionGroup("outer", [ValueError("v"), ExceptionGroup("inner", [KeyError("k")])])


def raise_multiline() -> None:
    """A message over several lines."""
    raise RuntimeError("first line\nsecond line\n  indented third")
