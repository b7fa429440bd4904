"""Lean HTTP/1.1 executor: asyncio Protocols, httptools' C parser, pre-rendered requests.

Same interface and outcome keys as the aiohttp executor (`http1.py`), built for rate: a
send costs one buffer write and the parser's C callbacks (plus a future on the `send()`
path), with no per-request header objects, URL handling or stream readers.

- One request at a time per connection (pipelining is opt-in: `http1_pipeline.py`), over a
  keep-alive pool of at most `max_in_flight` connections; idle connections are reused
  last-in first-out (warm ones).
- Two ways in: `send()` (a coroutine, opens connections when none is idle) and `push()` (the
  pacer's task-free path: takes an idle connection or declines, answers through a callback).
- Bodies are drained by the parser without being kept (`on_body` is not defined), whether
  framed by Content-Length, chunked, or delimited by the server closing the connection.
- `Connection: close` from the server, or a parse error, retires the connection.
- A request sent on a reused keep-alive connection that the server had already closed
  (the keep-alive race) is retried once on a fresh one, for idempotent methods only.
- A response head (status line and headers) longer than `MAX_RESPONSE_HEAD` is an 'error' and
  retires the connection: a target streaming headers forever is cut at once, not held until
  the timeout. Bodies are bounded by the timeout alone (they are drained, never kept).
- Timeouts: one sweep timer per pool checks the deadlines of busy connections instead of
  one timer per request; a timed-out connection is aborted, never reused.
- TLS through the executors' shared client context: verified unless the target sets
  `tlsInsecureSkipVerify`; ALPN offers http/1.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast
from urllib.parse import quote, unquote, urlsplit

import httptools

from ..targets import Target, expand_header
from . import tls
from .outcome import CONNECT_ERROR, ERROR, TIMEOUT

log = logging.getLogger(__name__)

USER_AGENT: Final = "kar98k-loadpod"
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_PROBE_CONNECTIONS: Final = 2
_STATUS_KEYS: Final[tuple[str, ...]] = ("error", "1xx", "2xx", "3xx", "4xx", "5xx")
# Returned internally when a reused connection died before answering: send again.
_RETRY: Final = "retry"
_SAFE_PATH: Final = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY: Final = _SAFE_PATH + "?"
MAX_RESPONSE_HEAD: Final = 64 * 1024
"""Bytes a response may take before its headers end (curl allows 100 KiB, nginx 32 KiB)."""

Done = Callable[[Any, str], None]
"""A pushed send's completion callback: (the caller's token, outcome key)."""


def _status_key(status: int) -> str:
    klass = status // 100
    return _STATUS_KEYS[klass] if 1 <= klass <= 5 else ERROR


def _check_header_text(text: str, what: str) -> None:
    if "\r" in text or "\n" in text or "\0" in text:
        # Never echo the text: it may be an expanded secret, and this message is logged.
        raise ValueError(f"{what} contains a line break or NUL")


def render_request(
    target: Target, *, method: str | None = None, path: str | None = None, body: bool = True
) -> bytes:
    """The exact bytes of one request to `target`, rendered once and written for every send.

    `method`/`path` override the target's (health probes use GET on the check path);
    `body=False` leaves the target's body out.
    """
    parts = urlsplit(target.url)
    host = parts.hostname or ""
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    host_header = host if parts.port in (None, default_port) else f"{host}:{parts.port}"

    if path is None:
        target_path = quote(parts.path or "/", safe=_SAFE_PATH)
        if parts.query:
            target_path += "?" + quote(parts.query, safe=_SAFE_QUERY)
    else:
        target_path = quote(path, safe=_SAFE_QUERY)
    verb = method or target.method
    payload = target.body.encode() if body and target.body is not None else None

    headers: dict[str, tuple[str, str]] = {}  # lower-case name -> (name as given, value)

    def put(name: str, value: str) -> None:
        _check_header_text(name, "header name")
        _check_header_text(value, f"header {name!r}")
        if not name or ":" in name or " " in name:
            raise ValueError(f"invalid header name {name!r}")
        headers[name.lower()] = (name, value)

    put("Host", host_header)
    put("User-Agent", USER_AGENT)
    put("Accept", "*/*")
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        put("Authorization", "Basic " + base64.b64encode(userinfo.encode()).decode("ascii"))
    for name, value in target.headers.items():
        put(name, expand_header(name, value))
    # Framing is ours: never let a configured header contradict the bytes we send.
    headers.pop("content-length", None)
    headers.pop("transfer-encoding", None)
    headers.pop("connection", None)
    if payload is not None:
        put("Content-Length", str(len(payload)))
    elif verb in ("POST", "PUT", "PATCH"):
        put("Content-Length", "0")

    lines = [f"{verb} {target_path} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers.values())
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="strict")
    return head + payload if payload is not None else head


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    __slots__ = (
        "_head",
        "closed",
        "deadline",
        "done",
        "got_bytes",
        "head_bytes",
        "headers_done",
        "parser",
        "pool",
        "token",
        "transport",
        "used",
        "waiter",
    )

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[str] | None = None
        self.done: Done | None = None  # instead of `waiter` for a pushed send, with `token`
        self.token: Any = None
        self.deadline = 0.0
        self.headers_done = False
        self.got_bytes = False
        self.head_bytes = 0
        self.closed = False
        self.used = False  # has completed at least one request (a reused connection)
        self._head = pool.head

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except Exception:  # HttpParserError, HttpParserUpgrade: the stream is unusable
            self._finish(ERROR)
            self.abort()
            return
        if not self.headers_done and (self.waiter is not None or self.done is not None):
            self.head_bytes += len(data)
            if self.head_bytes > MAX_RESPONSE_HEAD:
                self._finish(ERROR)
                self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)
        if self.waiter is not None or self.done is not None:
            if self.headers_done:
                # A body delimited by the close itself (no Content-Length, not chunked).
                self._finish(_status_key(self.parser.get_status_code()))
            elif self.used and not self.got_bytes:
                self._finish(_RETRY)
            else:
                self._finish(ERROR)

    # -- httptools callbacks ----------------------------------------------------------
    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self._head:
            # A HEAD response has no body whatever its Content-Length says; the parser
            # does not know the method, so finish here and use a fresh parser next time.
            self.on_message_complete()

    def on_message_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers_done = False  # interim response (100 Continue): the real one follows
            return
        waiter, done, token = self.waiter, self.done, self.token
        if waiter is None and done is None:
            return  # unsolicited, or already timed out (the connection is going away)
        self.waiter = self.done = None
        self.used = True
        if self._head:
            self.parser = httptools.HttpResponseParser(self)
        if parser.should_keep_alive() and not self.closed:
            pool = self.pool
            if pool.waiters:
                pool.release(self)
            else:
                pool.idle.append(self)  # `release`'s common case, inline: once per request
        else:
            self.abort()
        klass = status // 100
        outcome = _STATUS_KEYS[klass] if 1 <= klass <= 5 else ERROR  # _status_key, inline
        if done is not None:
            # May push the next send onto this very connection, now idle again.
            done(token, outcome)
        elif waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    # -- used by the pool ---------------------------------------------------------------
    def request(self, data: bytes, deadline: float) -> asyncio.Future[str]:
        waiter: asyncio.Future[str] = self.pool.loop.create_future()
        self.waiter = waiter
        self.deadline = deadline
        self.headers_done = False
        self.got_bytes = False
        self.head_bytes = 0
        assert self.transport is not None
        self.transport.write(data)
        return waiter

    def push(self, data: bytes, deadline: float, done: Done, token: Any) -> None:
        """`request` answered through `done(token, outcome)` instead of a future."""
        self.done = done
        self.token = token
        self.deadline = deadline
        self.headers_done = False
        self.got_bytes = False
        self.head_bytes = 0
        assert self.transport is not None
        self.transport.write(data)

    def _finish(self, outcome: str) -> None:
        waiter, done, token = self.waiter, self.done, self.token
        self.waiter = self.done = None
        if done is not None:
            if outcome == _RETRY:
                self.pool.retry(done, token)
            else:
                done(token, outcome)
        elif waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def awaiting(self) -> bool:
        """An answer is due on this connection (its deadline applies)."""
        return self.waiter is not None or self.done is not None

    def expire(self) -> None:
        """Deadline passed: answer 'timeout' and retire the connection (a late reply would
        otherwise be taken as the answer to the next request)."""
        self._finish(TIMEOUT)
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.lost(self)
            if self.transport is not None:
                self.transport.abort()


def _no_retry(done: Done, token: Any) -> None:
    done(token, ERROR)


class _Pool:
    """Keep-alive connections to one host:port, at most `limit` open or opening at once."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        limit: int,
        sweep_interval: float,
        head: bool,
        conn_class: type[_Conn] | None = None,
    ) -> None:
        self.loop = loop
        self.conn_class = conn_class or _Conn
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.server_hostname = server_hostname
        self.limit = limit
        self.head = head
        self.idle: list[_Conn] = []
        self.count = 0  # open or opening connections
        self.waiters: deque[asyncio.Future[_Conn | None]] = deque()
        self.sweep_interval = sweep_interval
        self.sweeper: asyncio.TimerHandle | None = loop.call_later(sweep_interval, self._sweep)
        self.closing = False
        self.members: set[_Conn] = set()
        # Sends again a pushed request lost to the keep-alive race (set by the executor).
        self.retry: Callable[[Done, Any], None] = _no_retry

    def _sweep(self) -> None:
        now = self.loop.time()
        # Busy connections are found here, not tracked per request: the sweep runs every
        # 5-100 ms over at most `limit` connections, cheaper than a set update per send.
        expired = [conn for conn in self.members if conn.deadline <= now and conn.awaiting()]
        for conn in expired:
            conn.expire()
        if not self.closing:
            self.sweeper = self.loop.call_later(self.sweep_interval, self._sweep)

    def release(self, conn: _Conn) -> None:
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self.idle.append(conn)

    def lost(self, conn: _Conn) -> None:
        """A connection closed (either side): forget it and let a waiter open another."""
        if conn not in self.members:
            return
        self.members.discard(conn)
        self.count -= 1
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def acquire_slow(self, deadline: float) -> _Conn:
        """A connection when none is idle: open one, or wait for one to be released."""
        while True:
            if self.idle:
                return self.idle.pop()
            if self.closing:
                raise ConnectionError("executor closed")
            if self.count < self.limit:
                return await self._connect(deadline)
            fut: asyncio.Future[_Conn | None] = self.loop.create_future()
            self.waiters.append(fut)
            try:
                async with asyncio.timeout_at(deadline):
                    conn = await fut
            except BaseException:
                if fut.done() and not fut.cancelled():
                    got = fut.result()
                    if got is not None and not got.closed:
                        self.release(got)  # handed over just as we gave up: pass it on
                else:
                    fut.cancel()
                raise
            if conn is not None:
                return conn

    async def _connect(self, deadline: float) -> _Conn:
        conn = self.conn_class(self)
        # Counted from the start, so concurrent sends never open more than `limit`; `lost`
        # is the one place that uncounts, whichever way the connection ends.
        self.members.add(conn)
        self.count += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self.loop.create_connection(
                    lambda: conn,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.server_hostname,
                )
        except BaseException:
            conn.abort()
            raise
        if conn.closed or self.closing:
            conn.abort()
            raise ConnectionError("connection closed while opening")
        return conn

    def close(self) -> None:
        self.closing = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        for conn in list(self.members):
            conn._finish(ERROR)
            conn.abort()
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)


class FastHttp1Executor:
    """Sends one target's HTTP/1.1 requests; `send()` returns an outcome key of `stats.py`.

    `ssl_context` replaces the default client context (tests pass one trusting their CA).
    Health probes run over their own two connections, so a saturated pool cannot starve
    them and make a busy, healthy target look dead.
    """

    def __init__(
        self, target: Target, max_in_flight: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._target = target
        self._limit = max(1, max_in_flight)
        self._timeout = float(target.timeout)
        check = target.health_check
        self._probe_timeout = float(check.timeout) if check else 2.0
        self._probe_path = check.path if check else "/"
        self._retry_ok = target.method in IDEMPOTENT
        self._invalid: str | None = None
        try:
            self._request = render_request(target)
            self._probe_request = render_request(
                target, method="GET", path=self._probe_path, body=False
            )
        except (ValueError, UnicodeError) as exc:
            # Like aiohttp refusing such a request: every send is an 'error', never a crash.
            self._invalid = str(exc)
            self._request = self._probe_request = b""
            log.warning("target %s: cannot render request: %s", target.name, exc)
        parts = urlsplit(target.url)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if target.uses_tls else 80)
        self._ssl: ssl.SSLContext | None = None
        if target.uses_tls:
            self._ssl = ssl_context or tls.client_context(
                verify=not target.tls_insecure_skip_verify, alpn=["http/1.1"]
            )
        self._pool: _Pool | None = None
        self._probe_pool: _Pool | None = None
        self._retries: set[asyncio.Task[None]] = set()

    _conn_class: type[_Conn] = _Conn
    """What the sending pool opens (the probe pool always opens plain `_Conn`s)."""

    def _new_pool(
        self, limit: int, timeout: float, head: bool, conn_class: type[_Conn] = _Conn
    ) -> _Pool:
        # Created lazily: pools belong to the running loop.
        return _Pool(
            asyncio.get_running_loop(),
            self._host,
            self._port,
            ssl_context=self._ssl,
            server_hostname=self._host if self._ssl is not None else None,
            limit=limit,
            sweep_interval=min(0.1, max(0.005, timeout / 20)),
            head=head,
            conn_class=conn_class,
        )

    async def send(self) -> str:
        pool = self._pool
        if pool is None:
            if self._invalid is not None:
                return ERROR
            pool = self._pool = self._new_pool(
                self._limit, self._timeout, self._target.method == "HEAD", self._conn_class
            )
            pool.retry = self._retry_pushed
        return await self._exchange(pool, self._request, self._timeout, self._retry_ok)

    def push(self, done: Done, token: Any) -> bool:
        """Start a send on an idle keep-alive connection, answered by `done(token, outcome)`
        (never before this returns); False, with nothing started, when none is idle."""
        pool = self._pool
        if pool is None or not pool.idle:
            return False
        pool.idle.pop().push(self._request, pool.loop.time() + self._timeout, done, token)
        return True

    def _retry_pushed(self, done: Done, token: Any) -> None:
        if not self._retry_ok or self._pool is None:
            done(token, ERROR)
            return
        task = self._pool.loop.create_task(self._resend(self._pool, done, token))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _resend(self, pool: _Pool, done: Done, token: Any) -> None:
        # The pushed attempt was the first: one more, like `send`'s retry.
        outcome = await self._exchange(pool, self._request, self._timeout, False)
        done(token, outcome)

    async def probe(self) -> bool:
        if self._invalid is not None:
            return False
        pool = self._probe_pool
        if pool is None:
            pool = self._probe_pool = self._new_pool(_PROBE_CONNECTIONS, self._probe_timeout, False)
        outcome = await self._exchange(pool, self._probe_request, self._probe_timeout, True)
        return outcome in ("2xx", "3xx")

    @staticmethod
    async def _exchange(pool: _Pool, data: bytes, limit_s: float, retry_ok: bool) -> str:
        deadline = pool.loop.time() + limit_s
        attempts = 2 if retry_ok else 1
        while True:
            attempts -= 1
            if pool.idle:
                conn = pool.idle.pop()
            else:
                try:
                    conn = await pool.acquire_slow(deadline)
                except TimeoutError:
                    return TIMEOUT
                except (OSError, ssl.SSLError, ssl.CertificateError):
                    return CONNECT_ERROR
            waiter = conn.request(data, deadline)
            try:
                outcome = await waiter
            except asyncio.CancelledError:
                conn.abort()  # mid-exchange: the connection cannot be reused
                raise
            if outcome != _RETRY:
                return outcome
            if attempts <= 0:
                return ERROR

    async def close(self) -> None:
        for pool in (self._pool, self._probe_pool):
            if pool is not None:
                pool.close()
        self._pool = self._probe_pool = None
        await asyncio.sleep(0)  # let transports run their close callbacks
