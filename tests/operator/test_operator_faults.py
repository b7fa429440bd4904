"""Faults a real API server will not make on demand, from a proxy between the operator and it.

The release gets a cluster of its own whose pods reach the API server through the fault proxy
(tests/cluster/faultproxy.py). While status writes answer 503 and then 409 for a while, traffic
goes on at the asked rate, the operator neither crashes nor restarts, retries stay bounded and no
status is lost once the API answers again; after every watch stream is cut, an edit still
reaches the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from cluster.harness import Cluster, running_cluster
from cluster.operator_pod import InClusterOperator
from conftest import REAL_KUBECONFIG, Target
from kar98k_operator.kube import Kube
from lt_helpers import apply, children, manifest, patch_lt, running_with, status_of, wait_status

pytestmark = pytest.mark.slow

RELEASE = "kar98k-faults"
NAMESPACE = "kar98k-faults"
LOAD_NS = "faulty"
STATUS_PATH = r"^/apis/kar98k\.dev/v1alpha1/namespaces/faulty/loadtests/[^/]+/status$"
RATE = 40.0


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, InClusterOperator]]:
    if REAL_KUBECONFIG:
        pytest.fail("API faults are injected on the suite's own control plane")
    with running_cluster(tmp_path_factory.mktemp("faults"), nodes=2, fault_proxy=True) as local:
        local.install_chart(RELEASE, NAMESPACE)
        operator = InClusterOperator(local, NAMESPACE, RELEASE)
        operator.wait_healthy()
        local.kubectl("create", "namespace", LOAD_NS)
        yield local, operator


@pytest.fixture
async def faulty_api(faulty: tuple[Cluster, InClusterOperator]) -> AsyncIterator[Kube]:
    async with faulty[0].api() as kube:
        yield kube


def status_lag(status: dict[str, object]) -> float:
    """How far status.elapsedSeconds trails the wall clock's time since startTime."""
    started = datetime.fromisoformat(str(status["startTime"]).replace("Z", "+00:00"))
    return (datetime.now(UTC) - started).total_seconds() - float(str(status["elapsedSeconds"]))


async def test_status_write_faults_and_cut_watches_lose_nothing(
    faulty: tuple[Cluster, InClusterOperator], faulty_api: Kube, target: Target
) -> None:
    local, operator = faulty
    proxy = local.proxy
    assert proxy is not None
    api = faulty_api
    await apply(api, LOAD_NS, manifest("steady", target.url, pattern={"baseTPS": RATE}))
    await wait_status(
        api,
        LOAD_NS,
        "steady",
        lambda s: running_with(1)(s) and s.get("epoch", 0) > 0,
        within=45,
        what="Running with plans pushed",
    )
    before = await status_of(api, LOAD_NS, "steady")

    # 6 s of 503s, then 4 s of 409s, on every status write of the operator.
    proxy.inject("PATCH", STATUS_PATH, 503, 6.0)
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    rate = await target.rate(5.0)
    assert RATE * 0.7 <= rate <= RATE * 1.3, f"traffic during 503s: {rate:.1f} req/s"
    proxy.inject("PATCH", STATUS_PATH, 409, 4.0)
    rate = await target.rate(3.0)
    assert RATE * 0.7 <= rate <= RATE * 1.3, f"traffic during 409s: {rate:.1f} req/s"
    frozen = await status_of(api, LOAD_NS, "steady")
    assert status_lag(frozen) > 4.0, "status kept moving although every write was refused"
    await asyncio.sleep(max(0.0, 10.5 - (time.monotonic() - t0)))  # the rest of the fault window
    refused = sum(n for key, n in proxy.injected.items() if key.startswith("PATCH"))

    # The API answers again: the status catches up at once, nothing duplicated or restarted.
    after = await wait_status(
        api, LOAD_NS, "steady", lambda s: status_lag(s) < 4.0, within=10, what="status caught up"
    )
    assert after["startTime"] == before["startTime"] and after["phase"] == "Running"
    assert after["requests"] > before["requests"]
    print(f"\nstatus writes refused over 10 s of faults: {refused} (writer interval 2 s)")
    assert 3 <= refused <= 12, f"{refused} status writes in 10 s: retries are not bounded"
    kids = await children(api, LOAD_NS, "steady")
    assert len(kids["deployments"]) == 1 and len(kids["secrets"]) == 1
    pod = operator.pod()
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0

    # Every watch stream cut at once: the next edit still reaches the run.
    cut = proxy.cut_watches()
    assert cut >= 1, "no watch stream went through the proxy"
    await patch_lt(api, LOAD_NS, "steady", {"spec": {"pattern": {"baseTPS": 2 * RATE}}})

    async def doubled() -> bool:
        return await target.rate(1.0) >= 2 * RATE * 0.75

    deadline = time.monotonic() + 20
    while not await doubled():
        assert time.monotonic() < deadline, "the edit after cut watches never took effect"
    await wait_status(
        api, LOAD_NS, "steady", lambda s: s.get("targetTPS") == 2 * RATE, within=10, what="edit"
    )
