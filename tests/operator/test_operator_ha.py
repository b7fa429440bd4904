"""High availability: two operator replicas through kopf peering, as the chart renders them.

The release gets a control plane of its own. With `replicaCount=2, peering.enabled=true` exactly
one replica acts (one replica starts the run, one set of children); SIGKILL the one that leads
and the other takes over within the peering lifetime, resuming the same run on the same curve.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import pytest
from cluster.harness import Cluster, running_cluster
from cluster.operator_pod import CONTAINER, InClusterOperator
from conftest import REAL_KUBECONFIG, Target
from kar98k.pattern import PatternEngine
from kar98k.spec import parse_spec
from kar98k_operator.kube import Kube
from kar98k_operator.peering import PEERING_LIFETIME
from lt_helpers import apply, children, events_of, manifest, running_with, wait_status

pytestmark = pytest.mark.slow

RELEASE = "kar98k-ha"
NAMESPACE = "kar98k-ha"
START = 45.0


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, InClusterOperator]]:
    if REAL_KUBECONFIG:
        pytest.fail("HA is proven on the suite's own control plane")
    with running_cluster(tmp_path_factory.mktemp("ha"), nodes=3) as local:
        local.install_chart(
            RELEASE, NAMESPACE, {"replicaCount": 2, "peering": {"enabled": True, "name": "ha"}}
        )
        operator = InClusterOperator(local, NAMESPACE, RELEASE)
        yield local, operator


@pytest.fixture
async def ha_api(ha: tuple[Cluster, InClusterOperator]) -> AsyncIterator[Kube]:
    async with ha[0].api() as kube:
        yield kube


def leader(local: Cluster) -> str:
    """The replica with the highest live priority in the peering object (kopf's rule)."""
    import json  # noqa: PLC0415

    peering = json.loads(local.kubectl("get", "clusterkopfpeering", "ha", "-o", "json").stdout)
    peers = (peering.get("status") or {}).items()
    return max(peers, key=lambda item: int(item[1]["priority"]))[0]


async def test_one_replica_acts_and_the_other_takes_over_when_it_dies(
    ha: tuple[Cluster, InClusterOperator], ha_api: Kube, target: Target
) -> None:
    local, operator = ha
    api = ha_api
    local.kubectl("create", "namespace", "ha-load")
    body = manifest("steady", target.url, pattern={"baseTPS": 60, "seed": 7,
                    "noise": {"enabled": True, "amplitude": 0.2}})  # fmt: skip
    await apply(api, "ha-load", body)
    before = await wait_status(
        api,
        "ha-load",
        "steady",
        lambda s: running_with(1)(s) and s.get("epoch", 0) > 0,
        within=START,
        what="Running with plans pushed",
    )
    assert len(operator.running_pods()) == 2
    starters = [
        p["metadata"]["name"]
        for p in operator.running_pods()
        if "started with" in local.log(NAMESPACE, p["metadata"]["name"], CONTAINER)
    ]
    started = [e for e in await events_of(api, "ha-load", "steady") if e["reason"] == "Started"]
    assert len(starters) == 1, f"replicas that started the run: {starters}; events: {started}"
    kids = await children(api, "ha-load", "steady")
    assert len(kids["deployments"]) == 1 and len(kids["secrets"]) == 1
    rate = await target.rate(2.0)
    assert 60 * 0.6 <= rate <= 60 * 1.4, f"one replica's worth of load expected, saw {rate:.1f}/s"

    active = leader(local)
    pods = {p["metadata"]["name"]: p for p in operator.running_pods()}
    assert active in pods, (active, list(pods))
    (standby,) = [name for name in pods if name != active]
    standby_log = lambda: local.log(NAMESPACE, standby, CONTAINER)  # noqa: E731
    # kopf starts a peering replica paused; the standby never acted on the LoadTest.
    assert "started with" not in standby_log() and "resuming the run" not in standby_log()
    operator.kill(pods[active])
    killed_at = time.monotonic()
    while "resuming the run" not in standby_log():
        assert time.monotonic() - killed_at < PEERING_LIFETIME + 20, (
            f"the standby did not take over:\n{standby_log()[-3000:]}"
        )
        await asyncio.sleep(0.1)
    takeover = time.monotonic() - killed_at
    after = await wait_status(
        api,
        "ha-load",
        "steady",
        lambda s: s.get("epoch", 0) > before["epoch"] and s.get("phase") == "Running",
        within=10,
        what="status from the new leader",
    )
    print(f"\ntakeover after SIGKILL of the leader: {takeover:.1f} s")
    assert takeover <= PEERING_LIFETIME + 5
    assert after["startTime"] == before["startTime"] and after["seed"] == before["seed"]
    engine = PatternEngine(
        parse_spec(body["spec"]).pattern,
        seed=after["seed"],
        start=datetime.fromisoformat(after["startTime"].replace("Z", "+00:00")),
    )
    assert after["targetTPS"] == pytest.approx(engine.at(after["elapsedSeconds"]).rate, abs=1.5)
    await asyncio.sleep(1.0)
    assert await target.rate(2.0) > 60 * 0.5, "no traffic after the takeover"
    assert len((await children(api, "ha-load", "steady"))["deployments"]) == 1
    # Peering included, the replicas did only what the chart's RBAC allows.
    assert local.forbidden(f"system:serviceaccount:{NAMESPACE}:{RELEASE}-operator") == []
