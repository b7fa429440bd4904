"""HealthMonitor against the real demo servers (and a scripted executor for loop mechanics)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kar98k.demo import DemoGrpcServer, DemoH2Server, DemoHttpServer
from kar98k_loadpod.executors import Executor, make_executor
from kar98k_loadpod.health import HealthMonitor
from kar98k_loadpod.targets import Target
from kit.wait import holds_for, wait_until

HEALTH = "/grpc.health.v1.Health/Check"


class Changes(list[tuple[str, bool]]):
    def __call__(self, name: str, healthy: bool) -> None:
        self.append((name, healthy))


@pytest.fixture
async def monitor() -> AsyncIterator[tuple[HealthMonitor, Changes]]:
    changes = Changes()
    mon = HealthMonitor(on_change=changes)
    yield mon, changes
    await mon.close()


@pytest.fixture
async def executors() -> AsyncIterator[list[Executor]]:
    made: list[Executor] = []
    yield made
    for ex in made:
        await ex.close()


def entry(made: list[Executor], **fields: Any) -> tuple[Target, Executor]:
    target = Target.model_validate(fields)
    ex = make_executor(target, 4)
    made.append(ex)
    return target, ex


FAST_CHECK = {"interval": "30ms", "timeout": "500ms"}


async def excluded_then_recovered(
    monitor: tuple[HealthMonitor, Changes],
    name: str,
    set_healthy: Callable[[bool], Awaitable[None] | None],
) -> None:
    """The server turns unhealthy, then healthy again: the monitor follows, reporting each once.

    `set_healthy` is the server's health switch (a plain or an async method)."""
    mon, changes = monitor

    async def switch(healthy: bool) -> None:
        switched = set_healthy(healthy)
        if switched is not None:
            await switched

    await switch(False)
    await wait_until(lambda: not mon.is_healthy(name))
    await switch(True)
    await wait_until(lambda: mon.is_healthy(name))
    assert changes == [(name, False), (name, True)]


async def test_http_exclusion_and_recovery(
    http1_server: DemoHttpServer,
    monitor: tuple[HealthMonitor, Changes],
    executors: list[Executor],
) -> None:
    mon, _ = monitor
    target = entry(
        executors,
        name="web",
        url=http1_server.url + "/fast",
        health_check={"path": "/healthz", **FAST_CHECK},
    )
    mon.update({"web": target})
    assert mon.is_healthy("web")  # optimistic until a probe says otherwise
    await wait_until(lambda: http1_server.counter.count("/healthz") >= 2)
    assert mon.is_healthy("web")
    await excluded_then_recovered(monitor, "web", http1_server.set_healthy)


async def test_h2_exclusion_and_recovery(
    h2c_server: DemoH2Server, monitor: tuple[HealthMonitor, Changes], executors: list[Executor]
) -> None:
    mon, _ = monitor
    target = entry(
        executors,
        name="h2",
        url=h2c_server.url + "/fast",
        protocol="http2",
        health_check={"path": "/healthz", **FAST_CHECK},
    )
    mon.update({"h2": target})
    await excluded_then_recovered(monitor, "h2", h2c_server.set_healthy)


async def test_grpc_not_serving_then_serving(
    grpc_server: DemoGrpcServer, monitor: tuple[HealthMonitor, Changes], executors: list[Executor]
) -> None:
    mon, _ = monitor
    target = entry(
        executors, name="rpc", url=grpc_server.target_url, protocol="grpc", health_check=FAST_CHECK
    )
    mon.update({"rpc": target})
    await wait_until(lambda: grpc_server.counter.count(HEALTH) >= 2)
    assert mon.is_healthy("rpc")
    await excluded_then_recovered(monitor, "rpc", grpc_server.set_serving)


async def test_healthy_grpc_target_stays_healthy_over_many_probes(
    grpc_server: DemoGrpcServer, monitor: tuple[HealthMonitor, Changes], executors: list[Executor]
) -> None:
    """The original flipped a healthy gRPC target to unhealthy after its first probe."""
    mon, changes = monitor
    target = entry(
        executors,
        name="rpc",
        url=grpc_server.target_url,
        protocol="grpc",
        health_check={"interval": "10ms", "timeout": "1s"},
    )
    mon.update({"rpc": target})
    # Sends on the same executor interleave with the probes.
    for _ in range(20):
        assert await target[1].send() == "grpc_OK"
    await wait_until(lambda: grpc_server.counter.count(HEALTH) >= 20 + 40)
    assert mon.is_healthy("rpc")
    assert changes == []


async def test_unreachable_target_is_excluded_at_once(
    closed_port: int, monitor: tuple[HealthMonitor, Changes], executors: list[Executor]
) -> None:
    mon, changes = monitor
    http = entry(
        executors,
        name="down",
        url=f"http://127.0.0.1:{closed_port}/",
        health_check={"interval": "1h", "timeout": "1s"},
    )
    rpc = entry(
        executors,
        name="rpc-down",
        url=f"grpc://127.0.0.1:{closed_port}",
        protocol="grpc",
        health_check={"interval": "1h", "timeout": "1s"},
    )
    mon.update({"down": http, "rpc-down": rpc})
    # The first probe runs right away, not after one interval.
    await wait_until(lambda: not mon.is_healthy("down") and not mon.is_healthy("rpc-down"))
    assert sorted(changes) == [("down", False), ("rpc-down", False)]


async def test_no_check_or_disabled_check_is_always_healthy(
    closed_port: int, monitor: tuple[HealthMonitor, Changes], executors: list[Executor]
) -> None:
    mon, changes = monitor
    url = f"http://127.0.0.1:{closed_port}/"
    mon.update(
        {
            "none": entry(executors, name="none", url=url),
            "off": entry(executors, name="off", url=url, health_check={"enabled": False}),
        }
    )
    assert mon.is_healthy("none") and mon.is_healthy("off")
    assert mon.is_healthy("never-heard-of")
    assert mon.snapshot() == {"none": True, "off": True}
    assert changes == []


# -- loop mechanics with a scripted executor -----------------------------------------


class Scripted:
    """An executor whose probe answers come from a flag; counts probes."""

    def __init__(self, healthy: bool = True, hang: bool = False) -> None:
        self.healthy = healthy
        self.hang = hang
        self.probes = 0

    async def send(self) -> str:
        return "2xx"

    async def probe(self) -> bool:
        self.probes += 1
        if self.hang:
            await asyncio.Event().wait()
        return self.healthy

    async def close(self) -> None:
        return None


def scripted_target(name: str, **check: Any) -> Target:
    return Target.model_validate(
        {"name": name, "url": "http://127.0.0.1:9/", "health_check": {**FAST_CHECK, **check}}
    )


async def test_removed_target_stops_probing(monitor: tuple[HealthMonitor, Changes]) -> None:
    mon, _ = monitor
    ex = Scripted(healthy=False)
    mon.update({"a": (scripted_target("a"), ex)})
    await wait_until(lambda: not mon.is_healthy("a"))
    mon.update({})
    await asyncio.sleep(0)  # let the cancellation land
    seen = ex.probes
    await holds_for(lambda: ex.probes == seen, 0.15, what="no probes")  # five intervals
    assert mon.is_healthy("a")  # forgotten, so no longer reported unhealthy
    assert mon.snapshot() == {}


async def test_unchanged_target_keeps_its_loop_and_state(
    monitor: tuple[HealthMonitor, Changes],
) -> None:
    mon, changes = monitor
    ex = Scripted(healthy=False)
    target = scripted_target("a")
    mon.update({"a": (target, ex)})
    await wait_until(lambda: not mon.is_healthy("a"))
    mon.update({"a": (scripted_target("a"), ex)})  # equal spec, same executor
    assert not mon.is_healthy("a")
    # A changed check restarts the loop but keeps the last known state until it probes.
    ex.healthy = True
    mon.update({"a": (scripted_target("a", interval="20ms"), ex)})
    await wait_until(lambda: mon.is_healthy("a"))
    assert changes == [("a", False), ("a", True)]


async def test_hanging_probe_counts_as_unhealthy(monitor: tuple[HealthMonitor, Changes]) -> None:
    mon, _ = monitor
    ex = Scripted(hang=True)
    mon.update({"a": (scripted_target("a", timeout="10ms"), ex)})
    await wait_until(lambda: not mon.is_healthy("a"), within=3.0)


async def test_failing_callback_does_not_stop_probing() -> None:
    def boom(name: str, healthy: bool) -> None:
        raise RuntimeError("callback bug")

    mon = HealthMonitor(on_change=boom)
    ex = Scripted(healthy=False)
    try:
        mon.update({"a": (scripted_target("a"), ex)})
        await wait_until(lambda: not mon.is_healthy("a"))
        ex.healthy = True
        await wait_until(lambda: mon.is_healthy("a"))
    finally:
        await mon.close()
