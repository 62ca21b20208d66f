"""A hostile backend v2 on 127.0.0.1 serving scripted items: what issue 13's item cases need.

:class:`HostileItemsServer` answers the three routes an export uses, with whatever items and
pages a test scripts, however wrong:

* ``GET /v2/<resource>/?limit=&cursor=`` — a page of ``pages[cursor]`` (``""`` is the first
  page) as ``{"data": [...], "meta": {"pagination": {"next_cursor": ...}}}``; by default the
  items themselves,
  ``limit`` at a time, with the offset as the cursor;
* ``POST /v2/<resource>/bulk-fetch/`` — the items whose id's string form was asked for, 200;
* ``GET /files/<name>`` — ``files[name]`` as bytes, else 404.

Every loop is bounded: after ``max_requests`` requests the server answers 410 ``gone`` to
everything (a client that loops forever then ends), and ``requests`` counts what was asked.
Loopback only; nothing here sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["HostileItemsServer"]

Page = tuple[list[Any], "str | None"]


class HostileItemsServer:
    """A scripted backend v2 (see the module docstring); a context manager.

    ``items`` are the JSON objects served (any ids, any ``original``); ``pages`` overrides the
    listing: cursor -> (listed objects, next cursor); ``files`` are the downloads by name.
    """

    def __init__(
        self,
        items: Sequence[Mapping[str, Any]] = (),
        *,
        pages: Mapping[str, Page] | None = None,
        files: Mapping[str, bytes] | None = None,
        max_requests: int = 2_000,
    ) -> None:
        self.items = [dict(item) for item in items]
        self.pages = dict(pages) if pages is not None else None
        self.files = dict(files or {})
        self.max_requests = max_requests
        self.requests = 0
        self.list_requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self, "GET", b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server._serve(self, "POST", self.rfile.read(min(length, 1 << 20)))

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> HostileItemsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- answers ----------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        with self._lock:
            self.requests += 1
            over = self.requests > self.max_requests
        parts = urlsplit(handler.path)
        if over:
            status, payload = 410, _json({"error": {"code": "gone", "detail": "request bound"}})
        elif method == "GET" and parts.path.startswith("/files/"):
            content = self.files.get(parts.path.removeprefix("/files/"))
            status, payload = (200, content) if content is not None else (404, b"")
        elif method == "POST" and parts.path.endswith("/bulk-fetch/"):
            status, payload = 200, _json({"data": self._fetch(body)})
        elif method == "GET":
            with self._lock:
                self.list_requests += 1
            query = parse_qs(parts.query)
            cursor = query.get("cursor", [""])[0]
            limit = int(query.get("per_page", query.get("limit", ["100"]))[0])
            listed, following = self._page(cursor, limit)
            status = 200
            payload = _json({"data": listed, "meta": {"pagination": {
                "next_cursor": following, "previous_cursor": None, "per_page": limit}}})
        else:
            status, payload = 404, _json({"error": {"code": "not_found", "detail": "no route"}})
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _page(self, cursor: str, limit: int) -> Page:
        if self.pages is not None:
            return self.pages.get(cursor, ([], None))
        start = int(cursor or 0)
        end = start + limit
        return self.items[start:end], (str(end) if end < len(self.items) else None)

    def _fetch(self, body: bytes) -> list[Any]:
        asked = {json.dumps(i) if not isinstance(i, str) else i for i in json.loads(body)["ids"]}
        return [item for item in self.items if _key(item.get("id")) in asked]


def _key(item_id: object) -> str:
    return item_id if isinstance(item_id, str) else json.dumps(item_id)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()
