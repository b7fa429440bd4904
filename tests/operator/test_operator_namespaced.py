"""Namespaced mode: the chart with `watch.clusterWide=false` runs LoadTests in team-a and no others.

This release gets a control plane of its own (the suite's operator serves every namespace, so on
the shared cluster it would pick up team-b's LoadTest itself and nothing could show that this one
left it alone). It is installed with `helm install` as shipped, so the operator runs with the
namespaced RBAC (a Role in team-a only): anything it tried beyond that would be Forbidden, and the
test reads the API server's audit log to prove it never was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from cluster.harness import Cluster, running_cluster
from cluster.operator_pod import InClusterOperator
from conftest import REAL_KUBECONFIG, Target
from kar98k_operator.kube import Kube
from lt_helpers import (
    apply,
    children,
    delete_and_wait,
    events_of,
    get_lt,
    manifest,
    running_with,
    wait_status,
)

pytestmark = pytest.mark.slow

START = 30.0  # generous deadline for pods to start on a busy 2-core machine
RATE = 40.0
RELEASE = "team-a-ops"
OPS_NAMESPACE = "load-ops"


@pytest.fixture(scope="module")
def namespaced(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Cluster, InClusterOperator]]:
    if REAL_KUBECONFIG:
        pytest.fail("namespaced mode is proven on the suite's own control plane")
    with running_cluster(tmp_path_factory.mktemp("namespaced"), nodes=2) as local:
        for name in ("team-a", "team-b", OPS_NAMESPACE):
            local.kubectl("create", "namespace", name)
        local.install_chart(
            RELEASE, OPS_NAMESPACE, {"watch": {"clusterWide": False, "namespaces": ["team-a"]}}
        )
        operator = InClusterOperator(local, OPS_NAMESPACE, RELEASE)
        operator.wait_healthy()
        yield local, operator


@pytest.fixture
async def team_api(namespaced: tuple[Cluster, InClusterOperator]) -> AsyncIterator[Kube]:
    async with namespaced[0].api() as kube:
        yield kube


async def test_namespaced_operator_runs_its_namespace_and_leaves_others_alone(
    namespaced: tuple[Cluster, InClusterOperator], team_api: Kube, target: Target
) -> None:
    local, operator = namespaced
    api = team_api
    # team-b's first, so it has been there at least as long as the one that gets served.
    theirs = await apply(api, "team-b", manifest("theirs", target.url, pattern={"baseTPS": RATE}))
    await apply(api, "team-a", manifest("mine", target.url, pattern={"baseTPS": RATE}))

    try:
        await wait_status(
            api, "team-a", "mine", running_with(1), within=START, what="Running in team-a"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{operator.tail()}") from None
    mine = await children(api, "team-a", "mine")
    assert [len(mine[k]) for k in ("deployments", "secrets", "pods")] == [1, 1, 1]
    # One LoadTest's worth of traffic arrives, not two: the bounds sit halfway to none and to
    # two (a pod catching up after a stall of a busy machine sends above its rate for a moment;
    # 52 req/s was seen in one 2 s window of a full-suite run).
    rate = await target.rate(4.0)
    assert RATE * 0.5 <= rate <= RATE * 1.5, f"the target saw {rate:.1f} req/s"

    # team-b's LoadTest is exactly as it was created: no status, no finalizer, no kopf
    # annotations, the same resourceVersion; no children and no events either.
    assert await get_lt(api, "team-b", "theirs") == theirs
    assert "status" not in theirs and "finalizers" not in theirs["metadata"]
    assert not any((await children(api, "team-b", "theirs")).values())
    assert await events_of(api, "team-b", "theirs") == []
    metrics = operator.metrics()
    assert 'kar98k_loadtest_ready_pods{loadtest="mine",namespace="team-a"} 1.0' in metrics
    assert 'namespace="team-b"' not in metrics

    await delete_and_wait(api, "team-a", "mine")
    await delete_and_wait(api, "team-b", "theirs")
    # Everything it did, it was allowed to do with the namespaced RBAC as shipped.
    assert local.forbidden(f"system:serviceaccount:{OPS_NAMESPACE}:{RELEASE}-operator") == []


def test_namespaced_rbac_is_a_role_in_the_served_namespace_only(
    namespaced: tuple[Cluster, InClusterOperator],
) -> None:
    local, _ = namespaced
    account = f"system:serviceaccount:{OPS_NAMESPACE}:{RELEASE}-operator"
    for namespace, allowed in (("team-a", "yes"), ("team-b", "no")):
        answer = local.kubectl(
            "auth", "can-i", "create", "deployments.apps", "-n", namespace, "--as", account,
            check=False,
        )  # fmt: skip
        assert answer.stdout.strip() == allowed, (namespace, answer.stdout, answer.stderr)
    cluster_wide = local.kubectl(
        "auth", "can-i", "list", "loadtests.kar98k.dev", "-A", "--as", account, check=False
    )
    assert cluster_wide.stdout.strip() == "no"
