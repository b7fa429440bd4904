"""The Helm chart renders, carries the same CRD as crds/, and grants least privilege."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kar98k"
CRD_FILE = "loadtests.kar98k.dev.yaml"
# Offline rendering has no server to ask; helm built with `go install` would assume 1.20.
KUBE_VERSION = "--kube-version=1.34.4"


def _helm() -> str:
    found = shutil.which("helm") or shutil.which("helm", path=str(ROOT / ".venv" / "bin"))
    if found is None:
        pytest.fail("helm is missing: `make test` builds it into .venv/bin")
    return found


def _render(*sets: str) -> list[dict[str, Any]]:
    args = [_helm(), "template", "t", str(CHART), "--namespace", "load", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_chart_crds_are_the_repository_crds() -> None:
    """kopf's peering CRDs sit in the chart's crds/ (installed once, before the release's
    peering objects); the kar98k.dev CRDs are templates (files/crds/) so upgrades carry them."""
    ours = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert CRD_FILE in ours and "kopf-peerings.yaml" in ours
    in_chart = {p.name: p for p in (CHART / "crds").glob("*.yaml")}
    in_chart |= {p.name: p for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert sorted(in_chart) == ours
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == ["kopf-peerings.yaml"]
    for name in ours:
        assert in_chart[name].read_bytes() == (ROOT / "crds" / name).read_bytes(), name


def test_crd_is_rendered_with_keep_policy_and_matches_the_repository() -> None:
    rendered = {c["metadata"]["name"]: c for c in _kinds(_render(), "CustomResourceDefinition")}
    assert sorted(rendered) == ["loadtests.kar98k.dev", "loadtestschedules.kar98k.dev"]
    for crd in rendered.values():
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        repo = yaml.safe_load((ROOT / "crds" / f"{crd['metadata']['name']}.yaml").read_text())
        del crd["metadata"]["annotations"]
        assert crd == repo
    for loose in _kinds(_render("crds.keep=false"), "CustomResourceDefinition"):
        assert "annotations" not in loose["metadata"]
    assert not _kinds(_render("crds.install=false"), "CustomResourceDefinition")


def test_chart_lints() -> None:
    result = subprocess.run(
        [_helm(), "lint", "--strict", KUBE_VERSION, str(CHART)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_wildcards_and_no_write_access_beyond_children() -> None:
    docs = _render()
    rules = [r for d in _kinds(docs, "ClusterRole") for r in d["rules"]]
    assert rules
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "*" not in rule["apiGroups"], rule
    writes = {"create", "patch", "update", "delete"}
    written = {
        (group, res)
        for rule in rules
        if writes & set(rule["verbs"])
        for group in rule["apiGroups"]
        for res in rule["resources"]
    }
    assert written == {
        ("kar98k.dev", "loadtests"),
        ("kar98k.dev", "loadtests/status"),
        ("kar98k.dev", "loadtestschedules"),  # kopf's finalizer and annotations
        ("kar98k.dev", "loadtestschedules/status"),
        ("apps", "deployments"),
        ("", "secrets"),
        ("", "events"),
        ("", "configmaps"),  # stored results of runs: create only
    }
    configmaps = {v for r in rules if "configmaps" in r["resources"] for v in r["verbs"]}
    assert configmaps == {"create"}


def test_namespaced_mode_uses_roles_only_in_the_listed_namespaces() -> None:
    docs = _render("watch.clusterWide=false", "watch.namespaces={team-a,team-b}")
    roles = _kinds(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    cluster_rules = [r for d in _kinds(docs, "ClusterRole") for r in d["rules"]]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in cluster_rules)
    args = _kinds(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_operator_runs_non_root_read_only() -> None:
    pod = _kinds(_render(), "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KAR98K_LOADPOD_IMAGE"].endswith(":0.1.0")


def test_values_schema_refuses_bad_values() -> None:
    result = subprocess.run(
        [_helm(), "template", "t", str(CHART), KUBE_VERSION, "--set", "replicaCount=0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "replicaCount" in result.stderr


def test_several_replicas_need_peering() -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        _render("replicaCount=2")
    assert "peering" in str(info.value.stderr)
    docs = _render("replicaCount=2", "peering.enabled=true")
    args = _kinds(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peering=kar98k" in args
    (peering,) = _kinds(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "kar98k"
    docs = _render(
        "replicaCount=2", "peering.enabled=true", "watch.clusterWide=false",
        "watch.namespaces={team-a,team-b}",
    )  # fmt: skip
    assert sorted(p["metadata"]["namespace"] for p in _kinds(docs, "KopfPeering")) == [
        "team-a",
        "team-b",
    ]
    assert not _kinds(docs, "ClusterKopfPeering")


def _refused(*sets: str) -> str:
    """The error of a render that must fail."""
    args = [_helm(), "template", "t", str(CHART), "--namespace", "load", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0, f"rendered although it should not: {sets}"
    return done.stderr


@pytest.mark.parametrize(
    ("typo", "where"),
    [
        ("resources.limit.memory=1Gi", "/resources"),
        ("resources.limits.memroy=1Gi", "/resources/limits"),
        ("resources.limits.memory=lots", "/resources/limits/memory"),
        ("image.pullpolicy=Always", "/image"),
        ("imagePullSecrets[0].nmae=regcred", "/imagePullSecrets/0"),
        ("tolerations[0].efect=NoSchedule", "/tolerations/0"),
        ("affinity.nodeAfinity.x=1", "/affinity"),
        ("crds.instal=false", "/crds"),
        ("podDisruptionBudget.minAvaliable=1", "/podDisruptionBudget"),
        ("metrics.serviceMonitor.intervall=30s", "/metrics/serviceMonitor"),
        ("metrics.dashboard.enable=true", "/metrics/dashboard"),
        ("metrics.dashboard.namespace=Not_A_Namespace", "/metrics/dashboard/namespace"),
        ("metrics.prometheusRule.label.x=y", "/metrics/prometheusRule"),
        ("replicas=2", "additional properties 'replicas'"),
    ],
)
def test_values_schema_is_closed_at_every_level(typo: str, where: str) -> None:
    assert where in _refused(typo)


def test_schema_closes_every_object() -> None:
    """Every object of values.schema.json says additionalProperties (false, or a typed map)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = []

    def walk(node: Any, at: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node:
                open_objects.append(at)
            for key, value in node.items():
                walk(value, f"{at}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{at}/{i}")

    walk(schema, "")
    assert not open_objects


def test_contradictory_watch_values_fail_with_a_clear_message() -> None:
    err = _refused("watch.clusterWide=false")
    assert "watch.clusterWide=false needs watch.namespaces" in err
    err = _refused("watch.namespaces={team-a}")
    assert "ignored while watch.clusterWide=true" in err and "team-a" in err


def test_pod_disruption_budget_only_with_several_replicas() -> None:
    assert not _kinds(_render(), "PodDisruptionBudget")
    docs = _render("replicaCount=2", "peering.enabled=true")
    (pdb,) = _kinds(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = _kinds(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert not _kinds(
        _render("replicaCount=2", "peering.enabled=true", "podDisruptionBudget.enabled=false"),
        "PodDisruptionBudget",
    )
    err = _refused("replicaCount=2", "peering.enabled=true", "podDisruptionBudget.minAvailable=2")
    assert "block every node drain" in err


def test_dashboard_and_rules_render_the_shipped_files_only_when_enabled() -> None:
    """The ConfigMap carries files/dashboard.json verbatim for the Grafana sidecar, the
    PrometheusRule carries files/rules.yaml's groups (the file promtool checks); both are off by
    default, and the monitors name the jobs the rules select."""
    assert not [d for d in _render() if d["kind"] in ("ConfigMap", "PrometheusRule")]
    docs = _render(
        "metrics.dashboard.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.prometheusRule.labels.release=kps",
        "metrics.serviceMonitor.enabled=true",
        "metrics.podMonitor.enabled=true",
    )
    (dashboard,) = _kinds(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "load"
    shipped = json.loads((CHART / "files" / "dashboard.json").read_text())
    assert json.loads(dashboard["data"]["kar98k-loadtests.json"]) == shipped
    titles = {p["title"] for p in shipped["panels"]}
    assert {
        "Target vs achieved rate",
        "Spikes",
        "Latency percentiles (raw)",
        "Latency percentiles (corrected)",
        "Errors by target and outcome",
        "Load pods ready",
        "Controller tick lag",
    } <= titles
    (rule,) = _kinds(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    rules = yaml.safe_load((CHART / "files" / "rules.yaml").read_text())
    assert rule["spec"]["groups"] == rules["groups"]
    jobs = {
        r["replacement"]
        for kind, key in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints"))
        for d in _kinds(docs, kind)
        for endpoint in d["spec"][key]
        for r in endpoint["relabelings"]
        if r["targetLabel"] == "job"
    }
    assert jobs == {"kar98k-operator", "kar98k-loadpod"}
    assert 'up{job="kar98k-operator"}' in (CHART / "files" / "rules.yaml").read_text()
