"""spec.loadPods.template: an overlay merged into the load pods' template, validated by the model
(and by the CRD's schema and CEL rule, on the real API server), with the operator's parts kept."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kar98k.spec import SpecError, parse_spec
from kar98k_operator import names
from kar98k_operator.children import deployment_manifest, replacing, up_to_date
from kar98k_operator.config import OperatorConfig
from kar98k_operator.lifecycle.mid_run import template_changes

OWNER = {
    "apiVersion": "kar98k.dev/v1alpha1",
    "kind": "LoadTest",
    "metadata": {"name": "shop", "namespace": "perf", "uid": "1234-uid"},
}
BASE = {"targets": [{"name": "a", "url": "http://svc:8080/"}], "pattern": {"baseTPS": 10}}
CONFIG = OperatorConfig(loadpod_image="reg/loadpod:1", control_port=8080)


def _spec(template: dict[str, Any], **load_pods: Any) -> Any:
    return parse_spec({**BASE, "loadPods": {**load_pods, "template": template}})


def _pod(template: dict[str, Any], **load_pods: Any) -> dict[str, Any]:
    deploy = deployment_manifest(OWNER, _spec(template, **load_pods), CONFIG, replicas=1)
    pod: dict[str, Any] = deploy["spec"]["template"]
    assert deploy["spec"]["selector"]["matchLabels"] == names.pod_labels("shop")
    return pod


def test_no_overlay_changes_nothing() -> None:
    plain = deployment_manifest(OWNER, parse_spec(BASE), CONFIG, replicas=1)
    empty = deployment_manifest(OWNER, _spec({}), CONFIG, replicas=1)
    assert plain == empty
    pod = plain["spec"]["template"]
    assert "annotations" not in pod["metadata"]
    assert pod["spec"]["securityContext"]["runAsUser"] == CONFIG.run_as_user


def test_labels_annotations_and_pod_fields_land_in_the_template() -> None:
    pod = _pod(
        {
            "metadata": {
                "labels": {"team": "payments", "cost-center": "42"},
                "annotations": {
                    "sidecar.istio.io/inject": "false",
                    "linkerd.io/inject": "disabled",
                },
            },
            "spec": {
                "imagePullSecrets": [{"name": "regcred"}],
                "serviceAccountName": "load-runner",
                "automountServiceAccountToken": True,
                "priorityClassName": "load-low",
                "runtimeClassName": "gvisor",
                "schedulerName": "batch",
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                     "whenUnsatisfiable": "ScheduleAnyway"},
                    {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
                     "whenUnsatisfiable": "DoNotSchedule",
                     "labelSelector": {"matchLabels": {"team": "payments"}}},
                ],
            },
        }
    )  # fmt: skip
    labels = pod["metadata"]["labels"]
    assert labels["team"] == "payments" and labels["cost-center"] == "42"
    assert names.pod_labels("shop").items() <= labels.items()
    assert pod["metadata"]["annotations"] == {
        "sidecar.istio.io/inject": "false",
        "linkerd.io/inject": "disabled",
    }
    spec = pod["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["serviceAccountName"] == "load-runner"
    assert spec["automountServiceAccountToken"] is True
    assert spec["priorityClassName"] == "load-low"
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["schedulerName"] == "batch"
    zone, host = spec["topologySpreadConstraints"]
    # Without a selector a constraint counts this LoadTest's own load pods.
    assert zone == {
        "labelSelector": {"matchLabels": names.pod_labels("shop")},
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
    }
    assert host["labelSelector"] == {"matchLabels": {"team": "payments"}}


def test_the_container_stays_the_operators() -> None:
    plain = deployment_manifest(OWNER, parse_spec(BASE), CONFIG, replicas=1)
    pod = _pod(
        {
            "metadata": {"labels": {"team": "x"}},
            "spec": {"serviceAccountName": "sa", "securityContext": {"runAsUser": 1000}},
        }
    )
    assert pod["spec"]["containers"] == plain["spec"]["template"]["spec"]["containers"]
    (container,) = pod["spec"]["containers"]
    assert container["ports"][0]["name"] == "control"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert [e["name"] for e in container["env"]].count("KAR98K_TOKEN") == 1


@pytest.mark.parametrize(
    "template",
    [
        {"spec": {"containers": [{"name": "loadpod", "image": "evil"}]}},
        {"spec": {"readinessProbe": {}}},
        {"spec": {"securityContext": {"runAsNonRoot": False}}},
        {"spec": {"securityContext": {"runAsUser": 0}}},
        {"spec": {"hostNetwork": True}},
        {"metadata": {"labels": {"kar98k.dev/loadtest": "other"}}},
        {"metadata": {"labels": {"app.kubernetes.io/name": "other"}}},
        {"metadata": {"name": "x"}},
        {"spec": {"imagePullSecrets": [{"name": "Not_A_Name"}]}},
        {"spec": {"imagePullSecrets": ["regcred"]}},
        {"spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                                  "whenUnsatisfiable": "Sometimes"}]}},
        {"spec": {"priorityClassName": "High Priority"}},
    ],
)  # fmt: skip
def test_operator_owned_or_invalid_fields_are_refused(template: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        _spec(template)


def test_security_context_overrides_and_explicit_null_unsets_ids() -> None:
    sec = _pod({"spec": {"securityContext": {"runAsUser": 1000700000, "fsGroup": 2000}}})["spec"][
        "securityContext"
    ]
    assert sec["runAsUser"] == 1000700000 and sec["fsGroup"] == 2000
    assert sec["runAsGroup"] == CONFIG.run_as_user and sec["runAsNonRoot"] is True
    # OpenShift's restricted SCC assigns UID and GID from the namespace's range: null unsets ours.
    pod = _pod({"spec": {"securityContext": {"runAsUser": None, "runAsGroup": None}}})
    sec = pod["spec"]["securityContext"]
    assert "runAsUser" not in sec and "runAsGroup" not in sec
    assert sec["runAsNonRoot"] is True and sec["seccompProfile"] == {"type": "RuntimeDefault"}
    # Absent is not null: the operator's UID stays.
    assert _pod({"spec": {"securityContext": {}}})["spec"]["securityContext"]["runAsUser"] == (
        CONFIG.run_as_user
    )


def test_a_pod_seccomp_profile_is_not_shadowed_by_the_containers() -> None:
    profile = {"type": "Localhost", "localhostProfile": "profiles/load.json"}
    pod = _pod({"spec": {"securityContext": {"seccompProfile": profile}}})
    assert pod["spec"]["securityContext"]["seccompProfile"] == profile
    assert "seccompProfile" not in pod["spec"]["containers"][0]["securityContext"]


def test_overlay_edits_mid_run_are_named_as_needing_a_new_run() -> None:
    old = _spec({"metadata": {"labels": {"team": "a"}}})
    new = _spec({"metadata": {"labels": {"team": "b"}}})
    assert template_changes(old, new) == ["spec.loadPods.template"]
    assert template_changes(old, copy.deepcopy(old)) == []


def test_a_dropped_overlay_key_is_removed_from_an_existing_deployment() -> None:
    """The Deployment made with the operator's UID and a label, then a spec that unsets the UID
    and drops the label: it is not up to date, and the patch removes both."""
    before = deployment_manifest(
        OWNER, _spec({"metadata": {"labels": {"team": "a"}}}), CONFIG, replicas=1
    )
    after = deployment_manifest(
        OWNER, _spec({"spec": {"securityContext": {"runAsUser": None}}}), CONFIG, replicas=1
    )
    # Server defaults elsewhere still count as up to date.
    served = copy.deepcopy(before)
    served["spec"]["progressDeadlineSeconds"] = 600
    assert up_to_date(served, before)
    assert not up_to_date(served, after)
    patch = replacing(served["spec"], after["spec"])
    template = patch["template"]
    assert template["spec"]["securityContext"]["runAsUser"] is None
    assert template["metadata"]["labels"]["team"] is None
