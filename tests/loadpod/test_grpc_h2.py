"""The hand-framed gRPC client (KAR98K_GRPC_CLIENT=h2) against real servers on 127.0.0.1.

The demo gRPC server (grpcio) judges our framing: it rejects a call whose headers or
length prefix are wrong. The scripted HTTP/2 server sends the shapes a real server may
answer with (trailers after DATA, trailers-only, no grpc-status, HTTP errors). The grpcio
executor's own tests are run again below with this client selected, so both clients are
held to the same outcome keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kar98k.demo import SAY_METHOD, DemoGrpcServer
from kar98k_loadpod.executors import (
    GRPC_CLIENT_ENV,
    Executor,
    GrpcExecutor,
    GrpcH2Executor,
    make_executor,
)
from kar98k_loadpod.executors.grpc_h2 import grpc_timeout, length_prefixed
from kit.h2_scripted import Script, ScriptedH2Server
from kit.servers import executors_closed_after
from kit.wait import wait_until

# The grpcio executor's tests, collected here a second time with the h2 client selected.
from test_executors import (  # noqa: F401  (collected by pytest)
    test_grpc_custom_method_error_codes,
    test_grpc_custom_method_via_reflection,
    test_grpc_health_ok,
    test_grpc_many_in_flight,
    test_grpc_metadata_env_expansion,
    test_grpc_probe_serving,
    test_grpc_unavailable,
    test_grpc_unresolvable_calls_are_errors,
    test_grpcs_trusted_ca,
    test_grpcs_verification,
)

ExecutorFactory = Callable[..., Executor]
HEALTH = "/grpc.health.v1.Health/Check"


@pytest.fixture(autouse=True)
def h2_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRPC_CLIENT_ENV, "h2")


@pytest.fixture
async def executor() -> AsyncIterator[ExecutorFactory]:
    """make_executor(Target(**fields)), closed after the test (the imported tests use it)."""
    async with executors_closed_after(make_executor) as build:
        yield build


@pytest.fixture
async def grpcio() -> AsyncIterator[Callable[..., GrpcExecutor]]:
    """The default (grpcio) executor, built directly, whatever the environment says."""
    async with executors_closed_after(GrpcExecutor) as build:
        yield build


async def pushed(ex: GrpcH2Executor, n: int) -> list[str]:
    """Push n calls; their outcomes by token order."""
    answers: dict[int, str] = {}
    for i in range(n):
        assert ex.push(answers.__setitem__, i)
    assert not answers  # never answered inside push
    await wait_until(lambda: len(answers) == n, within=10.0, what="all pushed answers")
    return [answers[i] for i in range(n)]


def test_wire_helpers() -> None:
    assert length_prefixed(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert grpc_timeout(0.1) == b"100m"
    assert grpc_timeout(0.0001) == b"1m"  # never 0: that would expire at once
    assert grpc_timeout(200_000.0) == b"200000S"  # 2e8 ms would need 9 digits


async def test_ok_calls_are_counted_at_the_server(
    grpc_server: DemoGrpcServer, executor: ExecutorFactory
) -> None:
    ex = executor(url=grpc_server.target_url, protocol="grpc")
    assert isinstance(ex, GrpcH2Executor)
    assert [await ex.send() for _ in range(20)] == ["grpc_OK"] * 20
    assert await pushed(ex, 50) == ["grpc_OK"] * 50
    assert grpc_server.counter.count(HEALTH) == 70


async def test_push_waits_for_the_request_and_a_connection(
    grpc_server: DemoGrpcServer, executor: ExecutorFactory
) -> None:
    ex = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        grpc={"method": SAY_METHOD, "message": {"text": "x"}},
    )
    assert isinstance(ex, GrpcH2Executor)
    assert ex.push(lambda *_: None, None) is False  # nothing resolved, no connection
    assert await ex.send() == "grpc_OK"
    assert await pushed(ex, 10) == ["grpc_OK"] * 10
    assert grpc_server.counter.count(SAY_METHOD) == 11


@pytest.mark.parametrize("code", [2, 5, 8, 9, 14, 16])
async def test_error_codes_match_the_grpcio_client(
    code: int,
    grpc_server: DemoGrpcServer,
    executor: ExecutorFactory,
    grpcio: Callable[..., GrpcExecutor],
) -> None:
    fields: dict[str, Any] = {
        "url": grpc_server.target_url,
        "protocol": "grpc",
        "grpc": {"method": SAY_METHOD, "message": {"failCode": code}},
    }
    ours = executor(**fields)
    assert isinstance(ours, GrpcH2Executor)
    theirs = await grpcio(**fields).send()
    assert theirs != "grpc_OK"
    assert await ours.send() == theirs
    assert await pushed(ours, 3) == [theirs] * 3


async def test_deadline_is_deadline_exceeded(
    grpc_server: DemoGrpcServer, executor: ExecutorFactory
) -> None:
    slow = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        timeout="100ms",
        grpc={"method": SAY_METHOD, "message": {"delayMs": 1000}},
    )
    assert isinstance(slow, GrpcH2Executor)
    assert await slow.send() == "grpc_DEADLINE_EXCEEDED"
    assert await pushed(slow, 2) == ["grpc_DEADLINE_EXCEEDED"] * 2


async def test_binary_metadata_is_base64_on_the_wire(
    grpc_server: DemoGrpcServer, executor: ExecutorFactory
) -> None:
    ex = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        headers={"X-Plain": "p", "X-Data-Bin": "raw\u00ff"},
    )
    assert await ex.send() == "grpc_OK"
    assert grpc_server.last_metadata["x-plain"] == "p"
    assert grpc_server.last_metadata["x-data-bin"] == "raw\u00ff".encode()


# -- response shapes, from a scripted HTTP/2 server ------------------------------------


def _grpc_url(server: ScriptedH2Server) -> str:
    return server.url.replace("http://", "grpc://")


@pytest.mark.parametrize(
    ("script", "outcome"),
    [
        # Headers, DATA, then trailers: the usual answer.
        (Script(trailers=[(b"grpc-status", b"0")], body=length_prefixed(b"")), "grpc_OK"),
        (Script(trailers=[(b"grpc-status", b"13"), (b"grpc-message", b"boom")]), "grpc_INTERNAL"),
        # Trailers-only: one HEADERS with END_STREAM carrying the status.
        (Script(extra=[(b"grpc-status", b"7")]), "grpc_PERMISSION_DENIED"),
        (Script(extra=[(b"grpc-status", b"99")]), "grpc_UNKNOWN"),  # no such code
        # No grpc-status at all: gRPC's HTTP mapping (a bare 200 is UNKNOWN).
        (Script(), "grpc_UNKNOWN"),
        (Script(statuses=[503]), "grpc_UNAVAILABLE"),
        (Script(statuses=[404]), "grpc_UNIMPLEMENTED"),
        # A stream the server resets: no status, never retried (a POST).
        (Script(reset_code=2), "error"),
    ],
)
async def test_response_shapes(script: Script, outcome: str, executor: ExecutorFactory) -> None:
    async with ScriptedH2Server(script) as server:
        ex = executor(url=_grpc_url(server), protocol="grpc", timeout="2s")
        assert isinstance(ex, GrpcH2Executor)
        assert [await ex.send() for _ in range(3)] == [outcome] * 3
        assert await pushed(ex, 3) == [outcome] * 3
        # Every call carried the 5-byte prefix and the (empty) health check message.
        assert server.seen.bodies == [5] * (6 if script.reset_code is None else 0)
        await ex.close()


async def test_refused_and_dropped_calls_are_sent_again(executor: ExecutorFactory) -> None:
    """REFUSED_STREAM and streams above a GOAWAY's last stream id never reached the
    application: sent once more although a POST, so none is lost and none runs twice."""
    ok = Script(extra=[(b"grpc-status", b"0")], refuse_first=1)
    async with ScriptedH2Server(ok) as server:
        ex = executor(url=_grpc_url(server), protocol="grpc")
        assert await ex.send() == "grpc_OK"  # refused, then sent again
        ok.refuse_first = 2  # one more refusal: the first pushed call
        assert await pushed(ex, 2) == ["grpc_OK"] * 2
        assert server.refused == 2
        assert server.seen.completed == 3
    dropping = Script(extra=[(b"grpc-status", b"0")], goaway_after=8)
    async with ScriptedH2Server(dropping) as server:
        ex = executor(max_in_flight=8, url=_grpc_url(server), protocol="grpc")
        assert await asyncio.gather(*(ex.send() for _ in range(8))) == ["grpc_OK"] * 8
        assert server.seen.dropped == 4
        assert server.seen.completed == 8  # 4 kept + 4 sent again: none answered twice


async def test_blocks_that_change_the_table_are_judged_each_time(
    executor: ExecutorFactory,
) -> None:
    """503 and 404 are not in HPACK's static table, so `h2` indexes each answer's status
    anew: a stale cached meaning would repeat the first outcome."""
    async with ScriptedH2Server(Script(statuses=[503, 404])) as server:
        ex = executor(url=_grpc_url(server), protocol="grpc")
        assert [await ex.send() for _ in range(4)] == ["grpc_UNAVAILABLE", "grpc_UNIMPLEMENTED"] * 2


async def test_make_executor_default_stays_grpcio(
    monkeypatch: pytest.MonkeyPatch, grpc_server: DemoGrpcServer
) -> None:
    monkeypatch.delenv(GRPC_CLIENT_ENV)
    async with executors_closed_after(make_executor) as build:
        assert isinstance(build(url=grpc_server.target_url, protocol="grpc"), GrpcExecutor)
