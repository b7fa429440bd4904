"""The lean HTTP/1.1 executor against real servers on 127.0.0.1 (no mocked clients)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trustme
import uvloop
from aiohttp import web
from kar98k_loadpod.executors import Http1Executor, make_executor
from kar98k_loadpod.executors.http1_fast import FastHttp1Executor, render_request
from kar98k_loadpod.targets import Target
from kit.wait import wait_until

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp server that records the client ports (one per connection) it served."""

    def __init__(self) -> None:
        self.peers: set[int] = set()
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def start(
        self,
        routes: dict[str, Handler],
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_timeout: float = 75.0,
    ) -> Server:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer:
                self.peers.add(peer[1])
            body = await request.read()
            self.requests.append((request.method, request.path_qs, dict(request.headers), body))
            return await handler(request)

        app = web.Application(middlewares=[record])
        for path, handler in routes.items():
            app.router.add_route("*", path, handler)
        self.runner = web.AppRunner(app, keepalive_timeout=keepalive_timeout)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = self.runner.addresses[0][1]
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def ok(_: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def sized(_: web.Request) -> web.StreamResponse:
    return web.Response(body=b"x" * 300_000)


async def fail(_: web.Request) -> web.StreamResponse:
    return web.Response(status=503, text="down")


async def missing(_: web.Request) -> web.StreamResponse:
    return web.Response(status=404)


async def redirect(_: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": "/"})


async def closing(_: web.Request) -> web.StreamResponse:
    resp = web.Response(text="bye")
    resp.force_close()
    return resp


async def slow(_: web.Request) -> web.StreamResponse:
    await asyncio.sleep(2.0)
    return web.Response(text="late")


async def echo(request: web.Request) -> web.StreamResponse:
    return web.Response(text="echo")


ROUTES: dict[str, Handler] = {
    "/": ok,
    "/sized": sized,
    "/fail": fail,
    "/missing": missing,
    "/redirect": redirect,
    "/close": closing,
    "/slow": slow,
    "/echo": echo,
}


async def _chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(5):
        await resp.write(f"chunk-{i};".encode() * 100)
        await asyncio.sleep(0.001)
    await resp.write_eof()
    return resp


ROUTES["/chunked"] = _chunked


def target(url: str, **extra: Any) -> Target:
    return Target.model_validate({"name": "t", "url": url, **extra})


async def sends(executor: FastHttp1Executor, n: int) -> list[str]:
    return [await executor.send() for _ in range(n)]


async def scenario_ok_and_keep_alive(server: Server) -> None:
    ex = FastHttp1Executor(target(server.url + "/"), 8)
    try:
        assert await sends(ex, 20) == ["2xx"] * 20
        assert len(server.peers) == 1  # sequential sends reuse one connection
        method, path, headers, _ = server.requests[0]
        assert (method, path) == ("GET", "/")
        assert headers["Host"] == server.url.removeprefix("http://")
        assert headers["User-Agent"] == "kar98k-loadpod"
    finally:
        await ex.close()


async def scenario_chunked_response_then_reuse(server: Server) -> None:
    ex = FastHttp1Executor(target(server.url + "/chunked"), 4)
    try:
        assert await sends(ex, 5) == ["2xx"] * 5
        assert len(server.peers) == 1
    finally:
        await ex.close()


async def scenario_content_length_body_drained(server: Server) -> None:
    ex = FastHttp1Executor(target(server.url + "/sized"), 4)
    try:
        assert await sends(ex, 5) == ["2xx"] * 5
        assert len(server.peers) == 1  # the whole body was consumed each time
    finally:
        await ex.close()


async def scenario_status_classes_and_no_redirects(server: Server) -> None:
    outcomes = {}
    for path in ("/fail", "/missing", "/redirect"):
        ex = FastHttp1Executor(target(server.url + path), 4)
        outcomes[path] = await ex.send()
        await ex.close()
    assert outcomes == {"/fail": "5xx", "/missing": "4xx", "/redirect": "3xx"}
    assert [r[1] for r in server.requests] == ["/fail", "/missing", "/redirect"]


async def scenario_connection_close_then_reuse(server: Server) -> None:
    ex = FastHttp1Executor(target(server.url + "/close"), 4)
    try:
        assert await sends(ex, 3) == ["2xx"] * 3
        assert len(server.peers) == 3  # each 'Connection: close' retired its connection
    finally:
        await ex.close()


async def scenario_server_closes_idle_keep_alive_connection(_: Server) -> None:
    srv = await Server().start(ROUTES, keepalive_timeout=0.1)
    ex = FastHttp1Executor(target(srv.url + "/"), 4)
    try:
        assert await ex.send() == "2xx"
        # The server drops the idle connection; the pool notices and forgets it.
        await wait_until(lambda: ex._pool is not None and not ex._pool.idle)
        assert await ex.send() == "2xx"
        assert len(srv.peers) == 2
    finally:
        await ex.close()
        await srv.stop()


async def scenario_timeout_then_recovers(server: Server) -> None:
    ex = FastHttp1Executor(target(server.url + "/slow", timeout=0.2), 4)
    try:
        start = time.monotonic()
        assert await ex.send() == "timeout"
        assert 0.18 < time.monotonic() - start < 1.5
    finally:
        await ex.close()
    ex = FastHttp1Executor(target(server.url + "/", timeout=0.2), 4)
    try:
        assert await ex.send() == "2xx"
    finally:
        await ex.close()


async def scenario_timed_out_connection_is_not_reused(_: Server) -> None:
    """A late reply must never be taken as the answer to the next request."""
    seen = 0
    late_reply_sent = asyncio.Event()

    async def sometimes_slow(_: web.Request) -> web.StreamResponse:
        nonlocal seen
        seen += 1
        if seen == 1:
            await asyncio.sleep(0.5)
            late_reply_sent.set()
            return web.Response(status=500)
        return web.Response(text="ok")

    srv = await Server().start({"/": sometimes_slow})
    ex = FastHttp1Executor(target(srv.url + "/", timeout=0.2), 1)
    try:
        assert await ex.send() == "timeout"
        assert await ex.send() == "2xx"
        await asyncio.wait_for(late_reply_sent.wait(), 5.0)
        await asyncio.sleep(0.05)  # the late bytes reach the client
        assert await ex.send() == "2xx"
        assert len(srv.peers) == 2
    finally:
        await ex.close()
        await srv.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def scenario_refused_connection(_: Server) -> None:
    ex = FastHttp1Executor(target(f"http://127.0.0.1:{_free_port()}/"), 4)
    try:
        assert await ex.send() == "connect_error"
        assert await ex.probe() is False
    finally:
        await ex.close()


async def scenario_tls(_: Server) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    srv = await Server().start(ROUTES, ssl_context=server_ctx)
    try:
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        ex = FastHttp1Executor(target(srv.url + "/"), 4, ssl_context=trusting)
        assert await sends(ex, 3) == ["2xx"] * 3
        await ex.close()
        assert len(srv.peers) == 1

        # The default context does not know the test CA: verification fails.
        ex = FastHttp1Executor(target(srv.url + "/"), 4)
        assert await ex.send() == "connect_error"
        await ex.close()

        ex = FastHttp1Executor(target(srv.url + "/", tlsInsecureSkipVerify=True), 4)
        assert await ex.send() == "2xx"
        await ex.close()
    finally:
        await srv.stop()


async def scenario_body_headers_and_env(server: Server) -> None:
    os.environ["K98_TEST_SECRET"] = "s3cret"  # expanded once, when the executor is built
    t = target(
        server.url + "/echo?x=1&y=a%20b",
        method="POST",
        body='{"hello": "wörld"}',
        headers={"Authorization": "Bearer ${K98_TEST_SECRET}", "X-Trace": "abc"},
    )
    try:
        ex = FastHttp1Executor(t, 4)
    finally:
        del os.environ["K98_TEST_SECRET"]
    try:
        assert await sends(ex, 2) == ["2xx", "2xx"]
    finally:
        await ex.close()
    method, path, headers, body = server.requests[-1]
    assert (method, path) == ("POST", "/echo?x=1&y=a%20b")
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["X-Trace"] == "abc"
    assert body == '{"hello": "wörld"}'.encode()


async def scenario_head_request_keeps_connection_usable(server: Server) -> None:
    ex = FastHttp1Executor(target(server.url + "/sized", method="HEAD"), 4)
    try:
        assert await sends(ex, 4) == ["2xx"] * 4
        assert len(server.peers) == 1
    finally:
        await ex.close()


async def scenario_concurrency_bounded_by_max_in_flight(server: Server) -> None:
    ex = FastHttp1Executor(target(server.url + "/chunked"), 8)
    try:
        results = await asyncio.gather(*(ex.send() for _ in range(200)))
        assert results == ["2xx"] * 200
        assert len(server.peers) <= 8
    finally:
        await ex.close()


async def scenario_probe_uses_health_path(server: Server) -> None:
    good = FastHttp1Executor(
        target(server.url + "/fail", healthCheck={"path": "/", "timeout": "1s"}), 4
    )
    bad = FastHttp1Executor(
        target(server.url + "/", healthCheck={"path": "/fail", "timeout": "1s"}), 4
    )
    try:
        assert await good.probe() is True
        assert await bad.probe() is False
    finally:
        await good.close()
        await bad.close()


async def _raw_server(
    reply: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    srv = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    return srv, f"http://127.0.0.1:{port}/"


async def scenario_body_delimited_by_close(_: Server) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"y" * 5000)
        await writer.drain()
        writer.close()

    srv, url = await _raw_server(reply)
    ex = FastHttp1Executor(target(url), 4)
    try:
        assert await sends(ex, 3) == ["2xx"] * 3
    finally:
        await ex.close()
        srv.close()


async def scenario_close_without_answer_and_garbage_are_errors(_: Server) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    for handler in (hang_up, garbage):
        srv, url = await _raw_server(handler)
        ex = FastHttp1Executor(target(url), 4)
        try:
            assert await ex.send() == "error"
        finally:
            await ex.close()
            srv.close()


async def scenario_cancelled_send_retires_its_connection(_: Server) -> None:
    calls = 0
    late_reply_sent = asyncio.Event()

    async def first_slow(_: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.5)
            late_reply_sent.set()
            return web.Response(status=500)
        return web.Response(text="ok")

    srv = await Server().start({"/": first_slow})
    ex = FastHttp1Executor(target(srv.url + "/", timeout=5), 1)
    try:
        task = asyncio.create_task(ex.send())
        await wait_until(lambda: calls == 1)  # the request is at the server
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await ex.send() == "2xx"
        await asyncio.wait_for(late_reply_sent.wait(), 5.0)  # the late 500 is on its way ...
        await asyncio.sleep(0.05)  # ... and has arrived; it must not surface anywhere
        assert await ex.send() == "2xx"
        assert len(srv.peers) == 2
    finally:
        await ex.close()
        await srv.stop()


def test_render_request() -> None:
    t = target(
        "http://user:pa%20ss@example.test:8080/a b?q=1",
        method="put",
        headers={"content-length": "99", "X-A": "1"},
    )
    raw = render_request(t).decode()
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0] == "PUT /a%20b?q=1 HTTP/1.1"
    assert "Host: example.test:8080" in lines
    assert "Content-Length: 0" in lines and "content-length: 99" not in lines
    assert any(line.startswith("Authorization: Basic ") for line in lines)
    assert body == ""
    assert b"Host: example.test\r\n" in render_request(target("https://example.test:443/"))


async def scenario_header_injection_refused(server: Server) -> None:
    # The model refuses CR/LF in header values; an expanded variable can still carry them.
    os.environ["K98_TEST_CRLF"] = "a\r\nX-Evil: 1"
    ex = FastHttp1Executor(target(server.url + "/", headers={"X-Bad": "${K98_TEST_CRLF}"}), 4)
    del os.environ["K98_TEST_CRLF"]
    try:
        assert await ex.send() == "error"
        assert await ex.probe() is False
    finally:
        await ex.close()
    assert server.requests == []


Scenario = Callable[[Server], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    name.removeprefix("scenario_"): fn
    for name, fn in sorted(globals().items())
    if name.startswith("scenario_")
}


async def _run(name: str) -> None:
    srv = await Server().start(ROUTES)
    try:
        await SCENARIOS[name](srv)
    finally:
        await srv.stop()


@pytest.mark.parametrize("name", SCENARIOS)
async def test_default_loop(name: str) -> None:
    await _run(name)


@pytest.mark.parametrize("name", SCENARIOS)
def test_uvloop(name: str) -> None:
    """The same scenarios on uvloop, which the load pod runs on."""

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_run(name))


def test_make_executor_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    t = target("http://127.0.0.1:1/")
    monkeypatch.delenv("KAR98K_HTTP1_CLIENT", raising=False)
    assert isinstance(make_executor(t, 4), FastHttp1Executor)
    monkeypatch.setenv("KAR98K_HTTP1_CLIENT", "aiohttp")
    assert isinstance(make_executor(t, 4), Http1Executor)
    monkeypatch.setenv("KAR98K_HTTP1_CLIENT", "fast")
    assert isinstance(make_executor(t, 4), FastHttp1Executor)
