"""The Helm chart renders, carries the same CRD as crds/, and grants least privilege."""

from __future__ import annotations

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
    ours = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert CRD_FILE in ours and "kopf-peerings.yaml" in ours
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == ours
    for name in ours:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), name


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
