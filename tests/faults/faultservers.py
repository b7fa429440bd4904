"""Misbehaving targets on loopback, each in the test's own event loop (the load pod under test
is a separate process, so these never share its loop).

Every server counts the connections it accepted, so a test can prove the pod really reached
the fault it claims to measure. All of them listen on 127.0.0.1 with a free port; the resolver
listens on a loopback address of the test's choosing, port 53 (a resolv.conf has no port).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

LOOPBACK = "127.0.0.1"
_HEAD_CHUNK = b"X-Endless: " + b"a" * 4000 + b"\r\n"
_BODY_CHUNK = b"4000\r\n" + b"b" * 0x4000 + b"\r\n"
# Endless streams are paced, not flat out: enough to cross any sane size bound within a
# fraction of a second (~1.6 MB/s) without burning the shared machine's cores.
_STREAM_PAUSE_S = 0.01


@dataclass
class FaultServer:
    """A running fault server: where it listens and how many connections it took."""

    port: int
    accepted: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{LOOPBACK}:{self.port}{path}"


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_head(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        await reader.readuntil(b"\r\n\r\n")


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    await reader.read()  # until the pod gives up and closes


def _endless(head: bytes, chunk: bytes) -> Handler:
    """A handler that answers `head`, then writes `chunk` forever (paced) until the pod hangs up."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(head)
        while not writer.is_closing():
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(_STREAM_PAUSE_S)

    return handler


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    sock = writer.get_extra_info("socket")
    # SO_LINGER on with a zero timeout: close() sends RST instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Not a TLS server hello: random-looking bytes where the handshake expects a record.
    writer.write(b"\x15garbage, not a TLS record\r\n" * 8)
    await writer.drain()
    await reader.read()


BEHAVIOURS: dict[str, Handler] = {
    "never-answer": _never_answer,
    "endless-headers": _endless(b"HTTP/1.1 200 OK\r\n", _HEAD_CHUNK),
    "endless-body": _endless(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", _BODY_CHUNK),
    "reset": _reset,
    "tls-garbage": _garbage,
    # A TLS server whose certificate the pod does not trust: the handshake fails on the
    # pod's side; the server side just waits for the connection to go.
    "tls-untrusted": _never_answer,
}


@contextlib.asynccontextmanager
async def fault_server(
    behaviour: str, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[FaultServer]:
    """Serve `behaviour` (a key of BEHAVIOURS) on 127.0.0.1 until the block ends."""
    handler = BEHAVIOURS[behaviour]
    state = FaultServer(port=0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        state.writers.add(writer)
        try:
            if ssl_context is not None:
                # TLS after the count, so a handshake the pod refuses is still counted.
                await writer.start_tls(ssl_context)
            await handler(reader, writer)
        except (OSError, ssl.SSLError):
            pass  # the pod hung up: exactly what these servers provoke
        finally:
            state.writers.discard(writer)
            writer.transport.abort()

    server = await asyncio.start_server(serve, LOOPBACK, 0, backlog=1024)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        # Hang up on every client: each handler then ends on its own (EOF or a lost
        # connection), which cancelling them would not let the stream machinery see.
        for writer in list(state.writers):
            writer.transport.abort()
        await server.wait_closed()


# --- a resolver the test controls -----------------------------------------------------------

DnsMode = Literal["servfail", "nxdomain", "never"]
_RCODE = {"servfail": 2, "nxdomain": 3}


class _Resolver(asyncio.DatagramProtocol):
    def __init__(self, mode: DnsMode) -> None:
        self.mode = mode
        self.queries = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's own

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 12:
            return
        self.queries += 1
        if self.mode == "never" or self.transport is None:
            return
        # Header: same id, QR=1, opcode and RD copied, RA=1, the rcode; the question echoed.
        ident, flags = struct.unpack("!HH", data[:4])
        answer_flags = 0x8000 | (flags & 0x7900) | 0x0080 | _RCODE[self.mode]
        header = struct.pack("!HHHHHH", ident, answer_flags, 1, 0, 0, 0)
        question = _question(data[12:])
        self.transport.sendto(header + question, addr)


def _question(rest: bytes) -> bytes:
    """The first question (name + type + class) of a query, as sent."""
    i = 0
    while i < len(rest) and rest[i] != 0:
        i += rest[i] + 1
    return rest[: i + 5]


@contextlib.asynccontextmanager
async def resolver(address: str, mode: DnsMode) -> AsyncIterator[_Resolver]:
    """A DNS server on (address, 53/udp) answering every query with `mode`."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Resolver(mode), local_addr=(address, 53)
    )
    try:
        yield protocol
    finally:
        transport.close()
