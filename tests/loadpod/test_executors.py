"""Executors against the real demo servers on 127.0.0.1: outcome keys, protocols, TLS, headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import grpc
import httpx
import pytest
from kar98k.demo import SAY_METHOD, DemoGrpcServer, DemoH2Server, DemoHttpServer
from kar98k.demo import proto as demo_proto
from kar98k_loadpod.executors import Executor, make_executor
from kar98k_loadpod.executors.grpc_reflection import resolve_request
from kar98k_loadpod.executors.outcome import exception_outcome, grpc_outcome, http_outcome
from kit.servers import executors_closed_after

ExecutorFactory = Callable[..., Executor]


@pytest.fixture
async def executor() -> AsyncIterator[ExecutorFactory]:
    """make_executor(Target(**fields)) whose executors are closed after the test."""
    async with executors_closed_after(make_executor) as build:
        yield build


async def outcomes(ex: Executor, n: int = 3) -> list[str]:
    return [await ex.send() for _ in range(n)]


# -- classification helpers -------------------------------------------------------------


def test_http_status_classes() -> None:
    assert [http_outcome(s) for s in (101, 200, 302, 404, 503)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
    ]
    assert http_outcome(99) == "error"
    assert http_outcome(600) == "error"


def test_grpc_codes_by_name() -> None:
    assert grpc_outcome(grpc.StatusCode.OK) == "grpc_OK"
    assert grpc_outcome(grpc.StatusCode.UNAVAILABLE) == "grpc_UNAVAILABLE"
    assert grpc_outcome(grpc.StatusCode.DEADLINE_EXCEEDED) == "grpc_DEADLINE_EXCEEDED"


def test_exception_classification() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/")
    assert exception_outcome(TimeoutError()) == "timeout"
    assert exception_outcome(httpx.ReadTimeout("", request=request)) == "timeout"
    assert exception_outcome(httpx.ConnectTimeout("", request=request)) == "timeout"
    assert exception_outcome(aiohttp.ServerTimeoutError()) == "timeout"
    assert exception_outcome(httpx.ConnectError("", request=request)) == "connect_error"
    assert exception_outcome(ConnectionRefusedError()) == "connect_error"
    assert exception_outcome(aiohttp.ServerDisconnectedError()) == "error"
    assert exception_outcome(httpx.RemoteProtocolError("", request=request)) == "error"
    assert exception_outcome(ValueError()) == "error"


# -- HTTP (what every HTTP executor does is in test_http_executors.py) ----------------


async def test_http1_keep_alive_pool_reused(
    http1_server: DemoHttpServer, executor: ExecutorFactory
) -> None:
    ex = executor(max_in_flight=4, url=http1_server.url + "/fast")
    results = await asyncio.gather(*(ex.send() for _ in range(200)))
    assert results == ["2xx"] * 200
    assert http1_server.counter.count("/fast") == 200


async def test_h2_timeout_then_recovers(
    h2c_server: DemoH2Server, executor: ExecutorFactory
) -> None:
    ex = executor(url=h2c_server.url + "/fast", protocol="http2", timeout="100ms")
    assert await ex.send() == "2xx"
    h2c_server.stall(0.3)
    assert await asyncio.gather(*(ex.send() for _ in range(5))) == ["timeout"] * 5
    # The same client keeps working once the server answers again.
    first_ok = asyncio.get_running_loop().time() + 3.0
    while await ex.send() != "2xx":
        assert asyncio.get_running_loop().time() < first_ok
    assert await outcomes(ex) == ["2xx"] * 3


# -- gRPC -----------------------------------------------------------------------------


async def test_grpc_health_ok(grpc_server: DemoGrpcServer, executor: ExecutorFactory) -> None:
    ex = executor(url=grpc_server.target_url, protocol="grpc")
    assert await outcomes(ex) == ["grpc_OK"] * 3
    assert grpc_server.counter.count("/grpc.health.v1.Health/Check") == 3


async def test_grpc_unavailable(closed_port: int, executor: ExecutorFactory) -> None:
    ex = executor(url=f"grpc://127.0.0.1:{closed_port}", protocol="grpc", timeout="1s")
    assert await outcomes(ex, 2) == ["grpc_UNAVAILABLE"] * 2
    assert await ex.probe() is False


async def test_grpc_custom_method_via_reflection(
    grpc_server: DemoGrpcServer, executor: ExecutorFactory
) -> None:
    ok = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        grpc={"method": SAY_METHOD, "message": {"text": "hello"}},
    )
    results = await asyncio.gather(*(ok.send() for _ in range(10)))
    assert results == ["grpc_OK"] * 10
    assert grpc_server.counter.count(SAY_METHOD) == 10
    # Resolved once, not per request.
    reflection_calls = sum(n for k, n in grpc_server.counter.by_key.items() if "Reflection" in k)
    assert 1 <= reflection_calls <= 2  # v1 tried first, then v1alpha


async def test_grpc_custom_method_error_codes(
    grpc_server: DemoGrpcServer, executor: ExecutorFactory
) -> None:
    def say(message: dict[str, Any], timeout: str = "2s") -> Executor:
        return executor(
            url=grpc_server.target_url,
            protocol="grpc",
            timeout=timeout,
            grpc={"method": SAY_METHOD, "message": message},
        )

    assert await say({"text": "x", "failCode": 8}).send() == "grpc_RESOURCE_EXHAUSTED"
    assert await say({"failCode": 14}).send() == "grpc_UNAVAILABLE"
    slow = say({"delayMs": 500}, timeout="100ms")
    assert await slow.send() == "grpc_DEADLINE_EXCEEDED"


async def test_grpc_unresolvable_calls_are_errors(
    grpc_server: DemoGrpcServer, caplog: pytest.LogCaptureFixture, executor: ExecutorFactory
) -> None:
    missing = executor(
        url=grpc_server.target_url, protocol="grpc", grpc={"method": "/kar98k.demo.Echo/Nope"}
    )
    assert await outcomes(missing) == ["error"] * 3
    bad_field = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        grpc={"method": SAY_METHOD, "message": {"noSuchField": 1}},
    )
    assert await outcomes(bad_field) == ["error"] * 3
    no_service = executor(
        url=grpc_server.target_url, protocol="grpc", grpc={"method": "/x.Missing/Call"}
    )
    assert await no_service.send() == "error"
    # Logged once per problem, not once per request.
    assert sum("Nope" in r.getMessage() for r in caplog.records) == 1


async def test_reflection_round_trip(grpc_server: DemoGrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        payload = await resolve_request(
            channel, SAY_METHOD, {"text": "round", "delayMs": 3, "failCode": 0}, timeout=2.0
        )
    decoded = demo_proto.SayRequest.FromString(payload)
    assert (decoded.text, decoded.delay_ms, decoded.fail_code) == ("round", 3, 0)


async def test_grpc_metadata_env_expansion(
    grpc_server: DemoGrpcServer, monkeypatch: pytest.MonkeyPatch, executor: ExecutorFactory
) -> None:
    monkeypatch.setenv("K98_TEST_TOKEN", "grpc-secret")
    ex = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        headers={"X-Token": "${K98_TEST_TOKEN}"},
    )
    assert await ex.send() == "grpc_OK"
    assert grpc_server.last_metadata["x-token"] == "grpc-secret"


async def test_grpc_many_in_flight(grpc_server: DemoGrpcServer, executor: ExecutorFactory) -> None:
    ex = executor(max_in_flight=250, url=grpc_server.target_url, protocol="grpc")
    results = await asyncio.gather(*(ex.send() for _ in range(250)))
    assert results == ["grpc_OK"] * 250


async def test_grpc_probe_serving(grpc_server: DemoGrpcServer, executor: ExecutorFactory) -> None:
    ex = executor(url=grpc_server.target_url, protocol="grpc")
    assert await ex.probe() is True
    await grpc_server.set_serving(False)
    assert await ex.probe() is False
    await grpc_server.set_serving(True)
    assert await ex.probe() is True
    per_service = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        grpc={"message": {"service": "kar98k.demo.Echo"}},
    )
    assert await per_service.probe() is True
    await grpc_server.set_serving(False, "kar98k.demo.Echo")
    assert await per_service.probe() is False
    assert await ex.probe() is True  # the server as a whole still serves


async def test_grpcs_verification(grpcs_server: DemoGrpcServer, executor: ExecutorFactory) -> None:
    url = grpcs_server.target_url
    assert url.startswith("grpcs://")
    untrusted = executor(url=url, protocol="grpc", timeout="2s")
    assert await untrusted.send() == "grpc_UNAVAILABLE"
    insecure = executor(url=url, protocol="grpc", tls_insecure_skip_verify=True)
    assert await outcomes(insecure) == ["grpc_OK"] * 3
    say = executor(
        url=url,
        protocol="grpc",
        tls_insecure_skip_verify=True,
        grpc={"method": SAY_METHOD, "message": {"text": "tls"}},
    )
    assert await say.send() == "grpc_OK"
    assert await insecure.probe() is True


async def test_grpcs_trusted_ca(
    grpcs_server: DemoGrpcServer, trust_test_ca: object, executor: ExecutorFactory
) -> None:
    ex = executor(url=grpcs_server.target_url, protocol="grpc")
    assert await ex.send() == "grpc_OK"


async def test_h2_connection_rotation_is_retried(executor: ExecutorFactory) -> None:
    """Servers retire h2 connections (GOAWAY NO_ERROR); in-flight GETs must not turn into errors."""
    async with DemoH2Server(max_requests_per_connection=50) as server:
        ex = executor(max_in_flight=16, url=server.url + "/fast", protocol="http2")
        gate = asyncio.Semaphore(16)

        async def one() -> str:
            async with gate:
                return await ex.send()

        results = await asyncio.gather(*(one() for _ in range(300)))
        assert results == ["2xx"] * 300
        await ex.close()
