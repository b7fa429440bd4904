"""Opt-in HTTP/1.1 pipelining for the fast client: several requests per write, per connection.

Why: at tens of thousands of requests per second a load pod spends about half its CPU in the
kernel, one send() and one recv() per request. Pipelining the sends that fall due in one
pacer wake-up onto one connection turns k sends into one write (and usually the k answers
into one read). Off by default (`KAR98K_HTTP1_PIPELINE`, the depth; 1 = off): a server or
proxy that mishandles pipelining would be measured instead of the target.

Latency stays per request and honest: a request's raw latency runs from the moment the pacer
handed it over (before the batch is written) to the end of its own answer, so waiting behind
earlier answers on the same connection counts; corrected latency still runs from its
intended time. Only idempotent methods other than HEAD are pipelined (RFC 9112 §9.3.2).

Failure rules (docs/decisions.md, "Load pod: HTTP/1.1 pipelining"):
- The server closes after an answer while later requests wait on the connection: those were
  never answered and are retried once on a fresh connection, like the keep-alive race.
- A timeout, a parse error or the executor closing ends every request on the connection
  with the same outcome: they cannot be answered on it any more.
"""

from __future__ import annotations

import os
import ssl
from collections import deque
from typing import Any

from ..targets import Target
from .http1_fast import (
    _RETRY,
    _STATUS_KEYS,
    IDEMPOTENT,
    Done,
    FastHttp1Executor,
    _Conn,
    _Pool,
    _status_key,
)
from .outcome import ERROR

PIPELINE_ENV = "KAR98K_HTTP1_PIPELINE"
"""Requests a connection may carry at once with push(): 1 (default) = no pipelining."""
MAX_DEPTH = 64


def pipeline_depth(target: Target) -> int:
    """The depth `KAR98K_HTTP1_PIPELINE` asks for, 1 when unset, invalid, or when the
    target's method must not be pipelined."""
    try:
        depth = int(os.environ.get(PIPELINE_ENV, "1"))
    except ValueError:
        return 1
    if target.method not in IDEMPOTENT or target.method == "HEAD":
        return 1
    return max(1, min(MAX_DEPTH, depth))


class PipeConn(_Conn):
    """A keep-alive connection that may carry up to the pool's depth of pushed requests."""

    __slots__ = ("pending", "queued")

    def __init__(self, pool: _Pool) -> None:
        super().__init__(pool)
        self.pending: deque[tuple[Done, Any, float]] = deque()  # (done, token, deadline)
        self.queued = 0  # pushed but not yet written: the pool's next flush writes them

    def pipe(self, done: Done, token: Any, deadline: float) -> None:
        """Queue one request; `Batcher.flush` writes all queued ones at once."""
        pending = self.pending
        if not pending:
            self.deadline = deadline
            self.headers_done = False
            self.got_bytes = False
        pending.append((done, token, deadline))
        self.queued += 1

    def awaiting(self) -> bool:
        return bool(self.pending) or super().awaiting()

    def on_message_complete(self) -> None:
        pending = self.pending
        if not pending:
            super().on_message_complete()
            return
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers_done = False  # interim response: the real one follows
            return
        done, token, _ = pending.popleft()
        self.used = True
        self.headers_done = False
        klass = status // 100
        outcome = _STATUS_KEYS[klass] if 1 <= klass <= 5 else ERROR
        pool = self.pool
        if not parser.should_keep_alive() or self.closed:
            rest = list(pending)
            pending.clear()
            self.abort()
            done(token, outcome)
            for later, later_token, _ in rest:
                pool.retry(later, later_token)
            return
        if pending:
            self.deadline = pending[0][2]
            self.got_bytes = False
        elif pool.waiters:
            pool.release(self)
        else:
            pool.idle.append(self)
        done(token, outcome)  # may pipe the next send onto this connection

    def connection_lost(self, exc: Exception | None) -> None:
        pending = self.pending
        if not pending:
            super().connection_lost(exc)
            return
        self.closed = True
        self.pool.lost(self)
        rest = list(pending)
        pending.clear()
        self.queued = 0
        (done, token, _), later = rest[0], rest[1:]
        if self.headers_done:  # a body delimited by the close itself
            done(token, _status_key(self.parser.get_status_code()))
        elif self.used and not self.got_bytes:
            self.pool.retry(done, token)
        else:
            done(token, ERROR)
        for other, other_token, _ in later:
            self.pool.retry(other, other_token)

    def _finish(self, outcome: str) -> None:
        pending = self.pending
        if not pending:
            super()._finish(outcome)
            return
        rest = list(pending)
        pending.clear()
        self.queued = 0
        for done, token, _ in rest:
            if outcome == _RETRY:
                self.pool.retry(done, token)
            else:
                done(token, outcome)


class Batcher:
    """Fills connections with the sends of one loop iteration and writes each batch once."""

    __slots__ = ("_data", "_depth", "_dirty", "_filling", "_scheduled", "pool")

    def __init__(self, pool: _Pool, data: bytes, depth: int) -> None:
        self.pool = pool
        self._data = data
        self._depth = depth
        self._filling: PipeConn | None = None
        self._dirty: list[PipeConn] = []
        self._scheduled = False

    def push(self, deadline: float, done: Done, token: Any) -> bool:
        """Queue one request on the connection being filled in this loop iteration, or on
        an idle one; False when neither has room (the caller then sends the usual way)."""
        conn = self._filling
        if conn is None or conn.queued >= self._depth or conn.closed:
            idle = self.pool.idle
            if not idle:
                return False
            fresh = idle[-1]
            if not isinstance(fresh, PipeConn):
                return False
            conn = self._filling = fresh
            idle.pop()
            self._dirty.append(conn)
            if not self._scheduled:
                self._scheduled = True
                self.pool.loop.call_soon(self.flush)
        conn.pipe(done, token, deadline)
        return True

    def flush(self) -> None:
        """Write every connection's queued requests in one write each (after the pacer's
        wake-up has handed over all the sends due in it)."""
        self._scheduled = False
        self._filling = None
        dirty, self._dirty = self._dirty, []
        data = self._data
        for conn in dirty:
            count, conn.queued = conn.queued, 0
            if count and not conn.closed and conn.transport is not None:
                conn.transport.write(data * count)


class PipelinedHttp1Executor(FastHttp1Executor):
    """The fast client whose `push` pipelines up to `depth` requests per connection."""

    _conn_class = PipeConn

    def __init__(
        self,
        target: Target,
        max_in_flight: int,
        depth: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(target, max_in_flight, ssl_context=ssl_context)
        self._depth = depth
        self._batcher: Batcher | None = None

    def push(self, done: Done, token: Any) -> bool:
        pool = self._pool
        if pool is None:
            return False
        batcher = self._batcher
        if batcher is None or batcher.pool is not pool:
            batcher = self._batcher = Batcher(pool, self._request, self._depth)
        return batcher.push(pool.loop.time() + self._timeout, done, token)
