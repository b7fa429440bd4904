"""PodClient against real control-API servers: errors become PodCallError, fast."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from ctl_fakepods import FakePod
from kar98k.controller import PodEndpoint
from kar98k.controller.pods import PodCallError, PodClient


def plan(epoch: int, rate: float = 1.0) -> bytes:
    return json.dumps({"epoch": epoch, "rate": rate}).encode()


async def test_push_pull_drain_and_errors() -> None:
    pod = await FakePod("p").start()
    try:
        async with PodClient() as client:
            await client.push_plan(pod.endpoint, plan(5, 10.0))
            assert pod.plans[-1].plan == {"epoch": 5, "rate": 10.0}
            with pytest.raises(PodCallError, match="HTTP 409"):
                await client.push_plan(pod.endpoint, plan(4))
            bad_token = PodEndpoint(pod.name, pod.base_url, "wrong")
            with pytest.raises(PodCallError, match="HTTP 401") as info:
                await client.stats(bad_token)
            assert info.value.status == 401
            stats = await client.stats(pod.endpoint)
            assert stats.epoch == 5
            final = await client.drain(pod.endpoint, 1.0)
            assert pod.drained and final.rate == 0.0
    finally:
        await pod.stop()


async def test_slow_or_absent_pod_fails_within_the_timeout(closed_port: int) -> None:
    pod = await FakePod("slow", delay=2.0).start()
    try:
        async with PodClient() as client:
            began = time.monotonic()
            with pytest.raises(PodCallError, match=r"no answer within 0\.2s"):
                await client.push_plan(pod.endpoint, plan(1), within=0.2)
            assert time.monotonic() - began < 1.0
            gone = PodEndpoint("gone", f"http://127.0.0.1:{closed_port}", "t")
            with pytest.raises(PodCallError, match="gone: push plan"):
                await client.push_plan(gone, plan(1))
    finally:
        await asyncio.wait_for(pod.stop(), 5.0)


async def test_client_outside_context_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        await PodClient().push_plan(PodEndpoint("p", "http://127.0.0.1:9", "t"), plan(1))
