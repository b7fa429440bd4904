"""The gRPC executor's task-free path (`push`) against the demo gRPC server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kar98k.demo import SAY_METHOD, DemoGrpcServer
from kar98k_loadpod.executors import Executor, GrpcExecutor, make_executor
from kit.servers import executors_closed_after
from kit.wait import wait_until

ExecutorFactory = Callable[..., Executor]


@pytest.fixture
async def executor() -> AsyncIterator[ExecutorFactory]:
    async with executors_closed_after(make_executor) as build:
        yield build


async def pushed(ex: GrpcExecutor, n: int) -> list[tuple[Any, str]]:
    """Push n calls (tokens 0..n-1); returns (token, outcome) in the order answers came."""
    answers: list[tuple[Any, str]] = []
    for i in range(n):
        assert ex.push(lambda token, outcome: answers.append((token, outcome)), i)
        assert not answers  # nothing is answered inside push (no await in this loop)
    await wait_until(lambda: len(answers) == n, within=10.0, what="all answers")
    return answers


async def test_push_answers_every_call_once_with_its_status(
    grpc_server: DemoGrpcServer, executor: ExecutorFactory
) -> None:
    ex = executor(url=grpc_server.target_url, protocol="grpc")
    assert isinstance(ex, GrpcExecutor)
    assert ex.push(lambda *_: None, None) is False  # no channel yet: the task path opens it
    assert await ex.send() == "grpc_OK"
    answers = await pushed(ex, 50)
    assert sorted(token for token, _ in answers) == list(range(50))
    assert {outcome for _, outcome in answers} == {"grpc_OK"}
    assert grpc_server.counter.count("/grpc.health.v1.Health/Check") == 51


async def test_push_reports_error_codes_through_the_public_api(
    grpc_server: DemoGrpcServer, executor: ExecutorFactory
) -> None:
    ex = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        grpc={"method": SAY_METHOD, "message": {"text": "x", "failCode": 8}},
    )
    assert isinstance(ex, GrpcExecutor)
    assert await ex.send() == "grpc_RESOURCE_EXHAUSTED"  # resolves the request first
    answers = await pushed(ex, 5)
    assert [outcome for _, outcome in answers] == ["grpc_RESOURCE_EXHAUSTED"] * 5
    slow = executor(
        url=grpc_server.target_url,
        protocol="grpc",
        timeout="100ms",
        grpc={"method": SAY_METHOD, "message": {"delayMs": 500}},
    )
    assert isinstance(slow, GrpcExecutor)
    assert await slow.send() == "grpc_DEADLINE_EXCEEDED"
    assert [o for _, o in await pushed(slow, 2)] == ["grpc_DEADLINE_EXCEEDED"] * 2
