"""Bounded decoding of a response body's ``Content-Encoding``, any number of layers deep.

httpx decodes each received chunk in one go, so ``Content-Encoding: gzip, gzip`` turns 1.8 KB on
the wire into a 1 GiB string before any size check can see it (16.5 KB into 10 GiB: a
``MemoryError``). :class:`BoundedBody` instead reads the raw bytes and runs every coding layer
with zlib's ``max_length``, in pieces of at most :data:`PIECE` bytes, so no layer ever holds more
than one piece of output, and it stops the moment the decoded body passes its limit. It also
bounds the raw bytes and each intermediate layer's output, so a stream that decodes to nothing
cannot keep it busy either.

Codings understood: ``gzip`` (``x-gzip``), ``deflate`` (zlib-wrapped or raw, as httpx accepts)
and ``identity``; the SDK advertises only these (:data:`ACCEPT_ENCODING`). Anything else raises
``httpx.DecodingError``, which the transport maps like any undecodable body.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

import httpx

__all__ = ["ACCEPT_ENCODING", "MAX_LAYERS", "PIECE", "BoundedBody"]

#: The ``Accept-Encoding`` the SDK sends: exactly the codings :class:`BoundedBody` decodes.
ACCEPT_ENCODING: Final = "gzip, deflate"
#: Most codings one body may stack (real servers use one).
MAX_LAYERS: Final = 4
#: Largest output one decompression step may produce.
PIECE: Final = 64 * 1024


def _slack(limit: int) -> int:
    """How far compressed data may exceed the body it encodes (incompressible input grows a
    little); bounds each intermediate layer's output."""
    return limit + limit // 8 + PIECE


class _Layer:
    """One coding to undo, fed compressed bytes, yielding bounded pieces."""

    __slots__ = ("_guessing", "_obj", "_seen", "name", "produced")

    def __init__(self, name: str) -> None:
        self.name = name
        self.produced = 0
        # deflate: zlib-wrapped per the RFC, but raw deflate is common. Until the first output
        # shows the guess right, the input is kept to start over as raw deflate.
        self._guessing = name == "deflate"
        self._seen = b""
        wbits = zlib.MAX_WBITS | 16 if name in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)

    @property
    def done(self) -> bool:
        return self._obj.eof

    def step(self, data: bytes) -> tuple[bytes, bytes]:
        """Decode at most :data:`PIECE` bytes from ``data`` (plus what is pending); return the
        output and the input left over.

        Raises:
            httpx.DecodingError: the bytes are not valid for this coding.
        """
        if self._obj.eof:
            return b"", b""  # trailing bytes after the stream are ignored, as httpx does
        if self._guessing:
            self._seen += data
        try:
            out = self._obj.decompress(data, PIECE)
        except zlib.error as exc:
            if not self._guessing:
                raise httpx.DecodingError(f"invalid {self.name} data: {exc}") from exc
            self._guessing = False
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.step(self._seen)
        if out or self._obj.eof:
            self._guessing, self._seen = False, b""
        return out, self._obj.unconsumed_tail


class BoundedBody:
    """A response body read raw and decoded within ``limit`` bytes.

    Feed raw chunks to :meth:`take`; it returns True once the body is over its limit (stop
    reading: :attr:`exceeded` is set and :attr:`body` holds the first ``limit`` bytes). The raw
    bytes count against the same limit, so a declared or compressed size over it is over too.
    With ``sink`` the decoded bytes are handed to it as they come (a streamed download) instead
    of being kept: :attr:`body` is then empty.

    Raises (from :meth:`take`):
        httpx.DecodingError: an unsupported coding or bytes that are not valid for it.
    """

    __slots__ = ("_chunks", "_layers", "_sink", "exceeded", "limit", "raw_size", "size")

    def __init__(
        self, content_encoding: str, limit: int, *, sink: Callable[[bytes], None] | None = None
    ) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > MAX_LAYERS:
            raise httpx.DecodingError(
                f"{len(codings)} stacked content codings (at most {MAX_LAYERS})"
            )
        for name in codings:
            if name not in ("gzip", "x-gzip", "deflate"):
                raise httpx.DecodingError(f"unsupported Content-Encoding {name[:40]!r}")
        # The last coding listed was applied last: undo it first.
        self._layers = [_Layer(name) for name in reversed(codings)]
        self._chunks: list[bytes] = []
        self._sink = sink
        self.limit = limit
        self.size = 0
        self.raw_size = 0
        self.exceeded = False

    def take(self, raw: bytes) -> bool:
        """Decode ``raw`` into the body; True once the limit is passed (stop reading)."""
        room = self.limit - self.raw_size
        self.raw_size += len(raw)
        over = len(raw) > room
        if over:
            raw = raw[:room]
        if raw:
            self._feed(0, raw)  # what fits is still decoded
        self.exceeded = self.exceeded or over
        return self.exceeded

    def _feed(self, depth: int, data: bytes) -> None:
        if depth == len(self._layers):
            self._keep(data)
            return
        layer = self._layers[depth]
        while not self.exceeded and not layer.done:
            out, data = layer.step(data)
            if out:
                layer.produced += len(out)
                if depth + 1 < len(self._layers) and layer.produced > _slack(self.limit):
                    self.exceeded = True
                    return
                self._feed(depth + 1, out)
            # A full piece may leave output pending inside zlib even with no input left.
            if not data and len(out) < PIECE:
                return

    def _keep(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            data = data[:room]
            self.exceeded = True
        self.size += len(data)
        if self._sink is not None:
            if data:
                self._sink(data)
            return
        self._chunks.append(data)

    @property
    def body(self) -> bytes:
        """The decoded bytes kept so far (at most ``limit``)."""
        return b"".join(self._chunks)
