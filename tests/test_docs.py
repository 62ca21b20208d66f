"""Run every Python example in ``docs/*.md`` so the docs cannot rot.

Each file's ```` ```python ```` blocks run in order in one fresh namespace, as a reader would paste
them. A block whose opening fence reads ```` ```python no-run ```` is shown but not executed
(use it only for code that needs something a test machine lacks, and say why next to it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
_BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    out = []
    for match in _BLOCK.finditer(text):
        if "no-run" in match.group(1):
            continue
        line = text.count("\n", 0, match.start()) + 2
        out.append((line, match.group(2)))
    return out


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_doc_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no Python examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for line, source in blocks:
        code = compile("\n" * (line - 1) + source, str(path), "exec")
        exec(code, namespace)


# -- docs that must agree with the code and with each other ---------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of ``path``: lower case, punctuation dropped but ``-`` and
    ``_``, spaces as ``-``."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    found = set()
    for heading in _HEADING.findall(text):
        plain = re.sub(r"[`*]", "", heading).lower()
        found.add(re.sub(r"[^\w\- ]", "", plain).replace(" ", "-"))
    return found


@pytest.mark.parametrize("path", [*DOCS, ROOT / "README.md"], ids=lambda p: p.name)
def test_links_between_docs_resolve_to_files_and_headings(path: Path) -> None:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    broken = []
    for target in _LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in _anchors(linked)
        ):
            broken.append(target)
    assert broken == []


def test_the_export_options_table_lists_every_option_with_its_default() -> None:
    import click

    from synapse_sdk.cli.export import export

    text = (ROOT / "docs" / "export.md").read_text(encoding="utf-8").replace("\\|", "/")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(--[\w-]+)[^|]*\| ([^|]*)\|",
                                                        text, re.MULTILINE)}
    for param in export.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        name = max(param.opts, key=len)
        assert name in rows, f"{name} is missing from docs/export.md's options table"
        default = param.default
        if isinstance(default, (str, int)) and not isinstance(default, bool):
            assert f"`{default}`" in rows[name], f"{name}: the table's default is not {default}"
