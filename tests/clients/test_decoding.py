"""BoundedBody: the transport's own Content-Encoding decoder, on bytes in memory.

The hostile-server tests prove the bound over a socket; these pin the decoder's arithmetic: the
output equals what the layers encode, whatever the chunking; the bound is exact; pending zlib
output at a piece boundary is not lost; raw deflate and trailing bytes are read as httpx reads
them.
"""

from __future__ import annotations

import gzip
import random
import zlib

import httpx
import pytest

from synapse_sdk.clients._decoding import MAX_LAYERS, PIECE, BoundedBody


def _decode(coding: str, data: bytes, limit: int, step: int) -> BoundedBody:
    body = BoundedBody(coding, limit)
    for start in range(0, len(data), step):
        if body.take(data[start : start + step]):
            break
    return body


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


PAYLOAD = random.Random(13).randbytes(300_000) + b"\0" * (3 * PIECE)  # both kinds of data


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("", lambda d: d),
        ("identity", lambda d: d),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
        ("gzip, gzip", lambda d: gzip.compress(gzip.compress(d))),
        ("deflate, identity, gzip", lambda d: gzip.compress(zlib.compress(d))),
    ],
)
@pytest.mark.parametrize("step", [1_000_003, 4096, 777, 1])
def test_decoding_gives_back_exactly_what_was_encoded(coding: str, encode: object,
                                                       step: int) -> None:
    data = encode(PAYLOAD)  # type: ignore[operator]
    body = _decode(coding, data, len(PAYLOAD), step)
    assert not body.exceeded
    assert body.body == PAYLOAD


def test_a_body_one_byte_over_the_bound_is_exceeded_and_cut_at_it() -> None:
    data = gzip.compress(gzip.compress(PAYLOAD))
    body = _decode("gzip, gzip", data, len(PAYLOAD) - 1, 4096)
    assert body.exceeded
    assert body.body == PAYLOAD[:-1]


def test_output_pending_at_a_piece_boundary_is_not_lost() -> None:
    # Exactly k pieces of zeros: zlib fills the output buffer with input already consumed.
    for size in (PIECE, 2 * PIECE, 2 * PIECE + 1):
        data = b"\0" * size
        assert _decode("gzip", gzip.compress(data), size, 10**6).body == data


def test_bytes_after_the_stream_are_ignored_as_httpx_ignores_them() -> None:
    body = _decode("gzip", gzip.compress(b"hello") + b"trailing junk", 100, 3)
    assert body.body == b"hello" and not body.exceeded


def test_raw_bytes_count_against_the_bound_too() -> None:
    # A gzip stream that decodes to a few bytes followed by megabytes the decoder ignores.
    body = _decode("gzip", gzip.compress(b"x") + b"\0" * 1_000_000, 1000, 4096)
    assert body.exceeded and body.body == b"x"


@pytest.mark.parametrize(
    ("coding", "match"),
    [("br", "unsupported Content-Encoding 'br'"),
     ("zstd", "unsupported"),
     (", ".join(["gzip"] * (MAX_LAYERS + 1)), "stacked content codings")],
)
def test_codings_it_does_not_decode_are_refused(coding: str, match: str) -> None:
    with pytest.raises(httpx.DecodingError, match=match):
        BoundedBody(coding, 100)


def test_corrupt_data_is_a_decoding_error() -> None:
    with pytest.raises(httpx.DecodingError, match="invalid gzip data"):
        _decode("gzip", b"\x1f\x8bnot really gzip at all", 100, 100)
