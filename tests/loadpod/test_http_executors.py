"""One scenario suite for every HTTP executor: the lean HTTP/1.1 client, the aiohttp one, the
lean HTTP/2 client and the httpx one, each against the real demo server of its protocol.

Behaviour only one executor has (connection pools, multiplexing, GOAWAY, uvloop) is tested in
that executor's own module; what every HTTP executor must do is written here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trustme
from kar98k.demo import DemoH2Server, DemoHttpServer
from kar98k_loadpod.executors import (
    Executor,
    FastHttp1Executor,
    FastHttp2Executor,
    Http1Executor,
    Http2Executor,
)
from kar98k_loadpod.targets import Target
from kit.servers import LOOPBACK, executors_closed_after, server_ssl_context

Server = DemoHttpServer | DemoH2Server


@dataclass(frozen=True)
class Kind:
    """One HTTP executor: its class, the target protocol and the wire version it speaks."""

    name: str
    make: Callable[[Target, int], Executor]
    protocol: str
    version: str  # what the server's counter records: "1.1" or "2"

    def server(self, ssl_context: Any = None) -> Server:
        if self.protocol == "http2":
            return DemoH2Server(LOOPBACK, ssl_context=ssl_context)
        return DemoHttpServer(LOOPBACK, ssl_context=ssl_context)


KINDS = [
    Kind("http1-fast", FastHttp1Executor, "http", "1.1"),
    Kind("http1-aiohttp", Http1Executor, "http", "1.1"),
    Kind("http2-fast", FastHttp2Executor, "http2", "2"),
    Kind("http2-httpx", Http2Executor, "http2", "2"),
]

Build = Callable[..., Executor]


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


@pytest.fixture
async def build(kind: Kind) -> AsyncIterator[Build]:
    """`build(max_in_flight=8, **target_fields)` of this kind; closed after the test."""
    async with executors_closed_after(kind.make, protocol=kind.protocol) as make:
        yield make


@pytest.fixture
async def server(kind: Kind) -> AsyncIterator[Server]:
    async with kind.server() as srv:
        yield srv


@pytest.fixture
async def tls_server(kind: Kind, server_cert: trustme.LeafCert) -> AsyncIterator[Server]:
    async with kind.server(server_ssl_context(server_cert)) as srv:
        yield srv


async def outcomes(ex: Executor, n: int = 3) -> list[str]:
    return [await ex.send() for _ in range(n)]


async def test_status_classes_without_redirects(kind: Kind, server: Server, build: Build) -> None:
    base = server.url
    assert await outcomes(build(url=base + "/fast")) == ["2xx"] * 3
    assert await outcomes(build(url=base + "/status/503")) == ["5xx"] * 3
    assert await outcomes(build(url=base + "/status/404")) == ["4xx"] * 3
    # Redirects are not followed: the 3xx itself is the outcome.
    assert await outcomes(build(url=base + "/status/302")) == ["3xx"] * 3
    post = build(url=base + "/fast", method="POST", body='{"x": 1}')
    assert await outcomes(post) == ["2xx"] * 3
    assert server.counter.count("/fast") == 6
    assert server.counter.by_protocol == {kind.version: 15}


async def test_concurrent_sends(kind: Kind, server: Server, build: Build) -> None:
    ex = build(max_in_flight=4, url=server.url + "/fast")
    assert await asyncio.gather(*(ex.send() for _ in range(100))) == ["2xx"] * 100
    assert server.counter.by_protocol == {kind.version: 100}


async def test_timeout(server: Server, build: Build) -> None:
    assert await outcomes(build(url=server.url + "/slow", timeout="20ms"), 2) == ["timeout"] * 2


async def test_refused(closed_port: int, build: Build) -> None:
    ex = build(url=f"http://127.0.0.1:{closed_port}/", timeout="1s")
    assert await outcomes(ex, 2) == ["connect_error"] * 2
    assert await ex.probe() is False


async def test_header_env_expansion(
    server: Server, monkeypatch: pytest.MonkeyPatch, build: Build
) -> None:
    monkeypatch.setenv("K98_TEST_TOKEN", "s3cret")
    ex = build(
        url=server.url + "/fast",
        headers={"Authorization": "Bearer ${K98_TEST_TOKEN}", "X-Plain": "v"},
    )
    assert await ex.send() == "2xx"
    seen = server.last_headers
    assert seen["authorization"] == "Bearer s3cret"
    assert seen["x-plain"] == "v"


async def test_tls_verification(kind: Kind, tls_server: Server, build: Build) -> None:
    url = tls_server.url + "/fast"
    assert url.startswith("https://")
    assert await build(url=url).send() == "connect_error"  # the test CA is not trusted
    assert await outcomes(build(url=url, tls_insecure_skip_verify=True)) == ["2xx"] * 3
    assert tls_server.counter.by_protocol == {kind.version: 3}  # h2 negotiated by ALPN


async def test_tls_trusted_ca(
    kind: Kind, tls_server: Server, trust_test_ca: object, build: Build
) -> None:
    assert await build(url=tls_server.url + "/status/503").send() == "5xx"
    assert tls_server.counter.by_protocol == {kind.version: 1}


async def test_probe(server: Server, build: Build) -> None:
    ex = build(url=server.url + "/fast", health_check={"path": "/healthz"})
    assert await ex.probe() is True
    server.set_healthy(False)
    assert await ex.probe() is False
    redirect = build(url=server.url + "/", health_check={"path": "/status/302"})
    assert await redirect.probe() is True  # 200-399 is healthy
    assert server.counter.count("/healthz") == 2
