"""Lean HTTP/2 executor: HTTP/2 framed by hand (h2_wire) inside asyncio Protocols.

Same interface, outcome keys and retry rule as the httpx executor (`http2.py`), built for
rate: a send costs one future, one precomputed header block behind a 9-byte frame header
and a share of a coalesced socket write. Driving the `h2` library instead cost about 2.6×
the time closed loop and 5× the CPU per paced request (docs/performance.md, "HTTP/2");
only HPACK *decoding* of responses is left to the `hpack` library, and a response block
that leaves the HPACK table alone is decoded once and remembered until a block that
changes the table arrives.

- A small pool of connections (one per 100 requests in flight, at most 4), each carrying
  up to the server's SETTINGS_MAX_CONCURRENT_STREAMS streams; senders beyond that wait.
- TLS offers ALPN "h2" only (verified unless `tlsInsecureSkipVerify`); cleartext targets
  speak h2c with prior knowledge. A server that picks another protocol is a connect_error.
- Received DATA is given back (WINDOW_UPDATE) once half a window is used, so windows never
  stall; request bodies are sent as the server's windows (and its SETTINGS) allow.
- Timeouts: one sweep timer per pool; a late stream is reset (RST_STREAM CANCEL) and
  answered 'timeout' while the connection keeps serving its other streams.
- GOAWAY: streams above the server's last stream id never reached it and are retried; the
  others are answered on the old connection, which then closes. A lost socket retires the
  connection and its streams in flight are retried once on a fresh connection for
  idempotent methods (like the httpx executor), else 'error'. Streams the server never
  processed (RST_STREAM REFUSED_STREAM, above a GOAWAY's last stream id) are retried once
  whatever the method; other resets are 'error'. A server breaking the protocol gets
  GOAWAY and its streams 'error'.
- Health probes share the pool (a slot is almost always free: the pool is sized for it).
- Subclasses may judge a response by more than its status (`_judge`), from one response
  header (`_watch`, e.g. gRPC's `grpc-status` trailer), and send a body of their own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Final, cast
from urllib.parse import quote, unquote, urlsplit

import hpack

from ..targets import Target, expand_header
from . import h2_wire as wire
from . import tls
from .http1_fast import IDEMPOTENT, USER_AGENT
from .outcome import CONNECT_ERROR, ERROR, TIMEOUT

log = logging.getLogger(__name__)

_STREAMS_PER_CONNECTION: Final = 100  # assumed until the server's SETTINGS say otherwise
_MAX_CONNECTIONS: Final = 4
_STREAM_WINDOW: Final = 1 << 20  # our receive window per stream
_CONNECTION_WINDOW: Final = 1 << 24  # and for the whole connection
_STATUS_KEYS: Final[tuple[str, ...]] = ("error", "1xx", "2xx", "3xx", "4xx", "5xx")
_RETRY: Final = "retry"  # internal: the connection died under the stream
# Internal: the server never processed the stream (RST_STREAM REFUSED_STREAM, above a
# GOAWAY's last stream id; RFC 9113 8.7), so sending it again is safe for any method.
REFUSED: Final = "refused"
_SAFE_PATH: Final = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY: Final = _SAFE_PATH + "?"
# Connection-specific headers are forbidden in HTTP/2 (RFC 9113 8.2.2); framing is ours.
_DROPPED: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "content-length",
        "host",
    }
)
_CONNECT_ERRORS: Final = (OSError, ssl.SSLError, ssl.CertificateError)

Headers = list[tuple[bytes, bytes]]


def _status_key(status: int) -> str:
    klass = status // 100
    return _STATUS_KEYS[klass] if 1 <= klass <= 5 else ERROR


def status_judge(stream: _Stream) -> str:
    """The plain HTTP outcome of an answered stream: its status class."""
    return _status_key(stream.status)


Judge = Callable[["_Stream"], str]
"""An answered stream's outcome key, from its status and watched header value."""


def build_headers(target: Target, *, method: str | None = None, path: str | None = None) -> Headers:
    """The request header block for `target`, built once and sent with every request.

    `method`/`path` override the target's (health probes GET the check path). Raises
    ValueError for header text HTTP/2 cannot carry.
    """
    parts = urlsplit(target.url)
    host = parts.hostname or ""
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if target.uses_tls else 80
    authority = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
    if path is None:
        target_path = quote(parts.path or "/", safe=_SAFE_PATH)
        if parts.query:
            target_path += "?" + quote(parts.query, safe=_SAFE_QUERY)
    else:
        target_path = quote(path, safe=_SAFE_QUERY)

    regular: dict[str, str] = {"user-agent": USER_AGENT, "accept": "*/*"}
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        regular["authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
    for name, raw in target.headers.items():
        value = expand_header(name, raw)
        lower = name.lower()
        if not lower or any(c in lower for c in ":\r\n\0 ") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid header {name!r}")
        if lower == "host":
            authority = value  # virtual hosting: the Host header becomes :authority
        elif lower not in _DROPPED:
            regular[lower] = value
    verb = method or target.method
    if method is None and target.body is not None:
        regular["content-length"] = str(len(target.body.encode()))
    block = [
        (":method", verb),
        (":path", target_path),
        (":scheme", "https" if target.uses_tls else "http"),
        (":authority", authority),
        *regular.items(),
    ]
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in block]


def _retrieve(fut: asyncio.Future[None]) -> None:
    """Mark a failure as seen: nobody may be waiting for it any more."""
    if not fut.cancelled():
        fut.exception()


class _ProtocolError(Exception):
    """The server broke HTTP/2: the connection ends with GOAWAY(code)."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


class _Stream:
    """One request in flight: its future, deadline, response status, windows, unsent body."""

    __slots__ = (
        "body",
        "deadline",
        "id",
        "send_window",
        "status",
        "unacked",
        "waiter",
        "watched",
    )

    def __init__(
        self, stream_id: int, waiter: asyncio.Future[str], deadline: float, send_window: int
    ) -> None:
        self.id = stream_id
        self.waiter = waiter
        self.deadline = deadline
        self.status = 0
        self.body = b""
        self.send_window = send_window
        self.unacked = 0  # DATA bytes received and not yet given back by WINDOW_UPDATE
        self.watched: bytes | None = None  # the value of the pool's watched header, if sent


class _Conn(asyncio.Protocol):
    """One HTTP/2 connection multiplexing many streams, framed by hand (see h2_wire)."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.blocked: dict[int, _Stream] = {}  # streams with body bytes waiting for window
        self.max_streams = _STREAMS_PER_CONNECTION
        self.usable = False  # accepts new streams
        self.closed = False
        self.going_away = False  # GOAWAY received: finish what the server kept, then close
        self.next_id = 1
        self.max_frame = wire.DEFAULT_FRAME  # the server's SETTINGS_MAX_FRAME_SIZE
        self.initial_window = wire.DEFAULT_WINDOW  # the server's SETTINGS_INITIAL_WINDOW_SIZE
        self.send_window = wire.DEFAULT_WINDOW  # connection window for our DATA
        self.unacked = 0  # DATA bytes received on the connection, not yet given back
        self.decoder = hpack.Decoder()
        self.judge = pool.judge
        self.watch = pool.watch
        # Table-neutral response blocks → (:status, the watched header's value).
        self.status_of: dict[bytes, tuple[int, bytes | None]] = {}
        self.header_block: tuple[int, int, list[bytes]] | None = None  # awaiting CONTINUATION
        self.buffer = b""
        self.out: list[bytes] = []
        self._flush_pending = False
        # Set by the server's first SETTINGS: streams wait for its limits and windows.
        self.settled: asyncio.Future[None] = pool.loop.create_future()
        self.settled.add_done_callback(_retrieve)

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(
            wire.PREFACE
            + wire.settings(
                {
                    wire.ENABLE_PUSH: 0,
                    wire.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                    wire.MAX_HEADER_LIST_SIZE: 65536,
                }
            )
            + wire.window_update(0, _CONNECTION_WINDOW - wire.DEFAULT_WINDOW)
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        pos, size = 0, len(buf)
        unpack = wire.HEAD.unpack_from
        try:
            while size - pos >= 9:
                word, flags, stream_id = unpack(buf, pos)
                end = pos + 9 + (word >> 8)
                if end > size:
                    break
                if word >> 8 > wire.DEFAULT_FRAME:  # we never allow larger frames
                    raise _ProtocolError(wire.FRAME_SIZE_ERROR, "frame too large")
                self._frame(word & 0xFF, flags, stream_id & wire.MAX_STREAM_ID, buf[pos + 9 : end])
                pos = end
                if self.closed:
                    return
        except _ProtocolError as exc:
            log.debug("h2 protocol error from server: %s", exc)
            self.out.append(wire.goaway(exc.code))
            self._flush()
            self.abort(ERROR)
            return
        self.buffer = buf[pos:]
        if self.unacked >= _CONNECTION_WINDOW // 2:
            self.out.append(wire.window_update(0, self.unacked))
            self.unacked = 0
        self._flush()

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.header_block is not None and kind != wire.CONTINUATION:
            raise _ProtocolError(wire.PROTOCOL_ERROR, "header block interrupted")
        if kind == wire.HEADERS:
            block: bytes | None = payload
            if flags & (wire.PADDED | wire.PRIORITY_FLAG):
                block = wire.strip_padding(flags, payload, priority=True)
            if block is None:
                raise _ProtocolError(wire.PROTOCOL_ERROR, "bad padding")
            if flags & wire.END_HEADERS:
                self._headers(stream_id, flags, block)
            else:
                self.header_block = (stream_id, flags, [block])
        elif kind == wire.DATA:
            self._data(stream_id, flags, len(payload))
        elif kind == wire.CONTINUATION:
            pending = self.header_block
            if pending is None or pending[0] != stream_id:
                raise _ProtocolError(wire.PROTOCOL_ERROR, "unexpected CONTINUATION")
            pending[2].append(payload)
            if flags & wire.END_HEADERS:
                self.header_block = None
                self._headers(stream_id, pending[1], b"".join(pending[2]))
        elif kind == wire.RST_STREAM:
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                # REFUSED_STREAM: the server did nothing with it, another try is safe.
                code = wire.U32.unpack(payload[:4])[0] if len(payload) == 4 else 0
                self._finish(stream, REFUSED if code == wire.REFUSED_STREAM else ERROR)
        elif kind == wire.WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == wire.SETTINGS:
            if not flags & wire.ACK:
                self._settings(payload)
        elif kind == wire.PING:
            if len(payload) != 8:
                raise _ProtocolError(wire.FRAME_SIZE_ERROR, "PING of the wrong size")
            if not flags & wire.ACK:
                self.out.append(wire.frame(wire.PING, wire.ACK, 0, payload))
        elif kind == wire.GOAWAY:
            if len(payload) < 8:
                raise _ProtocolError(wire.FRAME_SIZE_ERROR, "short GOAWAY")
            self._goaway(wire.U32.unpack(payload[:4])[0] & wire.MAX_STREAM_ID)
        elif kind == wire.PUSH_PROMISE:
            raise _ProtocolError(wire.PROTOCOL_ERROR, "push was disabled")
        # PRIORITY and unknown frame types are ignored (RFC 9113 4.1, 5.5).

    def _headers(self, stream_id: int, flags: int, block: bytes) -> None:
        # Every block is decoded (or known): HPACK state is shared by the whole connection.
        known = self.status_of.get(block)
        if known is None:
            known = self._decode(block)
            if wire.table_neutral(block):
                if len(self.status_of) >= 64:
                    self.status_of.clear()
                self.status_of[block] = known
            else:
                self.status_of.clear()  # the table changed: cached meanings may be stale
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        status, watched = known
        if stream.status == 0 and not 100 <= status < 200:  # 1xx: the answer is still to come
            stream.status = status
        if watched is not None:
            stream.watched = watched
        if flags & wire.END_STREAM:
            del self.streams[stream_id]
            self._finish(stream, self.judge(stream))

    def _decode(self, block: bytes) -> tuple[int, bytes | None]:
        """(:status or 0, the watched header's value or None) of a header block."""
        try:
            fields = self.decoder.decode(block, raw=True)
        except hpack.HPACKError as exc:
            raise _ProtocolError(wire.COMPRESSION_ERROR, str(exc)) from exc
        status, watched, watch = 0, None, self.watch
        for name, value in fields:
            if name == b":status":
                with contextlib.suppress(ValueError):
                    status = int(value)
            elif name == watch:
                watched = bytes(value)
        return status, watched

    def _data(self, stream_id: int, flags: int, length: int) -> None:
        self.unacked += length  # padding included: it counts against the windows too
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if flags & wire.END_STREAM:
            del self.streams[stream_id]
            self._finish(stream, self.judge(stream))
            return
        stream.unacked += length
        if stream.unacked >= _STREAM_WINDOW // 2:
            self.out.append(wire.window_update(stream_id, stream.unacked))
            stream.unacked = 0

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ProtocolError(wire.FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size")
        increment = wire.U32.unpack(payload)[0] & wire.MAX_WINDOW
        if stream_id == 0:
            if increment == 0 or self.send_window + increment > wire.MAX_WINDOW:
                raise _ProtocolError(wire.FLOW_CONTROL_ERROR, "bad connection window update")
            self.send_window += increment
        else:
            stream = self.streams.get(stream_id)
            if stream is None:
                return
            stream.send_window += increment
        if self.blocked:
            self._pump_blocked()

    def _settings(self, payload: bytes) -> None:
        if len(payload) % 6:
            raise _ProtocolError(wire.FRAME_SIZE_ERROR, "SETTINGS of the wrong size")
        for offset in range(0, len(payload), 6):
            key, value = wire.SETTING.unpack_from(payload, offset)
            if key == wire.MAX_CONCURRENT_STREAMS:
                self.max_streams = min(value, 1 << 16)
                self.pool.wake(self.max_streams)
            elif key == wire.INITIAL_WINDOW_SIZE:
                if value > wire.MAX_WINDOW:
                    raise _ProtocolError(wire.FLOW_CONTROL_ERROR, "initial window too large")
                delta, self.initial_window = value - self.initial_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif key == wire.MAX_FRAME_SIZE:
                if not wire.DEFAULT_FRAME <= value <= (1 << 24) - 1:
                    raise _ProtocolError(wire.PROTOCOL_ERROR, "bad max frame size")
                self.max_frame = value
            # HEADER_TABLE_SIZE: our blocks never use the server's table; the rest: no use.
        self.out.append(wire.frame(wire.SETTINGS, wire.ACK, 0))
        if not self.settled.done():
            self.settled.set_result(None)
        if self.blocked:
            self._pump_blocked()

    def _goaway(self, last_stream_id: int) -> None:
        """The server serves streams up to `last_stream_id`; the others never reached it."""
        self.retire()
        for stream_id in [sid for sid in self.streams if sid > last_stream_id]:
            self._finish(self.streams.pop(stream_id), REFUSED)
        if not self.streams:
            self.abort(_RETRY)

    def retire(self) -> None:
        """Take no new streams; close once the open ones are answered."""
        self.going_away = True
        self.usable = False
        self.pool.lost(self)
        if not self.streams:
            self.abort(_RETRY)

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort(_RETRY)

    # -- streams ------------------------------------------------------------------------
    def open_stream(self, block: bytes, body: bytes | None, deadline: float) -> _Stream:
        stream_id = self.next_id
        if stream_id > wire.MAX_STREAM_ID or not self.usable:
            self.retire()
            raise ConnectionError("stream ids exhausted or connection going away")
        self.next_id = stream_id + 2
        waiter: asyncio.Future[str] = self.pool.loop.create_future()
        stream = _Stream(stream_id, waiter, deadline, self.initial_window)
        self.out.append(
            wire.headers_frames(stream_id, block, end_stream=not body, max_frame=self.max_frame)
        )
        self.streams[stream_id] = stream
        if body:
            stream.body = body
            self._pump(stream)
        self._schedule_flush()
        return stream

    def _pump(self, stream: _Stream) -> None:
        """Send as much of the stream's body as the flow-control windows allow."""
        body = stream.body
        while body:
            size = min(len(body), stream.send_window, self.send_window, self.max_frame)
            if size <= 0:
                self.blocked[stream.id] = stream
                stream.body = body
                return
            last = size == len(body)
            self.out.append(
                wire.frame(wire.DATA, wire.END_STREAM if last else 0, stream.id, body[:size])
            )
            stream.send_window -= size
            self.send_window -= size
            body = body[size:]
        stream.body = b""
        self.blocked.pop(stream.id, None)

    def _pump_blocked(self) -> None:
        for stream in list(self.blocked.values()):
            self._pump(stream)
        self._schedule_flush()

    def cancel(self, stream_id: int, outcome: str) -> None:
        """Give up on one stream (timeout, cancelled send): reset it, keep the connection."""
        stream = self.streams.pop(stream_id, None)
        self.blocked.pop(stream_id, None)
        if stream is not None:
            if not self.closed:
                self.out.append(wire.rst_stream(stream_id, wire.CANCEL))
                self._schedule_flush()
            self._finish(stream, outcome)

    def _finish(self, stream: _Stream, outcome: str) -> None:
        self.blocked.pop(stream.id, None)
        if not stream.waiter.done():
            stream.waiter.set_result(outcome)
        if self.usable:
            self.pool.slot_freed(self)
        elif self.going_away and not self.streams and not self.closed:
            self._flush()
            self.abort(_RETRY)  # every stream the server kept is answered

    @property
    def free(self) -> int:
        return self.max_streams - len(self.streams) if self.usable else 0

    # -- writes -------------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        # Requests opened in the same loop iteration go out in one write.
        if not self._flush_pending:
            self._flush_pending = True
            self.pool.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        out = self.out
        if out:
            self.out = []
            if self.transport is not None and not self.closed:
                self.transport.write(b"".join(out))

    def abort(self, outcome: str) -> None:
        """Retire the connection; its open streams get `outcome`."""
        if self.closed:
            return
        self.closed = True
        self.usable = False
        if not self.settled.done():
            self.settled.set_exception(ConnectionError("closed before the server's SETTINGS"))
        self.pool.lost(self)
        self.pool.gone(self)
        streams, self.streams = self.streams, {}
        self.blocked.clear()
        for stream in streams.values():
            if not stream.waiter.done():
                stream.waiter.set_result(outcome)
        if self.transport is not None:
            if outcome == _RETRY:
                self.transport.close()  # let what we queued go out
            else:
                self.transport.abort()


class _Pool:
    """Up to `limit` h2 connections to one host:port; senders wait for a free stream slot."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        limit: int,
        sweep_interval: float,
        judge: Judge = status_judge,
        watch: bytes | None = None,
    ) -> None:
        self.loop = loop
        self.judge = judge
        self.watch = watch
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.limit = limit
        self.conns: list[_Conn] = []  # usable ones
        self.live: set[_Conn] = set()  # every open one, draining ones too (for the sweep)
        self.opening = 0
        self.current: _Conn | None = None
        self.waiters: deque[asyncio.Future[_Conn | BaseException | None]] = deque()
        self.closing = False
        self.sweep_interval = sweep_interval
        self.sweeper: asyncio.TimerHandle | None = loop.call_later(sweep_interval, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.live):
            late = [sid for sid, s in conn.streams.items() if s.deadline <= now]
            for stream_id in late:
                conn.cancel(stream_id, TIMEOUT)
        if not self.closing:
            self.sweeper = self.loop.call_later(self.sweep_interval, self._sweep)

    def pick(self) -> _Conn | None:
        """A connection with a free stream slot, without waiting (None when there is none)."""
        if self.waiters:
            return None  # first come, first served
        conn = self.current
        if conn is not None and conn.free > 0:
            return conn
        return self._scan()

    def slot_freed(self, conn: _Conn) -> None:
        self._wake_one(conn)

    def wake(self, count: int) -> None:
        """Capacity appeared (a new connection, larger SETTINGS): wake up to `count`."""
        for _ in range(count):
            if not self._wake_one(None):
                return

    def _wake_one(self, value: _Conn | BaseException | None) -> bool:
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(value)
                return True
        return False

    def lost(self, conn: _Conn) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
            if self.current is conn:
                self.current = None
            self._wake_one(None)  # someone may open a replacement

    def gone(self, conn: _Conn) -> None:
        self.live.discard(conn)

    async def acquire(self, deadline: float) -> _Conn:
        """A connection with a free slot: an open one, a new one, or wait for one."""
        woken = False
        while True:
            if self.closing:
                raise RuntimeError("executor closed")
            if woken or not self.waiters:
                conn = self._scan()
                if conn is not None:
                    return conn
            waiting = len(self.waiters)
            if len(self.conns) + self.opening < self.limit and (
                self.opening == 0 or waiting >= self.opening * _STREAMS_PER_CONNECTION
            ):
                return await self._connect(deadline)
            fut: asyncio.Future[_Conn | BaseException | None] = self.loop.create_future()
            if woken:
                self.waiters.appendleft(fut)  # keep its place in the queue
            else:
                self.waiters.append(fut)
            try:
                async with asyncio.timeout_at(deadline):
                    got = await fut
            except BaseException:
                if fut.done() and not fut.cancelled():
                    self._wake_one(fut.result())  # woken as we gave up: pass it on
                else:
                    fut.cancel()
                raise
            if isinstance(got, BaseException):
                raise got
            woken = True

    def _scan(self) -> _Conn | None:
        for conn in self.conns:
            if conn.free > 0:
                self.current = conn
                return conn
        return None

    async def _connect(self, deadline: float) -> _Conn:
        conn = _Conn(self)
        self.opening += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self.loop.create_connection(
                    lambda: conn,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
            if self.ssl is not None and conn.transport is not None:
                ssl_object = conn.transport.get_extra_info("ssl_object")
                chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
                if chosen not in (None, "h2"):
                    raise ConnectionError(f"server chose {chosen!r} over ALPN, not h2")
            async with asyncio.timeout_at(deadline):
                await conn.settled
            if conn.closed or self.closing:
                raise ConnectionError("connection closed while opening")
        except BaseException as exc:
            self.opening -= 1
            conn.closed = True
            if conn.transport is not None:
                conn.transport.abort()
            if isinstance(exc, _CONNECT_ERRORS):
                # Everyone waiting for this connection shares its fate, at once.
                while self._wake_one(exc):
                    pass
            else:
                self._wake_one(None)
            raise
        self.opening -= 1
        conn.usable = True
        self.conns.append(conn)
        self.live.add(conn)
        self.current = conn
        self.wake(conn.free - 1)  # the caller takes one slot
        return conn

    def close(self) -> None:
        self.closing = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        for conn in list(self.live):
            conn.abort(ERROR)
        while self._wake_one(RuntimeError("executor closed")):
            pass


class FastHttp2Executor:
    """Sends one target's HTTP/2 requests; `send()` returns an outcome key of `stats.py`.

    `ssl_context` replaces the default client context (tests pass one trusting their CA).
    """

    def __init__(
        self, target: Target, max_in_flight: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._target = target
        # How answered streams are judged; a subclass speaking another protocol over HTTP/2
        # (gRPC, grpc_h2.py) names the response header it reads and judges by it.
        self._judge: Judge = status_judge
        self._watch: bytes | None = None
        self._limit = max(1, min(_MAX_CONNECTIONS, math.ceil(max_in_flight / 100)))
        self._timeout = float(target.timeout)
        check = target.health_check
        self._probe_timeout = float(check.timeout) if check else 2.0
        self._retry_ok = target.method in IDEMPOTENT
        self._body = target.body.encode() if target.body is not None else None
        self._invalid: str | None = None
        self._block = b""
        self._probe_block = b""
        try:
            # Encoded once: every request of this target is the same block (h2_wire).
            self._block = wire.header_block(build_headers(target))
            self._probe_block = wire.header_block(
                build_headers(target, method="GET", path=check.path if check else "/")
            )
        except (ValueError, UnicodeError) as exc:
            # Like httpx refusing such a request: every send is an 'error', never a crash.
            self._invalid = str(exc)
            log.warning("target %s: cannot build request headers: %s", target.name, exc)
        parts = urlsplit(target.url)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if target.uses_tls else 80)
        self._ssl: ssl.SSLContext | None = None
        if target.uses_tls:
            self._ssl = ssl_context or tls.client_context(
                verify=not target.tls_insecure_skip_verify, alpn=["h2"]
            )
        self._pool: _Pool | None = None

    def _get_pool(self) -> _Pool:
        pool = self._pool
        if pool is None:  # created lazily: pools belong to the running loop
            shortest = min(self._timeout, self._probe_timeout)
            pool = self._pool = _Pool(
                asyncio.get_running_loop(),
                self._host,
                self._port,
                ssl_context=self._ssl,
                limit=self._limit,
                sweep_interval=min(0.1, max(0.005, shortest / 20)),
                judge=self._judge,
                watch=self._watch,
            )
        return pool

    async def send(self) -> str:
        if self._invalid is not None:
            return ERROR
        return await self._exchange(self._block, self._body, self._timeout, self._retry_ok)

    async def probe(self) -> bool:
        if self._invalid is not None:
            return False
        outcome = await self._exchange(self._probe_block, None, self._probe_timeout, True)
        return outcome in ("2xx", "3xx")

    async def _exchange(
        self, block: bytes, body: bytes | None, limit_s: float, retry_ok: bool
    ) -> str:
        pool = self._get_pool()
        deadline = pool.loop.time() + limit_s
        attempts = 2  # a second one for a refused stream, or a lost one when retry_ok
        while True:
            attempts -= 1
            conn = pool.pick()
            if conn is None:
                try:
                    conn = await pool.acquire(deadline)
                except TimeoutError:
                    return TIMEOUT
                except _CONNECT_ERRORS:
                    return CONNECT_ERROR
                except RuntimeError:
                    return ERROR  # closed under us
            try:
                stream = conn.open_stream(block, body, deadline)
            except ConnectionError as exc:
                # Nothing was sent and the connection takes no more streams: another will.
                log.debug("h2 connection retired: %s", exc)
                attempts += 1
                continue
            try:
                outcome = await stream.waiter
            except asyncio.CancelledError:
                conn.cancel(stream.id, ERROR)
                raise
            if outcome == REFUSED or (outcome == _RETRY and retry_ok):
                if attempts > 0:
                    continue
                return ERROR
            return ERROR if outcome == _RETRY else outcome

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool = None
        await asyncio.sleep(0)  # let transports run their close callbacks
