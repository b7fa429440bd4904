"""HTTP/1.1 executor: one keep-alive aiohttp session per target, everything prepared up front."""

from __future__ import annotations

import ssl

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..targets import Target, expand_header
from . import tls
from .outcome import exception_outcome, http_outcome

USER_AGENT = "kar98k-loadpod"
_PROBE_CONNECTIONS = 2


def prepared_headers(target: Target) -> CIMultiDictProxy[str]:
    """Target headers with '${NAME}' expanded once; read-only so concurrent sends share it."""
    headers: CIMultiDict[str] = CIMultiDict({"User-Agent": USER_AGENT})
    for key, value in target.headers.items():
        headers[key] = expand_header(key, value)
    return CIMultiDictProxy(headers)


class Http1Executor:
    """Sends one target's requests over a pool of up to `max_in_flight` keep-alive connections.

    Health probes use their own small session so a saturated pool cannot starve them and
    make a busy, healthy target look dead.
    """

    def __init__(self, target: Target, max_in_flight: int) -> None:
        self._target = target
        self._limit = max(1, max_in_flight)
        self._url = URL(target.url)
        self._method = target.method
        self._headers = prepared_headers(target)
        self._body = target.body.encode() if target.body is not None else None
        self._timeout = aiohttp.ClientTimeout(total=target.timeout)
        check = target.health_check
        self._probe_url = self._url.join(URL(check.path if check else "/"))
        self._probe_timeout = aiohttp.ClientTimeout(total=check.timeout if check else 2.0)
        self._session: aiohttp.ClientSession | None = None
        self._probe_session: aiohttp.ClientSession | None = None

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        # Created lazily: aiohttp sessions belong to the running loop.
        context: ssl.SSLContext | bool = False
        if self._target.uses_tls:
            context = tls.client_context(
                verify=not self._target.tls_insecure_skip_verify, alpn=["http/1.1"]
            )
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ssl=context)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,  # bodies are discarded: don't spend CPU inflating them
            cookie_jar=aiohttp.DummyCookieJar(),  # no state carried between requests
            trust_env=False,
        )

    async def send(self) -> str:
        try:
            session = self._session
            if session is None:
                session = self._session = self._new_session(self._limit)
            async with session.request(
                self._method,
                self._url,
                headers=self._headers,
                data=self._body,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                # Drain fully so the connection goes back to the keep-alive pool.
                content = resp.content
                while await content.readany():
                    pass
                return http_outcome(resp.status)
        except Exception as exc:  # CancelledError is a BaseException and passes through
            return exception_outcome(exc)

    async def probe(self) -> bool:
        try:
            session = self._probe_session
            if session is None:
                session = self._probe_session = self._new_session(_PROBE_CONNECTIONS)
            async with session.get(
                self._probe_url,
                headers=self._headers,
                allow_redirects=False,
                timeout=self._probe_timeout,
            ) as resp:
                await resp.read()
                return 200 <= resp.status < 400
        except Exception:
            return False

    async def close(self) -> None:
        for session in (self._session, self._probe_session):
            if session is not None:
                await session.close()
        self._session = self._probe_session = None
