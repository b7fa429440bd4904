"""The lean HTTP/2 executor (http2_fast.py) against the demo servers and a scripted h2 server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from kar98k.demo import DemoH2Server, DemoHttpServer
from kar98k_loadpod.executors import (
    FastHttp2Executor,
    Http2Executor,
    make_executor,
)
from kar98k_loadpod.executors import h2_wire as wire
from kar98k_loadpod.targets import Target
from kit.h2_scripted import Script, ScriptedH2Server
from kit.servers import executors_closed_after

Factory = Callable[..., FastHttp2Executor]


@pytest.fixture
async def fast() -> AsyncIterator[Factory]:
    """FastHttp2Executor(Target(**fields)), closed after the test."""
    async with executors_closed_after(FastHttp2Executor, protocol="http2") as build:
        yield build


def open_connections(ex: FastHttp2Executor) -> int:
    pool = ex._pool
    return 0 if pool is None else len(pool.conns)


async def test_env_switch_selects_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    target = Target.model_validate({"name": "t", "url": "http://127.0.0.1:1/", "protocol": "http2"})
    monkeypatch.setenv("KAR98K_HTTP2_CLIENT", "fast")
    assert isinstance(make_executor(target, 8), FastHttp2Executor)
    monkeypatch.setenv("KAR98K_HTTP2_CLIENT", "httpx")
    assert isinstance(make_executor(target, 8), Http2Executor)


async def test_h2c_prior_knowledge_multiplexes(h2c_server: DemoH2Server, fast: Factory) -> None:
    ex = fast(url=h2c_server.url + "/fast")
    assert await asyncio.gather(*(ex.send() for _ in range(20))) == ["2xx"] * 20
    assert h2c_server.counter.by_protocol == {"2": 20}
    assert open_connections(ex) == 1


async def test_timeout_resets_only_its_stream(h2c_server: DemoH2Server, fast: Factory) -> None:
    # send() hits /slow (50-150 ms) with a 20 ms budget; probes hit /fast on the same connection.
    ex = fast(
        url=h2c_server.url + "/slow",
        timeout="20ms",
        health_check={"path": "/fast", "timeout": "2s"},
    )
    assert await ex.probe() is True
    conn = ex._pool.conns[0] if ex._pool else None
    results = await asyncio.gather(*(ex.send() for _ in range(5)), *(ex.probe() for _ in range(5)))
    assert results[:5] == ["timeout"] * 5
    assert results[5:] == [True] * 5
    assert ex._pool is not None and ex._pool.conns == [conn]  # the connection survived
    assert not conn.streams if conn else False
    assert await ex.probe() is True


async def test_stall_times_out_then_recovers(h2c_server: DemoH2Server, fast: Factory) -> None:
    ex = fast(url=h2c_server.url + "/fast", timeout="100ms")
    assert await ex.send() == "2xx"
    h2c_server.stall(0.3)
    assert await asyncio.gather(*(ex.send() for _ in range(5))) == ["timeout"] * 5
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 3.0
    while await ex.send() != "2xx":
        assert loop.time() < give_up
    assert await ex.send() == "2xx"


async def test_connection_headers_are_dropped(h2c_server: DemoH2Server, fast: Factory) -> None:
    """Header expansion is in the shared suite; h2 also drops connection-specific headers."""
    ex = fast(url=h2c_server.url + "/fast", headers={"Connection": "keep-alive", "X-A": "b"})
    assert await ex.send() == "2xx"
    seen = h2c_server.last_headers
    assert seen["x-a"] == "b"
    assert seen["user-agent"] == "kar98k-loadpod"
    assert "connection" not in seen  # connection-specific headers are illegal in h2


async def test_invalid_header_is_an_error(fast: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    # The model refuses CR/LF in header values; an expanded variable can still carry them.
    monkeypatch.setenv("K98_TEST_CRLF", "a\r\nb")
    ex = fast(url="http://127.0.0.1:1/", headers={"X-Bad": "${K98_TEST_CRLF}"})
    assert await ex.send() == "error"
    assert await ex.probe() is False


async def test_500_concurrent_sends(h2c_server: DemoH2Server, fast: Factory) -> None:
    ex = fast(max_in_flight=500, url=h2c_server.url + "/fast")
    assert await asyncio.gather(*(ex.send() for _ in range(500))) == ["2xx"] * 500
    assert h2c_server.counter.by_protocol == {"2": 500}
    assert 1 <= open_connections(ex) <= 4


@pytest.mark.parametrize("size", [11, 300_000])  # the large one outgrows the 64 KiB window
async def test_post_with_body(h2c_server: DemoH2Server, fast: Factory, size: int) -> None:
    ex = fast(url=h2c_server.url + "/fast", method="POST", body="x" * size, timeout="5s")
    assert await asyncio.gather(*(ex.send() for _ in range(4))) == ["2xx"] * 4
    assert h2c_server.last_headers["content-length"] == str(size)


async def test_connection_retirement_is_retried(fast: Factory) -> None:
    """The server retires connections (GOAWAY) every 50 requests: GETs never fail."""
    async with DemoH2Server(max_requests_per_connection=50) as server:
        ex = fast(max_in_flight=16, url=server.url + "/fast")
        gate = asyncio.Semaphore(16)

        async def one() -> str:
            async with gate:
                return await ex.send()

        assert await asyncio.gather(*(one() for _ in range(300))) == ["2xx"] * 300
        await ex.close()


async def test_server_restart_reconnects(fast: Factory) -> None:
    async with DemoH2Server() as server:
        port = server.port
        ex = fast(url=server.url + "/fast", timeout="1s")
        assert await ex.send() == "2xx"
    assert await ex.send() == "connect_error"
    async with DemoH2Server(port=port):
        assert await ex.send() == "2xx"


async def test_cancelled_send_leaves_connection_usable(
    h2c_server: DemoH2Server, fast: Factory
) -> None:
    ex = fast(url=h2c_server.url + "/slow", health_check={"path": "/fast"})
    task = asyncio.create_task(ex.send())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ex.probe() is True
    assert await ex.send() == "2xx"
    assert open_connections(ex) == 1


async def test_http1_only_server_fails_fast(http1_server: DemoHttpServer, fast: Factory) -> None:
    """An HTTP/1.1-only target declared http2 fails visibly, it is never measured over 1.1."""
    ex = fast(url=http1_server.url + "/fast", timeout="2s")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await ex.send() in ("error", "connect_error")
    assert loop.time() - started < 1.0


# --- the hand-framed protocol against a scripted server (tests/kit/h2_scripted.py) -------------


async def test_goaway_retries_only_streams_the_server_dropped(fast: Factory) -> None:
    """GOAWAY keeps streams up to last_stream_id (answered afterwards on the old connection);
    the ones above never reached the application and are sent again, once each."""
    async with ScriptedH2Server(Script(goaway_after=8)) as server:
        ex = fast(max_in_flight=8, url=server.url + "/")
        assert await asyncio.gather(*(ex.send() for _ in range(8))) == ["2xx"] * 8
        assert server.seen.dropped == 4
        assert server.seen.completed == 8  # 4 kept + 4 retried: none answered twice
        assert server.seen.connections == 2
        assert not server.seen.errors


@pytest.mark.parametrize(("size", "window"), [(1, 1000), (70_000, 1000), (70_000, 100_000)])
async def test_tiny_flow_control_windows(fast: Factory, size: int, window: int) -> None:
    """A 1,000-byte stream window given back 300 bytes at a time, a millisecond late, and
    three 70 kB bodies that outgrow the 64 kB connection window too: every body arrives
    whole, and never a byte beyond a window (h2 on the server side would fail the
    connection). Streams wait for the server's SETTINGS first: sent on the default 64 kB
    window, the first body overran it. (A 16-byte window took ~4,400 round trips of the
    1 ms credit timer per body: too slow for a shared machine.) With 100 kB stream windows,
    only the 64 kB connection window holds the three bodies back."""
    script = Script(initial_window=window, window_step=300)
    async with ScriptedH2Server(script) as server:
        ex = fast(url=server.url + "/", method="POST", body="x" * size, timeout="10s")
        assert await asyncio.gather(*(ex.send() for _ in range(3))) == ["2xx"] * 3
        assert server.seen.bodies == [size] * 3
        assert not server.seen.errors


async def test_max_concurrent_streams_is_obeyed(fast: Factory) -> None:
    async with ScriptedH2Server(Script(max_streams=2)) as server:
        ex = fast(max_in_flight=50, url=server.url + "/")
        assert await asyncio.gather(*(ex.send() for _ in range(40))) == ["2xx"] * 40
        assert server.seen.max_open <= 2
        assert server.seen.connections == 1
        assert not server.seen.errors


async def test_refused_stream_is_retried_other_resets_are_errors(fast: Factory) -> None:
    async with ScriptedH2Server(Script(refuse_first=1)) as server:
        ex = fast(url=server.url + "/")
        assert await ex.send() == "2xx"  # REFUSED_STREAM: not processed, safe to retry
        assert server.seen.completed == 1
    async with ScriptedH2Server(Script(reset_code=2)) as server:  # INTERNAL_ERROR
        ex = fast(url=server.url + "/")
        assert await ex.send() == "error"
        assert await ex.send() == "error"  # the connection itself survives resets
        assert server.seen.connections == 1


async def test_changing_server_hpack_table_keeps_statuses_right(fast: Factory) -> None:
    """Statuses outside HPACK's static table go into the server's dynamic table and are then
    sent as bare indices that shift with every new entry: a remembered block must be
    forgotten when the table changes, or a later answer gets an earlier status."""
    statuses = [299, 599, 299, 499, 599, 399, 299, 499, 399, 599, 299]
    async with ScriptedH2Server(Script(statuses=statuses)) as server:
        ex = fast(url=server.url + "/")
        got = [await ex.send() for _ in range(3 * len(statuses))]
        assert got == [f"{s // 100}xx" for s in statuses] * 3


async def test_continuation_padding_and_ping(fast: Factory) -> None:
    """A 40 kB response header (HEADERS + CONTINUATION), padded DATA, a PING per answer."""
    async with ScriptedH2Server(Script(big_header=40_000, padding=200, ping=True)) as server:
        ex = fast(url=server.url + "/")
        assert await asyncio.gather(*(ex.send() for _ in range(5))) == ["2xx"] * 5
        assert server.seen.pings_acked == 5
        assert not server.seen.errors


async def test_large_request_header_spans_continuation(fast: Factory) -> None:
    async with ScriptedH2Server() as server:
        ex = fast(url=server.url + "/", headers={f"X-Big-{i}": "v" * 8000 for i in range(3)})
        assert await ex.send() == "2xx"
        assert not server.seen.errors


async def test_exhausted_stream_ids_move_to_a_new_connection(fast: Factory) -> None:
    async with ScriptedH2Server() as server:
        ex = fast(url=server.url + "/", method="POST", body="b")  # POST: no retry budget
        assert await ex.send() == "2xx"
        assert ex._pool is not None
        old = ex._pool.conns[0]
        old.next_id = wire.MAX_STREAM_ID + 2  # the next stream id would not fit 31 bits
        assert await ex.send() == "2xx"  # nothing was sent on the old one: not a retry
        assert ex._pool.conns and ex._pool.conns[0] is not old and old.closed
        assert server.seen.connections == 2 and server.seen.completed == 2
