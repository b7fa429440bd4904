"""Opt-in HTTP/1.1 pipelining, driven by the real pacer against a raw server on 127.0.0.1.

The server parses requests itself, so it sees how they arrive: several per read when the
client batches them, never more than the depth outstanding on one connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine

import pytest
import uvloop
from kar98k_loadpod.executors import FastHttp1Executor, make_executor
from kar98k_loadpod.executors.http1_pipeline import (
    MAX_DEPTH,
    PIPELINE_ENV,
    PipelinedHttp1Executor,
    pipeline_depth,
)
from kar98k_loadpod.pacer import Pacer, Slot
from kar98k_loadpod.plan import Arrival
from kar98k_loadpod.recorder import Recorder
from kar98k_loadpod.targets import Target
from kit.wait import wait_until

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class PipeServer(asyncio.Protocol):
    """Answers every complete GET in order; with `close_after`, closes a connection (saying
    so in that answer) after that many answers, whatever else is queued on it."""

    batches: list[int]
    answered: list[int]

    def __init__(self, close_after: int | None, batches: list[int], answered: list[int]) -> None:
        self.close_after = close_after
        self.batches = batches  # complete requests found per read, every connection
        self.answered = answered  # one element per answer, shared
        self.buffer = b""
        self.count = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        *requests, self.buffer = self.buffer.split(b"\r\n\r\n")
        self.batches.append(len(requests))
        out = []
        for _ in requests:
            self.count += 1
            self.answered.append(1)
            if self.close_after is not None and self.count >= self.close_after:
                out.append(CLOSE)
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            out.append(OK)
        self.transport.write(b"".join(out))


async def run_paced(
    close_after: int | None, depth: int, rate: float, seconds: float
) -> tuple[Recorder, list[int], list[int], int]:
    batches: list[int] = []
    answered: list[int] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: PipeServer(close_after, batches, answered), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    target = Target.model_validate({"name": "t", "url": f"http://127.0.0.1:{port}/"})
    executor = PipelinedHttp1Executor(target, 64, depth)
    rec = Recorder()
    pacer = Pacer(rec)
    pacer.start()
    try:
        pacer.configure(
            rate=rate,
            arrival=Arrival.UNIFORM,
            seed=1,
            max_in_flight=64,
            slots=[Slot("t", executor, 1.0, rec.target("t"))],
            lease_seconds=seconds,  # the lease ends the sending: a bounded count
        )
        await wait_until(lambda: pacer.rate == 0, within=seconds + 10, what="lease end")
        assert await pacer.wait_idle(10.0)
        sent = rec.targets["t"].requests
    finally:
        await pacer.close()
        server.close()
    return rec, batches, answered, sent


async def scenario_batched_in_order_and_bounded() -> None:
    rec, batches, answered, sent = await run_paced(None, 4, 4000.0, 0.5)
    stats = rec.targets["t"]
    # 4,000/s for 0.5 s: ~2,000 sends, each answered once, all 2xx, none lost.
    assert 1900 <= sent <= 2100
    assert stats.outcomes == {"2xx": sent}
    assert len(answered) == sent
    assert max(batches) > 1  # the sends of one wake-up went out in one write
    assert max(batches) <= 4  # never more than the depth outstanding on a connection
    assert stats.raw.count == stats.corrected.count == sent


async def scenario_server_closing_mid_pipeline_retries_the_rest() -> None:
    rec, batches, answered, sent = await run_paced(3, 8, 4000.0, 0.3)
    stats = rec.targets["t"]
    # Connections close after 3 answers while up to 8 are queued: the unanswered ones go
    # again on a fresh connection. Every send gets exactly one answer, none an error.
    assert stats.outcomes == {"2xx": sent}
    assert len(answered) == sent
    assert max(batches) > 3  # pipelined beyond the close, so retries were needed


@pytest.mark.parametrize(
    "scenario",
    [scenario_batched_in_order_and_bounded, scenario_server_closing_mid_pipeline_retries_the_rest],
)
def test_pipelining_on_uvloop(scenario: Callable[[], Coroutine[None, None, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


def test_pipelining_is_opt_in_and_only_for_safe_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    get = Target.model_validate({"name": "t", "url": "http://127.0.0.1:1/"})
    post = Target.model_validate({"name": "t", "url": "http://127.0.0.1:1/", "method": "POST"})
    head = Target.model_validate({"name": "t", "url": "http://127.0.0.1:1/", "method": "HEAD"})
    monkeypatch.delenv(PIPELINE_ENV, raising=False)
    assert pipeline_depth(get) == 1
    assert type(make_executor(get, 8)) is FastHttp1Executor
    monkeypatch.setenv(PIPELINE_ENV, "8")
    assert pipeline_depth(get) == 8
    assert isinstance(make_executor(get, 8), PipelinedHttp1Executor)
    assert pipeline_depth(post) == pipeline_depth(head) == 1
    assert type(make_executor(post, 8)) is FastHttp1Executor
    monkeypatch.setenv(PIPELINE_ENV, "100000")
    assert pipeline_depth(get) == MAX_DEPTH
    monkeypatch.setenv(PIPELINE_ENV, "many")
    assert pipeline_depth(get) == 1


async def scenario_timeout_ends_every_request_on_the_connection() -> None:
    # The server reads but never answers: the three requests queued on one connection all
    # end as 'timeout' when the head's deadline passes, and the connection is not reused.
    seen: list[bytes] = []

    class Silent(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            seen.append(data)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    target = Target.model_validate({"name": "t", "url": url, "timeout": "200ms"})
    executor = PipelinedHttp1Executor(target, 8, 4)
    answers: list[tuple[int, str]] = []
    try:
        opening = asyncio.ensure_future(executor.send())  # opens the one connection
        await wait_until(lambda: executor._pool is not None and executor._pool.count == 1)
        assert await opening == "timeout"
        # That connection was aborted; open a fresh idle one for the pushes.
        await wait_until(lambda: executor._pool is not None and executor._pool.count == 0)
        assert executor._pool is not None
        conn = await executor._pool.acquire_slow(loop.time() + 5)
        executor._pool.release(conn)
        for i in range(3):
            assert executor.push(lambda token, outcome: answers.append((token, outcome)), i)
        await wait_until(lambda: len(answers) == 3, within=5.0, what="three timeouts")
        assert answers == [(0, "timeout"), (1, "timeout"), (2, "timeout")]
        assert conn.closed and conn not in executor._pool.idle
        assert b"".join(seen).count(b"GET / HTTP/1.1") == 4  # one batch write of three
    finally:
        await executor.close()
        server.close()


def test_pipelined_timeout_on_uvloop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario_timeout_ends_every_request_on_the_connection())
