"""A streamed download's state across attempts: where to resume, what each answer must say.

:meth:`Transport.download <synapse_sdk.clients._transport.Transport.download>` streams a body
into a :class:`DownloadSink` chunk by chunk, so no file is ever held in memory. When the
connection drops mid-body it asks again with ``Range: bytes=N-`` (``N`` the bytes already
received) and :class:`RangeState` checks the answer: a ``206`` must carry a ``Content-Range``
starting at ``N``; a ``200`` means the server ignored the range and the sink starts over from
byte 0. A body with a ``Content-Encoding`` is decoded on the way (bounded, see
:mod:`._decoding`) and cannot be resumed (its ranges are of the encoded bytes): it restarts.

Kept free of the transport's imports so both transports share it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Final, Protocol

import httpx

from synapse_sdk.clients._decoding import BoundedBody
from synapse_sdk.exceptions import BackendError

__all__ = ["DownloadSink", "Downloaded", "RangeState"]

_CONTENT_RANGE: Final = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.ASCII)


class DownloadSink(Protocol):
    """Where a streamed download's bytes go, in order."""

    def write(self, data: bytes) -> object:
        """Append ``data`` (raising stops the download; the exception passes through)."""

    def restart(self) -> None:
        """Drop everything written so far: the body starts over from byte 0."""


@dataclass(frozen=True, slots=True)
class Downloaded:
    """What a streamed download received: its ``size`` in bytes (decoded), the ``total`` the
    server declared for the whole file (``Content-Length`` of a 200, the total of a
    ``Content-Range``; None when it declared none or encoded the body), the correlation id,
    how many times it resumed with ``Range`` and how many times it started over from 0."""

    size: int
    total: int | None
    correlation_id: str
    resumes: int
    restarts: int


class RangeState:
    """The state of one streamed download across its attempts (see the module docstring).

    ``limit`` bounds the bytes accepted (None: no bound); past it :meth:`take` raises
    ``response_too_large``.
    """

    def __init__(self, sink: DownloadSink, limit: int | None, correlation_id: str) -> None:
        self._sink = sink
        self._limit = limit
        self._correlation_id = correlation_id
        #: Bytes received and handed to the sink.
        self.offset = 0
        #: The whole file's size as the server declared it, once known.
        self.total: int | None = None
        self.resumes = 0
        self.restarts = 0
        self._body: BoundedBody | None = None
        self._encoded = False

    def headers(self) -> dict[str, str]:
        """The headers of the next attempt: a ``Range`` when resuming an unencoded body."""
        if self.offset > 0 and not self._encoded:
            return {"Range": f"bytes={self.offset}-"}
        return {}

    def _error(self, code: str, message: str, status: int) -> BackendError:
        return BackendError(
            message, status_code=status, error_code=code, correlation_id=self._correlation_id
        )

    def begin(self, response: httpx.Response) -> None:
        """Check a success answer's head against what was asked, and ready the decoder; a
        ``200`` after bytes were received (the range ignored, or an encoded body that cannot
        resume) restarts the sink from 0.

        Raises:
            BackendError: ``malformed_response``; a ``206`` without a ``Content-Range`` starting
                where the download stands, or one to a request that asked no range.
            httpx.DecodingError: a ``Content-Encoding`` the SDK does not decode.
        """
        status = response.status_code
        coding = response.headers.get("content-encoding", "").strip().lower()
        encoded = coding not in ("", "identity")
        asked = self.offset > 0 and not self._encoded
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            if match is None or not asked or int(match[1]) != self.offset or encoded:
                raise self._error(
                    "malformed_response",
                    f"GET answered 206 with Content-Range "
                    f"{response.headers.get('content-range', '')[:80]!r}, not the range asked "
                    f"from byte {self.offset}",
                    status,
                )
            if match[3] != "*":
                self._declare(int(match[3]), status)
            self.resumes += 1
        else:
            if self.offset > 0:
                self._sink.restart()
                self.offset = 0
                self.restarts += 1
            declared = response.headers.get("content-length", "")
            if not encoded and declared.isdigit():
                self._declare(int(declared), status)
        self._encoded = encoded
        limit = sys.maxsize if self._limit is None else self._limit
        # A response built in memory (a mock transport) was decoded by httpx already.
        decoder = "" if response.is_stream_consumed else coding
        self._body = BoundedBody(decoder, limit - self.offset, sink=self._write)

    def _declare(self, total: int, status: int) -> None:
        if self.total is not None and total != self.total:
            raise self._error(
                "malformed_response",
                f"the file's declared size changed between attempts ({self.total} -> {total})",
                status,
            )
        if self._limit is not None and total > self._limit:
            raise self._error(
                "response_too_large",
                f"GET declares a body of {total} bytes, over the {self._limit}-byte bound",
                status,
            )
        self.total = total

    def _write(self, data: bytes) -> None:
        self._sink.write(data)
        self.offset += len(data)

    @staticmethod
    def raw_chunks(response: httpx.Response) -> Iterator[bytes]:
        """The body's raw chunks (the content itself when it was read into memory already)."""
        return iter((response.content,)) if response.is_stream_consumed else response.iter_raw()

    @staticmethod
    async def araw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
        """Async :meth:`raw_chunks`."""
        if response.is_stream_consumed:
            yield response.content
            return
        async for chunk in response.aiter_raw():
            yield chunk

    def take(self, raw: bytes) -> None:
        """Decode ``raw`` into the sink.

        Raises:
            BackendError: ``response_too_large``; the body passed the bound.
            httpx.DecodingError: bytes that are not valid for the body's coding.
        """
        assert self._body is not None, "begin() first"
        if self._body.take(raw):
            raise self._error(
                "response_too_large",
                f"GET answered a body larger than the {self._limit}-byte bound",
                200,
            )

    @property
    def complete(self) -> bool:
        """Whether every byte the server declared was received (True when it declared none)."""
        return self.total is None or self.offset >= self.total

    def result(self) -> Downloaded:
        """What was downloaded, once the body ended."""
        total = None if self._encoded else self.total
        return Downloaded(self.offset, total, self._correlation_id, self.resumes, self.restarts)
