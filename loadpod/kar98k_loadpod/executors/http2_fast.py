"""Lean HTTP/2 executor: the `h2` state machine driven directly from asyncio Protocols.

Same interface, outcome keys and retry rule as the httpx executor (`http2.py`), built for
rate: a send costs one HPACK encode, one future and a share of a coalesced socket write.

- A small pool of connections (one per 100 requests in flight, at most 4), each carrying
  up to the server's SETTINGS_MAX_CONCURRENT_STREAMS streams; senders beyond that wait.
- TLS offers ALPN "h2" only (verified unless `tlsInsecureSkipVerify`); cleartext targets
  speak h2c with prior knowledge. A server that picks another protocol is a connect_error.
- Received DATA is acknowledged at once, so flow-control windows never stall; request
  bodies are sent as the server's windows allow.
- Timeouts: one sweep timer per pool; a late stream is reset (RST_STREAM CANCEL) and
  answered 'timeout' while the connection keeps serving its other streams.
- GOAWAY or a lost socket retires the connection; its streams in flight are retried once
  on a fresh connection for idempotent methods (like the httpx executor), else 'error'.
- Health probes share the pool (a slot is almost always free: the pool is sized for it).
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
from typing import Final, cast
from urllib.parse import quote, unquote, urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ..targets import Target, expand_header
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
_CONFIG: Final = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    # Our headers are validated and lower-cased once, when built; only :status is read back.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)
_CONNECT_ERRORS: Final = (OSError, ssl.SSLError, ssl.CertificateError)

Headers = list[tuple[bytes, bytes]]


def _status_key(status: int) -> str:
    klass = status // 100
    return _STATUS_KEYS[klass] if 1 <= klass <= 5 else ERROR


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


class _Stream:
    """One request in flight: its future, deadline, response status and unsent body."""

    __slots__ = ("body", "deadline", "id", "status", "waiter")

    def __init__(self, stream_id: int, waiter: asyncio.Future[str], deadline: float) -> None:
        self.id = stream_id
        self.waiter = waiter
        self.deadline = deadline
        self.status = 0
        self.body = b""


class _Conn(asyncio.Protocol):
    """One HTTP/2 connection multiplexing many streams."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.h2 = h2.connection.H2Connection(config=_CONFIG)
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.blocked: dict[int, _Stream] = {}  # streams with body bytes waiting for window
        self.max_streams = _STREAMS_PER_CONNECTION
        self.usable = False  # accepts new streams
        self.closed = False
        self._flush_pending = False

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        conn = self.h2
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.debug("h2 protocol error from server: %s", exc)
            self._flush()  # h2 queued a GOAWAY
            self.abort(ERROR)
            return
        streams = self.streams
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                data_event = cast(h2.events.DataReceived, event)
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    conn.acknowledge_received_data(
                        data_event.flow_controlled_length, data_event.stream_id
                    )
            elif kind is h2.events.ResponseReceived:
                response = cast(h2.events.ResponseReceived, event)
                stream = streams.get(response.stream_id)
                if stream is not None:
                    for name, value in response.headers or ():
                        if name == b":status":
                            with contextlib.suppress(ValueError):
                                stream.status = int(value)
                            break
            elif kind is h2.events.StreamEnded:
                stream = streams.pop(cast(h2.events.StreamEnded, event).stream_id, None)
                if stream is not None:
                    self._finish(stream, _status_key(stream.status))
            elif kind is h2.events.StreamReset:
                stream = streams.pop(cast(h2.events.StreamReset, event).stream_id, None)
                if stream is not None:
                    self._finish(stream, ERROR)
            elif kind is h2.events.WindowUpdated:
                if self.blocked:
                    self._pump_blocked()
            elif kind is h2.events.RemoteSettingsChanged:
                self.max_streams = conn.remote_settings.max_concurrent_streams
                self.pool.wake(self.max_streams)
            elif kind is h2.events.ConnectionTerminated:
                # After GOAWAY h2 refuses every frame, even on streams the server still
                # serves: the connection is over; its streams are retried or failed.
                self._flush()
                self.abort(_RETRY)
                return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort(_RETRY)

    # -- streams ------------------------------------------------------------------------
    def open_stream(self, headers: Headers, body: bytes | None, deadline: float) -> _Stream:
        conn = self.h2
        stream_id = conn.get_next_available_stream_id()
        waiter: asyncio.Future[str] = self.pool.loop.create_future()
        stream = _Stream(stream_id, waiter, deadline)
        conn.send_headers(stream_id, headers, end_stream=not body)
        self.streams[stream_id] = stream
        if body:
            stream.body = body
            self._pump(stream)
        self._schedule_flush()
        return stream

    def _pump(self, stream: _Stream) -> None:
        """Send as much of the stream's body as the flow-control windows allow."""
        conn = self.h2
        body = stream.body
        while body:
            size = min(
                len(body), conn.local_flow_control_window(stream.id), conn.max_outbound_frame_size
            )
            if size <= 0:
                self.blocked[stream.id] = stream
                stream.body = body
                return
            conn.send_data(stream.id, body[:size], end_stream=size == len(body))
            body = body[size:]
        stream.body = b""
        self.blocked.pop(stream.id, None)

    def _pump_blocked(self) -> None:
        for stream in list(self.blocked.values()):
            try:
                self._pump(stream)
            except h2.exceptions.ProtocolError:  # the stream closed meanwhile
                self.blocked.pop(stream.id, None)

    def cancel(self, stream_id: int, outcome: str) -> None:
        """Give up on one stream (timeout, cancelled send): reset it, keep the connection."""
        stream = self.streams.pop(stream_id, None)
        self.blocked.pop(stream_id, None)
        if not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            self._schedule_flush()
        if stream is not None:
            self._finish(stream, outcome)

    def _finish(self, stream: _Stream, outcome: str) -> None:
        self.blocked.pop(stream.id, None)
        if not stream.waiter.done():
            stream.waiter.set_result(outcome)
        if self.usable:
            self.pool.slot_freed(self)

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
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def abort(self, outcome: str) -> None:
        """Retire the connection; its open streams get `outcome`."""
        if self.closed:
            return
        self.closed = True
        self.usable = False
        self.pool.lost(self)
        streams, self.streams = self.streams, {}
        self.blocked.clear()
        for stream in streams.values():
            if not stream.waiter.done():
                stream.waiter.set_result(outcome)
        if self.transport is not None:
            if outcome == _RETRY:
                self.transport.close()  # let a GOAWAY we queued go out
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
    ) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.limit = limit
        self.conns: list[_Conn] = []  # usable ones
        self.opening = 0
        self.current: _Conn | None = None
        self.waiters: deque[asyncio.Future[_Conn | BaseException | None]] = deque()
        self.closing = False
        self.sweep_interval = sweep_interval
        self.sweeper: asyncio.TimerHandle | None = loop.call_later(sweep_interval, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.conns):
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
        self.current = conn
        self.wake(conn.free - 1)  # the caller takes one slot
        return conn

    def close(self) -> None:
        self.closing = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        for conn in list(self.conns):
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
        self._limit = max(1, min(_MAX_CONNECTIONS, math.ceil(max_in_flight / 100)))
        self._timeout = float(target.timeout)
        check = target.health_check
        self._probe_timeout = float(check.timeout) if check else 2.0
        self._retry_ok = target.method in IDEMPOTENT
        self._body = target.body.encode() if target.body is not None else None
        self._invalid: str | None = None
        self._headers: Headers = []
        self._probe_headers: Headers = []
        try:
            self._headers = build_headers(target)
            self._probe_headers = build_headers(
                target, method="GET", path=check.path if check else "/"
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
            )
        return pool

    async def send(self) -> str:
        if self._invalid is not None:
            return ERROR
        return await self._exchange(self._headers, self._body, self._timeout, self._retry_ok)

    async def probe(self) -> bool:
        if self._invalid is not None:
            return False
        outcome = await self._exchange(self._probe_headers, None, self._probe_timeout, True)
        return outcome in ("2xx", "3xx")

    async def _exchange(
        self, headers: Headers, body: bytes | None, limit_s: float, retry_ok: bool
    ) -> str:
        pool = self._get_pool()
        deadline = pool.loop.time() + limit_s
        attempts = 2 if retry_ok else 1
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
                stream = conn.open_stream(headers, body, deadline)
            except h2.exceptions.H2Error as exc:
                # Stream ids exhausted or the connection is closing: retire it, try anew.
                log.debug("h2 connection retired: %s", exc)
                conn.abort(_RETRY)
                if attempts <= 0:
                    return ERROR
                continue
            try:
                outcome = await stream.waiter
            except asyncio.CancelledError:
                conn.cancel(stream.id, ERROR)
                raise
            if outcome != _RETRY:
                return outcome
            if attempts <= 0:
                return ERROR

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool = None
        await asyncio.sleep(0)  # let transports run their close callbacks
