"""Fixtures for the load-pod runtime tests: the counting target in its own process and an
in-process pod (runtime + control API) on 127.0.0.1, both on free ports (see tests/kit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from kit.counting_server import CountServer, counting_server
from kit.loadpod import Pod, in_process_pod


@pytest.fixture(scope="session")
def count_server() -> Iterator[CountServer]:
    with counting_server() as server:
        yield server


@pytest.fixture
async def pod() -> AsyncIterator[Pod]:
    async with in_process_pod() as pod:
        yield pod
