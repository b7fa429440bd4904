"""A tiny HTTP/1.1 server that counts request arrivals in 10 ms bins (the agility probe).

Answers every request with `200 ok` (keep-alive) and `GET /__bins` with the bins as JSON:
`{"t0": <time.monotonic() of bin 0>, "binSeconds": 0.01, "counts": [...]}`. CLOCK_MONOTONIC
is system-wide on Linux, so the harness compares these times with its own.

Loopback only; run by run_all.py pinned to the server core. Prints `listening HOST:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import uvloop

BIN_SECONDS = 0.01
MAX_BINS = 100 * 60 * 15  # 15 minutes of 10 ms bins
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Counter:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.counts = [0] * MAX_BINS

    def snapshot(self) -> bytes:
        last = max((i for i, c in enumerate(self.counts) if c), default=-1)
        doc = {"t0": self.t0, "binSeconds": BIN_SECONDS, "counts": self.counts[: last + 1]}
        body = json.dumps(doc).encode()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head + body


class CountingProtocol(asyncio.Protocol):
    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # Requests here have no bodies (GET from the load pod), so a blank line ends each one.
        buffer = self.buffer + data
        counter = self.counter
        index = int((time.monotonic() - counter.t0) / BIN_SECONDS)
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            request, buffer = buffer[:end], buffer[end + 4 :]
            if request.startswith(b"GET /__bins"):
                out.append(counter.snapshot())
                continue
            if index < MAX_BINS:
                counter.counts[index] += 1
            out.append(REPLY)
        self.buffer = buffer
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def main(host: str, port: int) -> None:
    if not host.startswith("127."):
        raise SystemExit(f"refusing non-loopback address {host}")
    counter = Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: CountingProtocol(counter), host, port)
    bound = server.sockets[0].getsockname()
    print(f"listening {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
