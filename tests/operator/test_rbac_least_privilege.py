"""Least privilege, measured on the real API server: the chart grants what the operator calls.

The API server's audit log records every call the operator's ServiceAccount makes. After a whole
lifecycle (this test's own, plus every scenario that ran before it in the session), each verb the
chart grants must have been used — or be listed below with the code path that needs it — and no
call may have been refused. Runs after the scenario files (alphabetical order), so in a full
session it judges all of them.
"""

from __future__ import annotations

import json

import pytest
from cluster.operator_pod import InClusterOperator
from conftest import OPERATOR_NAMESPACE, RELEASE, ClusterUnderTest, Target
from kar98k_operator import names
from kar98k_operator.kube import Kube, path
from lt_helpers import apply, children, get_lt, manifest, patch_lt, wait_for, wait_phase

pytestmark = pytest.mark.slow

USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}-operator"
# Granted for paths a healthy lifecycle does not take, each named.
RARELY_USED = {
    ("", "secrets", "patch"): "children.ensure_secret repairs a token Secret edited by hand",
}


def granted(cluster: ClusterUnderTest) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every ClusterRole the chart binds to the operator."""
    local = cluster.require_local()
    out: set[tuple[str, str, str]] = set()
    for role in (f"{RELEASE}-operator", f"{RELEASE}-operator-discovery"):
        rules = json.loads(local.kubectl("get", "clusterrole", role, "-o", "json").stdout)["rules"]
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    out.update((group, resource, verb) for verb in rule["verbs"])
    return out


def used(cluster: ClusterUnderTest) -> set[tuple[str, str, str]]:
    # Watches still open have only started; finished calls completed.
    calls = cluster.require_local().audit(
        lambda e: (
            (e.get("user") or {}).get("username") == USER
            and e.get("stage") in ("ResponseStarted", "ResponseComplete")
        )
    )
    out = set()
    for call in calls:
        ref = call.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # discovery (/api, /apis): allowed to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        out.add((ref.get("apiGroup", ""), resource, call["verb"]))
    return out


async def test_every_granted_verb_is_used_and_nothing_is_forbidden(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest, operator: InClusterOperator
) -> None:
    # A schedule (list/watch/patch, its status, LoadTests created): it fires at the next
    # minute, while the lifecycles below run.
    run = manifest("unused", target.url, duration="3s", pattern={"baseTPS": 10})
    await api.create(
        path(names.API_VERSION, names.SCHEDULE_PLURAL, namespace=ns),
        {
            "apiVersion": names.API_VERSION,
            "kind": names.SCHEDULE_KIND,
            "metadata": {"name": "audited"},
            "spec": {"schedule": "* * * * *", "template": {"spec": run["spec"]}},
        },
    )
    # Whole lifecycles: children made, a spike, the finish (scale to 0), then the cleanup
    # policies: `pods` deletes the Deployment and Secret, `all` the LoadTest itself.
    for name, action in (("audited-pods", "pods"), ("audited-all", "all")):
        cleanup = {"onSuccess": action, "ttlSecondsAfterFinished": 0}
        body = manifest(name, target.url, duration="4s", pattern={"baseTPS": 30}, cleanup=cleanup)
        await apply(api, ns, body)
    spike = {"metadata": {"annotations": {names.ANNOTATION_SPIKE: "factor=2,duration=1s"}}}
    await wait_phase(api, ns, "audited-pods", "Running", within=30)
    await patch_lt(api, ns, "audited-pods", spike)
    await wait_phase(api, ns, "audited-pods", "Succeeded", within=40)

    async def cleaned() -> bool:
        kids = await children(api, ns, "audited-pods")
        return await get_lt(api, ns, "audited-all") is None and not any(kids.values())

    await wait_for(cleaned, within=40, what="both cleanup policies carried out")

    async def fired() -> bool:
        listing = await api.list(
            path(names.API_VERSION, names.PLURAL, namespace=ns),
            label_selector=f"{names.LABEL_SCHEDULE}=audited",
        )
        return bool(listing.get("items"))

    await wait_for(fired, within=75, what="the schedule's first run", interval=0.5)
    await api.merge_patch(
        path(names.API_VERSION, names.SCHEDULE_PLURAL, namespace=ns, name="audited"),
        {"spec": {"suspend": True}},
    )

    forbidden = cluster.require_local().forbidden(USER)
    assert forbidden == [], f"calls RBAC refused: {forbidden}"
    grants, calls = granted(cluster), used(cluster)
    unused = sorted(g for g in grants - calls if g not in RARELY_USED)
    assert unused == [], f"granted but never used: {unused}\nused: {sorted(calls)}"
    ungranted = sorted(calls - grants)
    assert ungranted == [], f"used without a grant (namespaced Role?): {ungranted}"
