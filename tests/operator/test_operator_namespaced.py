"""Namespaced mode: `kar98k-operator --namespace team-a` runs LoadTests in team-a and no others.

This operator gets an emulated cluster of its own (same harness, second API server, kubelet and
operator process): the suite's operator serves every namespace, so on the shared cluster it would
pick up team-b's LoadTest itself and nothing could show that this one left it alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REAL_KUBECONFIG, Target
from k8s_cluster import EmulatedCluster, OperatorProcess, client_for, cluster_with_operator
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


@pytest.fixture
def team_a_operator(tmp_path: Path) -> Iterator[tuple[EmulatedCluster, OperatorProcess]]:
    if REAL_KUBECONFIG:
        pytest.skip("needs the emulated cluster's harness")
    namespaces = ("team-a", "team-b")
    with cluster_with_operator(tmp_path, "--namespace", "team-a", namespaces=namespaces) as pair:
        yield pair


async def test_namespaced_operator_runs_its_namespace_and_leaves_others_alone(
    team_a_operator: tuple[EmulatedCluster, OperatorProcess], target: Target
) -> None:
    emulated, operator = team_a_operator
    api = client_for(emulated.kubeconfig)
    try:
        # team-b's first, so it has been there at least as long as the one that gets served.
        theirs = await apply(
            api, "team-b", manifest("theirs", target.url, pattern={"baseTPS": RATE})
        )
        await apply(api, "team-a", manifest("mine", target.url, pattern={"baseTPS": RATE}))

        try:
            await wait_status(
                api, "team-a", "mine", running_with(1), within=START, what="Running in team-a"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{operator.tail()}") from None
        mine = await children(api, "team-a", "mine")
        assert [len(mine[k]) for k in ("deployments", "secrets", "pods")] == [1, 1, 1]
        # One LoadTest's worth of traffic arrives, not two.
        rate = await target.rate(2.0)
        assert RATE * 0.75 <= rate <= RATE * 1.25, f"the target saw {rate:.1f} req/s"

        # team-b's LoadTest is exactly as it was created: no status, no finalizer, no kopf
        # annotations, the same resourceVersion; no children and no events either.
        assert await get_lt(api, "team-b", "theirs") == theirs
        assert "status" not in theirs and "finalizers" not in theirs["metadata"]
        assert not any((await children(api, "team-b", "theirs")).values())
        assert await events_of(api, "team-b", "theirs") == []
        metrics = operator.metrics()
        assert 'kar98k_ready_pods{loadtest="mine",namespace="team-a"} 1.0' in metrics
        assert 'namespace="team-b"' not in metrics

        await delete_and_wait(api, "team-a", "mine")
        await delete_and_wait(api, "team-b", "theirs")
    finally:
        await api.close()
