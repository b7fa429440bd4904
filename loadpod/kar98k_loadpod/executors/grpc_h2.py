"""gRPC unary calls framed by hand on the lean HTTP/2 client (opt-in: KAR98K_GRPC_CLIENT=h2).

Why: a gRPC unary call is one HTTP/2 POST whose header block and body are the same on every
call of a target, yet grpcio spends ~87 µs of the pod's loop on each (docs/performance.md,
"gRPC"). Here the call is `http2_fast`'s request: the header block (`content-type:
application/grpc`, `te: trailers`, `grpc-timeout`, metadata) encoded once, the body (the
request message behind its 5-byte length prefix) serialized once, and the outcome read from
the `grpc-status` of the trailers (or of a trailers-only response), decoded once per distinct
block. Outcome keys are the grpcio executor's (`grpc_unary.py`):

- `grpc-status` N → `grpc_<NAME>` (an unknown number → `grpc_UNKNOWN`); a response without
  one → the code gRPC derives from the HTTP status (`grpc_UNKNOWN` for a bare 200).
- The deadline passing (ours; the server also gets `grpc-timeout`) → `grpc_DEADLINE_EXCEEDED`;
  a connection that cannot be made → `grpc_UNAVAILABLE`, as grpcio reports both.
- A stream reset or a connection lost under a call → `error` (never retried: a POST may
  have run); a stream the server never processed (REFUSED_STREAM, above a GOAWAY's last
  stream id) is sent once more, a pushed one through `send()` in a task.

The request message (reflection included) and health probes stay on a grpcio executor that
opens its channel only when needed: both are rare, and the probe must read the response.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import ssl
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import grpc

from ..targets import Target
from . import h2_wire as wire
from .grpc_unary import GrpcExecutor
from .http2_fast import _RETRY, REFUSED, FastHttp2Executor, Headers, _Stream, build_headers
from .outcome import CONNECT_ERROR, ERROR, TIMEOUT, grpc_outcome

log = logging.getLogger(__name__)

_BY_WIRE: Final = {str(c.value[0]).encode(): grpc_outcome(c) for c in grpc.StatusCode}
_UNKNOWN: Final = grpc_outcome(grpc.StatusCode.UNKNOWN)
# gRPC's HTTP-status-to-code mapping, for responses that carry no grpc-status at all.
_BY_HTTP: Final = {
    400: grpc_outcome(grpc.StatusCode.INTERNAL),
    401: grpc_outcome(grpc.StatusCode.UNAUTHENTICATED),
    403: grpc_outcome(grpc.StatusCode.PERMISSION_DENIED),
    404: grpc_outcome(grpc.StatusCode.UNIMPLEMENTED),
    429: grpc_outcome(grpc.StatusCode.UNAVAILABLE),
    502: grpc_outcome(grpc.StatusCode.UNAVAILABLE),
    503: grpc_outcome(grpc.StatusCode.UNAVAILABLE),
    504: grpc_outcome(grpc.StatusCode.UNAVAILABLE),
}
# Transport outcomes of http2_fast, named as grpcio names them.
_TRANSPORT: Final = {
    TIMEOUT: grpc_outcome(grpc.StatusCode.DEADLINE_EXCEEDED),
    CONNECT_ERROR: grpc_outcome(grpc.StatusCode.UNAVAILABLE),
    _RETRY: ERROR,
    REFUSED: ERROR,  # refused twice in a row
}
# Call-definition headers are ours; a target's copy of them would contradict ours.
_OURS: Final = frozenset({b"accept", b"content-type", b"te", b"grpc-timeout"})


def grpc_judge(stream: _Stream) -> str:
    """The outcome of an answered call: its grpc-status, else what its HTTP status implies."""
    code = stream.watched
    if code is not None:
        return _BY_WIRE.get(code, _UNKNOWN)
    return _BY_HTTP.get(stream.status, _UNKNOWN)


def grpc_timeout(seconds: float) -> bytes:
    """The `grpc-timeout` value: at most 8 digits, in the finest unit that fits."""
    millis = max(1, math.ceil(seconds * 1000))
    if millis < 10**8:
        return f"{millis}m".encode()
    return f"{min(10**8 - 1, math.ceil(seconds))}S".encode()


def grpc_headers(target: Target, method: str) -> Headers:
    """The call's header block: pseudo-headers, call definition, then metadata
    (`-bin` values base64-encoded, as grpcio sends them). Raises ValueError (or
    UnicodeError) for header text HTTP/2 cannot carry, like `build_headers`."""
    fields = build_headers(target, method="POST", path=method)
    pseudo = [(k, v) for k, v in fields if k.startswith(b":")]
    metadata = [
        # Binary values are the text's UTF-8 bytes, as grpc_unary.py sends them.
        (k, base64.b64encode(v.decode("latin-1").encode()) if k.endswith(b"-bin") else v)
        for k, v in fields
        if not k.startswith(b":") and k not in _OURS
    ]
    call = [
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-timeout", grpc_timeout(float(target.timeout))),
    ]
    return pseudo + call + metadata


def length_prefixed(message: bytes) -> bytes:
    """A gRPC message on the wire: uncompressed flag, 4-byte big-endian length, bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


class GrpcH2Executor(FastHttp2Executor):
    """Calls one unary method on one target over hand-framed HTTP/2 (see module doc)."""

    def __init__(
        self, target: Target, max_in_flight: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(target, max_in_flight, ssl_context=ssl_context)
        self._judge = grpc_judge
        self._watch = b"grpc-status"
        self._retry_ok = False
        self._helper = GrpcExecutor(target, 1)  # request message and probes (grpcio)
        self._body = None  # known once the request message is
        self._resends: set[asyncio.Task[None]] = set()  # pushed calls the server refused
        if self._invalid is None:
            try:
                self._block = wire.header_block(grpc_headers(target, target.grpc_call.method))
            except (ValueError, UnicodeError) as exc:
                self._invalid = str(exc)
                log.warning("target %s: cannot build call headers: %s", target.name, exc)

    async def send(self) -> str:
        body = self._body
        if body is None:
            got = await self._helper.request_message()
            if isinstance(got, str):
                return got
            body = self._body = length_prefixed(got)
        if self._invalid is not None:
            return ERROR
        outcome = await self._exchange(self._block, body, self._timeout, False)
        return _TRANSPORT.get(outcome, outcome)

    def push(self, done: Callable[[Any, str], None], token: Any) -> bool:
        """Start one call now, answered by `done(token, outcome)` (never before this returns);
        False, with nothing started, until the message is known and a stream slot is free."""
        body = self._body
        pool = self._pool
        if body is None or pool is None or self._invalid is not None:
            return False
        conn = pool.pick()
        if conn is None:
            return False
        try:
            stream = conn.open_stream(self._block, body, pool.loop.time() + self._timeout)
        except ConnectionError:
            return False
        stream.waiter.add_done_callback(partial(self._answered, done, token))
        return True

    def _answered(self, done: Callable[[Any, str], None], token: Any, waiter: Any) -> None:
        outcome = ERROR if waiter.cancelled() else waiter.result()
        if outcome == REFUSED:  # never processed: once more, through the task path
            task = asyncio.get_running_loop().create_task(self._resend(done, token))
            self._resends.add(task)
            task.add_done_callback(self._resends.discard)
            return
        done(token, _TRANSPORT.get(outcome, outcome))

    async def _resend(self, done: Callable[[Any, str], None], token: Any) -> None:
        done(token, await self.send())

    async def probe(self) -> bool:
        return await self._helper.probe()

    async def close(self) -> None:
        await self._helper.close()
        await super().close()
