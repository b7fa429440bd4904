"""The chart on a real API server: every rendered mode passes server-side validation, and the CRD
upgrade path (helm upgrade with the templated CRD; `kubectl apply --server-side` without it)
really changes the schema, while uninstall leaves the CRD and the LoadTests in place."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.harness import CHART, REPO, Cluster, running_cluster

pytestmark = pytest.mark.slow

CRD = "loadtests.kar98k.dev"
KUBE_VERSION = "--kube-version=1.34.4"
# The prometheus-operator's own CRDs (ServiceMonitor, PodMonitor, PrometheusRule), from its Go
# module.
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"


def monitoring_crds() -> list[Path]:
    """The ServiceMonitor, PodMonitor and PrometheusRule CRDs of a pinned prometheus-operator
    release, fetched through the Go module proxy (like helm and the control plane), cached by Go."""
    try:
        done = subprocess.run(
            ["go", "mod", "download", "-json", PROMETHEUS_OPERATOR],
            capture_output=True, text=True, timeout=300, check=True, cwd="/",
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"cannot fetch {PROMETHEUS_OPERATOR} for its CRDs (needs go): {exc}")
    crds = Path(json.loads(done.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    return [
        crds / f"monitoring.coreos.com_{kind}.yaml"
        for kind in ("servicemonitors", "podmonitors", "prometheusrules")
    ]


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("chart"), nodes=1) as cluster:
        for ns in ("load", "team-a", "team-b", "served", "perf"):
            cluster.kubectl("create", "namespace", ns)
        cluster.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))  # kopf peerings
        for crd in monitoring_crds():
            cluster.kubectl("apply", "--server-side", "-f", str(crd))
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com",
            "crd/podmonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com",
        )  # fmt: skip
        yield cluster


MODES = {
    "cluster-wide": [],
    "namespaced": ["watch.clusterWide=false", "watch.namespaces={team-a,team-b}"],
    "ha-cluster-wide": ["replicaCount=2", "peering.enabled=true"],
    "ha-namespaced": [
        "replicaCount=3",
        "peering.enabled=true",
        "watch.clusterWide=false",
        "watch.namespaces={team-a,team-b}",
    ],
    "crds-external": ["crds.install=false", "crds.keep=false"],
    "monitoring": [
        "metrics.serviceMonitor.enabled=true",
        "metrics.podMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.dashboard.enabled=true",
    ],
    "monitoring-namespaced": [
        "metrics.serviceMonitor.enabled=true",
        "metrics.podMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.dashboard.enabled=true",
        "metrics.dashboard.namespace=team-b",
        "metrics.dashboard.annotations.grafana_folder=load",
        "watch.clusterWide=false",
        "watch.namespaces={team-a}",
    ],
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_rendered_mode_passes_server_side_validation(kube: Cluster, mode: str) -> None:
    """`kubectl apply --dry-run=server --validate=strict`: the real API server's schemas (an
    unknown or misplaced field fails) and admission, without persisting anything."""
    args = ["template", "t", str(CHART), "-n", "load", KUBE_VERSION]
    for item in MODES[mode]:
        args += ["--set", item]
    docs = [d for d in yaml.safe_load_all(kube.helm(*args).stdout) if d]
    done = kube.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        stdin=yaml.safe_dump_all(docs),
    )  # fmt: skip
    applied = done.stdout.split()
    assert len(applied) == len(docs), done.stdout + done.stderr
    kinds = {d["kind"] for d in docs}
    assert ("CustomResourceDefinition" in kinds) == (mode != "crds-external")
    assert ("PodDisruptionBudget" in kinds) == mode.startswith("ha-")
    assert ("ServiceMonitor" in kinds) == ("PodMonitor" in kinds) == mode.startswith("monitoring")
    assert ("PrometheusRule" in kinds) == mode.startswith("monitoring")
    dashboards = [
        d for d in docs if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert len(dashboards) == mode.startswith("monitoring")
    for dashboard in dashboards:
        assert dashboard["metadata"]["namespace"] == ("load" if mode == "monitoring" else "team-b")
        assert json.loads(dashboard["data"]["kar98k-loadtests.json"])["uid"] == "kar98k-loadtests"
    for monitor in (d for d in docs if d["kind"] == "PodMonitor"):
        selector = monitor["spec"]["namespaceSelector"]
        assert selector == ({"any": True} if mode == "monitoring" else {"matchNames": ["team-a"]})


def _loadtest(extra: dict[str, Any]) -> str:
    spec: dict[str, Any] = {
        "duration": "10s",
        "targets": [{"name": "api", "url": "http://127.0.0.1:9/"}],
        "pattern": {"baseTPS": 1},
        **extra,
    }
    return json.dumps(
        {
            "apiVersion": "kar98k.dev/v1alpha1",
            "kind": "LoadTest",
            "metadata": {"name": "upgraded", "namespace": "perf"},
            "spec": spec,
        }
    )


def _chart_with_field(dest: Path, field: str, version: str) -> Path:
    """A copy of the chart whose LoadTest CRD has one more spec field (a schema change)."""
    chart = dest / f"kar98k-{version}"
    shutil.copytree(CHART, chart)
    _add_field(chart / "files" / "crds" / f"{CRD}.yaml", field)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    return chart


def _add_field(crd_file: Path, field: str) -> None:
    crd = yaml.safe_load(crd_file.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"][field] = {"type": "string", "description": "added by the upgrade test"}
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))


def _crd_fields(kube: Cluster) -> set[str]:
    crd = json.loads(kube.kubectl("get", "crd", CRD, "-o", "json").stdout)
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return set(spec["properties"])


def test_crd_upgrade_paths_and_uninstall(kube: Cluster, tmp_path: Path) -> None:
    # The operator serves only `served`: the LoadTests below (in `perf`) send nothing.
    values = ["--set", "watch.clusterWide=false", "--set", "watch.namespaces={served}"]
    release = ["kar98k", "-n", "kar98k-system"]
    installed = kube.helm(
        "install", *release, str(CHART), "--create-namespace", "--wait", "--timeout", "120s",
        *values,
    )  # fmt: skip
    # NOTES.txt: a first LoadTest and how to watch it, in a namespace the operator serves.
    assert "kind: LoadTest" in installed.stdout and "namespace: served" in installed.stdout
    assert "kubectl -n served get lt -w" in installed.stdout
    assert "kubectl -n served delete lt first-test" in installed.stdout
    crd = json.loads(kube.kubectl("get", "crd", CRD, "-o", "json").stdout)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "owner" not in _crd_fields(kube)

    # Before the upgrade the server does not know spec.owner: strict validation refuses it.
    refused = kube.kubectl(
        "apply", "--validate=strict", "-f", "-", stdin=_loadtest({"owner": "a"}), check=False
    )
    assert refused.returncode != 0 and 'unknown field "spec.owner"' in refused.stderr

    # helm upgrade carries the templated CRD's schema change.
    v2 = _chart_with_field(tmp_path, "owner", "0.1.1")
    kube.helm("upgrade", *release, str(v2), "--wait", "--timeout", "120s", *values)
    assert "owner" in _crd_fields(kube)
    kube.kubectl("apply", "--validate=strict", "-f", "-", stdin=_loadtest({"owner": "payments"}))
    got = kube.kubectl("get", "lt", "upgraded", "-n", "perf", "-o", "jsonpath={.spec.owner}")
    assert got.stdout == "payments"

    # crds.install=false: helm lets go of the CRD (keep: not deleted) and the documented
    # `kubectl apply --server-side --force-conflicts -f crds/` step changes it instead.
    kube.helm(
        "upgrade", *release, str(v2), "--wait", "--timeout", "120s", *values,
        "--set", "crds.install=false",
    )  # fmt: skip
    assert "owner" in _crd_fields(kube)
    crds = tmp_path / "crds"
    shutil.copytree(REPO / "crds", crds)
    _add_field(crds / f"{CRD}.yaml", "team")
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    fields = _crd_fields(kube)
    assert "team" in fields and "owner" not in fields  # the applied file replaced the schema

    # Uninstall leaves the CRD and the LoadTests (and so their runs) in place.
    kube.helm("upgrade", *release, str(v2), "--wait", "--timeout", "120s", *values)
    kube.helm("uninstall", *release, "--wait", "--timeout", "120s")
    kube.kubectl("get", "crd", CRD)
    assert kube.kubectl("get", "lt", "-n", "perf", "-o", "name").stdout.split() == [
        "loadtest.kar98k.dev/upgraded"
    ]
    assert not kube.kubectl("get", "deploy", "-n", "kar98k-system", "-o", "name").stdout.split()
