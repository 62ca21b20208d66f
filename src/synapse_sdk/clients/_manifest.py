"""The v2 API's ``files_manifest``: which entry is an item's original file.

Kept free of HTTP imports so the export's conversion step can use it without loading a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["primary_file"]


def primary_file(item: object) -> Mapping[str, Any] | None:
    """The primary entry of an item's ``files_manifest`` (``is_primary``, else the first
    entry), or None when the item has no manifest or an empty one. Never raises."""
    manifest = item.get("files_manifest") if isinstance(item, Mapping) else None
    if not isinstance(manifest, Mapping):
        return None
    entries = [entry for entry in manifest.values() if isinstance(entry, Mapping)]
    primary = [entry for entry in entries if entry.get("is_primary") is True]
    chosen = primary or entries
    return chosen[0] if chosen else None
