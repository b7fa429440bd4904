"""Fixtures for target-side fault tests: the counting target (the healthy neighbour) in its own
process, and a real load-pod process with a client on its control API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from faults.podwatch import PodProcess, pod_process, ready_client
from kit.counting_server import CountServer, counting_server
from kit.loadpod import Pod


@pytest.fixture(scope="module")
def count_server() -> Iterator[CountServer]:
    with counting_server() as server:
        yield server


@pytest.fixture
def loadpod(tmp_path: Path) -> Iterator[PodProcess]:
    with pod_process(tmp_path) as proc:
        yield proc


@pytest.fixture
async def pod(loadpod: PodProcess) -> AsyncIterator[Pod]:
    async for client in ready_client(loadpod):
        yield client
