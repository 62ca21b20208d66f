"""What the ``synapse`` subcommands share: the ``--lang`` option, output that survives any console
encoding, and usage errors in the user's language.

A command built with ``cls=SynapseCommand`` reports every usage error (click's own, from parsing
and option callbacks, and the command's ``click.UsageError`` s) with its ``Usage:``, hint and
``Error:`` lines in the language of ``--lang`` (else ``$SYNAPSE_LANGUAGE``), and, when the command
line holds ``--json``, also as one JSON object on stdout::

    {"ok": false, "exit_code": 2, "error": {"code": "usage_error", "message": "...", "step": null}}

The exit code stays click's 2.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, Final, TypeVar

import click

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "CliUsageError",
    "SynapseCommand",
    "category_option",
    "cli_text",
    "lang_option",
    "make_stdout_tolerant",
    "validate_language",
]

EXIT_USAGE: Final = 2
#: The shell's exit status for a process ended by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED: Final = 130

_F = TypeVar("_F", bound=Callable[..., Any])

#: The CLI's own words (what click prints around a usage error, and the language warning).
_TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "usage": "Usage:",
        "try_help": "Try '{command} --help' for help.",
        "error": "Error: {message}",
        "invalid_value": "Invalid value for {param}: {message}",
        "unknown_language": "unknown language {tag!r}; using en{hint}",
        "did_you_mean": " (did you mean 'ko'?)",
        "col_code": "code",
        "col_level": "level",
        "col_retry": "retry",
        "col_template": "template",
        "col_count": "count",
        "total": "total",
        "unclassified": "(unclassified)",
        "messages_title": "{category} log message codes ({language})",
        "failures_title": "{category} failure codes",
        "interrupted": "Interrupted.",
    },
    "ko": {
        "usage": "사용법:",
        "try_help": "도움말은 '{command} --help'로 볼 수 있습니다.",
        "error": "오류: {message}",
        "invalid_value": "{param} 값이 올바르지 않습니다: {message}",
        "col_code": "코드",
        "col_level": "수준",
        "col_retry": "재시도",
        "col_template": "템플릿",
        "col_count": "건수",
        "total": "합계",
        "unclassified": "(분류 안 됨)",
        "messages_title": "{category} 로그 메시지 코드 ({language})",
        "failures_title": "{category} 실패 코드",
        "interrupted": "중단되었습니다.",
    },
}
#: Tags people type for Korean that are not Korean's tag (kr is the country).
_KOREAN_LOOKALIKES: Final = frozenset({"kr", "kor", "korean"})


def cli_text(language: str | None, key: str, /, **params: Any) -> str:
    """The CLI string ``key`` in ``language`` (English when the language has none).

    Raises:
        KeyError: ``key`` is not one of the CLI's strings.
    """
    table = _TEXT.get((language or "en").split("-")[0], _TEXT["en"])
    return table.get(key, _TEXT["en"][key]).format(**params)


def make_stdout_tolerant() -> None:
    """Never die on a console encoding that cannot show a character (Korean on latin-1)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):  # a detached or closed stream: leave it alone
                pass


def validate_language(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """The ``--lang`` callback: the normalised tag of ``value`` (else ``$SYNAPSE_LANGUAGE``, else
    en). A tag the SDK has no messages for is never taken silently: stderr says so and English
    is used.

    Raises:
        click.BadParameter: ``value`` is not a language tag at all.
    """
    from synapse_sdk.i18n import DEFAULT_LANGUAGE, normalize_language, resolve_language
    from synapse_sdk.i18n import supported_language as supported

    try:
        tag = resolve_language() if value is None else normalize_language(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    if supported(tag) is None:
        lookalike = tag.split("-")[0] in _KOREAN_LOOKALIKES
        hint = cli_text("en", "did_you_mean") if lookalike else ""
        click.echo(cli_text("en", "unknown_language", tag=value or tag, hint=hint), err=True)
        return DEFAULT_LANGUAGE
    return tag


def category_option() -> Callable[[_F], _F]:
    """The ``--category NAME`` option of the commands that work on one action's codes."""
    from synapse_sdk.plugins.actions import CATEGORY_NAMES

    return click.option(
        "--category",
        type=click.Choice(CATEGORY_NAMES),
        default="export",
        show_default=True,
        help="Which action's codes, catalog and patterns to use.",
    )


def lang_option() -> Callable[[_F], _F]:
    """The ``--lang TAG`` option every subcommand that prints messages has."""
    return click.option(
        "--lang",
        "language",
        is_eager=True,  # before the options whose errors are shown in it
        callback=validate_language,
        metavar="TAG",
        help="Language of the messages: en, ko, ko-KR... [default: $SYNAPSE_LANGUAGE, then en]",
    )


class CliUsageError(click.UsageError):
    """A usage error shown in ``language``, and as a JSON error object on stdout when
    ``as_json`` (see the module docstring)."""

    def __init__(
        self,
        message: str,
        ctx: click.Context | None = None,
        *,
        language: str = "en",
        as_json: bool = False,
    ) -> None:
        super().__init__(message, ctx)
        self.language = language
        self.as_json = as_json

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            error = {"code": "usage_error", "message": self.message, "step": None}
            click.echo(
                json.dumps(
                    {"ok": False, "exit_code": self.exit_code, "error": error}, ensure_ascii=False
                )
            )
        err = sys.stderr if file is None else file
        ctx = self.ctx
        if ctx is not None:
            usage = ctx.get_usage()
            if usage.startswith("Usage:"):
                usage = cli_text(self.language, "usage") + usage.removeprefix("Usage:")
            click.echo(usage, file=err)
            if ctx.command.get_help_option(ctx) is not None:
                click.echo(
                    cli_text(self.language, "try_help", command=ctx.command_path), file=err
                )
            click.echo(file=err)
        click.echo(cli_text(self.language, "error", message=self.message), file=err)


class SynapseCommand(click.Command):
    """A click command whose usage errors speak ``--lang`` and honour ``--json``."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        raw = list(args)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except CliUsageError:
            raise
        except click.UsageError as exc:
            raise self._localized(exc, _peek_language(raw), "--json" in _options(raw)) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliUsageError:
            raise
        except click.UsageError as exc:
            language = ctx.params.get("language") or "en"
            raise self._localized(exc, language, bool(ctx.params.get("as_json"))) from None

    @staticmethod
    def _localized(exc: click.UsageError, language: str, as_json: bool) -> CliUsageError:
        message = exc.message
        if isinstance(exc, click.BadParameter) and exc.param is not None and exc.ctx is not None:
            param = exc.param.get_error_hint(exc.ctx)
            message = cli_text(language, "invalid_value", param=param, message=exc.message)
        return CliUsageError(message, exc.ctx, language=language, as_json=as_json)


def _options(args: Sequence[str]) -> list[str]:
    """The arguments before a ``--`` (after it everything is an operand)."""
    return list(args[: args.index("--")]) if "--" in args else list(args)


def _peek_language(args: Sequence[str]) -> str:
    """The language of ``--lang`` in raw arguments (for an error raised before parsing ended),
    else the environment's; English when neither is a usable tag."""
    from synapse_sdk.i18n import normalize_language, resolve_language

    value: str | None = None
    options = _options(args)
    for index, arg in enumerate(options):
        if arg == "--lang" and index + 1 < len(options):
            value = options[index + 1]
        elif arg.startswith("--lang="):
            value = arg.removeprefix("--lang=")
    try:
        return resolve_language() if value is None else normalize_language(value)
    except ValueError:
        return "en"


class ByteSize(click.ParamType[int, Any]):
    """A size in bytes: a whole number, optionally with a binary unit ``K``, ``M``, ``G`` or
    ``T`` (``KiB``/``KB``... too; 1 K = 1024): ``300M``, ``1G``, ``65536``. At least 1."""

    name = "size"
    _UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number, unit = value, ""
        else:
            text = str(value).strip().upper().removesuffix("B").removesuffix("I")
            unit = text[-1:] if text[-1:] in self._UNITS else ""
            digits = text[: len(text) - len(unit)].strip()
            if not digits.isdigit():
                self.fail(f"{value!r} is not a size such as 65536, 300M or 1G", param, ctx)
            number = int(digits)
        size = number * self._UNITS[unit]
        if size < 1:
            self.fail(f"{value!r} must be at least 1 byte", param, ctx)
        return size

