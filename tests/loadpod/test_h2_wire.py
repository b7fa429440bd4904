"""The hand-made HPACK pieces (h2_wire) checked against the hpack library's own decoder."""

from __future__ import annotations

import hpack
import pytest
from kar98k_loadpod.executors import h2_wire as wire

HEADERS = [
    (b":method", b"GET"),  # exact static entry: one byte
    (b":path", b"/a/" + b"p" * 300),  # static name, value length needs a multi-byte integer
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8080"),
    (b"user-agent", b"kar98k-loadpod"),
    (b"x-custom-name-not-in-the-static-table", b"v" * 200),
]


def test_header_block_decodes_to_the_same_headers_and_leaves_the_table_empty() -> None:
    block = wire.header_block(HEADERS)
    decoder = hpack.Decoder()
    for _ in range(3):  # the same bytes mean the same headers every time
        assert decoder.decode(block, raw=True) == HEADERS
    assert len(decoder.header_table.dynamic_entries) == 0
    assert wire.table_neutral(block)


def test_table_neutral_tells_blocks_that_change_the_table() -> None:
    encoder = hpack.Encoder()
    first = encoder.encode([(b":status", b"299"), (b"x-n", b"1")])  # new entries: indexing
    again = encoder.encode([(b":status", b"299"), (b"x-n", b"1")])  # now bare indices
    assert not wire.table_neutral(first)
    assert again != first and wire.table_neutral(again)
    encoder.header_table_size = 256
    resized = encoder.encode([(b":status", b"200")])  # starts with a table size update
    assert not wire.table_neutral(resized)
    assert not wire.table_neutral(b"\x00\x05ab")  # cut short: not trusted


@pytest.mark.parametrize("size", [10, 16_384, 16_385, 40_000])
def test_headers_frames_split_into_continuation(size: int) -> None:
    block = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    data = wire.headers_frames(7, block, end_stream=True, max_frame=16_384)
    frames, pos = [], 0
    while pos < len(data):
        word, flags, stream_id = wire.HEAD.unpack_from(data, pos)
        frames.append((word & 0xFF, flags, stream_id, data[pos + 9 : pos + 9 + (word >> 8)]))
        pos += 9 + (word >> 8)
    assert b"".join(f[3] for f in frames) == block
    assert all(len(f[3]) <= 16_384 and f[2] == 7 for f in frames)
    assert frames[0][0] == wire.HEADERS and frames[0][1] & wire.END_STREAM
    assert all(f[0] == wire.CONTINUATION for f in frames[1:])
    assert [bool(f[1] & wire.END_HEADERS) for f in frames] == [False] * (len(frames) - 1) + [True]


def test_strip_padding() -> None:
    padded = bytes([3]) + b"block" + b"\0\0\0"
    assert wire.strip_padding(wire.PADDED, padded, priority=False) == b"block"
    with_priority = bytes([1]) + b"\0\0\0\1\x10" + b"hb" + b"\0"
    assert (
        wire.strip_padding(wire.PADDED | wire.PRIORITY_FLAG, with_priority, priority=True) == b"hb"
    )
    assert wire.strip_padding(wire.PADDED, bytes([9]) + b"ab", priority=False) is None
