"""The operator's pure parts: children manifests, pod readiness, the spike annotation, status."""

from __future__ import annotations

import asyncio
import base64
import itertools
from typing import Any

import pytest
from kar98k.results import LatencyPair, LatencySummary, RunSummary, TargetSummary
from kar98k.spec import parse_spec
from kar98k.spec.status import ConditionType, LoadTestStatus
from kar98k_operator import names
from kar98k_operator.children import (
    contains,
    deployment_manifest,
    owner_reference,
    replicas_for,
    secret_manifest,
)
from kar98k_operator.config import OperatorConfig
from kar98k_operator.main import build_parser
from kar98k_operator.pool import PodPool, control_port, is_ready, why_not_ready
from kar98k_operator.spike_annotation import parse_spike
from kar98k_operator.status import StatusWriter, summary_figures

OWNER = {
    "apiVersion": "kar98k.dev/v1alpha1",
    "kind": "LoadTest",
    "metadata": {"name": "shop", "namespace": "perf", "uid": "1234-uid"},
}
BASE = {"targets": [{"name": "a", "url": "http://svc:8080/"}], "pattern": {"baseTPS": 100}}


def spec(**load_pods: Any) -> Any:
    return parse_spec({**BASE, "pattern": {"baseTPS": 100, "maxTPS": 950}, "loadPods": load_pods})


def test_replicas_are_explicit_or_derived_from_max_tps() -> None:
    assert replicas_for(spec(replicas=3)) == 3
    assert replicas_for(spec(perPodMaxTPS=200)) == 5  # ceil(950 / 200)
    assert replicas_for(spec()) == 1


def test_owner_reference_needs_the_real_uid() -> None:
    ref = owner_reference(OWNER)
    assert ref == {
        "apiVersion": "kar98k.dev/v1alpha1",
        "kind": "LoadTest",
        "name": "shop",
        "uid": "1234-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    with pytest.raises(ValueError, match="uid"):
        owner_reference({"metadata": {"name": "x"}})


def test_deployment_is_hardened_and_follows_the_spec() -> None:
    config = OperatorConfig(loadpod_image="reg/loadpod:1", control_port=9000)
    the_spec = spec(
        replicas=2,
        separate=True,
        nodeSelector={"pool": "load"},
        tolerations=[{"key": "load", "operator": "Exists"}],
        resources={"limits": {"cpu": "2"}},
        env=[
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "t"}}},
            {"name": "KAR98K_TOKEN", "value": "user cannot override this"},
        ],
    )
    deploy = deployment_manifest(OWNER, the_spec, config, replicas=2)
    assert deploy["metadata"]["name"] == "shop-loadpod"
    assert deploy["metadata"]["ownerReferences"][0]["uid"] == "1234-uid"
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["selector"]["matchLabels"] == {
        names.LABEL_NAME: "kar98k-loadpod",
        names.LABEL_LOADTEST: "shop",
    }
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "reg/loadpod:1"
    assert container["ports"] == [{"name": "control", "containerPort": 9000, "protocol": "TCP"}]
    assert container["resources"] == {"limits": {"cpu": "2"}}
    sec = container["securityContext"]
    assert sec["readOnlyRootFilesystem"] and sec["runAsNonRoot"]
    assert sec["capabilities"] == {"drop": ["ALL"]} and not sec["allowPrivilegeEscalation"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "control"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "control"}
    env = {e["name"]: e for e in container["env"]}
    assert env["KAR98K_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "shop-loadpod-token",
        "key": "token",
    }
    assert [e["name"] for e in container["env"]].count("KAR98K_TOKEN") == 1
    assert env["API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "api"
    assert pod["nodeSelector"] == {"pool": "load"}
    assert pod["tolerations"] == [{"key": "load", "operator": "Exists"}]
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert not pod["automountServiceAccountToken"]


def test_image_override_and_default_resources() -> None:
    config = OperatorConfig(loadpod_image="reg/loadpod:1")
    deploy = deployment_manifest(OWNER, spec(image="mine/loadpod:dev"), config, replicas=1)
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "mine/loadpod:dev"
    assert container["resources"] == config.default_resources
    assert "affinity" not in deploy["spec"]["template"]["spec"]


def test_config_from_env() -> None:
    config = OperatorConfig.from_env(
        {"KAR98K_LOADPOD_IMAGE": "x/y:z", "KAR98K_LOADPOD_PORT": "7000"}
    )
    assert config.loadpod_image == "x/y:z" and config.control_port == 7000


def test_secret_carries_the_token_base64() -> None:
    secret = secret_manifest(OWNER, "s3cr3t")
    assert base64.b64decode(secret["data"]["token"]).decode() == "s3cr3t"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "1234-uid"


def test_contains_ignores_server_defaults_but_not_differences() -> None:
    desired = {"spec": {"replicas": 2, "template": {"containers": [{"name": "a"}]}}}
    actual = {"spec": {"replicas": 2, "paused": False,
                       "template": {"containers": [{"name": "a", "tty": False}]}}}  # fmt: skip
    assert contains(actual, desired)
    assert not contains(actual, {"spec": {"replicas": 3}})
    assert not contains(actual, {"spec": {"template": {"containers": [{}, {}]}}})


def ready_pod(**status: Any) -> dict[str, Any]:
    base = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"ports": [{"name": "control", "containerPort": 8123}]}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    base["status"].update(status)
    return base


def test_pod_readiness_and_reasons() -> None:
    assert is_ready(ready_pod())
    assert not is_ready(ready_pod(podIP=None))
    assert not is_ready(ready_pod(conditions=[{"type": "Ready", "status": "False"}]))
    terminating = ready_pod()
    terminating["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not is_ready(terminating)
    assert control_port(ready_pod(), 8080) == 8123
    pulling = ready_pod(
        phase="Pending",
        containerStatuses=[
            {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}}}
        ],
    )
    assert why_not_ready(pulling) == "ImagePullBackOff (nope)"
    crashing = ready_pod(
        containerStatuses=[
            {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 4}
        ]
    )
    assert why_not_ready(crashing) == "CrashLoopBackOff"
    unschedulable = ready_pod(
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/3 nodes are available"}],
    )  # fmt: skip
    assert why_not_ready(unschedulable) == "Unschedulable (0/3 nodes are available)"


def test_pool_endpoints_are_ready_pods_with_their_ip_and_port() -> None:
    pool = PodPool(None, namespace="perf", loadtest="shop", default_port=8080)  # type: ignore[arg-type]
    pool.set_token("tkn")
    pool._apply("ADDED", ready_pod())
    other = ready_pod(podIP=None)
    other["metadata"]["name"] = "q"
    pool._apply("ADDED", other)
    (endpoint,) = pool.endpoints()
    assert (endpoint.name, endpoint.base_url, endpoint.token) == (
        "p",
        "http://10.0.0.7:8123",
        "tkn",
    )
    assert pool.unready() == [("q", "Running without a podIP")]
    pool._apply("DELETED", ready_pod())
    assert pool.endpoints() == []


@pytest.mark.parametrize(
    ("value", "factor", "duration"),
    [("factor=3,duration=30s", 3.0, 30.0), (" factor=1.5 , duration=2m, id=7", 1.5, 120.0),
     ("factor=2", 2.0, 30.0)],
)  # fmt: skip
def test_spike_annotation_parses(value: str, factor: float, duration: float) -> None:
    request = parse_spike(value)
    assert (request.factor, request.duration) == (factor, duration)


@pytest.mark.parametrize(
    ("value", "message"),
    [("duration=30s", "factor is required"), ("factor=0.5", ">= 1"), ("factor=x", "number"),
     ("factor=2,duration=forever", "duration"), ("factor=2,size=3", "unknown key"),
     ("factor", "key=value")],
)  # fmt: skip
def test_spike_annotation_rejects_nonsense(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_spike(value)


def test_summary_figures_use_the_requested_latency_basis() -> None:
    summary = RunSummary(
        name="x",
        seed=1,
        started_at="2024-01-01T00:00:00Z",
        requests_total=10,
        errors_total=1,
        error_rate=0.1,
        latency_ms=LatencyPair(raw=LatencySummary(p99=2.0), corrected=LatencySummary(p99=9.0)),
        targets={"a": TargetSummary(requests=10, errors=1, error_rate=0.1, healthy=False)},
    )
    assert summary_figures(summary).latency_ms.p99 == 9.0
    raw = summary_figures(summary, basis="raw").model_dump(by_alias=True, exclude_unset=True)
    assert raw["latencyMs"]["p99"] == 2.0
    assert raw["targets"] == [
        {"name": "a", "healthy": False, "requests": 10, "errors": 1, "errorRate": 0.1}
    ]
    assert "unaccountedMax" not in raw  # no pod died: the totals are exact
    summary.unaccounted_max = 37
    lost = summary_figures(summary).model_dump(by_alias=True, exclude_unset=True)
    assert lost["unaccountedMax"] == 37 and lost["requests"] == 10
    # Only what the figures are about goes into the patch: no phase, no defaults.
    assert set(raw) == {"requests", "errors", "errorRate", "latencyMs", "targets"}


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[tuple[float, dict[str, Any]]] = []

    async def merge_patch(self, url_path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((asyncio.get_running_loop().time(), patch))
        return {}


async def test_status_writer_batches_and_respects_the_interval() -> None:
    kube = FakeKube()
    writer = StatusWriter(
        kube,  # type: ignore[arg-type]
        namespace="perf",
        name="shop",
        current=LoadTestStatus(),
        min_interval=0.2,
    )
    task = asyncio.create_task(writer.run())
    try:
        for rate in range(10):
            writer.set(LoadTestStatus(target_tps=float(rate)))
            await asyncio.sleep(0.03)
        writer.condition(ConditionType.PODS_READY, True, "Ready", "2/2")
        await writer.flush()
    finally:
        task.cancel()
    times = [t for t, _ in kube.patches]
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(times))
    assert len(kube.patches) <= 3
    last = kube.patches[-1][1]["status"]
    assert last["targetTPS"] == 9.0
    assert last["conditions"][0]["type"] == "PodsReady"


def test_condition_transition_time_moves_only_on_flips() -> None:
    writer = StatusWriter(
        FakeKube(),  # type: ignore[arg-type]
        namespace="perf",
        name="shop",
        current=LoadTestStatus(),
    )
    assert writer.condition(ConditionType.PODS_READY, False, "Creating", "0/2")
    first = writer.view["conditions"][0]["lastTransitionTime"]
    assert not writer.condition(ConditionType.PODS_READY, False, "Creating", "1/2")
    assert writer.view["conditions"][0]["lastTransitionTime"] == first
    assert writer.view["conditions"][0]["message"] == "1/2"


def test_operator_cli_options() -> None:
    args = build_parser().parse_args(["-n", "a", "--namespace", "b", "--metrics-port", "0"])
    assert args.namespace == ["a", "b"] and args.metrics_port == 0
    assert build_parser().parse_args([]).namespace == []


def test_template_changes_name_each_pod_template_field_that_changed() -> None:
    from kar98k_operator.lifecycle.mid_run import template_changes  # noqa: PLC0415

    base = {"targets": [{"name": "a", "url": "http://x/"}], "pattern": {"baseTPS": 5}}
    old = parse_spec(base)
    new = parse_spec({**base, "loadPods": {"image": "x:2", "nodeSelector": {"pool": "load"},
                                           "separate": True, "replicas": 3}})  # fmt: skip
    assert template_changes(old, new) == [
        "spec.loadPods.image",
        "spec.loadPods.nodeSelector",
        "spec.loadPods.separate",
    ]
    assert template_changes(old, old) == []
