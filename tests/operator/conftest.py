"""Fixtures for the operator suite, on a real Kubernetes control plane.

The session's cluster: kube-apiserver, controller-manager, scheduler and etcd built from the Go
module proxy (tests/cluster), five nodes played by the node agent, and the chart installed with
`helm install` as a user would (its CRD included): the operator runs as the chart's pod, with the
chart's ServiceAccount and RBAC. Load pods are the operator's real Deployments, scheduled by the
real scheduler and run by the node agent as `kar98k-loadpod` processes on their own loopback IPs.

Another real cluster: set KAR98K_TEST_KUBECONFIG to a kubeconfig whose cluster already runs the
chart, and KAR98K_TEST_TARGET_URL to an HTTP base URL its load pods can reach. Tests that need the
node agent (killing a process, server-side counts, the audit log) then fail with a clear message:
they are not skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster.controlplane import ControlPlane, running_control_plane
from cluster.harness import REPO, Cluster, running_cluster
from cluster.operator_pod import InClusterOperator
from kar98k.demo import DemoHttpServer
from kar98k_operator.kube import Conflict, Kube, connection_from_kubeconfig, path
from lt_helpers import delete_and_wait, lt_path

REAL_KUBECONFIG = os.environ.get("KAR98K_TEST_KUBECONFIG")
REAL_TARGET = os.environ.get("KAR98K_TEST_TARGET_URL", "")
OPERATOR_NAMESPACE = "kar98k-system"
RELEASE = "kar98k"
NODES = 5
CRD_FILE = REPO / "crds" / "loadtests.kar98k.dev.yaml"
BARE_NAMESPACE = "perf"


@dataclass
class ClusterUnderTest:
    kubeconfig: Path
    local: Cluster | None
    operator: InClusterOperator | None

    def client(self) -> Kube:
        kubeconfig = str(self.kubeconfig)
        return Kube(lambda: connection_from_kubeconfig(kubeconfig))

    def require_local(self) -> Cluster:
        if self.local is None:
            pytest.fail("this test needs the suite's own cluster (node agent, audit log)")
        return self.local

    def require_operator(self) -> InClusterOperator:
        if self.operator is None:
            pytest.fail("this test needs the operator the suite installed")
        return self.operator


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    if REAL_KUBECONFIG:
        yield ClusterUnderTest(Path(REAL_KUBECONFIG), None, None)
        return
    with running_cluster(tmp_path_factory.mktemp("cluster"), nodes=NODES) as local:
        local.install_chart(RELEASE, OPERATOR_NAMESPACE)
        operator = InClusterOperator(local, OPERATOR_NAMESPACE, RELEASE)
        operator.wait_healthy()
        yield ClusterUnderTest(local.kubeconfig, local, operator)


@pytest.fixture
def operator(cluster: ClusterUnderTest) -> InClusterOperator | None:
    """The chart's operator, healthy (a test that killed it waits for its restart); None on a
    foreign cluster."""
    if cluster.operator is not None:
        cluster.operator.wait_healthy()
    return cluster.operator


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
    await api.delete(path("v1", "namespaces", name=name))


@dataclass
class Target:
    """Where load goes: the local counting server, or an external URL (foreign clusters)."""

    base_url: str
    server: DemoHttpServer | None

    @property
    def url(self) -> str:
        return self.base_url + "/fast"

    def count(self, key: str | None = None) -> int:
        """Requests that arrived so far (all, or for one path)."""
        if self.server is None:
            pytest.fail("server-side counts need the local target server")
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
            pytest.fail("set KAR98K_TEST_TARGET_URL for runs against a foreign cluster")
        yield Target(REAL_TARGET.rstrip("/"), None)
        return
    async with DemoHttpServer("127.0.0.1") as server:
        yield Target(server.url, server)


@pytest.fixture(scope="session")
def bare_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real API server with the CRD (`kubectl apply -f crds/`) and no operator: nothing but
    the test acts on its LoadTests."""
    with running_control_plane(tmp_path_factory.mktemp("bare")) as plane:
        kubectl = [plane.tool("kubectl"), f"--kubeconfig={plane.kubeconfig}"]
        for step in (
            ["apply", "-f", str(CRD_FILE.parent)],
            ["wait", "--for=condition=Established", "crd/loadtests.kar98k.dev"],
            ["create", "namespace", BARE_NAMESPACE],
        ):
            subprocess.run([*kubectl, *step], check=True, capture_output=True, timeout=60)
        yield plane


@pytest.fixture
async def bare_api(bare_plane: ControlPlane) -> AsyncIterator[Kube]:
    kubeconfig = str(bare_plane.kubeconfig)
    kube = Kube(lambda: connection_from_kubeconfig(kubeconfig))
    try:
        yield kube
    finally:
        await kube.close()
