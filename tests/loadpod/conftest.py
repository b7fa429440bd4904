"""Fixtures for the load-pod runtime tests: a counting target in its own process and an
in-process pod (runtime + control API) on 127.0.0.1, both on free ports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from kar98k_loadpod.api import make_app
from kar98k_loadpod.metrics import make_registry
from kar98k_loadpod.runtime import PodRuntime
from podkit import HERE, TOKEN, CountServer, Pod, read_line


@pytest.fixture(scope="session")
def count_server() -> Iterator[CountServer]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "counting_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(read_line(proc, "PORT ").split()[1])
        yield CountServer(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def pod() -> AsyncIterator[Pod]:
    runtime = PodRuntime("test-pod")
    runtime.start()
    app = make_app(runtime, TOKEN, make_registry(runtime, process_metrics=False))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            yield Pod(f"http://127.0.0.1:{port}", runtime, session)
    finally:
        await runner.cleanup()
        await runtime.close()
