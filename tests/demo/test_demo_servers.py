"""The demo target servers themselves: endpoints, counters, controls, loopback only."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection_pb2
from kar98k.demo import SAY_METHOD, DemoGrpcServer, DemoH2Server, DemoHttpServer, DemoServers
from kar98k.demo import proto as demo_proto
from kar98k.demo.counters import RequestCounter


async def test_http_endpoints(http1_server: DemoHttpServer) -> None:
    async with httpx.AsyncClient(base_url=http1_server.url) as client:
        assert (await client.get("/fast")).text == "ok"
        assert (await client.post("/fast", content=b"x")).status_code == 200
        assert (await client.get("/status/418")).status_code == 418
        assert (await client.get("/status/99")).status_code == 400
        assert (await client.get("/nope")).status_code == 404
        started = time.perf_counter()
        assert (await client.get("/slow")).status_code == 200
        assert 0.045 <= time.perf_counter() - started < 1.0
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.post("/control/healthy?value=false")).status_code == 200
        assert (await client.get("/healthz")).status_code == 503
        http1_server.set_healthy(True)
        assert (await client.get("/healthz")).status_code == 200
        stats = json.loads((await client.get("/stats")).text)
    counted = 9  # control and /stats requests are not counted
    assert stats["total"] == counted == http1_server.counter.count()
    assert sum(http1_server.counter.per_second().values()) == counted
    assert http1_server.counter.count("/healthz") == 3
    assert sum(http1_server.counter.per_second("/healthz").values()) == 3


async def test_flaky_is_seeded_and_about_three_percent() -> None:
    async def failures() -> int:
        async with (
            DemoHttpServer(seed=7) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            codes = [(await client.get("/flaky")).status_code for _ in range(300)]
        return codes.count(500)

    first, second = await failures(), await failures()
    assert first == second  # same seed, same failures
    assert 2 <= first <= 25


async def test_stall_holds_responses_once(http1_server: DemoHttpServer) -> None:
    async with httpx.AsyncClient(base_url=http1_server.url) as client:
        assert (await client.post("/control/stall?ms=300")).status_code == 200
        started = time.perf_counter()
        results = await asyncio.gather(*(client.get("/fast") for _ in range(5)))
        held = time.perf_counter() - started
        assert [r.status_code for r in results] == [200] * 5
        assert 0.25 <= held < 2.0
        started = time.perf_counter()
        await client.get("/fast")
        assert time.perf_counter() - started < 0.2  # once only


async def test_h2_server_reports_protocol_per_request(h2c_server: DemoH2Server) -> None:
    async with httpx.AsyncClient(http1=True, http2=False) as h1:
        assert (await h1.get(h2c_server.url + "/fast")).status_code == 200
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        response = await h2.get(h2c_server.url + "/status/503")
        assert response.status_code == 503
        assert response.http_version == "HTTP/2"
    assert h2c_server.counter.by_protocol == {"1.1": 1, "2": 1}


async def test_grpc_server_echo_health_reflection(grpc_server: DemoGrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        say = channel.unary_unary(
            SAY_METHOD,
            request_serializer=demo_proto.SayRequest.SerializeToString,
            response_deserializer=demo_proto.SayReply.FromString,
        )
        reply = await say(demo_proto.SayRequest(text="echo"), timeout=2)
        assert reply.text == "echo"
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await say(demo_proto.SayRequest(fail_code=7), timeout=2)
        assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED
        info = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        call = info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name async for r in call for s in r.list_services_response.service}
    assert {"kar98k.demo.Echo", "grpc.health.v1.Health"} <= names
    assert grpc_server.counter.count(SAY_METHOD) == 2


async def test_demo_servers_together() -> None:
    async with DemoServers() as servers:
        assert servers.http.port and servers.h2c.port and servers.grpc.port
        assert servers.grpc.target_url.startswith("grpc://127.0.0.1:")
        async with httpx.AsyncClient() as client:
            assert (await client.get(servers.http.url + "/fast")).status_code == 200


@pytest.mark.parametrize("cls", [DemoHttpServer, DemoH2Server, DemoGrpcServer])
def test_loopback_only(cls: type) -> None:
    with pytest.raises(ValueError, match="loopback"):
        cls("0.0.0.0")


def test_counter_bins() -> None:
    now = [1000.2]
    counter = RequestCounter(clock=lambda: now[0])
    counter.hit("/a", "1.1")
    counter.hit("/b", "2")
    now[0] = 1001.9
    counter.hit("/a", "1.1")
    assert counter.per_second() == {1000: 2, 1001: 1}
    assert counter.per_second("/a") == {1000: 1, 1001: 1}
    assert counter.count() == 3 and counter.count("/a") == 2
    assert counter.by_protocol == {"1.1": 2, "2": 1}
    counter.reset()
    assert counter.count() == 0 and counter.per_second() == {}
