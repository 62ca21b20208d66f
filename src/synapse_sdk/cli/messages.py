"""``synapse messages``: list a category's log message codes with level, retry and template."""

from __future__ import annotations

import json

import click

from synapse_sdk.cli._common import (
    SynapseCommand,
    category_option,
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
    from rich.console import Console
    from rich.table import Table

    from synapse_sdk.i18n import negotiate_language
    from synapse_sdk.plugins.actions import get_category
    from synapse_sdk.plugins.log_messages import templates_for

    make_stdout_tolerant()
    failures = get_category(category)
    backend_codes: dict[object, list[str]] = {}
    for backend_code, code in failures.catalog.items():
        backend_codes.setdefault(code, []).append(backend_code)
    codes = failures.failure_codes() if failures_only else failures.all_codes()

    table = Table(title=f"{category} log message codes ({language})", title_justify="left")
    for column in ("code", "level", "v2 error.code", "retry", "template"):
        table.add_column(column, overflow="fold")
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
            v2_shown = ", ".join(v2) or "-"
            table.add_row(code.value, code.level.value, v2_shown, retry or "-", template)
    if not as_json:
        Console(highlight=False).print(table)
