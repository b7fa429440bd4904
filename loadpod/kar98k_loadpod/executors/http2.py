"""HTTP/2 executor: httpx with h2 only, over TLS (ALPN 'h2') or cleartext prior-knowledge h2c.

HTTP/1.1 is switched off on purpose: a target declared `http2` that cannot speak h2 fails
visibly instead of being measured over HTTP/1.1 by a silent ALPN fallback.
"""

from __future__ import annotations

import math
import ssl

import h2.events
import httpx

from ..targets import Target, expand_env
from . import tls
from .http1 import USER_AGENT
from .outcome import exception_outcome, http_outcome

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# h2 multiplexes: one connection carries ~100 concurrent streams (a common server limit).
_STREAMS_PER_CONNECTION = 100


def connection_lost(exc: BaseException) -> bool:
    """The connection died under this request: GOAWAY, or the socket closed mid-exchange.

    Servers retire h2 connections routinely (e.g. after N requests each) and some drop
    the streams still open on them; httpcore then fails those requests. Browsers retry
    them, and so does this executor: once, on a fresh connection, for idempotent methods.
    A second failure is recorded as usual.
    """
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return True
    if not isinstance(exc, httpx.RemoteProtocolError):
        return False
    cause = exc.__cause__
    event = cause.args[0] if cause is not None and cause.args else None
    return isinstance(event, h2.events.ConnectionTerminated)


class Http2Executor:
    """One httpx client per target for load, a second tiny one for health probes."""

    def __init__(self, target: Target, max_in_flight: int) -> None:
        self._target = target
        self._url = httpx.URL(target.url)
        self._method = target.method
        self._idempotent = target.method in IDEMPOTENT
        headers = {"user-agent": USER_AGENT}
        headers.update({k.lower(): expand_env(v) for k, v in target.headers.items()})
        self._headers = headers
        self._body = target.body.encode() if target.body is not None else None
        self._timeout = target.timeout
        self._connections = max(1, math.ceil(max_in_flight / _STREAMS_PER_CONNECTION))
        check = target.health_check
        path = check.path if check else "/"
        self._probe_url = self._url.join(path)
        self._probe_timeout = check.timeout if check else 2.0
        self._client: httpx.AsyncClient | None = None
        self._probe_client: httpx.AsyncClient | None = None

    def _new_client(self, connections: int, timeout: float) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = False
        if self._target.uses_tls:
            verify = tls.client_context(
                verify=not self._target.tls_insecure_skip_verify, alpn=["h2"]
            )
        return httpx.AsyncClient(
            http1=False,
            http2=True,
            verify=verify,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            follow_redirects=False,
            trust_env=False,
        )

    async def send(self) -> str:
        try:
            client = self._client
            if client is None:
                client = self._client = self._new_client(self._connections, self._timeout)
            try:
                return await self._exchange(client)
            except Exception as exc:
                if not (self._idempotent and connection_lost(exc)):
                    raise
            return await self._exchange(client)  # once more, on a fresh connection
        except Exception as exc:  # CancelledError is a BaseException and passes through
            return exception_outcome(exc)

    async def _exchange(self, client: httpx.AsyncClient) -> str:
        # httpx bounds every phase (pool wait, connect, write, each read) by the target
        # timeout. No asyncio.timeout around it: cancelling a request midway corrupts
        # httpcore's h2 stream accounting ("semaphore released too many times").
        request = client.build_request(
            self._method, self._url, headers=self._headers, content=self._body
        )
        response = await client.send(request, stream=True)
        try:
            async for _ in response.aiter_raw():
                pass  # drained, not kept
        finally:
            await response.aclose()
        return http_outcome(response.status_code)

    async def probe(self) -> bool:
        try:
            client = self._probe_client
            if client is None:
                client = self._probe_client = self._new_client(1, self._probe_timeout)
            response = await client.get(self._probe_url, headers=self._headers)
            return 200 <= response.status_code < 400
        except Exception:
            return False

    async def close(self) -> None:
        for client in (self._client, self._probe_client):
            if client is not None:
                await client.aclose()
        self._client = self._probe_client = None
