"""Fixtures for the operator suite: a cluster (emulated, or real via KAR98K_TEST_KUBECONFIG),
the operator as a real process, an API client, a fresh namespace per test and a counting target.

Emulated (default): kmock-based API on 127.0.0.1, the kubelet harness running real load pods on
loopback addresses, the operator started here with KUBECONFIG pointing at the emulator.

Real cluster: set KAR98K_TEST_KUBECONFIG to a kubeconfig whose cluster already has the CRD and a
running operator, and KAR98K_TEST_TARGET_URL to an HTTP base URL the load pods can reach. Tests
that need the harness (process kill, kubelet knobs, server-side counts) skip themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import kmock
import kopf
import pytest
from k8s_cluster import EmulatedCluster, OperatorProcess, client_for, cluster_with_operator
from k8s_emulator import Emulator
from kar98k.demo import DemoHttpServer
from kar98k_operator.kube import Conflict, Kube, path
from lt_helpers import delete_and_wait, lt_path

REAL_KUBECONFIG = os.environ.get("KAR98K_TEST_KUBECONFIG")
REAL_TARGET = os.environ.get("KAR98K_TEST_TARGET_URL", "")


@dataclass
class ClusterUnderTest:
    kubeconfig: Path
    emulated: EmulatedCluster | None
    operator: OperatorProcess | None

    def client(self) -> Kube:
        return client_for(self.kubeconfig)

    def require_harness(self) -> EmulatedCluster:
        if self.emulated is None:
            pytest.skip("needs the emulated cluster's harness")
        return self.emulated

    def require_operator(self) -> OperatorProcess:
        if self.operator is None:
            pytest.skip("needs an operator process started by the suite")
        return self.operator


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    if REAL_KUBECONFIG:
        yield ClusterUnderTest(Path(REAL_KUBECONFIG), None, None)
        return
    with cluster_with_operator(tmp_path_factory.mktemp("cluster")) as (emulated, operator):
        yield ClusterUnderTest(emulated.kubeconfig, emulated, operator)


@pytest.fixture
def operator(cluster: ClusterUnderTest) -> OperatorProcess | None:
    """The suite's operator process, alive (restarted if a test killed it); None on a real
    cluster, where the operator runs in the cluster."""
    proc = cluster.operator
    if proc is not None and (proc.proc is None or proc.proc.poll() is not None):
        proc.start()
    return proc


@pytest.fixture
async def api(cluster: ClusterUnderTest) -> AsyncIterator[Kube]:
    kube = cluster.client()
    try:
        yield kube
    finally:
        await kube.close()


@pytest.fixture
async def ns(api: Kube, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace; its LoadTests are deleted (and awaited) when the test ends."""
    base = request.node.name.replace("_", "-").lower()[5:25].strip("-")
    name = f"op-{base}-{secrets.token_hex(2)}"
    with contextlib.suppress(Conflict):
        await api.create(path("v1", "namespaces"), {"metadata": {"name": name}})
    yield name
    listing = await api.list(lt_path(name))
    for item in listing.get("items") or []:
        with contextlib.suppress(AssertionError):
            await delete_and_wait(api, name, item["metadata"]["name"], within=25)
    if REAL_KUBECONFIG:
        await api.delete(path("v1", "namespaces", name=name))


@pytest.fixture
async def bare_api() -> AsyncIterator[Kube]:
    """A client of a fresh in-process emulator: no kubelet, no operator."""
    emulator = Emulator()
    async with emulator, kmock.Server(emulator, host="127.0.0.1") as server:
        url = f"http://127.0.0.1:{server.port}"
        kube = Kube(lambda: kopf.ConnectionInfo(server=url))
        try:
            yield kube
        finally:
            await kube.close()


@dataclass
class Target:
    """Where load goes: the local counting server, or an external URL (real clusters)."""

    base_url: str
    server: DemoHttpServer | None

    @property
    def url(self) -> str:
        return self.base_url + "/fast"

    def count(self, key: str | None = None) -> int:
        """Requests that arrived so far (all, or for one path)."""
        if self.server is None:
            pytest.skip("server-side counts need the local target server")
        return self.server.counter.count(key)

    async def rate(self, seconds: float, key: str | None = None) -> float:
        """Requests per second arriving during the next `seconds` (a measurement window)."""
        before, t0 = self.count(key), time.monotonic()
        await asyncio.sleep(seconds)
        return (self.count(key) - before) / (time.monotonic() - t0)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    if REAL_KUBECONFIG:
        if not REAL_TARGET:
            pytest.skip("set KAR98K_TEST_TARGET_URL for real-cluster runs")
        yield Target(REAL_TARGET.rstrip("/"), None)
        return
    async with DemoHttpServer("127.0.0.1") as server:
        yield Target(server.url, server)
