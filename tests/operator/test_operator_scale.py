"""Scale on one machine: ten LoadTests at once, three load pods each, over the cluster's five nodes.

All reach Running; every status stays fresh (its elapsedSeconds within 2 s of the wall clock's,
plus the 2 s status interval); the operator's CPU and its request rate on the API server (from the
audit log: every call its ServiceAccount made) are printed per LoadTest, and bounded.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime

import pytest
from cluster.operator_pod import CONTAINER, InClusterOperator
from conftest import OPERATOR_NAMESPACE, RELEASE, ClusterUnderTest, Target
from kar98k_operator.kube import Kube
from lt_helpers import apply, children, manifest, running_with, status_of, wait_status

pytestmark = pytest.mark.slow

LOADTESTS, PODS, RATE = 10, 3, 15.0
STATUS_INTERVAL = 2.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_ten_loadtests_with_three_pods_each_stay_fresh(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest, operator: InClusterOperator
) -> None:
    local = cluster.require_local()
    names = [f"fleet-{i}" for i in range(LOADTESTS)]
    for name in names:
        await apply(
            api,
            ns,
            manifest(
                name,
                target.url,
                pattern={"baseTPS": RATE},
                loadPods={"replicas": PODS, "separate": False},
            ),
        )
    for name in names:
        await wait_status(api, ns, name, running_with(PODS), within=120, what=f"{name} Running")
    nodes = {p["spec"]["nodeName"] for n in names for p in (await children(api, ns, n))["pods"]}
    assert len(nodes) >= 3, f"the scheduler used only {nodes}"

    pod = operator.pod()
    pid = local.pid(OPERATOR_NAMESPACE, pod["metadata"]["name"], CONTAINER)
    user = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}-operator"
    window = 10.0
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    stamp0 = datetime.now(UTC).isoformat()
    stale: list[str] = []
    deadline = t0 + window
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        for name in names:
            status = await status_of(api, ns, name)
            started = datetime.fromisoformat(status["startTime"].replace("Z", "+00:00"))
            lag = (now - started).total_seconds() - float(status["elapsedSeconds"])
            if lag > STATUS_INTERVAL + 2.0:
                stale.append(f"{name}: {lag:.1f}s behind")
        await asyncio.sleep(1.0)
    elapsed = time.monotonic() - t0
    cpu = (cpu_seconds(pid) - cpu0) / elapsed
    calls = local.audit(
        lambda e: (
            (e.get("user") or {}).get("username") == user
            and e.get("stage") == "ResponseComplete"
            and e.get("stageTimestamp", "") >= stamp0
        )
    )
    per_lt = len(calls) / elapsed / LOADTESTS
    rate = await target.rate(2.0)
    print(
        f"\n{LOADTESTS} LoadTests x {PODS} pods: operator CPU {cpu:.0%} of a core, "
        f"{per_lt:.2f} API requests/s per LoadTest, target saw {rate:.0f} req/s "
        f"(asked {LOADTESTS * RATE:.0f})"
    )
    assert not stale, stale
    assert LOADTESTS * RATE * 0.75 <= rate <= LOADTESTS * RATE * 1.25
    # Status every 2 s plus events and watches: a handful of calls per second per LoadTest.
    assert per_lt < 5.0, f"{per_lt:.1f} API requests/s per LoadTest"
    assert cpu < 0.9, f"the operator used {cpu:.0%} of a core"
