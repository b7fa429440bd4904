"""The HTTP/2 bytes the lean executor writes and reads itself (RFC 9113 frames, RFC 7541 blocks).

Why by hand: the `h2` library builds an event object, runs a state machine and HPACK-encodes
every request anew; profiled, that was most of the executor's CPU. A load generator sends the
same request over and over, so its header block is encoded once here, with no dynamic-table
entries (static-table indices and literals "without indexing"), which makes the same bytes
valid on every connection, at any time, whatever the server did to its own decoder table.
"""

from __future__ import annotations

import struct
from typing import Final

from hpack.table import HeaderTable

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 6).
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# Flags.
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

# SETTINGS parameters (RFC 9113 6.5.2).
HEADER_TABLE_SIZE: Final = 0x1
ENABLE_PUSH: Final = 0x2
MAX_CONCURRENT_STREAMS: Final = 0x3
INITIAL_WINDOW_SIZE: Final = 0x4
MAX_FRAME_SIZE: Final = 0x5
MAX_HEADER_LIST_SIZE: Final = 0x6

# Error codes (RFC 9113 7).
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
FLOW_CONTROL_ERROR: Final = 0x3
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9

DEFAULT_WINDOW: Final = 65_535
DEFAULT_FRAME: Final = 16_384
MAX_WINDOW: Final = (1 << 31) - 1
MAX_STREAM_ID: Final = (1 << 31) - 1

HEAD: Final = struct.Struct(">IBI")  # length << 8 | type, flags, stream id
SETTING: Final = struct.Struct(">HI")
U32: Final = struct.Struct(">I")

_STATIC_FIELD: Final = {
    entry: i for i, entry in reversed(list(enumerate(HeaderTable.STATIC_TABLE, 1)))
}
_STATIC_NAME: Final = {
    name: i for i, (name, _) in reversed(list(enumerate(HeaderTable.STATIC_TABLE, 1)))
}


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: the 9-byte header, then the payload."""
    return HEAD.pack(len(payload) << 8 | kind, flags, stream_id) + payload


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(SETTING.pack(k, v) for k, v in values.items()))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, U32.pack(increment))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, U32.pack(code))


def goaway(code: int) -> bytes:
    """GOAWAY from a client: it accepts no streams of the server's (last stream id 0)."""
    return frame(GOAWAY, 0, 0, U32.pack(0) + U32.pack(code))


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """HPACK integer (RFC 7541 5.1) with `first`'s high bits set in the first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(raw: bytes) -> bytes:
    return _integer(len(raw), 7, 0) + raw  # no Huffman: the server decodes it for free


def header_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block that leaves every dynamic table alone, so it can be sent again as is."""
    out = bytearray()
    for name, value in headers:
        exact = _STATIC_FIELD.get((name, value))
        if exact is not None:
            out += _integer(exact, 7, 0x80)  # indexed field
            continue
        named = _STATIC_NAME.get(name)
        if named is not None:
            out += _integer(named, 4, 0x00)  # literal without indexing, indexed name
        else:
            out += b"\x00" + _string(name)  # literal without indexing, new name
        out += _string(value)
    return bytes(out)


def headers_frames(stream_id: int, block: bytes, *, end_stream: bool, max_frame: int) -> bytes:
    """HEADERS (and CONTINUATION frames when the block outgrows the peer's frame size)."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return HEAD.pack(len(block) << 8 | HEADERS, flags | END_HEADERS, stream_id) + block
    pieces = [block[i : i + max_frame] for i in range(0, len(block), max_frame)]
    out = [frame(HEADERS, flags, stream_id, pieces[0])]
    for piece in pieces[1:-1]:
        out.append(frame(CONTINUATION, 0, stream_id, piece))
    out.append(frame(CONTINUATION, END_HEADERS, stream_id, pieces[-1]))
    return b"".join(out)


def _skip_integer(block: bytes, i: int, prefix_bits: int) -> tuple[int, int]:
    """(value, index after it) of the HPACK integer starting at block[i]; (-1, n) if cut."""
    n = len(block)
    limit = (1 << prefix_bits) - 1
    value = block[i] & limit
    i += 1
    if value < limit:
        return value, i
    shift = 0
    while i < n:
        byte = block[i]
        i += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i
    return -1, n


def table_neutral(block: bytes) -> bool:
    """True when decoding `block` leaves the decoder's dynamic table as it was: indexed
    fields and literals without (or never) indexing only. Its meaning then stays the same
    until a block that does change the table arrives, so it can be decoded once."""
    i, n = 0, len(block)
    while i < n:
        first = block[i]
        if first & 0x80:  # indexed field
            _, i = _skip_integer(block, i, 7)
            continue
        if first & 0xE0:  # 01xxxxxx: adds to the table; 001xxxxx: resizes it
            return False
        name, i = _skip_integer(block, i, 4)  # 0000xxxx / 0001xxxx: literal, not indexed
        strings = 2 if name == 0 else 1
        for _ in range(strings):
            if i >= n:
                return False
            length, i = _skip_integer(block, i, 7)
            if length < 0:
                return False
            i += length
        if i > n:
            return False
    return True


def strip_padding(flags: int, payload: bytes, *, priority: bool) -> bytes | None:
    """The frame's content without padding (and HEADERS priority fields); None if malformed."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload:
            return None
        start, end = 1, end - payload[0]
    if priority and flags & PRIORITY_FLAG:
        start += 5
    return payload[start:end] if start <= end else None
