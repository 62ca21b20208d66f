"""``synapse messages``: list a category's log message codes with level, retry and template."""

from __future__ import annotations

import json
from typing import Any

import click

from synapse_sdk.cli._common import (
    SynapseCommand,
    category_option,
    cli_text,
    lang_option,
    make_stdout_tolerant,
)

__all__ = ["messages"]


@click.command(cls=SynapseCommand)
@category_option()
@lang_option()
@click.option(
    "--failures-only", is_flag=True, help="Only the failure codes (those a classifier returns)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per code.")
def messages(category: str, language: str, failures_only: bool, as_json: bool) -> None:
    """List the log message codes of an action category with their level and template.

    Templates are shown as registered (placeholders such as {count} included) in the chosen
    language, falling back like rendering does (ko-KR → ko → en). v2 shows the backend error
    codes the catalog maps to the code; retry is what a caller should do about a failure.
    """
    from synapse_sdk.i18n import negotiate_language
    from synapse_sdk.plugins.actions import get_category
    from synapse_sdk.plugins.log_messages import templates_for

    make_stdout_tolerant()
    failures = get_category(category)
    backend_codes: dict[object, list[str]] = {}
    for backend_code, code in failures.catalog.items():
        backend_codes.setdefault(code, []).append(backend_code)
    codes = failures.failure_codes() if failures_only else failures.all_codes()

    rows: list[tuple[str, str, str, str, str]] = []
    for code in codes:
        templates = templates_for(code)
        chosen = negotiate_language(templates, language)
        template = templates[chosen] if chosen is not None else code.value
        semantics = failures.semantics(code)
        retry = semantics.value if semantics is not None else None
        v2 = backend_codes.get(code, [])
        if as_json:
            click.echo(json.dumps({
                "code": code.value,
                "level": code.level.value,
                "v2": v2,
                "retry": retry,
                "language": chosen,
                "template": template,
            }, ensure_ascii=False))
        else:
            v2_shown = "\n".join(v2) or "-"
            rows.append((code.value, code.level.value, v2_shown, retry or "-", template))
    if not as_json:
        _show(rows, category, language)


def _show(rows: list[tuple[str, str, str, str, str]], category: str, language: str) -> None:
    """A table when the terminal is wide enough to keep every code whole, else one block per
    code (codes are never split: they are what people search for)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def text(key: str, **params: Any) -> str:
        return cli_text(language, key, **params)

    console = Console(highlight=False)
    title = text("messages_title", category=category, language=language)
    widths = [max((len(line) for row in rows for line in row[i].split("\n")), default=0)
              for i in range(4)]
    # Four whole columns, a template column of at least 24, borders and padding.
    if sum(widths) + 24 + 16 <= console.width:
        table = Table(title=title, title_justify="left")
        for header in ("col_code", "col_level", "v2", "col_retry"):
            table.add_column("v2 error.code" if header == "v2" else text(header), no_wrap=True)
        table.add_column(text("col_template"), overflow="fold", min_width=24)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    console.print(Text(title, style="bold"))
    for code, level, v2, retry, template in rows:
        head = Text(code, style="bold")
        head.append(f"  {text('col_level')}: {level} · {text('col_retry')}: {retry}")
        if v2 != "-":
            head.append(f" · v2: {v2.replace(chr(10), ', ')}")
        console.print(head, overflow="fold")
        console.print(Text("    " + template), overflow="fold")
