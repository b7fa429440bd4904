"""spec.loadPods.template on the real control plane: the overlay's labels, annotations,
priorityClassName, ServiceAccount, pull secret and spread constraint land on real pods, which the
API server's admission resolves (priority from the PriorityClass) and which run and send load;
`securityContext.runAsUser: null` survives the API server (nullable) and unsets the UID."""

from __future__ import annotations

import contextlib
import secrets

import pytest
from cluster.operator_pod import InClusterOperator
from conftest import Target
from kar98k_operator import names
from kar98k_operator.kube import Conflict, Kube, path
from lt_helpers import apply, children, get_lt, manifest, running_with, wait_for, wait_status

pytestmark = pytest.mark.slow

START = 30.0
PRIORITY = 4242


async def test_overlay_lands_on_running_load_pods(
    api: Kube, ns: str, target: Target, operator: InClusterOperator | None
) -> None:
    klass = f"kar98k-load-{secrets.token_hex(2)}"
    classes = path("scheduling.k8s.io/v1", "priorityclasses")
    await api.create(classes, {"metadata": {"name": klass}, "value": PRIORITY})
    with contextlib.suppress(Conflict):
        await api.create(
            path("v1", "serviceaccounts", namespace=ns), {"metadata": {"name": "load-runner"}}
        )
    await api.create(
        path("v1", "secrets", namespace=ns),
        {
            "metadata": {"name": "regcred"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": '{"auths": {}}'},
        },
    )
    template = {
        "metadata": {
            "labels": {"team": "payments"},
            "annotations": {"sidecar.istio.io/inject": "false", "linkerd.io/inject": "disabled"},
        },
        "spec": {
            "priorityClassName": klass,
            "serviceAccountName": "load-runner",
            "imagePullSecrets": [{"name": "regcred"}],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "DoNotSchedule",
                }
            ],
            "securityContext": {"runAsUser": None, "fsGroup": 3000},
        },
    }
    try:
        await apply(
            api,
            ns,
            manifest(
                "overlay",
                target.url,
                pattern={"baseTPS": 40},
                loadPods={"replicas": 2, "template": template},
            ),
        )
        stored = await get_lt(api, ns, "overlay")
        assert stored is not None
        stored_security = stored["spec"]["loadPods"]["template"]["spec"]["securityContext"]
        assert "runAsUser" in stored_security and stored_security["runAsUser"] is None

        await wait_status(api, ns, "overlay", running_with(2), within=START, what="2 ready pods")
        if target.server is not None:
            before = target.count()
            await wait_for(
                lambda: _more(target, before, 20), within=10, what="load from the overlay pods"
            )

        kids = await children(api, ns, "overlay")
        (deploy,) = kids["deployments"]
        pod_security = deploy["spec"]["template"]["spec"]["securityContext"]
        assert "runAsUser" not in pod_security and pod_security["fsGroup"] == 3000
        assert pod_security["runAsNonRoot"] is True
        pods = [p for p in kids["pods"] if p["status"].get("phase") == "Running"]
        assert len(pods) == 2
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            assert meta["labels"]["team"] == "payments"
            assert meta["labels"][names.LABEL_LOADTEST] == "overlay"
            assert meta["annotations"]["sidecar.istio.io/inject"] == "false"
            assert meta["annotations"]["linkerd.io/inject"] == "disabled"
            assert spec["priorityClassName"] == klass
            assert spec["priority"] == PRIORITY  # resolved by the API server's admission
            assert spec["serviceAccountName"] == "load-runner"
            assert spec["imagePullSecrets"] == [{"name": "regcred"}]
            (spread,) = spec["topologySpreadConstraints"]
            assert spread["labelSelector"] == {"matchLabels": names.pod_labels("overlay")}
        # maxSkew 1 over hostnames, DoNotSchedule: the real scheduler put them on two nodes.
        assert len({p["spec"]["nodeName"] for p in pods}) == 2
    finally:
        await api.delete(path("scheduling.k8s.io/v1", "priorityclasses", name=klass))


async def _more(target: Target, before: int, extra: int) -> bool:
    return target.count() - before >= extra
